"""The explanation layer (netsim/views/explain.py): field meanings by direction and owner, the
rewrites with the rule that made them, and the three levels, in the library and the CLI."""

from __future__ import annotations

import io

import pytest

from netsim import scenarios
from netsim.cli import main
from netsim.errors import UsageError
from netsim.packet import vxlan_of
from netsim.trace import Hop, Trace
from netsim.views.explain import FieldMeaning, encapsulation, field_meanings, hop_notes, render, rewrites


@pytest.fixture(scope="module")
def nodeport() -> Trace:
    return scenarios.SIX[5]()


@pytest.fixture(scope="module")
def cross_node() -> Trace:
    return scenarios.SIX[4]()


def one(trace: Trace, where: str, direction: str, role: str) -> Hop:
    (hop,) = trace.where(where, direction, role)
    return hop


def meaning(meanings: list[FieldMeaning], layer: str, field: str) -> FieldMeaning:
    (found,) = [m for m in meanings if m.layer == layer and m.field == field]
    return found


def test_ports_of_the_nodeport_syn_ack_are_explained_by_direction(nodeport):
    hop = one(nodeport, "node1/eth0", "tx", "reply")      # after un-DNAT and un-SNAT
    m = field_meanings(nodeport, hop)
    assert meaning(m, "tcp", "sport").text == "30080: the NodePort, the server side of this reply"
    assert meaning(m, "tcp", "dport").text == "45292: the client's port, the client side of this reply"
    # the same ports on the request read the other way round
    req = field_meanings(nodeport, one(nodeport, "node1/eth0", "rx", "request"))
    assert meaning(req, "tcp", "sport").text == "45292: the client's port, the client side of this request"
    assert meaning(req, "tcp", "dport").text == "30080: the NodePort, the server side of this request"
    # before the un-NAT the reply carries the ports DNAT and MASQUERADE chose
    inside = field_meanings(nodeport, one(nodeport, "node1/flannel.1", "rx", "reply"))
    assert meaning(inside, "tcp", "sport").text == "8080: the endpoint's port (DNAT's choice), the server side of this reply"
    assert meaning(inside, "tcp", "dport").text == ("45662: the client's port as MASQUERADE rewrote it, "
                                                     "the client side of this reply")


def test_addresses_are_named_by_their_owner(nodeport):
    m = field_meanings(nodeport, one(nodeport, "node1/eth0", "tx", "reply"))
    assert meaning(m, "ipv4", "src").text == "192.168.50.11: node1's eth0"
    assert meaning(m, "ipv4", "dst").text == "203.0.113.10: ext's eth0"
    assert meaning(m, "ethernet", "dst").text == "aa:79:c9:b8:46:d0: gateway's eth0"


def test_tcp_options_of_the_syn_ack_are_decoded(nodeport):
    m = field_meanings(nodeport, one(nodeport, "node1/eth0", "tx", "reply"))
    mss = meaning(m, "tcp", "options.mss")
    assert (mss.value, mss.text.split(":")[0]) == ("mss 1410", "MSS 1410")
    assert meaning(m, "tcp", "options.wscale").text.startswith("window scale 10 (windows x1024): ")
    assert meaning(m, "tcp", "options.sackOK").text.startswith("SACK permitted: ")
    ts = meaning(m, "tcp", "options.TS").text
    assert ts.startswith("timestamps val ") and " ecr " in ts
    assert [x.field for x in m if x.field.startswith("options.")] == [
        "options.mss", "options.sackOK", "options.TS", "options.wscale"]   # the NOP is padding


def test_vxlan_hop_names_the_inner_mac_and_the_outer_address(cross_node):
    hop = one(cross_node, "node1/eth0", "tx", "request")
    assert hop.encapsulated
    m = field_meanings(cross_node, hop)
    inner_dst = meaning(m, "ethernet", "dst")
    assert inner_dst.text == "a2:29:54:fe:a6:54: node2's flannel.1 (VTEP)"
    assert inner_dst.value == vxlan_of(hop.frame).payload.dst
    assert meaning(m, "outer-ipv4", "dst").text == "192.168.50.12: node2's eth0"
    assert meaning(m, "outer-ipv4", "src").text == "192.168.50.11: node1's eth0"
    assert meaning(m, "ipv4", "dst").text == "10.244.1.2: pod-c's eth0"


def test_the_leaving_hop_of_an_encapsulated_frame_states_the_encapsulation(cross_node):
    hop = one(cross_node, "node1/eth0", "tx", "request")
    udp = hop.ip.payload
    expected = (f"encapsulated: outer 192.168.50.11 > 192.168.50.12 ttl 64, UDP {udp.sport} > 8472, VXLAN VNI 1, "
                f"carrying 10.244.0.2 > 10.244.1.2 ttl 63 TCP {hop.inner_ip.payload.sport} > 8080 [S]")
    assert hop_notes(cross_node, hop) == [expected]
    # further along the underlay the frame is still encapsulated, but it is no longer leaving
    assert encapsulation(one(cross_node, "underlay/p-node1", "rx", "request")) is not None
    assert hop_notes(cross_node, one(cross_node, "underlay/p-node1", "rx", "request")) == []


def test_the_udp_backend_has_no_vni():
    trace = scenarios.SIX[4](backend="udp")
    hop = one(trace, "node1/eth0", "tx", "request")
    (note,) = hop_notes(trace, hop)
    assert ", UDP 8285 > 8285, flannel's udp backend (no header of its own), carrying 10.244.0.2 > " in note


def test_nodeport_dnat_old_to_new_with_its_rule(nodeport):
    hop = one(nodeport, "node1/eth0", "rx", "request")
    (dnat,) = [r for r in rewrites(hop) if r.rule is not None and r.rule.target == "DNAT"]
    assert (dnat.rule.table, dnat.rule.hook, dnat.rule.rule) == ("nat", "PREROUTING", 2)
    assert dnat.rule.chain.startswith("KUBE-SEP-")
    assert [str(c) for c in dnat.changes] == ["ipv4.dst 192.168.50.11 -> 10.244.1.2", "tcp.dport 30080 -> 8080"]
    lines = dnat.lines()
    assert lines[0].startswith(f"table nat, PREROUTING, chain {dnat.rule.chain}, rule 2 (via PREROUTING > "
                               "KUBE-SERVICES > KUBE-NODEPORTS > ")
    assert lines[1:] == ['  match:  -p tcp -m comment --comment "default/web" -m tcp',
                         "  action: DNAT --to-destination 10.244.1.2:8080",
                         "  ipv4.dst 192.168.50.11 -> 10.244.1.2",
                         "  tcp.dport 30080 -> 8080"]
    # the rewritten headers are those of the next capture point of the packet
    after = one(nodeport, "node1/flannel.1", "tx", "request")
    assert (after.inner_ip.dst, after.inner_ip.payload.dport) == ("10.244.1.2", 8080)


def test_un_nat_names_the_conntrack_entry(nodeport):
    hop = one(nodeport, "node1/flannel.1", "rx", "reply")
    by_action = {r.action: r for r in rewrites(hop)}
    assert [str(c) for c in by_action["un-SNAT (destination restored)"].changes] == [
        "ipv4.dst 10.244.0.0 -> 203.0.113.10", "tcp.dport 45662 -> 45292"]
    assert [str(c) for c in by_action["un-DNAT (source restored)"].changes] == [
        "ipv4.src 10.244.1.2 -> 192.168.50.11", "tcp.sport 8080 -> 30080"]
    assert by_action["decrement the TTL"].by == "ip_forward on node1"
    assert by_action["un-DNAT (source restored)"].by.startswith(
        "conntrack entry tcp 203.0.113.10:45292 -> 192.168.50.11:30080 (reply 10.244.1.2:8080 -> ")


def test_minimal_form_of_scenario_4_is_the_ttl_changes_and_the_encapsulation(cross_node):
    lines = render(cross_node, "minimal").splitlines()
    ttl = [l for l in lines if " ipv4.ttl " in l]
    assert ttl == [" 14 node1/cni0 rx ipv4.ttl 64 -> 63", " 31 node2/flannel.1 rx ipv4.ttl 63 -> 62",
                   " 43 node2/cni0 rx ipv4.ttl 64 -> 63", " 49 node1/flannel.1 rx ipv4.ttl 63 -> 62"]
    rest = [l for l in lines if l not in ttl]
    for where, src, dst, leaving in (("node1/flannel.1", "192.168.50.11", "192.168.50.12", "node1/eth0"),
                                     ("node2/flannel.1", "192.168.50.12", "192.168.50.11", "node2/eth0")):
        (vtep,) = cross_node.where(where, "tx")
        sport = cross_node.where(leaving, "tx", vtep.role)[0].ip.payload.sport
        head = f"{vtep.index:3d} {where} tx "
        assert [l for l in rest if l.startswith(head)] == [
            head + f"outer-ipv4.src (new) -> {src}", head + f"outer-ipv4.dst (new) -> {dst}",
            head + "outer-ipv4.ttl (new) -> 64", head + f"outer-udp.sport (new) -> {sport}",
            head + "outer-udp.dport (new) -> 8472", head + "vxlan.vni (new) -> 1"]
    decap = [l for l in rest if "decapsulated" in l]
    assert [l.split(" decapsulated")[0] for l in decap] == [" 30 node2/eth0 rx", " 48 node1/eth0 rx"]
    assert len(rest) == 12 + len(decap)
    assert render(scenarios.SIX[4](), "minimal") == "\n".join(lines)     # stable across runs


def test_summary_is_one_line_per_hop(nodeport):
    lines = render(nodeport, "summary").splitlines()
    assert len(lines) == len(nodeport) + 2                       # title and outcome
    dnat = lines[1 + one(nodeport, "node1/eth0", "rx", "request").index]
    assert dnat.split()[:5] == ["20", "node1/eth0", "rx", "request", "forward"]
    assert "ipv4.dst 192.168.50.11 -> 10.244.1.2; tcp.dport 30080 -> 8080" in dnat
    assert lines[-1] == "outcome: connected to 192.168.50.11:30080 (SYN-ACK)"


def test_detailed_lists_every_decision_with_its_rule(nodeport):
    text = render(nodeport, "detailed")
    assert sum(len(h.decisions) for h in nodeport) == sum(
        1 for l in text.splitlines() if l.startswith("    ") and not l.startswith("     ")
        and not l.startswith("    encapsulated") and not l.startswith("    decapsulated"))
    assert '          match:  -p tcp -m comment --comment "default/web" -m tcp' in text
    assert "          action: MASQUERADE --random-fully" in text
    assert "table filter, OUTPUT, chain OUTPUT, policy" in text


def test_unknown_level_is_refused(nodeport):
    with pytest.raises(ValueError, match="minimal, summary, detailed"):
        render(nodeport, "verbose")


@pytest.mark.parametrize("level", ["minimal", "summary", "detailed"])
def test_cli_prints_each_level(level):
    out = io.StringIO()
    assert main(["trace", "4", "--detail", level], out) == 0
    assert out.getvalue() == render(scenarios.SIX[4](), level) + "\n"


def test_cli_without_detail_prints_the_hop_table():
    out = io.StringIO()
    assert main(["trace", "4"], out) == 0
    assert out.getvalue().splitlines()[1].split()[:3] == ["#", "capture", "point"]


def test_cli_refuses_an_unknown_level(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["trace", "4", "--detail", "all"], io.StringIO())
    assert exit_.value.code == 2
    assert "invalid choice: 'all'" in capsys.readouterr().err


def test_hop_text_is_the_hop_of_each_level(nodeport):
    from netsim.views.explain import hop_text, port_names
    from netsim.views.headers import hop_layers
    summary = render(nodeport, "summary").splitlines()
    minimal = [line for hop in nodeport for line in hop_text(nodeport, hop, "minimal").splitlines()]
    assert minimal == render(nodeport, "minimal").splitlines()
    names = port_names(nodeport)
    for hop in nodeport:
        assert hop_text(nodeport, hop, "summary") == summary[1 + hop.index]
        assert hop_text(nodeport, hop, "detailed").splitlines()[0].startswith(f"{hop.index:3d} {hop.where} ")
        assert field_meanings(nodeport, hop, hop_layers(hop), names) == field_meanings(nodeport, hop)
    with pytest.raises(UsageError, match="unknown level 'full'"):
        hop_text(nodeport, nodeport[0], "full")


def test_an_nftables_rule_shows_as_an_iptables_rule_does():
    """kube-proxy's nftables mode: the DNAT of a NodePort SYN names the table, hook, chain and
    handle, the chains jumped through, the rule's match expressions and its statements; the
    set element that decided shows with the lookup."""
    from netsim.endpoints import tcp_syn
    from netsim.views.explain import detailed_lines, port_names
    from tests.nft_topology import model_pass, model_ruleset, node_netfilter

    hooks = node_netfilter(model_ruleset())
    syn = tcp_syn("203.0.113.10", "192.168.50.11", 40002, 30080, 1460, 64, 1)
    _, _, decisions = model_pass(hooks, syn, "eth1")
    hop = Hop(0, "node1", "eth1", "rx", syn, tuple(decisions), 1, "request")
    ep = "endpoint-X665QFQS-default/web/tcp/__10.244.1.2/8080"
    assert [r.decision.function for r in rewrites(hop)] == [
        "nft_do_chain", "nft_nat_eval", "nft_do_chain", "nf_nat_masquerade_ipv4"]
    assert rewrites(hop)[0].lines() == [
        "table ip kube-proxy, PREROUTING, chain mark-for-masquerade, handle 35 (via nat-prerouting > services > "
        "external-PFISGYVC-default/web/tcp/ > mark-for-masquerade)",
        "  match:  (every packet)",
        "  action: meta mark set meta mark | 0x00004000",
        "  skb.mark 0 -> 16384"]
    by = {r.decision.function: r for r in rewrites(hop)}
    assert by["nft_nat_eval"].lines() == [
        f"table ip kube-proxy, PREROUTING, chain {ep}, handle 107 (via nat-prerouting > services > "
        f"external-PFISGYVC-default/web/tcp/ > service-PFISGYVC-default/web/tcp/ > {ep})",
        "  match:  meta l4proto tcp",
        "  action: dnat to 10.244.1.2:8080",
        "  ipv4.dst 192.168.50.11 -> 10.244.1.2",
        "  tcp.dport 30080 -> 8080"]
    assert by["nf_nat_masquerade_ipv4"].lines()[:3] == [
        "table ip kube-proxy, POSTROUTING, chain masquerading, handle 38 (via nat-postrouting > masquerading)",
        "  match:  (every packet)",
        "  action: masquerade fully-random"]
    text = "\n".join(detailed_lines(Trace((hop,), "nft"), hop))
    assert ("        table ip kube-proxy, PREROUTING, chain services, handle 54 (via nat-prerouting > services)\n"
            "          match:  ip daddr @nodeport-ips\n"
            "          action: meta l4proto . th dport vmap @service-nodeports (element tcp . 30080 : goto "
            "external-PFISGYVC-default/web/tcp/ of @service-nodeports)") in text
    assert ("        table ip kube-proxy, FORWARD, chain filter-forward, policy\n"
            "          match:  (every packet)\n"
            "          action: accept") in text
    names = port_names(Trace((hop,), "nft"))
    assert names[("server", 30080)] == "the NodePort"
    assert names[("server", 8080)] == "the endpoint's port (DNAT's choice)"
