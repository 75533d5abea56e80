"""The hop stepper and predict mode: content of both faces, determinism, size."""

from __future__ import annotations

import json
import re
from html import escape
import subprocess
import sys
import time

import pytest

import netsim
from netsim.trace import Trace
from netsim.views import Stepper, auto_challenges, challenge, header_view, sentence


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
    boxes = [re.search(rf'<g id="{uid}-e{n}"( class="seg")?>', html) for n in marks]
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


# ------------------------------------------------------------------ layout and accessibility
def _luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    def ch(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_text_contrast_of_the_css_is_at_least_4_5_in_light_and_dark():
    from netsim.views.stepper import TEXT_PAIRS, css
    sheet = css("X")
    light = dict(re.findall(r"--ns-([a-z0-9]+):(#[0-9a-f]{6})", sheet[:sheet.index("}")]))
    dark_block = re.search(r'html\[data-theme="dark"\] #X,[^{]*\{([^}]*)\}', sheet).group(1)
    dark = dict(re.findall(r"--ns-([a-z0-9]+):(#[0-9a-f]{6})", dark_block))
    assert light.keys() == dark.keys() and {"fg", "muted", "bg"} <= light.keys()
    low = [(mode, fg, bg, round(contrast(v[fg], v[bg]), 2)) for mode, v in (("light", light), ("dark", dark))
           for fg, bg in TEXT_PAIRS if contrast(v[fg], v[bg]) < 4.5]
    assert low == []
    # offsets, ARP rows and meanings use the muted colour, never a literal grey
    assert re.search(r"\.off\{color:var\(--ns-muted\)", sheet) and "li.r-arp{color:var(--ns-muted)}" in sheet


def test_hop_list_shows_outer_and_inner_of_an_encapsulated_hop(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster).to_html()
    (enc,) = trace.where("node1/eth0", "tx", "request")
    row = re.search(rf'<li data-i="{enc.index}"[^>]*>(.*?)</li>', html).group(1).replace("&gt;", ">")
    assert f"outer {enc.ip.summary()}" in row
    assert f'<span class="in">inner {enc.inner_ip.summary()}</span>' in row
    (plain,) = trace.where("node1/flannel.1", "tx", "request")
    row = re.search(rf'<li data-i="{plain.index}"[^>]*>(.*?)</li>', html).group(1).replace("&gt;", ">")
    assert "outer" not in row and plain.inner_ip.summary() in row


def test_rows_after_an_unanswered_question_give_nothing_away(s4):
    cluster, trace = s4
    st = Stepper(trace, cluster, predict=True)
    first = st.challenges[0].hop
    html = st.to_html()
    classes = {int(i): c.split() for i, c in re.findall(r'<li data-i="(\d+)" class="([^"]+)"', html)}
    assert "ask" in classes[first] and all("later" in classes[i] for i in classes if i > first)
    assert not any({"ask", "later"} & set(classes[i]) for i in classes if i < first)
    # the question's own panel keeps its decisions with the headers, hidden until answered
    panel = Stepper(trace, cluster, predict=True, start=first).to_html()
    hidden = panel[panel.index('<div class="reveal hidden">'):]
    assert '<ul class="why">' not in panel[:panel.index('<div class="reveal hidden">')].split('<div class="panel">')[1]
    assert escape(sentence(trace[first].decisions[0])) in hidden


def test_the_static_face_has_its_controls_live_region_and_focusable_rows(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster).to_html()
    assert '<button data-a="arp" aria-pressed="false">Hide ARP</button>' in html
    assert re.search(r'<p class="sr" aria-live="polite">Hop 0 of 50: pod-a/eth0 tx', html)
    assert html.count('<li data-i="') == len(trace) == len(re.findall(r'<li data-i="\d+" class="[^"]+" tabindex="0"', html))
    assert 'tr class="fld" data-f="0" tabindex="0"' in html
    assert "position:sticky" in html and "@container (min-width:680px)" in html
    data = _data(html)
    assert [h["r"] for h in data["hops"]] == [h.role for h in trace.hops]
    assert all(len(h["m"]) == 2 for h in data["hops"]) and data["seg"]


def test_widget_hides_arp_hops_from_the_list_and_from_stepping(s4):
    cluster, trace = s4
    w = Stepper(trace, cluster).widget()
    (prev, nxt, play, slider, noarp), pick = w.children[0].children, w.children[1]
    noarp.value = True
    assert trace[slider.value].role != "arp"
    seen = [slider.value]
    for _ in range(len(trace)):
        nxt.click()
        seen.append(slider.value)
    assert all(trace[i].role != "arp" for i in seen) and seen[-1] == max(h.index for h in trace.hops if h.role != "arp")
    assert all(trace[v].role != "arp" for _, v in pick.options)


def test_fifty_hop_stepper_is_within_150_kb_and_100_ms(s4):
    cluster, trace = s4
    assert len(trace) >= 50
    Stepper(trace, cluster, predict=True).to_html()          # warm up (matplotlib, the layout's SVG)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        html = Stepper(trace, cluster, predict=True).to_html()
        times.append(time.perf_counter() - t0)
    assert len(html.encode()) <= 150_000, len(html)
    assert sorted(times)[2] <= 0.100, times
