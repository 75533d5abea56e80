"""ipt_do_table's destination index (ip_tables.rules_for): a long chain skips only the rules whose
`-d` is one other address, so a walk decides what the rule-by-rule walk decides, and the index
follows every change to the chain's rules."""

from __future__ import annotations

from netsim.netfilter import Netfilter
from netsim.netfilter.ip_tables import rules_for
from netsim.packet import IPPROTO_TCP, TCP, IPv4
from netsim.skb import Skb

SERVICES = [f"10.96.0.{i}" for i in range(1, 10)]


def chain_with_services() -> Netfilter:
    """FORWARD jumps to SVC: one ACCEPT rule per address, then an inverted -d, a /24 and a
    catch-all, mixed in between (kube-proxy's KUBE-SERVICES shape, and what it must not skip)."""
    nf = Netfilter(None)
    nf.new_chain("filter", "SVC")
    nf.append("filter", "FORWARD", "-j SVC")
    for i, addr in enumerate(SERVICES):
        nf.append("filter", "SVC", f"-d {addr}/32 -p tcp --dport 80 -j ACCEPT")
        if i == 3:
            nf.append("filter", "SVC", "! -d 10.96.0.5/32 -p tcp --dport 81 -j REJECT")
        if i == 5:
            nf.append("filter", "SVC", "-d 10.96.0.0/24 -p tcp --dport 82 -j DROP")
    nf.append("filter", "SVC", "-p tcp --dport 83 -j DROP")
    return nf


def walk(nf: Netfilter, dst: str, dport: int) -> tuple[str, list[tuple[str, int, str]]]:
    packet = IPv4("10.244.0.2", dst, IPPROTO_TCP, TCP(40000, dport))
    result = nf.hook("FORWARD", packet, Skb(), "cni0", "flannel.1")
    return result.verdict, [(ref.chain, ref.rule, ref.target) for d in result.decisions for ref in d.consulted]


def test_the_index_keeps_every_rule_a_packet_to_that_address_can_match_in_order():
    nf = chain_with_services()
    chain = nf.tables["filter"].chains["SVC"]
    positions = [r.position for r in rules_for(chain, "10.96.0.7")]
    assert positions == [5, 8, 9, 12]       # its own rule, the inverted one, the /24, the catch-all
    assert [r.position for r in rules_for(chain, "10.99.0.1")] == [5, 8, 12]


def test_a_walk_through_the_index_decides_what_the_rules_say():
    nf = chain_with_services()
    assert walk(nf, "10.96.0.7", 80) == ("ACCEPT", [("SVC", 9, "ACCEPT")])
    assert walk(nf, "10.96.0.7", 81) == ("REJECT", [("SVC", 5, "REJECT")])
    assert walk(nf, "10.96.0.5", 81) == ("ACCEPT", [("FORWARD", 0, "ACCEPT")])   # the inverted -d: policy
    assert walk(nf, "10.96.0.7", 82) == ("DROP", [("SVC", 8, "DROP")])
    assert walk(nf, "10.99.0.1", 80) == ("ACCEPT", [("FORWARD", 0, "ACCEPT")])
    assert walk(nf, "10.99.0.1", 83) == ("DROP", [("SVC", 12, "DROP")])


def test_the_index_follows_the_chains_changes():
    nf = chain_with_services()
    assert walk(nf, "10.96.0.2", 80) == ("ACCEPT", [("SVC", 2, "ACCEPT")])
    nf.insert("filter", "SVC", "-d 10.96.0.2/32 -p tcp --dport 80 -j DROP", 1)
    assert walk(nf, "10.96.0.2", 80) == ("DROP", [("SVC", 1, "DROP")])
    nf.delete("filter", "SVC", 1)
    nf.delete("filter", "SVC", "-d 10.96.0.2/32 -p tcp --dport 80 -j ACCEPT")
    assert walk(nf, "10.96.0.2", 80) == ("ACCEPT", [("FORWARD", 0, "ACCEPT")])
    nf.flush("filter", "SVC")
    nf.append("filter", "SVC", "-d 10.96.0.2/32 -j DROP")
    assert walk(nf, "10.96.0.2", 80) == ("DROP", [("SVC", 1, "DROP")])     # short again: no index
