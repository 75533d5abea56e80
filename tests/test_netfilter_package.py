"""The netfilter package's structure as facts: the hook order table, the errors it raises, the
decision records each step leaves, and what REJECT sends (the packets, field by field, from the
model alone and through the walk).

Addresses are the reference cluster's (tests/test_netfilter.py lists them): node1 eth0
192.168.50.11, cni0 10.244.0.1, pod-a 10.244.0.2, pod-c (node2) 10.244.1.2, ext 203.0.113.10.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import netsim
from netsim import scenarios
from netsim.decision import (ConntrackRef, Decision, FieldChange, NatReason, NetfilterReason, Outcome, OutcomeReason,
                             RuleRef)
from netsim.errors import ConfigError, NetsimError
from netsim.netfilter import (HOOK_ORDER, HOOKS, HookResult, Netfilter, RuleError, nf_send_reset, nf_send_unreach,
                              reject_reply)
from netsim.netfilter.hooks import stages
from netsim.packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TCP, UDP
from netsim.skb import Skb
from tests.test_netfilter import FakeNetns, flannel, node1, tcp


# ---- the hook order: one table, the kernel's priorities -------------------------------------

def test_hook_order_is_the_kernels_registration_by_priority():
    """include/uapi/linux/netfilter_ipv4.h: raw -300, conntrack -200, mangle -150, nat dst -100,
    filter 0, nat src 100, confirm INT_MAX; each hook's stages run lowest priority first."""
    table = {hook: [(s.name, s.priority) for s in HOOK_ORDER[hook]] for hook in HOOKS}
    assert table == {
        "PREROUTING": [("raw", -300), ("conntrack", -200), ("mangle", -150), ("nat-dst", -100)],
        "INPUT": [("mangle", -150), ("filter", 0), ("nat-src", 100), ("confirm", 2 ** 31 - 1)],
        "FORWARD": [("mangle", -150), ("filter", 0)],
        "OUTPUT": [("raw", -300), ("conntrack", -200), ("mangle", -150), ("nat-dst", -100), ("filter", 0)],
        "POSTROUTING": [("mangle", -150), ("nat-src", 100), ("confirm", 2 ** 31 - 1)],
    }
    for hook in HOOKS:
        priorities = [s.priority for s in HOOK_ORDER[hook]]
        assert priorities == sorted(priorities), hook
    # every stage has its runner in Netfilter (and an nft base chain's stage, "nft", too)
    assert {s.name for order in HOOK_ORDER.values() for s in order} | {"nft"} == set(Netfilter._RUN)
    # without conntrack hooked in, only the tables' stages are left
    assert [s.name for s in stages("OUTPUT", False)] == ["raw", "mangle", "filter"]
    assert [s.name for s in stages("POSTROUTING", False)] == ["mangle"]


def test_mangle_runs_before_nat_and_filter_after_it_at_output():
    """The order is observable: at OUTPUT the mangle MARK is seen by nat's mark match, and
    filter sees the packet nat DST already rewrote (nat -100 before filter 0)."""
    nf = FakeNetns().netfilter
    nf.append("mangle", "OUTPUT", "-j MARK --set-mark 0x7")
    nf.append("nat", "OUTPUT", "-p tcp -m mark --mark 0x7 -j DNAT --to-destination 10.244.1.2:8080")
    nf.append("filter", "OUTPUT", "-d 10.244.1.2/32 -p tcp -m tcp --dport 8080 -j DROP")
    result = nf.hook("OUTPUT", tcp("192.168.50.11", 40000, "10.96.0.100", 80), Skb(), None, "eth0")
    assert result.verdict == "DROP"
    assert result.decisions[3].changes == (FieldChange("ipv4", "dst", "10.96.0.100", "10.244.1.2"),
                                           FieldChange("tcp", "dport", 80, 8080))
    assert [(d.subsystem, d.function, d.verdict) for d in result.decisions] == [
        ("conntrack", "nf_conntrack_in", "new"), ("netfilter", "ipt_do_table", "continue"),
        ("netfilter", "ipt_do_table", "accept"), ("nat", "nf_nat_inet_fn", "dnat"), ("netfilter", "ipt_do_table", "drop"),
        ("conntrack", "nf_conntrack_destroy", "discard")]


# ---- errors: netsim's own type, naming the option and what is supported -----------------------

@pytest.mark.parametrize("spec, words", [
    ("-p tcp --frobnicate 1 -j ACCEPT", ["'--frobnicate'", "-m tcp|udp|icmp|mark|addrtype|conntrack|state|"
                                          "comment|nfacct|statistic|multiport", "-j ACCEPT|DROP|RETURN|REJECT|MARK|DNAT|SNAT|MASQUERADE"]),
    ("-p tcp -m set --match-set x src -j ACCEPT", ["-m set", "supported: -s, -d, -i, -o, -p"]),
    ("-p icmp -m multiport --dports 80 -j ACCEPT", ["multiport needs `-p tcp' or `-p udp'"]),
    ("-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16 -j ACCEPT", ["too many ports"]),
    ("-m mark --mask 3 -j ACCEPT", ["unknown option '--mask'; -m mark takes --mark; supported:"]),
    ("-j REJECT --reject-type x", ["unknown option '--reject-type'; -j REJECT takes --reject-with; supported:"]),
    ("-j LOG", ["-j LOG", "no such target or chain", "supported:"]),
    ("-m physdev --physdev-is-bridged -j ACCEPT", ["-m physdev is not modelled"]),
    ("-f -j DROP", ["-f (match non-first fragments) is not modelled", "supported:"]),
    ("-m statistic --mode nth --every 2 -j ACCEPT", ["--mode nth", "models only --mode random"]),
    ("-m addrtype --dst-type UNICAST -j ACCEPT", ["UNICAST", "only the LOCAL address type"]),
    ("-p tcp --dport http -j ACCEPT", ["--dport", "'http'", "does not read /etc/services"]),
    ("-s example.org -j ACCEPT", ["-s", "'example.org'", "does not resolve host names"]),
])
def test_a_rule_the_grammar_does_not_know_is_a_rule_error_naming_the_option(spec, words):
    nf = FakeNetns().netfilter
    with pytest.raises(RuleError) as caught:
        nf.append("filter", "INPUT", spec)
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, NetsimError)
    for word in words:
        assert word in str(caught.value)
    assert nf.rules("filter", "INPUT") == []


def test_every_refusal_of_tables_chains_and_restore_is_a_rule_error():
    nf = node1().netfilter
    attempts = [
        lambda: nf.append("security", "INPUT", "-j ACCEPT"),
        lambda: nf.append("filter", "NOPE", "-j ACCEPT"),
        lambda: nf.new_chain("filter", "ACCEPT"),
        lambda: nf.delete_chain("filter", "INPUT"),
        lambda: nf.delete_chain("filter", "KUBE-FORWARD"),
        lambda: nf.set_policy("filter", "INPUT", "REJECT"),
        lambda: nf.insert("filter", "INPUT", "-j ACCEPT", 5),
        lambda: nf.delete("filter", "INPUT", 3),
        lambda: nf.restore("*filter\n-A INPUT -j ACCEPT\n"),
        lambda: nf.restore("*filter\n-Z INPUT\nCOMMIT\n"),
        lambda: nf.restore("*filter\n-A INPUT -m comment --comment 'open\nCOMMIT\n"),
        lambda: nf.restore("*broute\nCOMMIT\n"),
        lambda: nf.hook("INGRESS", tcp("10.0.0.1", 1, "10.0.0.2", 2), Skb(), "eth0", None),
        lambda: reject_reply(tcp("10.0.0.1", 1, "10.0.0.2", 2), "icmp-frobnicated"),
    ]
    before = nf.save()
    messages = []
    for attempt in attempts:
        with pytest.raises(RuleError) as caught:
            attempt()
        messages.append(str(caught.value))
    assert nf.save() == before
    assert messages[0] == "unknown table 'security'; netsim models mangle, raw, filter, nat"
    assert messages[1] == "no chain 'NOPE' in table 'filter'; its chains are INPUT, FORWARD, OUTPUT, FLANNEL-FWD, KUBE-FORWARD"
    assert messages[8] == "table 'filter' has no COMMIT"
    assert messages[9].startswith("line 2: iptables-restore command '-Z' is not modelled; use -A, -I, -D, -N, -F or -X")
    assert messages[10].startswith("line 2: cannot split")
    assert messages[12] == "unknown hook 'INGRESS'; hooks are PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING"


# ---- decisions: records naming the rule, the connection and the rewrite ------------------------

def _nodeport_decisions(monkeypatch: pytest.MonkeyPatch) -> tuple[netsim.Cluster, netsim.Trace, list[HookResult]]:
    """Scenario 5 through the walk, keeping what node1's netfilter returned at each hook."""
    cluster = netsim.reference_cluster()
    cluster.netns("node1").netfilter.save()             # kube-proxy's pending sync runs now
    nf = cluster.netns("node1").netfilter
    assert isinstance(nf, Netfilter)
    results: list[HookResult] = []
    real = nf.run                                       # the walk's entry: None when the hook passes

    def keep(*args, **kwargs) -> HookResult | None:
        result = real(*args, **kwargs)
        if result is not None:
            results.append(result)
        return result

    monkeypatch.setattr(nf, "run", keep)
    trace = scenarios.external_to_nodeport(cluster=cluster)
    return cluster, trace, results


def test_nodeport_dnat_decision_names_table_chain_rule_and_the_rewrite(monkeypatch):
    """Scenario 5 (ext -> node1:30080, served by pod-c): the DNAT decision names table nat, the
    KUBE-SEP chain, its rule number and the destination old -> new."""
    cluster, trace, results = _nodeport_decisions(monkeypatch)
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", "192.168.50.11:30080")
    dnats = [d for r in results for d in r.decisions if d.verdict == "dnat"]
    assert len(dnats) == 1                               # the nat table sees the first packet only
    dnat = dnats[0]
    svc = cluster.services["web"]
    sep = svc.sep_chain("10.244.1.2")
    rule, conn = dnat.consulted
    assert isinstance(rule, RuleRef) and isinstance(conn, ConntrackRef)
    assert (dnat.subsystem, dnat.function) == ("nat", "nf_nat_inet_fn")
    assert (rule.table, rule.hook, rule.chain, rule.rule, rule.target) == ("nat", "PREROUTING", sep, 2, "DNAT")
    assert rule.path == ("PREROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS", svc.ext_chain, svc.svc_chain, sep)
    assert rule.comment == "default/web"
    assert rule.text == (f'-A {sep} -p tcp -m comment --comment "default/web" -m tcp '
                         f'-j DNAT --to-destination 10.244.1.2:8080')
    assert rule.text in cluster.show("node1", "iptables-save").splitlines()
    assert dnat.changes == (FieldChange("ipv4", "dst", "192.168.50.11", "10.244.1.2"),
                            FieldChange("tcp", "dport", 30080, 8080))
    client = trace.request[0].ip
    assert client is not None and isinstance(client.payload, TCP)
    sport = client.payload.sport
    assert conn == ConntrackRef("tcp", f"203.0.113.10:{sport} -> 192.168.50.11:30080",
                                f"10.244.1.2:8080 -> 203.0.113.10:{sport}", "NEW", "original")
    assert (rule.matches, rule.target_options) == (("-p tcp", '-m comment --comment "default/web"', "-m tcp"),
                                                   ("--to-destination", "10.244.1.2:8080"))
    assert (dnat.reason, dnat.facts) == (NatReason.BINDING, (("manip", "DST"), ("old", "192.168.50.11:30080"),
                                                             ("new", "10.244.1.2:8080")))
    # the record is the one the hop shows
    assert [hop.where for hop in trace.hops if dnat in hop.decisions] == ["node1/eth0"]


def test_masquerade_and_un_nat_decisions_name_what_they_rewrote(monkeypatch):
    """Scenario 5's SNAT at node1 POSTROUTING (MASQUERADE to flannel.1's address) and the
    reply's un-SNAT and un-DNAT, as records."""
    cluster, trace, results = _nodeport_decisions(monkeypatch)
    decisions = [d for r in results for d in r.decisions]
    masq = [d for d in decisions if d.verdict == "masquerade"]
    assert len(masq) == 1
    (m,) = masq
    rule = m.consulted[0]
    assert isinstance(rule, RuleRef)
    assert (m.subsystem, m.function) == ("nat", "nf_nat_masquerade_ipv4")
    assert (rule.table, rule.hook, rule.chain, rule.rule, rule.target) == (
        "nat", "POSTROUTING", "KUBE-POSTROUTING", 3, "MASQUERADE")
    assert rule.comment == "kubernetes service traffic requiring SNAT"
    sport = trace.request[0].ip.payload.sport                  # type: ignore[union-attr]
    (src, port) = m.changes
    assert src == FieldChange("ipv4", "src", "203.0.113.10", "10.244.0.0")
    assert (port.layer, port.field, port.old) == ("tcp", "sport", sport)
    assert 1024 <= int(port.new) <= 65535                  # --random-fully: a port from the whole range
    undo = [d for d in decisions if d.function == "nf_nat_packet"]
    assert [(d.subsystem, d.verdict, d.consulted[0].direction) for d in undo] == [   # type: ignore[union-attr]
        ("nat", "rewrite", "reply"), ("nat", "rewrite", "reply")] * (len(undo) // 2)
    assert undo[0].changes == (FieldChange("ipv4", "dst", "10.244.0.0", "203.0.113.10"),
                               FieldChange("tcp", "dport", port.new, sport))
    assert undo[1].changes == (FieldChange("ipv4", "src", "10.244.1.2", "192.168.50.11"),
                               FieldChange("tcp", "sport", 8080, 30080))


def test_filter_decisions_name_the_rule_or_the_policy():
    nf = node1().netfilter
    nf.set_policy("filter", "INPUT", "DROP")
    nf.append("filter", "INPUT", "-p udp -j ACCEPT")
    skb = Skb()
    dropped = nf.hook("INPUT", tcp("203.0.113.10", 5000, "192.168.50.11", 22), skb, "eth0", None)
    (policy,) = dropped.decisions                       # not tracked: no conntrack stage at INPUT
    assert (policy.subsystem, policy.function, policy.verdict) == ("netfilter", "ipt_do_table", "drop")
    assert policy.consulted == (RuleRef("filter", "INPUT", "INPUT", 0, (), "DROP", (), ("INPUT",)),)
    assert policy.consulted[0].text == "-P INPUT DROP"
    assert (policy.reason, policy.facts) == (NetfilterReason.POLICY, ())
    invalid = nf.hook("FORWARD", tcp("10.244.0.2", 5000, "10.244.1.2", 8080), Skb(), "cni0", "flannel.1")
    assert invalid.decisions[-1].consulted == (RuleRef("filter", "FORWARD", "KUBE-FORWARD", 1,   # never tracked
                                                       ("-m conntrack --ctstate INVALID",), "DROP", (),
                                                       ("FORWARD", "KUBE-FORWARD")),)
    assert invalid.decisions[-1].consulted[0].text == "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    only_flannel = FakeNetns().netfilter
    flannel(only_flannel)
    forwarded = only_flannel.hook("FORWARD", tcp("10.244.0.2", 5000, "10.244.1.2", 8080), Skb(), "cni0", "flannel.1")
    accept = forwarded.decisions[-1]
    assert accept.consulted == (RuleRef("filter", "FORWARD", "FLANNEL-FWD", 1,
                                        ("-s 10.244.0.0/16", '-m comment --comment "flanneld forward"'), "ACCEPT", (),
                                        ("FORWARD", "FLANNEL-FWD"), "flanneld forward"),)
    assert accept.consulted[0].text == ('-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" '
                                        '-j ACCEPT')
    assert all(isinstance(d, Decision) for d in forwarded.decisions)


def test_mark_decision_changes_skb_mark():
    nf = node1().netfilter
    skb = Skb()
    pre = nf.hook("PREROUTING", tcp("203.0.113.10", 56756, "192.168.50.11", 30080), skb, "eth0", None)
    mark = next(d for d in pre.decisions if d.verdict == "continue")
    assert mark.changes == (FieldChange("skb", "mark", 0, 0x4000),)
    assert mark.consulted[0] == RuleRef("nat", "PREROUTING", "KUBE-MARK-MASQ", 1, (), "MARK",
                                        ("--set-xmark", "0x4000/0x4000"),
                                        ("PREROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXT-WEB",
                                         "KUBE-MARK-MASQ"))
    assert mark.consulted[0].text == "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"


# ---- REJECT: what the kernel sends ----------------------------------------------------------

def _syn(payload: bytes = b"", flags: str = "S") -> IPv4:
    return IPv4("10.244.0.2", "10.244.1.2", IPPROTO_TCP,
                TCP(40000, 8080, seq=1000, ack=0 if "A" not in flags else 5000, flags=flags, payload=payload),
                ttl=63, id=77, tos=0x10)


@pytest.mark.parametrize("flags, payload, want", [
    ("S", b"", ("RA", 0, 1001)),            # ack = seq + SYN
    ("SF", b"abc", ("RA", 0, 1005)),        # + FIN + 3 bytes
    ("A", b"", ("R", 5000, 0)),             # had ACK: seq = its ack, no ACK flag
    ("PA", b"hello", ("R", 5000, 0)),
])
def test_nf_send_reset_builds_the_rst_as_nf_reject_ipv4_does(flags, payload, want):
    rst = nf_send_reset(_syn(payload, flags), ttl=61)
    assert rst is not None and isinstance(rst.payload, TCP)
    seg = rst.payload
    assert (rst.src, rst.dst, rst.proto, rst.ttl, rst.id, rst.df, rst.tos) == (
        "10.244.1.2", "10.244.0.2", IPPROTO_TCP, 61, 0, True, 0)
    assert (seg.sport, seg.dport, seg.flags, seg.seq, seg.ack, seg.window, seg.options, seg.payload) == (
        8080, 40000, want[0], want[1], want[2], 0, b"", b"")


def test_nothing_is_sent_about_a_rst_a_fragment_or_an_icmp_error():
    assert nf_send_reset(_syn(flags="R"), 64) is None
    assert nf_send_reset(IPv4("10.244.0.2", "10.244.1.2", IPPROTO_TCP, b"\x00" * 8, frag=3), 64) is None
    assert nf_send_unreach(IPv4("10.244.0.2", "10.244.1.2", IPPROTO_UDP, b"\x00" * 8, frag=3), (3, 3)) is None
    error = IPv4("10.244.0.2", "10.244.1.2", IPPROTO_ICMP, ICMP(3, 1, 0, _syn().to_bytes()))
    assert nf_send_unreach(error, (3, 3)) is None
    assert reject_reply(error, "icmp-port-unreachable") is None
    assert nf_send_unreach(_syn(), (3, 10)) == (3, 10)


def test_reject_reply_icmp_is_icmp_sends_packet():
    syn = _syn(b"x" * 1000)
    reply = reject_reply(syn, "icmp-host-prohibited", source="10.244.0.1", ttl=64, ip_id=9)
    assert reply is not None and isinstance(reply.payload, ICMP)
    assert (reply.src, reply.dst, reply.ttl, reply.id, reply.df, reply.tos) == (
        "10.244.0.1", "10.244.0.2", 64, 9, False, 0xC0 | 0x10)
    assert (reply.payload.type, reply.payload.code, reply.payload.rest) == (3, 10, 0)
    assert reply.payload.data == syn.to_bytes()[:548] and reply.length() == 576


# ---- REJECT through the walk: the packets a client gets back --------------------------------

def _rejecting(spec: str) -> netsim.Cluster:
    cluster = netsim.reference_cluster()
    cluster.netns("node1").netfilter.insert("filter", "FORWARD", spec)
    return cluster


def test_a_service_without_endpoints_is_rejected_with_icmp_port_unreachable():
    """kube-proxy's `-j REJECT --reject-with icmp-port-unreachable` for a ClusterIP without
    endpoints: node1 answers pod-a from cni0's address (icmp_send's source toward pod-a)."""
    cluster = netsim.reference_cluster()
    svc = cluster.add_service("empty", port=80, target_port=8080, pods=[])
    trace = cluster.send("pod-a", "empty", proto="tcp")
    syn_hop = trace.where("node1/cni0", "rx", "request")[0]
    assert syn_hop.verdict == "dropped"
    rejected = [(d.reason, r.table, r.hook, r.path, r.rule, r.comment, r.target, r.target_options)
                for d in syn_hop.decisions if d.verdict == "reject" for r in d.consulted_of(RuleRef)]
    assert rejected == [(NetfilterReason.REJECT, "filter", "FORWARD", ("FORWARD", "KUBE-SERVICES"), 1,
                         "default/empty has no endpoints", "REJECT", ("--reject-with", "icmp-port-unreachable"))]
    syn = syn_hop.ip
    errors = trace.of_role("error")
    assert [h.where + " " + h.direction for h in errors] == [
        "node1/cni0 tx", "node1/veth9bb860b4 tx", "pod-a/eth0 rx"]
    got = errors[-1].ip
    assert got is not None and syn is not None and isinstance(got.payload, ICMP)
    assert (got.src, got.dst, got.ttl, got.df, got.tos, got.proto) == ("10.244.0.1", "10.244.0.2", 64, False, 0xC0,
                                                                      IPPROTO_ICMP)
    assert (got.payload.type, got.payload.code, got.payload.rest) == (3, 3, 0)
    # the whole SYN as the FORWARD hook had it: ip_forward decrements the TTL before the hook
    assert got.payload.data == replace(syn, ttl=syn.ttl - 1).to_bytes()
    assert syn.dst == svc.cluster_ip
    assert trace.outcome == Outcome("refused", OutcomeReason.ICMP_ERROR, "ECONNREFUSED", "10.244.0.1", (3, 3))


def test_reject_with_tcp_reset_answers_the_syn_with_rst_ack():
    trace = _rejecting("-p tcp -d 10.244.1.2 -j REJECT --reject-with tcp-reset").send(
        "pod-a", "pod-c", proto="tcp", dport=8080)
    syn = trace.request[0].ip
    assert syn is not None and isinstance(syn.payload, TCP)
    replies = [h for h in trace.of_role("reply")]
    assert [h.where + " " + h.direction for h in replies] == [
        "node1/cni0 tx", "node1/veth9bb860b4 tx", "pod-a/eth0 rx"]
    rst = replies[-1].ip
    assert rst is not None and isinstance(rst.payload, TCP)
    assert (rst.src, rst.dst, rst.ttl, rst.id, rst.df, rst.tos) == ("10.244.1.2", "10.244.0.2", 64, 0, True, 0)
    seg = rst.payload
    assert (seg.sport, seg.dport, seg.flags, seg.seq, seg.ack, seg.window, seg.options) == (
        8080, syn.payload.sport, "RA", 0, (syn.payload.seq + 1) & 0xFFFFFFFF, 0, b"")
    assert trace.outcome == Outcome("refused", OutcomeReason.RST, "ECONNREFUSED", "10.244.1.2:8080")


def test_reject_with_icmp_host_unreachable_quotes_the_datagram():
    trace = _rejecting("-d 10.244.1.2 -j REJECT --reject-with icmp-host-unreachable").send(
        "pod-a", "pod-c", proto="udp", dport=8080)
    sent = trace.request[0].ip
    got = trace.of_role("error")[-1].ip
    assert sent is not None and got is not None and isinstance(got.payload, ICMP)
    assert isinstance(sent.payload, UDP)
    assert (got.src, got.dst, got.ttl, got.df, got.tos) == ("10.244.0.1", "10.244.0.2", 64, False, 0xC0)
    assert (got.payload.type, got.payload.code) == (3, 1)
    # quoted as the FORWARD hook saw it, TTL already decremented by ip_forward
    assert got.payload.data == replace(sent, ttl=sent.ttl - 1).to_bytes()
    assert trace.outcome == Outcome("icmp-error", OutcomeReason.ICMP_ERROR, "EHOSTUNREACH", "10.244.0.1", (3, 1))


@pytest.mark.parametrize("number", sorted(scenarios.SIX))
def test_every_decision_of_every_scenario_is_a_record_the_hop_shows(monkeypatch, number):
    """Across the six scenarios: each netfilter, conntrack and nat step is a Decision naming a
    kernel function, with the RuleRef or ConntrackRef it consulted, and is the record noted on a
    hop of the walk."""
    cluster = netsim.reference_cluster()
    results: list[HookResult] = []
    for name in ("node1", "node2", "pod-a", "pod-c", "ext"):
        nf = cluster.netns(name).netfilter
        nf.save()
        nf = cluster.netns(name).netfilter
        real = nf.run                                   # the walk's entry: None when the hook passes

        def keep(*args, real=real, **kwargs) -> HookResult | None:
            result = real(*args, **kwargs)
            if result is not None:
                results.append(result)
            return result

        monkeypatch.setattr(nf, "run", keep)
    trace = scenarios.SIX[number](cluster=cluster)
    decisions = [d for r in results for d in r.decisions]
    # scenario 1 stays inside pod-a, whose namespace has no rules and no conntrack; every other
    # scenario crosses a node
    assert bool(decisions) == (number != 1)
    noted = {d for hop in trace.hops for d in hop.decisions}
    functions = {"ipt_do_table", "nf_conntrack_in", "nf_conntrack_tcp_packet", "nf_conntrack_icmpv4_error",
                 "nf_conntrack_destroy", "nf_nat_inet_fn", "nf_nat_masquerade_ipv4", "nf_nat_packet",
                 "nf_nat_setup_info", "nf_nat_alloc_null_binding", "nf_nat_icmp_reply_translation",
                 "ipv4_conntrack_defrag"}
    for d in decisions:
        assert isinstance(d, Decision) and d.subsystem in ("netfilter", "conntrack", "nat"), d
        assert d.function in functions and d.verdict, d
        assert d in noted, d
        if d.subsystem == "netfilter":
            assert [type(c) for c in d.consulted] == [RuleRef], d
        if d.subsystem == "nat":
            assert isinstance(d.consulted[-1], ConntrackRef), d
        for change in d.changes:
            assert change.old != change.new and change.layer in ("ipv4", "tcp", "udp", "icmp", "skb"), d
