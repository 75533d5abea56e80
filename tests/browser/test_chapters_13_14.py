"""Chapters 13 (a pod calls a Service) and 14 (a pod calls itself) as a reader uses them, offline:
every stepper of each page steps to its last hop, each question answered with the choice the
stepper's data marks right (and the feedback saying so), and the outcome shown at the end; one
question answered wrongly says what the answer is. On the book `make html` built, in Chromium,
with every network request aborted (test_book_steppers' page fixture)."""

from __future__ import annotations

import pytest

from tests.browser.test_book_steppers import _answer_wrongly, _step_to_the_end, page_of, steppers_of  # noqa: F401 (fixture)
from tools.pagecheck import MAIN_CONTENT

# the question kinds each stepper of the page asks, in page order (the chapters' predict=...)
KINDS = {
    "notebooks/13-pod-calls-a-service": [{"rule", "outer_dst"}, {"dst_mac", "rule"}, {"src_ip"}],
    "notebooks/14-pod-calls-itself": [{"rule", "src_ip"}, {"drop"}],
}
STEPPERS = [(name, i) for name, kinds in KINDS.items() for i in range(len(kinds))]


@pytest.mark.parametrize("name, index", STEPPERS, ids=[f"{n.split('/')[1][:2]}-{i}" for n, i in STEPPERS])
def test_each_stepper_steps_to_its_end_answering_its_questions(page_of, name, index):  # noqa: F811
    data = steppers_of(name)[index]
    assert {q["k"] for q in data["q"].values()} == KINDS[name][index]
    pg = page_of(name)
    st = "#" + pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth={index}", "id")
    _step_to_the_end(pg, st, data)


@pytest.mark.parametrize("name", list(KINDS))
def test_a_wrong_answer_is_told_the_right_one(page_of, name):  # noqa: F811
    data = steppers_of(name)[0]
    hop, q = min((int(k), v) for k, v in data["q"].items())
    pg = page_of(name)
    st = "#" + pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth=0", "id")
    _answer_wrongly(pg, st, hop, q)
