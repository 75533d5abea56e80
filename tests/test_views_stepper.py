"""The hop stepper and predict mode: content of both faces, determinism, size."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

import netsim
from netsim.trace import Trace
from netsim.views import Stepper, auto_challenges, challenge, header_view


@pytest.fixture(scope="module")
def s4():
    cluster = netsim.reference_cluster()
    return cluster, netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)


def _data(html: str) -> dict:
    raw = re.search(r'<script type="application/json" id="[^"]+-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(raw.replace("<\\/", "</"))


@pytest.mark.parametrize("number", sorted(netsim.scenarios.SIX))
def test_every_scenario_renders_all_faces(number):
    cluster = netsim.reference_cluster()
    trace = netsim.scenarios.SIX[number](cluster=cluster)
    st = Stepper(trace, cluster, predict=True)
    bundle = st._repr_mimebundle_()
    assert set(bundle) >= {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}
    data = _data(bundle["text/html"])
    assert len(data["hops"]) == len(trace)
    assert [h["w"] for h in data["hops"]] == [h.where for h in trace.hops]
    assert "<svg" in bundle["text/html"] and "http" not in bundle["text/html"].replace(
        "http://www.w3.org", "")
    assert st.widget() is not None


def test_static_html_marks_the_fields_that_changed(s4):
    cluster, trace = s4
    data = _data(Stepper(trace, cluster).to_html())
    (hop,) = trace.where("node1/flannel.1", "tx", "request")
    rec = data["hops"][hop.index]
    frame = data["frames"][rec["f"]]
    flat = [(layer[1], data["fields"][f[0]][0]) for layer in frame["L"] for f in layer[4]]
    assert sorted(flat[k] for k in rec["c"]) == sorted([
        ("ethernet", "Destination MAC"), ("ethernet", "Source MAC"), ("ipv4", "Time to live"),
        ("ipv4", "Header checksum")])
    (enc,) = trace.where("node1/eth0", "tx", "request")
    rec = data["hops"][enc.index]
    assert [data["frames"][rec["f"]]["L"][i][1] for i in rec["a"]] == [
        "outer-ethernet", "outer-ipv4", "outer-udp", "outer-vxlan"]
    assert data["frames"][rec["f"]]["x"] == enc.data.hex()


def test_static_html_highlights_the_hops_device(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster).to_html()
    data = _data(html)
    uid = re.search(r'class="netsim-stepper" id="([^"]+)"', html).group(1)
    (hop,) = trace.where("node2/cni0", "tx", "request")
    marks = data["hops"][hop.index]["e"]
    # the marked DOM ids are the device's and its host's boxes (and the arrow into the device)
    boxes = [re.search(rf'<g id="{uid}-e{n}">', html) for n in marks]
    assert all(boxes) and len(marks) == 3


def test_panel_for_first_hop_is_server_rendered(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster, start=25).to_html()
    assert "Hop 25 of 50: node1/eth0 tx" in html
    assert "Outer IPv4" in html and "<b>added</b>" in html


def test_html_is_deterministic_and_ids_are_counted_per_content(s4):
    cluster, trace = s4
    a, b = Stepper(trace, cluster).to_html(), Stepper(trace, cluster).to_html()
    ida = re.search(r'id="(ns[0-9a-f]+)-(\d+)"', a)
    idb = re.search(r'id="(ns[0-9a-f]+)-(\d+)"', b)
    assert ida.group(1) == idb.group(1) and int(idb.group(2)) == int(ida.group(2)) + 1
    assert a.replace(ida.group(0)[4:-1], "X") == b.replace(idb.group(0)[4:-1], "X")


def test_html_is_byte_identical_across_processes_and_hash_seeds():
    code = ("import hashlib, netsim; from netsim.views import Stepper;"
            "c = netsim.reference_cluster(); t = netsim.scenarios.SIX[4](cluster=c);"
            "print(hashlib.sha256(Stepper(t, c, predict=True).to_html().encode()).hexdigest())")
    outs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True).stdout for seed in ("0", "7", "4242")}
    assert len(outs) == 1


def test_thirty_hop_stepper_is_small_and_fast(s4):
    cluster, trace = s4
    thirty = Trace(trace.hops[:30], trace.title, trace.outcome)
    Stepper(thirty, cluster).to_html()          # warm matplotlib up
    t0 = time.perf_counter()
    html = Stepper(thirty, cluster).to_html()
    elapsed = time.perf_counter() - t0
    assert len(html.encode()) < 150_000, len(html)
    assert elapsed < 3.0


def test_auto_challenges_for_cross_node_ask_ttl_then_encapsulation(s4):
    cluster, trace = s4
    got = [(c.hop, c.kind, c.correct) for c in auto_challenges(trace, cluster)]
    (fl,) = trace.where("node1/flannel.1", "tx", "request")
    (eth,) = trace.where("node1/eth0", "tx", "request")
    assert got == [(fl.index, "ttl", "63"), (eth.index, "encap", "yes: inside an outer Ethernet/IP/UDP header")]


def test_challenge_answers_come_from_the_emulator(s4):
    cluster, trace = s4
    (hop,) = trace.where("node2/cni0", "tx", "request")
    mac = challenge(trace, hop.index, "dst_mac", cluster)
    assert mac.correct == f"{hop.frame.dst} (pod-c/eth0)"
    assert any("broadcast" in c for c in mac.choices)
    nat = netsim.scenarios.pod_to_external()
    (out,) = nat.where("node1/eth0", "tx", "request")
    assert challenge(nat, out.index, "src_ip").correct == "192.168.50.11"
    with pytest.raises(ValueError):
        challenge(trace, 0, "colour")


def test_predict_hides_the_headers_until_answered_in_the_static_face(s4):
    cluster, trace = s4
    first = auto_challenges(trace, cluster)[0].hop
    html = Stepper(trace, cluster, predict=[first], start=first).to_html()
    assert '<div class="reveal hidden">' in html and 'class="quiz"' in html
    q = _data(html)["q"][str(first)]
    assert q["c"][q["a"]].startswith(trace[first].frame.dst)    # a routed hop: the next hop's MAC


def test_header_view_text_marks_changes(s4):
    _, trace = s4
    (hop,) = trace.where("node1/flannel.1", "tx", "request")
    text = header_view(trace, hop.index)._repr_mimebundle_()["text/plain"]
    assert " * Time to live           63" in text
    assert "   Source address         10.244.0.2" in text


def test_stepper_rejects_bad_start(s4):
    cluster, trace = s4
    with pytest.raises(ValueError):
        Stepper(trace, cluster, start=len(trace))
