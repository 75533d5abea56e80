"""The live face of the stepper: the ipywidgets view, driven from Python as a kernel would
drive it when a reader clicks (Button.click fires the on_click handlers)."""

from html import escape

import netsim
from netsim import scenarios
from netsim.views import Stepper, challenge, outcome_text, sentence
from netsim.views.hopinfo import main_drop


def parts(widget):
    controls, pick, diagram, quiz, panel, outcome = widget.children
    prev, nxt, play, slider, noarp, level, *rest = controls.children
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


def test_predict_hides_the_hop_until_answered_and_quotes_the_decision():
    cluster = netsim.reference_cluster()
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    (hop,) = trace.where("node1/flannel.1", "tx", "request")
    ch = challenge(trace, hop.index, "outer_dst", cluster=cluster)
    w = Stepper(trace, cluster, predict=[ch], start=hop.index).widget()
    prev, nxt, slider, pick, diagram, quiz, panel = parts(w)
    assert 'class="reveal"' not in panel.value and "192.168.50.12" not in panel.value
    assert w.children[5].value == ""                       # no outcome yet
    assert max(v for _, v in pick.options) == hop.index    # nothing after the question
    label, buttons = quiz.children
    wrong = next(i for i in range(len(ch.choices)) if i != ch.answer)
    buttons.children[wrong].click()
    label, buttons, verdict = quiz.children
    assert 'class="reveal"' in panel.value
    assert verdict.value.startswith("Not quite: the answer is 192.168.50.12. ")
    vxlan = next(d for d in hop.decisions if d.function == "vxlan_xmit")
    assert sentence(vxlan) in verdict.value.replace("&gt;", ">")
    assert buttons.children[ch.answer].button_style == "success"
    assert buttons.children[wrong].button_style == "danger"
    assert all(b.disabled for b in buttons.children)
    assert escape(outcome_text(trace.outcome)) in w.children[5].value


def test_the_level_switch_and_the_way_to_the_drop():
    cluster = netsim.reference_cluster()
    cluster.break_fdb("node1", "node2")
    trace = cluster.send("pod-a", "pod-c", proto="tcp")
    w = Stepper(trace, cluster).widget()
    controls = w.children[0].children
    level, to_drop = controls[5], controls[6]
    panel = w.children[4]
    assert 'data-level="summary"' in panel.value
    level.value = "minimal"
    assert 'data-level="minimal"' in panel.value
    to_drop.click()
    drop = main_drop(trace)
    assert controls[3].value == drop.index
    assert f"Dropped here</b> {sentence(drop.reason)}" in panel.value
    assert "✕ dropped at" in w.children[2].value
