"""Remembered table walks (ip_tables.TableWalks): a raw, mangle or filter walk met again leaves
the decisions, the verdict and the mark a walk from scratch leaves, for every value of what its
rules read (ports, TCP flags, ctstate, mark, local addresses), and a change to the rules is
seen at once."""

from __future__ import annotations

from netsim.netfilter import Netfilter
from netsim.packet import IPPROTO_TCP, TCP, IPv4
from netsim.skb import Skb


class Host:
    """What -m addrtype asks of a namespace."""

    name = "host"

    def __init__(self, *local: str):
        self.local = set(local)

    def is_local_address(self, addr: str) -> bool:
        return addr in self.local


RULES = [
    "-p tcp --dport 81 -j DROP",
    "-p tcp --tcp-flags SYN,ACK SYN -m mark --mark 0x0/0x4000 -j MARK --set-xmark 0x4000/0x4000",
    "-m mark --mark 0x4000/0x4000 -m conntrack --ctstate NEW -j ACCEPT",
    "-m addrtype --dst-type LOCAL -j REJECT",
    "-m conntrack --ctstate ESTABLISHED -j ACCEPT",
]


def netfilter(host: Host) -> Netfilter:
    nf = Netfilter(host)
    for rule in RULES:
        nf.append("filter", "FORWARD", rule)
    nf.set_policy("filter", "FORWARD", "DROP")
    return nf


def walk(nf: Netfilter, dst: str, dport: int, flags: str, mark: int = 0, state: str = "NEW") -> tuple:
    skb = Skb(mark=mark)
    skb.ct_state = state
    result = nf.hook("FORWARD", IPv4("10.244.0.2", dst, IPPROTO_TCP, TCP(40000, dport, flags=flags)), skb,
                     "cni0", "flannel.1")
    return result.verdict, result.rule, result.reject_with, skb.mark, tuple(result.decisions)


CASES = [(dst, dport, flags, mark, state) for dst in ("10.244.1.3", "10.244.0.1") for dport in (80, 81)
         for flags in ("S", "SA", "A") for mark in (0, 0x4000) for state in ("NEW", "ESTABLISHED", "")]


def test_a_remembered_walk_leaves_what_a_walk_from_scratch_leaves():
    host = Host("10.244.0.1")
    remembered = netfilter(host)
    for _ in range(2):
        for case in CASES:
            assert walk(remembered, *case) == walk(netfilter(host), *case), case
    assert remembered._walks._walks      # they were remembered
    verdict, _, _, mark, decisions = walk(remembered, "10.244.1.3", 80, "S")
    assert (verdict, mark, [d.reason.name for d in decisions]) == ("ACCEPT", 0x4000, ["MARK", "RULE"])


def decided(nf: Netfilter, dport: int, state: str) -> tuple[str, list[tuple[str, int, str]]]:
    verdict, _, _, _, decisions = walk(nf, "10.244.1.3", dport, "A", state=state)
    return verdict, [(ref.chain, ref.rule, ref.target) for d in decisions for ref in d.consulted]


def test_a_change_to_the_rules_is_seen_by_the_next_walk():
    nf = netfilter(Host())
    assert decided(nf, 80, "ESTABLISHED") == ("ACCEPT", [("FORWARD", 5, "ACCEPT")])
    nf.insert("filter", "FORWARD", "-d 10.244.1.3/32 -j DROP", 1)
    assert decided(nf, 80, "ESTABLISHED") == ("DROP", [("FORWARD", 1, "DROP")])
    nf.delete("filter", "FORWARD", 1)
    assert decided(nf, 80, "ESTABLISHED") == ("ACCEPT", [("FORWARD", 5, "ACCEPT")])
    assert decided(nf, 82, "") == ("DROP", [("FORWARD", 0, "DROP")])
    nf.set_policy("filter", "FORWARD", "ACCEPT")
    assert decided(nf, 82, "") == ("ACCEPT", [("FORWARD", 0, "ACCEPT")])
    nf.flush("filter", "FORWARD")
    assert decided(nf, 80, "ESTABLISHED") == ("ACCEPT", [])       # an empty chain with policy ACCEPT: not walked
    nf.restore("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 80 -j ACCEPT\nCOMMIT\n")
    assert decided(nf, 80, "ESTABLISHED") == ("ACCEPT", [("FORWARD", 1, "ACCEPT")])
    assert decided(nf, 82, "ESTABLISHED") == ("DROP", [("FORWARD", 0, "DROP")])


def test_a_table_with_a_random_draw_is_walked_every_time():
    nf = netfilter(Host())
    nf.insert("filter", "FORWARD", "-m statistic --mode random --probability 0.5 -j ACCEPT", 1)
    for sport in range(40000, 40020):
        skb = Skb()
        nf.hook("FORWARD", IPv4("10.244.0.2", "10.244.1.3", IPPROTO_TCP, TCP(sport, 82)), skb, "cni0", "flannel.1")
    assert nf._walks._walks == {}


def test_a_nat_walk_is_remembered_by_the_source_port_only_where_a_rule_tests_it():
    from netsim.netfilter.hooks import HookResult
    from netsim.netfilter.xtables import PacketContext

    nf = Netfilter(Host())
    nf.append("nat", "PREROUTING", "-p tcp --sport 1000 -j DNAT --to-destination 10.0.0.9")
    nf.append("nat", "PREROUTING", "-p tcp --dport 80 -j DNAT --to-destination 10.0.0.8")

    def bound(sport: int, dport: int) -> str | None:
        packet = IPv4("10.244.0.2", "10.96.0.1", IPPROTO_TCP, TCP(sport, dport))
        walk = nf.do_table("nat", "PREROUTING", PacketContext(packet, Skb(), "eth0", None, nf.netns),
                           HookResult("ACCEPT", packet))
        return walk.nat.addr if walk.nat is not None else None

    for _ in range(2):
        assert [bound(1000, 80), bound(1001, 80), bound(1001, 81), bound(1000, 81)] == \
            ["10.0.0.9", "10.0.0.8", None, "10.0.0.9"]
    nf.delete("nat", "PREROUTING", 1)       # no rule reads the source port now
    assert [bound(1000, 80), bound(1001, 81)] == ["10.0.0.8", None]
    assert len(nf._walks._walks) == 2 and {key[-1] for key in nf._walks._walks} == {0}   # no source port
