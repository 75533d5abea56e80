"""Reading the kernel's netfilter trace (netsim.lab.nftrace), on text the kernel printed here.

tests/data/nftrace/ holds real output of this machine's tools (Linux 6.18, iptables 1.8.9,
nftables 1.0.6): `xtables-monitor --trace` in a lab node while an external client's SYN went
through the NodePort rules, and `nft monitor trace` for a ping and a SYN through a small nft
ruleset (a jump, a mark, a return, a DNAT). No root needed; the lab tests (tests/test_lab.py)
run the same parser on every exchange.
"""

from __future__ import annotations

import json
from pathlib import Path

from netsim.lab.nftrace import RuleIndex, parse_nft_monitor, parse_xtables_monitor

DATA = Path(__file__).parent / "data" / "nftrace"


def test_xtables_monitor_walks_are_one_per_table_and_hook():
    walks = parse_xtables_monitor((DATA / "xtables-monitor-nodeport.txt").read_text())
    assert [(w.table, w.hook) for w in walks] == [
        ("raw", "PREROUTING"), ("nat", "PREROUTING"), ("filter", "FORWARD"), ("nat", "POSTROUTING"),
        ("raw", "OUTPUT"), ("nat", "OUTPUT"), ("filter", "OUTPUT"), ("nat", "POSTROUTING")]
    syn = walks[1]
    assert syn.key() == ("203.0.113.10", "192.168.50.11", 21024) and syn.packet["DPORT"] == "30080"
    assert "SYN" in syn.flags and syn.mark == 0
    assert [(e.chain, e.verdict, e.target, e.handle) for e in syn.events] == [
        ("PREROUTING", "JUMP", "KUBE-SERVICES", 0xd), ("KUBE-SERVICES", "JUMP", "KUBE-NODEPORTS", 0x21),
        ("KUBE-NODEPORTS", "JUMP", "KUBE-EXT-LOLE4ISW44XBNF3G", 0x1a),
        ("KUBE-EXT-LOLE4ISW44XBNF3G", "JUMP", "KUBE-MARK-MASQ", 0x17), ("KUBE-MARK-MASQ", "CONTINUE", "", 0x19),
        ("KUBE-EXT-LOLE4ISW44XBNF3G", "JUMP", "KUBE-SVC-LOLE4ISW44XBNF3G", 0x18),
        ("KUBE-SVC-LOLE4ISW44XBNF3G", "JUMP", "KUBE-SEP-PXJ2U7QYT2QW5545", 0x23),
        ("KUBE-SEP-PXJ2U7QYT2QW5545", "ACCEPT", "", 0x1f)]
    assert syn.events[4].text == "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"
    # after the DNAT: the FORWARD hook sees the new destination and KUBE-MARK-MASQ's mark
    forward = walks[2]
    assert forward.key() == ("203.0.113.10", "10.244.1.2", 21024) and forward.packet["DPORT"] == "8080"
    assert forward.mark == 0x4000 and forward.packet["OUT"] == "flannel.1"


def test_xtables_monitor_return_verdict_is_named_and_policies_close_walks():
    walks = parse_xtables_monitor((DATA / "xtables-monitor-nodeport.txt").read_text())
    outer = walks[-1]                     # the VXLAN packet's nat POSTROUTING
    assert outer.key()[:2] == ("192.168.50.11", "192.168.50.12") and outer.packet["DPORT"] == "8472"
    assert [(e.chain, e.kind, e.verdict) for e in outer.events] == [
        ("POSTROUTING", "rule", "JUMP"), ("KUBE-POSTROUTING", "rule", "RETURN"),   # printed as 0xfffffffb
        ("POSTROUTING", "rule", "JUMP"), ("POSTROUTING", "policy", "ACCEPT")]


def test_rule_index_numbers_rules_by_handle_and_names_hooks():
    listing = json.dumps({"nftables": [
        {"chain": {"family": "ip", "table": "nat", "name": "POSTROUTING", "handle": 4, "hook": "postrouting"}},
        {"chain": {"family": "ip", "table": "nat", "name": "KUBE-POSTROUTING", "handle": 9}},
        {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "handle": 15}},
        {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "handle": 16}},
        {"rule": {"family": "ip", "table": "nat", "chain": "KUBE-POSTROUTING", "handle": 27}},
        {"rule": {"family": "ip", "table": "nat", "chain": "KUBE-POSTROUTING", "handle": 28}},
    ]})
    index = RuleIndex.from_nft_json(listing)
    walk = parse_xtables_monitor((DATA / "xtables-monitor-nodeport.txt").read_text())[3]
    numbered = index.number(walk)
    assert numbered.hook == "POSTROUTING"
    assert [(e.chain, e.rule) for e in numbered.events] == [
        ("POSTROUTING", 1), ("KUBE-POSTROUTING", 2), ("KUBE-POSTROUTING", 0)]   # handle 0x1d not listed


def test_nft_monitor_trace_walks_with_jump_return_mark_and_dnat():
    walks = parse_nft_monitor((DATA / "nft-monitor-trace.txt").read_text())
    assert [(w.table, w.chain) for w in walks] == [("t", "pre"), ("t", "nat_pre"), ("t", "input"), ("t", "out"),
                                                   ("t", "pre"), ("t", "nat_pre"), ("t", "input"), ("t", "out")]
    ping = walks[2]
    assert ping.key() == ("10.9.0.1", "10.9.0.2", 65366) and ping.packet["ICMPTYPE"] == "echo-request"
    assert [(e.chain, e.verdict, e.target) for e in ping.events] == [
        ("input", "JUMP", "c2"), ("c2", "CONTINUE", ""), ("c2", "RETURN", ""), ("input", "ACCEPT", "")]
    syn_nat, syn_input = walks[5], walks[6]
    assert syn_nat.events[0].text == "tcp dport 99 dnat to 10.9.0.2:80" and syn_nat.events[0].verdict == "ACCEPT"
    assert syn_nat.packet["DPORT"] == "99" and syn_input.packet["DPORT"] == "80"
    assert syn_input.events[-1].kind == "policy" and syn_input.events[-1].mark == 0x10


def test_nft_rules_are_numbered_by_their_text():
    texts = """table ip t { # handle 1
	chain c2 { # handle 2
		ip saddr 10.9.0.1 meta mark set 0x00000010 counter packets 7 bytes 420 # handle 7
		return # handle 8
	}
	chain input { # handle 3
		type filter hook input priority filter; policy accept;
		jump c2 # handle 9
		icmp type echo-request accept comment "allow ping" # handle 10
	}
}
"""
    listing = json.dumps({"nftables": [{"chain": {"table": "t", "name": "input", "hook": "input"}}]})
    index = RuleIndex.from_nft_json(listing, texts)
    walk = index.number(parse_nft_monitor((DATA / "nft-monitor-trace.txt").read_text())[2])
    assert walk.hook == "INPUT"
    assert [(e.chain, e.rule) for e in walk.events] == [("input", 1), ("c2", 1), ("c2", 2), ("input", 2)]


def test_xtables_monitor_lines_of_two_packets_traced_at_once_go_to_their_own_walks():
    """Printed by node2's monitor during chapter 10's fdb-back case (a conformance run here): an
    IGMP report (0.0.0.0 -> 224.0.0.22) entered node2 while the VXLAN packet walked the nat table,
    and the two packets' lines interleave. Each TRACE line belongs to the last PACKET of its id:
    the VXLAN packet's walk goes on through KUBE-SERVICES to its policy, it does not end at the
    jump (which would read as a REJECT the trace did not report)."""
    walks = parse_xtables_monitor((DATA / "xtables-monitor-interleaved.txt").read_text())
    nat = [(w.packet["SRC"], [(e.chain, e.verdict, e.target) for e in w.events]) for w in walks if w.table == "nat"]
    assert nat == [
        ("192.168.50.11", [("PREROUTING", "JUMP", "KUBE-SERVICES"), ("KUBE-SERVICES", "JUMP", "KUBE-NODEPORTS"),
                           ("PREROUTING", "ACCEPT", "")]),
        ("0.0.0.0", [("PREROUTING", "JUMP", "KUBE-SERVICES"), ("PREROUTING", "ACCEPT", "")])]
    raw = [(w.packet["SRC"], [e.verdict for e in w.events]) for w in walks if w.table == "raw"]
    assert raw == [("0.0.0.0", ["CONTINUE", "ACCEPT"]), ("192.168.50.11", ["CONTINUE", "ACCEPT"])]
