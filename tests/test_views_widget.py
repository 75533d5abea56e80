"""The live face of the stepper: the ipywidgets view, driven from Python as a kernel would
drive it when a reader clicks (Button.click fires the on_click handlers)."""

import netsim
from netsim import scenarios
from netsim.views import Stepper, challenge


def parts(widget):
    controls, pick, diagram, quiz, panel = widget.children
    prev, nxt, play, slider, *_ = controls.children      # then the "Hide ARP" toggle
    return prev, nxt, slider, pick, diagram, quiz, panel


def test_next_and_prev_move_the_panel_and_the_highlight():
    cluster = netsim.reference_cluster()
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    prev, nxt, slider, pick, diagram, quiz, panel = parts(Stepper(trace, cluster).widget())
    assert slider.value == 0 and f"Hop 0 of {len(trace) - 1}: {trace[0].where} tx" in panel.value
    first_diagram = diagram.value
    for _ in range(13):
        nxt.click()
    assert slider.value == pick.value == 13
    assert f"Hop 13 of {len(trace) - 1}: {trace[13].where} {trace[13].direction}" in panel.value
    assert diagram.value != first_diagram
    prev.click()
    assert slider.value == 12 and f"Hop 12 of {len(trace) - 1}: {trace[12].where}" in panel.value
    pick.value = len(trace) - 1
    nxt.click()                                    # already at the last hop: stays there
    assert slider.value == len(trace) - 1


def test_predict_hides_the_headers_until_answered_and_marks_the_answer():
    cluster = netsim.reference_cluster()
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    hop = next(h.index for h in trace.request if h.where == "node1/eth0")
    ch = challenge(trace, hop, "encap", cluster=cluster)
    stepper = Stepper(trace, cluster, predict=[ch], start=hop)
    prev, nxt, slider, pick, diagram, quiz, panel = parts(stepper.widget())
    assert '<div class="reveal hidden">' in panel.value
    label, buttons = quiz.children
    wrong = next(i for i in range(len(ch.choices)) if i != ch.answer)
    buttons.children[wrong].click()
    label, buttons, verdict = quiz.children
    assert '<div class="reveal hidden">' not in panel.value
    assert verdict.value.startswith("Not quite: the answer is ")
    assert buttons.children[ch.answer].button_style == "success"
    assert buttons.children[wrong].button_style == "danger"
    assert all(b.disabled for b in buttons.children)
