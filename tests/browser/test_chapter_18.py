"""Chapter 18 (In from the edge) on the built book, offline, in Debian's Chromium: its three
steppers ask the questions the chapter names, the NetworkPolicy stepper steps to its last hop
answering each question and goes back to the drop, and a wrong answer to the Ingress stepper's
first question says so and names the right chain. What the page should show is read from the
data each stepper carries, never typed in twice; each check waits for the element it reads."""

from __future__ import annotations

from tests.browser.test_book_steppers import _step_to_the_end, page_of, steppers_of  # noqa: F401 (fixture)
from tools.pagecheck import MAIN_CONTENT

EDGE = "notebooks/18-in-from-the-edge"


def _nth(pg, index: int) -> str:
    return "#" + pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth={index}", "id")


def test_the_chapter_asks_its_questions():
    found = steppers_of(EDGE)
    kinds = [sorted(q["k"] for q in data["q"].values()) for data in found]
    assert kinds == [["rule", "src_ip"], ["rule", "src_ip"], ["drop", "errno"]]
    ingress = found[1]
    assert len({(h["w"], h["dir"]) for h in ingress["hops"]}) > 30        # both connections, every device
    (drop_q,) = [q for q in found[2]["q"].values() if q["k"] == "drop"]
    assert drop_q["c"][drop_q["a"]] == "node2/flannel.1 (rx)"


def test_the_network_policy_stepper_steps_to_the_end_and_back_to_the_drop(page_of):  # noqa: F811
    data = steppers_of(EDGE)[2]
    pg = page_of(EDGE)
    st = _nth(pg, 2)
    _step_to_the_end(pg, st, data)
    assert data["out"] == "no answer reached the sender"
    pg.click(f"{st} [data-a=drop]")
    pg.wait_for_selector(f"{st}[data-hop='{data['drop']}'] .panel .drop")


def test_a_wrong_answer_names_the_right_chain(page_of):  # noqa: F811
    data = steppers_of(EDGE)[1]
    first = min(int(k) for k in data["q"])
    q = data["q"][str(first)]
    wrong = next(i for i in range(len(q["c"])) if i != q["a"])
    pg = page_of(EDGE)
    st = _nth(pg, 1)
    pg.click(f"{st} ol.hops li[data-i='{first}']")
    pg.click(f"{st} .panel .quiz .ch[data-c='{wrong}']")
    pg.wait_for_selector(f"{st} .panel .quiz .qx:text-matches('^Not quite')")
    assert pg.inner_text(f"{st} .panel .quiz .qx").startswith(f"Not quite: the answer is {q['c'][q['a']]}. ")
    assert q["c"][q["a"]].startswith("KUBE-SEP-")
