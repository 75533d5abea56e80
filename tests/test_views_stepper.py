"""The hop stepper: what each face shows for a hop, the questions, determinism, size.

What a panel says is checked on the data the static face carries (decoded with
`decode_payload`) against the trace's own records: the RuleRef a decision consulted, the
FieldChanges it made, the owners the trace names, the frames' headers.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from html import escape

import pytest

import netsim
from netsim.decision import RuleRef
from netsim.pcap import pcapng_bytes
from netsim.trace import Trace
from netsim.views import Stepper, auto_challenges, challenge, header_view, outcome_text, sentence
from netsim.views.hopinfo import main_drop
from netsim.views.pcapfiles import METADATA_KEY, notebook_pcaps, page_links
from netsim.views.predict import KINDS, find_hop
from netsim.views.stepper import decode_payload
from netsim.views.symptom import symptom


@pytest.fixture(scope="module")
def s4():
    cluster = netsim.reference_cluster()
    return cluster, netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)


@pytest.fixture(scope="module")
def s5():
    cluster = netsim.reference_cluster()
    return cluster, netsim.scenarios.external_to_nodeport(cluster=cluster)


@pytest.fixture(scope="module")
def no_fdb():
    cluster = netsim.reference_cluster()
    cluster.break_fdb("node1", "node2")
    return cluster, cluster.send("pod-a", "pod-c", proto="tcp")


def _flat(data: dict, rec: dict) -> list[tuple[str, str]]:
    """(layer id, field title) of every field of a hop's frame, in the panel's order."""
    frame = data["frames"][rec["f"]]
    return [(layer[1], data["fields"][f[0]][0]) for layer in frame["L"] for f in layer[4]]


def _said(data: dict, rec: dict) -> dict[tuple[str, str], str]:
    flat = _flat(data, rec)
    return {flat[k]: text for k, text in rec["x"]}


@pytest.mark.parametrize("number", sorted(netsim.scenarios.SIX))
def test_every_scenario_renders_all_faces(number):
    cluster = netsim.reference_cluster()
    trace = netsim.scenarios.SIX[number](cluster=cluster)
    st = Stepper(trace, cluster, predict=True)
    bundle, meta = st._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}
    assert base64.b64decode(meta[METADATA_KEY]["data"]) == pcapng_bytes(trace, explain=sentence)
    assert page_links(bundle["text/html"]) == [meta[METADATA_KEY]["filename"]]
    data = decode_payload(bundle["text/html"])
    assert len(data["hops"]) == len(trace)
    assert [h["w"] for h in data["hops"]] == [h.where for h in trace.hops]
    assert "<svg" in bundle["text/html"] and "http" not in bundle["text/html"].replace("http://www.w3.org", "")
    assert st.widget() is not None


def test_static_html_marks_the_fields_that_changed(s4):
    cluster, trace = s4
    data = decode_payload(Stepper(trace, cluster).to_html())
    (hop,) = trace.where("node1/flannel.1", "tx", "request")
    rec = data["hops"][hop.index]
    flat = _flat(data, rec)
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
    data = decode_payload(html)
    uid = re.search(r'class="netsim-stepper" id="([^"]+)"', html).group(1)
    (hop,) = trace.where("node2/cni0", "tx", "request")
    marks = data["hops"][hop.index]["e"]
    boxes = [re.search(rf'<g id="{uid}-e{n}"( class="seg")?>', html) for n in marks]
    assert all(boxes) and len(marks) == 3


def test_panel_for_first_hop_is_server_rendered(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster, start=27).to_html()
    assert "Hop 27 of 52: node1/eth0 tx" in html
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


# ------------------------------------------------------------------ what a hop's panel explains
def test_the_nodeport_dnat_hop_shows_before_and_after_with_the_rule(s5):
    cluster, trace = s5
    (hop,) = trace.where("node1/eth0", "rx", "request")
    (after,) = trace.where("node1/flannel.1", "tx", "request")
    (dnat,) = [d for d in hop.decisions if d.verdict == "dnat"]
    (rule,) = dnat.consulted_of(RuleRef)
    assert (rule.table, rule.hook, rule.target) == ("nat", "PREROUTING", "DNAT") and rule.chain.startswith("KUBE-SEP-")
    data = decode_payload(Stepper(trace, cluster).to_html())
    ba = data["hops"][hop.index]["b"]
    assert ba["n"] == after.index
    rows = {(r[0], r[1]): r for r in ba["r"]}
    dst = rows[("IPv4", "Destination address")]
    assert dst[2:4] == ["192.168.50.11", "10.244.1.2"] and dst[5:] == ["node1's eth0", "pod-c's eth0"]
    port = rows[("TCP", "Destination port")]
    assert port[2:4] == ["30080", "8080"] and port[4] == dst[4]
    by, via, match, action, word, is_rule, changes = ba["c"][dst[4]]
    assert by == f"table nat, PREROUTING, chain {rule.chain}, rule {rule.rule}" and rule.rule == 2
    assert via == " > ".join(rule.path) and via.startswith("PREROUTING > KUBE-SERVICES > KUBE-NODEPORTS")
    assert match == '-p tcp -m comment --comment "default/web" -m tcp'
    assert (action, word, is_rule) == ("DNAT --to-destination 10.244.1.2:8080", "DNAT", 1)
    assert changes == "ipv4.dst 192.168.50.11 -> 10.244.1.2, tcp.dport 30080 -> 8080"
    # the same hop also masquerades, decrements the TTL and writes new MACs, each numbered
    src = rows[("IPv4", "Source address")]
    assert src[2:4] == ["203.0.113.10", "10.244.0.0"] and ba["c"][src[4]][4] == "MASQUERADE"
    assert ba["c"][rows[("IPv4", "Time to live")][4]][4] == "ip_forward"
    assert ba["c"][rows[("Ethernet II", "Destination MAC")][4]][4] == "neigh_resolve_output"
    assert rows[("IPv4", "Time to live")][2:4] == ["63", "62"]


def test_the_server_side_panel_draws_the_same_before_and_after(s5):
    cluster, trace = s5
    (hop,) = trace.where("node1/eth0", "rx", "request")
    html = Stepper(trace, cluster, start=hop.index).to_html()
    panel = html[html.index('<div class="panel">'):]
    assert f"<th>Before: hop {hop.index} node1/eth0 rx</th><th>After: hop {hop.index + 1} node1/flannel.1 tx</th>" in panel
    assert ('<tr class="chg"><td>Destination address</td><td>192.168.50.11<span class="ow">node1&#x27;s eth0</span>'
            '</td><td>10.244.1.2<span class="ow">pod-c&#x27;s eth0</span></td>') in panel


def test_un_nat_on_the_reply_is_conntracks(s5):
    cluster, trace = s5
    (hop,) = trace.where("node1/flannel.1", "rx", "reply")
    ba = decode_payload(Stepper(trace, cluster).to_html())["hops"][hop.index]["b"]
    rows = {(r[0], r[1]): r for r in ba["r"]}
    dst, src = rows[("IPv4", "Destination address")], rows[("IPv4", "Source address")]
    assert dst[2:4] == ["10.244.0.0", "203.0.113.10"] and ba["c"][dst[4]][4] == "un-SNAT"
    assert src[2:4] == ["10.244.1.2", "192.168.50.11"] and ba["c"][src[4]][4] == "un-DNAT"
    assert ba["c"][dst[4]][0].startswith("conntrack entry tcp 203.0.113.10:45292 -> 192.168.50.11:30080")


def test_encapsulation_and_decapsulation_show_the_outer_headers_coming_and_going(s5):
    cluster, trace = s5
    data = decode_payload(Stepper(trace, cluster).to_html())
    (enc,) = trace.where("node1/flannel.1", "tx", "request")
    (out,) = trace.where("node1/eth0", "tx", "request")
    ba = data["hops"][enc.index]["b"]
    assert ba["n"] == out.index
    rows = {(r[0], r[1]): r for r in ba["r"]}
    outer = rows[("Outer IPv4", "Destination address")]
    assert outer[2:4] == ["", "192.168.50.12"] and outer[6] == "node2's eth0"
    assert ba["c"][outer[4]][0] == "flannel.1 on node1, FDB a2:29:54:fe:a6:54 dst 192.168.50.12"
    assert rows[("Inner IPv4", "Destination address")][2:4] == ["10.244.1.2", "10.244.1.2"]
    (dec,) = trace.where("node2/eth0", "rx", "request")
    ba = data["hops"][dec.index]["b"]
    gone = {(r[0], r[1]): r for r in ba["r"]}[("VXLAN", "VNI")]
    assert gone[2:4] == ["1", ""] and ba["c"][gone[4]][4] == "vxlan_rcv"
    assert ba["t"] == ["decapsulated by vxlan_rcv: outer 192.168.50.11 > 192.168.50.12, UDP "
                       f"{out.ip.payload.sport} > 8472 VNI 1 removed"]


def test_a_reply_hop_says_which_side_each_port_is(s5):
    cluster, trace = s5
    (hop,) = trace.where("node1/eth0", "tx", "reply")
    said = _said(decode_payload(Stepper(trace, cluster).to_html()), decode_payload(
        Stepper(trace, cluster).to_html())["hops"][hop.index])
    assert hop.ip.payload.sport == 30080
    assert said[("tcp", "Source port")] == "the NodePort, the server side of this reply"
    assert said[("tcp", "Destination port")] == "the client's port, the client side of this reply"


def test_the_vxlan_hop_names_the_owner_of_every_address(s4):
    cluster, trace = s4
    (hop,) = trace.where("node1/eth0", "tx", "request")
    data = decode_payload(Stepper(trace, cluster).to_html())
    said = _said(data, data["hops"][hop.index])
    assert said[("outer-ethernet", "Destination MAC")] == "node2's eth0"
    assert said[("outer-ipv4", "Source address")] == "node1's eth0"
    assert said[("ethernet", "Destination MAC")] == "node2's flannel.1 (VTEP)"
    assert said[("ethernet", "Source MAC")] == "node1's flannel.1 (VTEP)"
    assert said[("ipv4", "Destination address")] == "pod-c's eth0"


def test_tcp_options_are_decoded_one_by_one(s4):
    cluster, trace = s4
    syn = trace.request[0]
    data = decode_payload(Stepper(trace, cluster).to_html())
    rec = data["hops"][syn.index]
    flat = _flat(data, rec)
    (options,) = [(k, opts) for k, opts in rec["o"] if flat[k] == ("tcp", "Options")]
    got = dict(options[1])
    assert set(got) == {"mss 1410", "sackOK", "wscale 10"} | {k for k in got if k.startswith("TS val ")}
    assert got["mss 1410"].startswith("MSS 1410: ")
    assert got["wscale 10"].startswith("window scale 10 (windows x1024)")


def test_each_level_shows_what_netsim_trace_detail_shows(s5):
    cluster, trace = s5
    (hop,) = trace.where("node1/eth0", "rx", "request")
    html = Stepper(trace, cluster, start=hop.index, level="detailed").to_html()
    assert 'data-level="detailed"' in html and '<button data-lv="detailed" aria-pressed="true">' in html
    rec = decode_payload(html)["hops"][hop.index]
    assert rec["d"][0] == "conntrack nf_conntrack_in: new"
    assert any(line.strip().startswith("table nat, PREROUTING, chain KUBE-SEP-") for line in rec["d"])
    assert rec["k"] == [sentence(d) for d in hop.decisions]
    with pytest.raises(netsim.UsageError, match="'loud'"):
        Stepper(trace, cluster, level="loud")


def test_a_drop_is_marked_with_the_decision_that_made_it(no_fdb):
    cluster, trace = no_fdb
    drop = main_drop(trace)
    assert (drop.where, drop.direction, drop.reason.function) == ("node1/flannel.1", "tx", "vxlan_xmit")
    html = Stepper(trace, cluster).to_html()
    data = decode_payload(html)
    assert data["drop"] == drop.index and data["hops"][drop.index]["y"] == sentence(drop.reason)
    assert '<button data-a="drop">Go to the drop</button>' in html
    row = re.search(rf'<li data-i="{drop.index}"[^>]*>(.*?)</li>', html).group(1)
    assert '<b class="x" aria-label="dropped">✕</b>' in row
    at = Stepper(trace, cluster, start=drop.index).to_html()
    assert f'<div class="drop" role="note"><b>✕ Dropped here</b> {sentence(drop.reason)}</div>' in at
    uid = re.search(r'class="netsim-stepper" id="([^"]+)"', at).group(1)
    assert f'<g id="{uid}-x" class="xm"' in at and f'<g id="{uid}-pkt" class="pkt" style="display:none"' in at


def test_the_symptom_is_what_the_user_sees(no_fdb):
    _, trace = no_fdb
    assert symptom(trace).splitlines()[1] == ('connect(3, {sa_family=AF_INET, sin_port=htons(8080), '
                                              'sin_addr=inet_addr("10.244.1.2")}, 16) = -1 ETIMEDOUT (Connection timed out)')
    cluster = netsim.reference_cluster()
    cluster.break_neighbour("node1", "node2")
    lines = symptom(cluster.send("pod-a", "pod-c")).splitlines()
    assert lines[2] == "From 10.244.0.1 icmp_seq=1 Destination Host Unreachable"
    assert lines[-1] == "1 packets transmitted, 0 received, +1 errors, 100% packet loss"


# ------------------------------------------------------------------ questions
def test_kinds_are_asked_in_the_order_given_each_after_the_last(s4):
    cluster, trace = s4
    asked = [(c.kind, trace[c.hop].where, trace[c.hop].direction, trace[c.hop].role)
             for c in Stepper(trace, cluster, predict=["next_device", "outer_dst", "ttl", "encap"]).challenges]
    assert asked == [("next_device", "node1/cni0", "rx", "request"), ("outer_dst", "node1/flannel.1", "tx", "request"),
                     ("ttl", "node2/flannel.1", "rx", "request"), ("encap", "node2/cni0", "rx", "reply")]
    hostgw = netsim.reference_cluster("host-gw")
    trace = netsim.scenarios.pod_to_pod_cross_node(cluster=hostgw)
    asked = [(c.kind, trace[c.hop].where, c.correct) for c in
             Stepper(trace, hostgw, predict=["next_device", "outer_dst", "ttl", "encap"]).challenges]
    assert asked == [("next_device", "node1/cni0", "node1/eth0"), ("ttl", "node2/eth0", "62"),
                     ("encap", "node2/cni0", "no: the frame carries the packet directly")]


def test_questions_come_from_the_decisions(s5):
    cluster, trace = s5
    (hop,) = trace.where("node1/eth0", "rx", "request")
    (dnat,) = [d for d in hop.decisions if d.verdict == "dnat"]
    rule = challenge(trace, hop.index, "rule", cluster)
    assert rule.correct == dnat.consulted_of(RuleRef)[0].chain
    assert {"KUBE-SERVICES", "KUBE-NODEPORTS"} <= set(rule.choices)
    assert sentence(dnat) in rule.quote
    sport = challenge(trace, hop.index, "masq_sport", cluster)
    (masq,) = [d for d in hop.decisions if d.verdict == "masquerade"]
    assert sport.correct == str(masq.change("tcp", "sport").new) and "45292" in sport.choices
    (enc,) = trace.where("node1/flannel.1", "tx", "request")
    outer = challenge(trace, enc.index, "outer_dst", cluster)
    assert outer.correct == "192.168.50.12" and outer.about == trace.where("node1/eth0", "tx", "request")[0].index
    nxt = challenge(trace, hop.index, "next_device", cluster)
    assert nxt.correct == "node1/flannel.1" and "node1/cni0" in nxt.choices
    assert sentence(next(d for d in hop.decisions if d.function == "ip_route_input")) in nxt.quote


def test_drop_and_errno_questions(no_fdb):
    cluster, trace = no_fdb
    drop = main_drop(trace)
    q = challenge(trace, find_hop(trace, "drop", cluster), "drop", cluster)
    assert q.correct == "node1/flannel.1 (tx)" and q.about == drop.index
    assert f"Hop {drop.index} (node1/flannel.1 tx): «{sentence(drop.reason)}»" in q.quote
    e = challenge(trace, 0, "errno", cluster)
    assert e.correct == "ETIMEDOUT (Connection timed out)" and "no error: the answer arrives" in e.choices
    assert e.feedback(e.answer).startswith("Right. ") and e.feedback(None).startswith(
        "Skipped: the answer is ETIMEDOUT (Connection timed out). ")


def test_no_errno_question_on_a_tool_trace():
    """A tool's walk has no outcome (each of its sockets has its own errors): the generator does
    not ask the errno there, and asking it by hand is refused, instead of answering "no error"
    for a traceroute whose last probes end in port unreachables."""
    from netsim.errors import UsageError
    from netsim.views.predict import challenges
    cluster = netsim.reference_cluster()
    trace = cluster.traceroute("pod-a", "10.244.1.2", numeric=True).traces[0]
    assert any(h.inner_ip is not None and getattr(h.inner_ip.payload, "type", None) == 3 for h in trace.hops)
    assert find_hop(trace, "errno", cluster) is None
    assert "errno" not in [c.kind for c in challenges(trace, ["errno", "drop"], cluster)]
    with pytest.raises(UsageError, match="has no outcome to ask the errno of"):
        challenge(trace, 0, "errno", cluster)
    sent = cluster.send("pod-a", "pod-c", proto="udp")
    assert find_hop(sent, "errno", cluster) == 0


def test_every_kind_is_asked_somewhere_in_the_six_scenarios_or_a_broken_cluster(no_fdb):
    seen = set()
    for number, make in sorted(netsim.scenarios.SIX.items()):
        cluster = netsim.reference_cluster()
        trace = make(cluster=cluster)
        seen |= {k for k in KINDS if find_hop(trace, k, cluster) is not None}
    assert find_hop(no_fdb[1], "drop", no_fdb[0]) is not None
    assert seen | {"drop"} == set(KINDS)


def test_auto_challenges_for_cross_node(s4):
    cluster, trace = s4
    got = [(c.hop, c.kind, c.correct) for c in auto_challenges(trace, cluster)]
    (cni,) = trace.where("node1/cni0", "rx", "request")
    (fl,) = trace.where("node1/flannel.1", "tx", "request")
    assert got == [(cni.index, "next_device", "node1/flannel.1"), (fl.index, "outer_dst", "192.168.50.12")]


def test_nothing_from_an_unanswered_question_on_is_in_the_page(s5):
    cluster, trace = s5
    st = Stepper(trace, cluster, predict=["rule", "outer_dst"])
    first = st.challenges[0]
    html = st.to_html()
    assert first.quote not in html and first.explanation not in html
    later = [sentence(d) for h in trace.hops[first.hop:] for d in h.decisions]
    assert later and not any(s in html for s in later)
    rows = [int(i) for i in re.findall(r'<li data-i="(\d+)"', html)]
    assert rows == list(range(first.hop + 1))
    ask = re.search(rf'<li data-i="{first.hop}"[^>]*>(.*?)</li>', html).group(1)
    assert '<span class="q">? predict first</span>' in ask and 'class="s"' not in ask
    assert '<p class="out"></p>' in html and escape(outcome_text(trace.outcome)) not in html
    # the answers are inside the compressed data
    data = decode_payload(html)
    assert data["q"][str(first.hop)]["c"][data["q"][str(first.hop)]["a"]] == first.correct
    assert data["q"][str(first.hop)]["x"] == first.why
    # the question's own hop, started at: only its title (no verdict) and the question
    at = Stepper(trace, cluster, predict=[first], start=first.hop).to_html()
    panel = at[at.index('<div class="panel">'):at.index("<script")]
    assert panel.count("<div") == 4 and 'class="quiz"' in panel and 'class="reveal"' not in panel


def test_a_stepper_without_questions_lists_every_hop_and_the_outcome(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster).to_html()
    hops = html[html.index('<ol class="hops"'):html.index("</ol>")]
    assert hops.count('<li data-i="') == len(trace) == len(re.findall(r'<li data-i="\d+" class="[^"]+" tabindex="0"', hops))
    assert f'<p class="out">{escape(outcome_text(trace.outcome))}</p>' in html


def test_header_view_text_marks_changes(s4):
    _, trace = s4
    (hop,) = trace.where("node1/flannel.1", "tx", "request")
    text = header_view(trace, hop.index)._repr_mimebundle_()["text/plain"]
    assert " * Time to live           63" in text
    assert "   Source address         10.244.0.2" in text


def test_stepper_rejects_bad_arguments(s4):
    cluster, trace = s4
    with pytest.raises(netsim.UsageError):
        Stepper(trace, cluster, start=len(trace))
    with pytest.raises(netsim.UsageError, match="'colour'"):
        Stepper(trace, cluster, predict=["colour"])
    assert Stepper(trace, cluster, predict=["drop"]).challenges == []       # a trace with no drop


# ------------------------------------------------------------------ the pcapng beside it
def test_the_pcap_is_named_for_the_trace_and_carried_in_the_output(s4):
    cluster, trace = s4
    name, data = Stepper(trace, cluster).pcap()
    assert re.fullmatch(r"pod-a-to-pod-c-tcp-8080-[0-9a-f]{6}\.pcapng", name)
    assert data == pcapng_bytes(trace, explain=sentence)
    # the packet comments a reader sees in Wireshark tell the decisions in the book's sentences
    (encap,) = trace.where("node1/flannel.1", "tx", "request")
    told = [sentence(d) for d in encap.decisions]
    assert told and all(t.encode() in data for t in told)
    assert f"{encap.decisions[0].function} {encap.decisions[0].reason.value}:".encode() not in data
    bundle, meta = Stepper(trace, cluster)._repr_mimebundle_()
    notebook = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {k: v for k, v in bundle.items() if k != "text/plain"},
         "metadata": meta}]}]}
    assert notebook_pcaps(notebook) == [(name, data)]
    entry = notebook["cells"][0]["outputs"][0]["metadata"][METADATA_KEY]
    entry["filename"] = "../evil.pcapng"
    with pytest.raises(ValueError, match="evil"):
        notebook_pcaps(notebook)
    entry["filename"] = name[:-13] + "000000.pcapng"
    with pytest.raises(ValueError, match="bytes its name was made for"):
        notebook_pcaps(notebook)


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


def test_the_static_face_has_its_controls_live_region_and_focusable_rows(s4):
    cluster, trace = s4
    html = Stepper(trace, cluster).to_html()
    assert '<button data-a="arp" aria-pressed="false">Hide ARP</button>' in html
    assert re.search(r'<p class="sr" aria-live="polite">Hop 0 of 52: pod-a/eth0 tx', html)
    assert 'tr class="fld" data-f="0" tabindex="0"' in html
    assert "position:sticky" in html and "@container (min-width:680px)" in html
    data = decode_payload(html)
    assert [h["r"] for h in data["hops"]] == [h.role for h in trace.hops]
    assert all(len(h["m"]) == 2 for h in data["hops"]) and data["seg"]


def test_widget_hides_arp_hops_from_the_list_and_from_stepping(s4):
    cluster, trace = s4
    w = Stepper(trace, cluster).widget()
    (prev, nxt, play, slider, noarp, level), pick = w.children[0].children, w.children[1]
    noarp.value = True
    assert trace[slider.value].role != "arp"
    seen = [slider.value]
    for _ in range(len(trace)):
        nxt.click()
        seen.append(slider.value)
    assert all(trace[i].role != "arp" for i in seen) and seen[-1] == max(h.index for h in trace.hops if h.role != "arp")
    assert all(trace[v].role != "arp" for _, v in pick.options)


def test_a_long_stepper_is_small(s4):
    """A 50-hop stepper with questions stays within 150 KB (its render time is in make bench)."""
    cluster, trace = s4
    assert len(trace) >= 50
    html = Stepper(trace, cluster, predict=True).to_html()
    assert len(html.encode()) <= 150_000, len(html)
    thirty = Trace(trace.hops[:30], trace.title, trace.outcome)
    assert len(Stepper(thirty, cluster).to_html().encode()) < 150_000
