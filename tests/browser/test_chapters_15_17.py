"""Chapters 15 ("When packets die"), 16 ("MTU") and 17 ("kube-proxy's modes") in the built book,
offline in Chromium: each page's steppers are there and ask questions; the first stepper that
asks is stepped to its last hop with Next, each question answered with its right choice (the
feedback starts "Right."), and the outcome line appears at the end. One question is also
answered wrongly first on a fresh page: the feedback names the right answer. What the page
should show is read from the stepper's own data (test_book_steppers.steppers_of).
"""

from __future__ import annotations

import pytest

from tests.browser.test_book_steppers import _answer_wrongly, _step_to_the_end, page_of, steppers_of  # noqa: F401 (fixture)
from tools.pagecheck import MAIN_CONTENT

CHAPTERS = ["notebooks/15-when-packets-die", "notebooks/16-mtu", "notebooks/17-kube-proxy-modes"]


def _asking(name: str) -> tuple[int, dict]:
    found = steppers_of(name)
    assert len(found) >= 2, f"{name} has {len(found)} steppers"
    return next((k, d) for k, d in enumerate(found) if d["q"])


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_chapter_steps_its_stepper_to_the_end_answering_each_question(page_of, name):  # noqa: F811
    k, data = _asking(name)
    pg = page_of(name)
    st = "#" + pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth={k}", "id")
    _step_to_the_end(pg, st, data)


@pytest.mark.parametrize("name", CHAPTERS)
def test_a_wrong_answer_is_told_the_right_one(page_of, name):  # noqa: F811
    k, data = _asking(name)
    gate = min(int(h) for h in data["q"])
    pg = page_of(name)
    st = "#" + pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth={k}", "id")
    _answer_wrongly(pg, st, gate, data["q"][str(gate)])
