"""netfilter: iptables rules as iptables-save prints them, and the hooks as the kernel runs them.

Addresses follow shared/reference/kernel-observations.md: node1 has eth0 192.168.50.11, cni0
10.244.0.1/24 and flannel.1 10.244.0.0/32; pod-a is 10.244.0.2, pod-c (on node2) 10.244.1.2;
the external client is 203.0.113.10.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from netsim.conntrack import Conntrack
from netsim.netfilter import Netfilter, reject_reply
from netsim.packet import (ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TCP, UDP,
                           internet_checksum)
from netsim.decision import ConntrackRef, RuleRef
from netsim.skb import Skb


def told(d):
    """A decision as the fields its sentence tells: the function, reason and verdict, the rule
    (table, hook, chains jumped through, number, comment, target and its options) or the
    connection (protocol, original tuple, direction), the named facts and the changes."""
    refs = []
    for c in d.consulted:
        if isinstance(c, RuleRef):
            refs.append((c.table, c.hook, c.path, c.rule, c.comment, c.target, c.target_options))
        elif isinstance(c, ConntrackRef):
            refs.append((c.proto, c.original, c.direction))
    changes = tuple((f"{c.layer}.{c.field}", c.old, c.new) for c in d.changes)
    return (d.function, d.reason.name, d.verdict.value, *refs, dict(d.facts), changes)


def told_all(result):
    """What a hook decided, decision by decision, as `told` gives each."""
    return [told(d) for d in result.decisions]


class FakeNetns:
    """The five things netfilter may ask of a namespace."""

    def __init__(self, name: str = "kl-node1", local: tuple[str, ...] = ("192.168.50.11", "10.244.0.1", "10.244.0.0"),
                 masquerade: dict[str, str] | None = None):
        self.name = name
        self.sysctl = SimpleNamespace(ip_local_port_range=(32768, 60999))
        self.local = set(local)
        self.masquerade = masquerade if masquerade is not None else {
            "eth0": "192.168.50.11", "cni0": "10.244.0.1", "flannel.1": "10.244.0.0"}
        self.conntrack = Conntrack(self)
        self.netfilter = Netfilter(self)

    def is_local_address(self, addr: str) -> bool:
        return addr in self.local or addr.startswith("127.")

    def masquerade_source(self, outdev: str, nexthop: str | None) -> str:
        return self.masquerade[outdev]


def tcp(src: str, sport: int, dst: str, dport: int, flags: str = "S", ttl: int = 64) -> IPv4:
    return IPv4(src, dst, IPPROTO_TCP, TCP(sport, dport, seq=1000, ack=0 if "A" not in flags else 2000, flags=flags), ttl=ttl)


def answer(packet: IPv4, flags: str = "SA") -> IPv4:
    """The reply a peer sends to `packet`."""
    seg = packet.payload
    assert isinstance(seg, TCP)
    return tcp(packet.dst, seg.dport, packet.src, seg.sport, flags)


def forward(nf: Netfilter, packet: IPv4, indev: str, outdev: str, nexthop: str | None = None,
            skb: Skb | None = None) -> tuple[IPv4, list[tuple]]:
    """A forwarded packet: PREROUTING, FORWARD, POSTROUTING, as ip_rcv/ip_forward/ip_output call them."""
    skb = skb or Skb()
    lines: list[tuple] = []
    for hook, i, o in (("PREROUTING", indev, None), ("FORWARD", indev, outdev), ("POSTROUTING", None, outdev)):
        result = nf.hook(hook, packet, skb, i, o, nexthop if hook == "POSTROUTING" else None)
        lines += told_all(result)
        assert result.verdict == "ACCEPT", (hook, result)
        packet = result.packet
    return packet, lines


FLANNEL_RULES = [
    '-m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
    '-s 10.244.0.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
    '-s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment "flanneld masq" -j RETURN',
    '! -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment "flanneld masq" -j RETURN',
    '-s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    '! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
]


def flannel(nf: Netfilter) -> None:
    """flanneld's --ip-masq rules for node1 (facts F), in its own spelling."""
    nf.new_chain("nat", "FLANNEL-POSTRTG")
    nf.append("nat", "POSTROUTING", '-m comment --comment "flanneld masq" -j FLANNEL-POSTRTG')
    for spec in FLANNEL_RULES:
        nf.append("nat", "FLANNEL-POSTRTG", spec)
    nf.new_chain("filter", "FLANNEL-FWD")
    nf.append("filter", "FORWARD", '-m comment --comment "flanneld forward" -j FLANNEL-FWD')
    nf.append("filter", "FLANNEL-FWD", '-s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT')
    nf.append("filter", "FLANNEL-FWD", '-d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT')


def kube_proxy(nf: Netfilter) -> None:
    """kube-proxy's chains for NodePort 30080 -> 10.244.1.2:8080, policy Cluster (facts I)."""
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
                  "KUBE-EXT-WEB", "KUBE-SVC-WEB", "KUBE-SEP-WEB"):
        nf.new_chain("nat", chain)
    nf.insert("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    nf.insert("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    nf.insert("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING')
    nf.append("nat", "KUBE-MARK-MASQ", "-j MARK --or-mark 0x4000")
    nf.append("nat", "KUBE-POSTROUTING", "-m mark ! --mark 0x4000/0x4000 -j RETURN")
    nf.append("nat", "KUBE-POSTROUTING", "-j MARK --xor-mark 0x4000")
    nf.append("nat", "KUBE-POSTROUTING",
              '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully')
    nf.append("nat", "KUBE-SERVICES", '-d 10.96.0.100/32 -p tcp -m comment --comment "default/web cluster IP" '
                                      '-m tcp --dport 80 -j KUBE-SVC-WEB')
    nf.append("nat", "KUBE-SERVICES", '-m comment --comment "kubernetes service nodeports; NOTE: this must be '
                                      'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    nf.append("nat", "KUBE-NODEPORTS", '-p tcp -m comment --comment "default/web" -m tcp --dport 30080 -j KUBE-EXT-WEB')
    nf.append("nat", "KUBE-EXT-WEB", '-m comment --comment "masquerade traffic for default/web external '
                                     'destinations" -j KUBE-MARK-MASQ')
    nf.append("nat", "KUBE-EXT-WEB", "-j KUBE-SVC-WEB")
    nf.append("nat", "KUBE-SVC-WEB", '-m comment --comment "default/web -> 10.244.1.2:8080" -j KUBE-SEP-WEB')
    nf.append("nat", "KUBE-SEP-WEB", '-s 10.244.1.2/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ')
    nf.append("nat", "KUBE-SEP-WEB", '-p tcp -m comment --comment "default/web" -m tcp '
                                     '-j DNAT --to-destination 10.244.1.2:8080')
    nf.new_chain("filter", "KUBE-FORWARD")
    nf.insert("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
    nf.append("filter", "KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    nf.append("filter", "KUBE-FORWARD", '-m comment --comment "kubernetes forwarding rules" '
                                        '-m mark --mark 0x4000/0x4000 -j ACCEPT')
    nf.append("filter", "KUBE-FORWARD", '-m comment --comment "kubernetes forwarding conntrack rule" '
                                        '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')


def node1() -> FakeNetns:
    ns = FakeNetns()
    kube_proxy(ns.netfilter)
    flannel(ns.netfilter)
    return ns


# ---- rule syntax and iptables-save -------------------------------------------------------------

def test_save_prints_rules_in_iptables_save_canonical_form():
    nf = FakeNetns().netfilter
    nf.new_chain("nat", "T")
    for spec in [
        '-m comment --comment "a b" -p tcp --dport 80 -d 10.0.0.1 -s 1.2.3.0/24 -o eth0 -i cni0 -j RETURN',
        "-p tcp -m comment --comment foo --dport 80 -m addrtype --dst-type LOCAL -j RETURN",
        "-m statistic --mode random --probability 0.3333333333 -j RETURN",
        "-m statistic --mode random --probability 0.5 -j RETURN",
        "-m mark --mark 16384 -j RETURN",
        "-m mark ! --mark 0x4000/0xffffffff -j RETURN",
        "-p 6 -j DNAT --to-destination 10.244.1.2",
        "-p udp --sport 53 --dport 100:200 -j DNAT --to-destination 10.244.1.2:53",
        "-p udp ! --sport 53 ! --dport 100:200 -j RETURN",
        '-p tcp -m tcp --dport 80 -m comment --comment "kubernetes \\"x\\"" -j RETURN',
        "-m conntrack --ctstate RELATED,ESTABLISHED,NEW,INVALID -j RETURN",
        "-m addrtype ! --src-type LOCAL --dst-type LOCAL -g T",
        "! -i eth+ -j RETURN",
        "-p udp -j MASQUERADE --to-ports 1024-65535 --random-fully",
        "-j SNAT --to-source 10.0.0.1 --random-fully",
        "-p icmp --icmp-type echo-request -j RETURN",
        "-s 10.0.0.5/255.255.255.0 -j RETURN",
        "-s 0.0.0.0/0 -d 10.0.0.5/24 -j RETURN",
        "-p tcp --tcp-flags SYN,ACK SYN -j RETURN",
        "-j MARK --or-mark 0x4000",
        "-j MARK --xor-mark 0x4000",
        "-j MARK --set-mark 0x10",
        "-j MARK --and-mark 0x10",
        "-j MASQUERADE",
    ]:
        nf.append("nat", "T", spec)
    assert nf.save().splitlines()[6:] == [
        '-A T -s 1.2.3.0/24 -d 10.0.0.1/32 -i cni0 -o eth0 -p tcp -m comment --comment "a b" -m tcp --dport 80 -j RETURN',
        "-A T -p tcp -m comment --comment foo -m tcp --dport 80 -m addrtype --dst-type LOCAL -j RETURN",
        "-A T -m statistic --mode random --probability 0.33333333349 -j RETURN",
        "-A T -m statistic --mode random --probability 0.50000000000 -j RETURN",
        "-A T -m mark --mark 0x4000 -j RETURN",
        "-A T -m mark ! --mark 0x4000 -j RETURN",
        "-A T -p tcp -j DNAT --to-destination 10.244.1.2",
        "-A T -p udp -m udp --sport 53 --dport 100:200 -j DNAT --to-destination 10.244.1.2:53",
        "-A T -p udp -m udp ! --sport 53 ! --dport 100:200 -j RETURN",
        '-A T -p tcp -m tcp --dport 80 -m comment --comment "kubernetes \\"x\\"" -j RETURN',
        "-A T -m conntrack --ctstate INVALID,NEW,RELATED,ESTABLISHED -j RETURN",
        "-A T -m addrtype ! --src-type LOCAL --dst-type LOCAL -g T",
        "-A T ! -i eth+ -j RETURN",
        "-A T -p udp -j MASQUERADE --to-ports 1024-65535 --random-fully",
        "-A T -j SNAT --to-source 10.0.0.1 --random-fully",
        "-A T -p icmp -m icmp --icmp-type 8 -j RETURN",
        "-A T -s 10.0.0.0/24 -j RETURN",
        "-A T -d 10.0.0.0/24 -j RETURN",
        "-A T -p tcp -m tcp --tcp-flags SYN,ACK SYN -j RETURN",
        "-A T -j MARK --set-xmark 0x4000/0x4000",
        "-A T -j MARK --set-xmark 0x4000/0x0",
        "-A T -j MARK --set-xmark 0x10/0xffffffff",
        "-A T -j MARK --set-xmark 0x0/0xffffffef",
        "-A T -j MASQUERADE",
        "COMMIT",
    ]


def test_save_lists_tables_chains_and_policies_like_iptables_save():
    nf = node1().netfilter
    nf.set_policy("filter", "FORWARD", "DROP")
    text = nf.save()
    assert [line for line in text.splitlines() if line.startswith(("*", ":", "COMMIT"))] == [
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":FLANNEL-FWD - [0:0]", ":KUBE-FORWARD - [0:0]", "COMMIT",
        "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]", ":FLANNEL-POSTRTG - [0:0]", ":KUBE-EXT-WEB - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-SEP-WEB - [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-SVC-WEB - [0:0]", "COMMIT",
    ]
    assert "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n" \
           "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG\n" in text
    assert not any(line.startswith("#") for line in text.splitlines())


def test_save_restore_round_trip():
    text = node1().netfilter.save()
    other = FakeNetns().netfilter
    other.restore(text)
    assert other.save() == text
    assert [str(r) for r in other.rules("nat", "FLANNEL-POSTRTG")] == [
        "-A FLANNEL-POSTRTG " + spec for spec in FLANNEL_RULES]


def test_restore_replaces_a_table_and_noflush_keeps_it():
    nf = node1().netfilter
    nf.restore("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
               "-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    assert nf.chains("filter") == ["INPUT", "FORWARD", "OUTPUT"]
    assert [str(r) for r in nf.rules("filter", "INPUT")] == ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]
    assert len(nf.rules("nat", "FLANNEL-POSTRTG")) == 6          # other tables untouched
    nf.restore("*nat\n:KUBE-SVC-WEB - [0:0]\n-A KUBE-SVC-WEB -j KUBE-SEP-WEB\nCOMMIT\n", noflush=True)
    assert [str(r) for r in nf.rules("nat", "KUBE-SVC-WEB")] == ["-A KUBE-SVC-WEB -j KUBE-SEP-WEB"]
    assert len(nf.rules("nat", "KUBE-POSTROUTING")) == 3


def test_restore_with_an_error_changes_nothing():
    nf = node1().netfilter
    before = nf.save()
    with pytest.raises(ValueError, match="line 3: .*--frobnicate"):
        nf.restore("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING --frobnicate 1 -j ACCEPT\nCOMMIT\n")
    assert nf.save() == before


def test_unknown_option_is_a_clear_error():
    nf = FakeNetns().netfilter
    with pytest.raises(ValueError, match=r"unknown option '--frobnicate'; supported: -s, -d"):
        nf.append("filter", "INPUT", "-p tcp --frobnicate 1 -j ACCEPT")
    with pytest.raises(ValueError, match="-m physdev is not modelled"):
        nf.append("filter", "FORWARD", "-m physdev --physdev-is-bridged -j ACCEPT")
    with pytest.raises(ValueError, match="-m set: match not modelled"):
        nf.append("filter", "INPUT", "-p tcp -m set --match-set x src -j ACCEPT")
    with pytest.raises(ValueError, match="-j LOG: no such target or chain"):
        nf.append("filter", "INPUT", "-j LOG")
    with pytest.raises(ValueError, match="-m tcp needs -p tcp"):
        nf.append("filter", "INPUT", "-m tcp --dport 80 -j ACCEPT")
    with pytest.raises(ValueError, match="only in the nat table"):
        nf.append("filter", "INPUT", "-j MASQUERADE")
    with pytest.raises(ValueError, match="-o cannot be used in the PREROUTING chain"):
        nf.append("nat", "PREROUTING", "-o eth0 -j ACCEPT")
    with pytest.raises(ValueError, match="tcp-reset is valid only with -p tcp"):
        nf.append("filter", "INPUT", "-j REJECT --reject-with tcp-reset")
    assert nf.rules("filter", "INPUT") == []


def test_insert_delete_flush():
    nf = FakeNetns().netfilter
    nf.append("filter", "INPUT", "-s 10.0.0.1 -j DROP")
    nf.insert("filter", "INPUT", "-s 10.0.0.2 -j DROP")
    nf.insert("filter", "INPUT", "-s 10.0.0.3 -j DROP", 2)
    assert [r.spec for r in nf.rules("filter", "INPUT")] == [
        "-s 10.0.0.2/32 -j DROP", "-s 10.0.0.3/32 -j DROP", "-s 10.0.0.1/32 -j DROP"]
    nf.delete("filter", "INPUT", "-s 10.0.0.3/32 -j DROP")
    nf.delete("filter", "INPUT", 1)
    assert [r.spec for r in nf.rules("filter", "INPUT")] == ["-s 10.0.0.1/32 -j DROP"]
    with pytest.raises(ValueError, match="does a matching rule exist"):
        nf.delete("filter", "INPUT", "-s 10.9.9.9 -j DROP")
    nf.flush()
    assert nf.rules("filter", "INPUT") == []


# ---- the data path -----------------------------------------------------------------------------

def test_flannel_postrtg_returns_for_pod_to_pod():
    """Scenario 4: pod-a -> pod-c leaves through flannel.1 with its own source (rule 2 RETURN)."""
    ns = FakeNetns()
    flannel(ns.netfilter)
    assert [r.spec for r in ns.netfilter.rules("nat", "FLANNEL-POSTRTG")] == FLANNEL_RULES
    syn = tcp("10.244.0.2", 57928, "10.244.1.2", 8080)
    out, lines = forward(ns.netfilter, syn, "cni0", "flannel.1", "10.244.1.0")
    assert out == syn
    assert lines == [
        ('nf_conntrack_in', 'NEW', 'new', ('tcp', '10.244.0.2:57928 -> 10.244.1.2:8080', 'original'),
         {'tcp_state': 'SYN_SENT'}, ()),
        ('ipt_do_table', 'RULE', 'accept',
         ('filter', 'FORWARD', ('FORWARD', 'FLANNEL-FWD'), 1, 'flanneld forward', 'ACCEPT', ()), {}, ()),
        ('ipt_do_table', 'RULE', 'return',
         ('nat', 'POSTROUTING', ('POSTROUTING', 'FLANNEL-POSTRTG'), 2, 'flanneld masq', 'RETURN', ()), {}, ()),
    ]
    assert ns.conntrack.listing() == (
        "tcp      6 119 SYN_SENT src=10.244.0.2 dst=10.244.1.2 sport=57928 dport=8080 [UNREPLIED] "
        "src=10.244.1.2 dst=10.244.0.2 sport=8080 dport=57928 mark=0 use=1\n")


def test_flannel_returns_for_external_traffic_to_local_pods():
    ns = FakeNetns()
    flannel(ns.netfilter)
    out, lines = forward(ns.netfilter, tcp("203.0.113.10", 40000, "10.244.0.2", 8080), "eth0", "cni0")
    assert out.src == "203.0.113.10"
    assert lines[-1] == ('ipt_do_table', 'RULE', 'return',
                         ('nat', 'POSTROUTING', ('POSTROUTING', 'FLANNEL-POSTRTG'), 4, 'flanneld masq', 'RETURN', ()),
                         {}, ())


def test_masquerade_rewrites_source_to_egress_address():
    """Scenario 6: pod-a -> 203.0.113.10 leaves eth0 as 192.168.50.11 with a --random-fully port."""
    ns = FakeNetns()
    flannel(ns.netfilter)
    out, lines = forward(ns.netfilter, tcp("10.244.0.2", 45178, "203.0.113.10", 8080), "cni0", "eth0", "192.168.50.1")
    assert (out.src, out.payload.sport, out.dst, out.payload.dport) == ("192.168.50.11", 20269, "203.0.113.10", 8080)
    assert lines[-1] == ('nf_nat_masquerade_ipv4', 'BINDING', 'masquerade',
                         ('nat', 'POSTROUTING', ('POSTROUTING', 'FLANNEL-POSTRTG'), 5, 'flanneld masq', 'MASQUERADE',
                          ('--random-fully',)),
                         ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'original'),
                         {'manip': 'SRC', 'old': '10.244.0.2:45178', 'new': '192.168.50.11:20269'},
                         (('ipv4.src', '10.244.0.2', '192.168.50.11'), ('tcp.sport', 45178, 20269)))
    assert ns.conntrack.entries[0].line() == (
        "tcp      6 119 SYN_SENT src=10.244.0.2 dst=203.0.113.10 sport=45178 dport=8080 [UNREPLIED] "
        "src=203.0.113.10 dst=192.168.50.11 sport=8080 dport=20269 mark=0 use=1")


def test_snat_reply_gets_destination_restored_at_prerouting():
    ns = FakeNetns()
    flannel(ns.netfilter)
    out, _ = forward(ns.netfilter, tcp("10.244.0.2", 45178, "203.0.113.10", 8080), "cni0", "eth0", "192.168.50.1")
    skb = Skb()
    result = ns.netfilter.hook("PREROUTING", answer(out), skb, "eth0", None)
    assert (result.packet.dst, result.packet.payload.dport) == ("10.244.0.2", 45178)
    assert told_all(result) == [
        ('nf_conntrack_in', 'TCP_STATE', 'established', ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'reply'),
         {'old': 'SYN_SENT', 'new': 'SYN_RECV', 'assured': False}, ()),
        ('nf_nat_packet', 'REWRITE', 'rewrite', ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'reply'),
         {'manip': 'DST', 'to': '10.244.0.2:45178'},
         (('ipv4.dst', '192.168.50.11', '10.244.0.2'), ('tcp.dport', 20269, 45178))),
    ]
    assert (skb.ct_reply, skb.ct_state) == (True, "ESTABLISHED")
    post = ns.netfilter.hook("POSTROUTING", result.packet, skb, None, "cni0")
    assert post.packet == result.packet and told_all(post) == []   # no rule runs for a reply


def test_nat_chain_runs_only_for_first_packet():
    ns = FakeNetns()
    flannel(ns.netfilter)
    nf = ns.netfilter
    first, _ = forward(nf, tcp("10.244.0.2", 45178, "203.0.113.10", 8080), "cni0", "eth0", "192.168.50.1")
    forward(nf, answer(first), "eth0", "cni0")
    nf.flush("nat")                         # the binding lives in conntrack, not in the rules
    ack = tcp("10.244.0.2", 45178, "203.0.113.10", 8080, "A")
    second, lines = forward(nf, ack, "cni0", "eth0", "192.168.50.1")
    assert (second.src, second.payload.sport) == (first.src, first.payload.sport) == ("192.168.50.11", 20269)
    assert lines == [
        ('nf_conntrack_in', 'TCP_STATE', 'established', ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'original'),
         {'old': 'SYN_RECV', 'new': 'ESTABLISHED', 'assured': True}, ()),
        ('ipt_do_table', 'RULE', 'accept',
         ('filter', 'FORWARD', ('FORWARD', 'FLANNEL-FWD'), 1, 'flanneld forward', 'ACCEPT', ()), {}, ()),
        ('nf_nat_packet', 'REWRITE', 'rewrite', ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'original'),
         {'manip': 'SRC', 'to': '192.168.50.11:20269'},
         (('ipv4.src', '10.244.0.2', '192.168.50.11'), ('tcp.sport', 45178, 20269))),
    ]


def test_client_ack_before_any_answer_is_invalid_and_not_nated():
    """An ACK in SYN_SENT is INVALID for conntrack: it loses its entry and so gets no NAT."""
    ns = FakeNetns()
    flannel(ns.netfilter)
    forward(ns.netfilter, tcp("10.244.0.2", 45178, "203.0.113.10", 8080), "cni0", "eth0")
    out, lines = forward(ns.netfilter, tcp("10.244.0.2", 45178, "203.0.113.10", 8080, "A"), "cni0", "eth0")
    assert (out.src, out.payload.sport) == ("10.244.0.2", 45178)
    assert lines[0] == ('nf_conntrack_in', 'TCP_INVALID', 'invalid',
                        ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'original'),
                        {'flags': 'A', 'old': 'SYN_SENT'}, ())


def test_kube_proxy_nodeport_chain_dnat_and_mark():
    """Scenario 5: ext -> NodePort 30080 on node1, endpoint pod-c on node2 (policy Cluster)."""
    ns = node1()
    nf = ns.netfilter
    skb = Skb()
    syn = tcp("203.0.113.10", 56756, "192.168.50.11", 30080, ttl=63)
    pre = nf.hook("PREROUTING", syn, skb, "eth0", None)
    assert (pre.packet.dst, pre.packet.payload.dport, skb.mark) == ("10.244.1.2", 8080, 0x4000)
    assert told_all(pre) == [
        ('nf_conntrack_in', 'NEW', 'new', ('tcp', '203.0.113.10:56756 -> 192.168.50.11:30080', 'original'),
         {'tcp_state': 'SYN_SENT'}, ()),
        ('ipt_do_table', 'MARK', 'continue',
         ('nat', 'PREROUTING', ('PREROUTING', 'KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXT-WEB', 'KUBE-MARK-MASQ'), 1,
          '', 'MARK', ('--set-xmark', '0x4000/0x4000')),
         {}, (('skb.mark', 0, 0x4000),)),
        ('nf_nat_inet_fn', 'BINDING', 'dnat',
         ('nat', 'PREROUTING',
          ('PREROUTING', 'KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXT-WEB', 'KUBE-SVC-WEB', 'KUBE-SEP-WEB'), 2,
          'default/web', 'DNAT', ('--to-destination', '10.244.1.2:8080')),
         ('tcp', '203.0.113.10:56756 -> 192.168.50.11:30080', 'original'),
         {'manip': 'DST', 'old': '192.168.50.11:30080', 'new': '10.244.1.2:8080'},
         (('ipv4.dst', '192.168.50.11', '10.244.1.2'), ('tcp.dport', 30080, 8080))),
    ]
    fwd = nf.hook("FORWARD", pre.packet, skb, "eth0", "flannel.1")
    assert told_all(fwd) == [('ipt_do_table', 'RULE', 'accept',
                              ('filter', 'FORWARD', ('FORWARD', 'KUBE-FORWARD'), 2, 'kubernetes forwarding rules',
                               'ACCEPT', ()),
                              {}, ())]
    post = nf.hook("POSTROUTING", fwd.packet, skb, None, "flannel.1", "10.244.1.0")
    out = post.packet
    assert (out.src, out.payload.sport, out.dst, out.payload.dport, skb.mark) == (
        "10.244.0.0", 26911, "10.244.1.2", 8080, 0)
    assert told_all(post) == [
        ('ipt_do_table', 'MARK', 'continue',
         ('nat', 'POSTROUTING', ('POSTROUTING', 'KUBE-POSTROUTING'), 2, '', 'MARK', ('--set-xmark', '0x4000/0x0')),
         {}, (('skb.mark', 0x4000, 0),)),
        ('nf_nat_masquerade_ipv4', 'BINDING', 'masquerade',
         ('nat', 'POSTROUTING', ('POSTROUTING', 'KUBE-POSTROUTING'), 3, 'kubernetes service traffic requiring SNAT',
          'MASQUERADE', ('--random-fully',)),
         ('tcp', '203.0.113.10:56756 -> 192.168.50.11:30080', 'original'),
         {'manip': 'SRC', 'old': '203.0.113.10:56756', 'new': '10.244.0.0:26911'},
         (('ipv4.src', '203.0.113.10', '10.244.0.0'), ('tcp.sport', 56756, 26911))),
    ]
    # the handshake and close, each reply coming back from pod-c through flannel.1
    back, lines = forward(nf, answer(out), "flannel.1", "eth0", "192.168.50.1")
    assert (back.src, back.payload.sport, back.dst, back.payload.dport) == ("192.168.50.11", 30080, "203.0.113.10", 56756)
    assert lines == [
        ('nf_conntrack_in', 'TCP_STATE', 'established', ('tcp', '203.0.113.10:56756 -> 192.168.50.11:30080', 'reply'),
         {'old': 'SYN_SENT', 'new': 'SYN_RECV', 'assured': False}, ()),
        ('nf_nat_packet', 'REWRITE', 'rewrite', ('tcp', '203.0.113.10:56756 -> 192.168.50.11:30080', 'reply'),
         {'manip': 'DST', 'to': '203.0.113.10:56756'},
         (('ipv4.dst', '10.244.0.0', '203.0.113.10'), ('tcp.dport', 26911, 56756))),
        ('ipt_do_table', 'RULE', 'accept',
         ('filter', 'FORWARD', ('FORWARD', 'KUBE-FORWARD'), 3, 'kubernetes forwarding conntrack rule', 'ACCEPT', ()),
         {}, ()),
        ('nf_nat_packet', 'REWRITE', 'rewrite', ('tcp', '203.0.113.10:56756 -> 192.168.50.11:30080', 'reply'),
         {'manip': 'SRC', 'to': '192.168.50.11:30080'},
         (('ipv4.src', '10.244.1.2', '192.168.50.11'), ('tcp.sport', 8080, 30080))),
    ]
    for flags, from_client in (("A", True), ("FA", True), ("FA", False), ("A", True)):
        if from_client:
            forward(nf, tcp("203.0.113.10", 56756, "192.168.50.11", 30080, flags), "eth0", "flannel.1", "10.244.1.0")
        else:
            forward(nf, tcp("10.244.1.2", 8080, "10.244.0.0", 26911, flags), "flannel.1", "eth0", "192.168.50.1")
    # kernel-observations.md s5 (port 31018 there: --random-fully draws a different one each run)
    assert ns.conntrack.listing() == (
        "tcp      6 119 TIME_WAIT src=203.0.113.10 dst=192.168.50.11 sport=56756 dport=30080 "
        "src=10.244.1.2 dst=10.244.0.0 sport=8080 dport=26911 [ASSURED] mark=0 use=1\n")


def test_dnat_reply_gets_source_restored_at_postrouting():
    ns = node1()
    nf = ns.netfilter
    out, _ = forward(nf, tcp("10.244.0.2", 40000, "10.96.0.100", 80), "cni0", "flannel.1", "10.244.1.0")
    assert (out.src, out.dst, out.payload.dport) == ("10.244.0.2", "10.244.1.2", 8080)   # pod source kept
    skb = Skb()
    pre = nf.hook("PREROUTING", answer(out), skb, "flannel.1", None)
    assert pre.packet == answer(out)                       # nothing to undo on the destination
    post = nf.hook("POSTROUTING", pre.packet, skb, None, "cni0")
    assert (post.packet.src, post.packet.payload.sport) == ("10.96.0.100", 80)
    assert told_all(post) == [
        ('nf_nat_packet', 'REWRITE', 'rewrite', ('tcp', '10.244.0.2:40000 -> 10.96.0.100:80', 'reply'),
         {'manip': 'SRC', 'to': '10.96.0.100:80'},
         (('ipv4.src', '10.244.1.2', '10.96.0.100'), ('tcp.sport', 8080, 80)))]


def test_random_fully_is_deterministic():
    ports = []
    for name in ("kl-node1", "kl-node1", "kl-node2"):
        ns = FakeNetns(name)
        flannel(ns.netfilter)
        out, _ = forward(ns.netfilter, tcp("10.244.0.2", 45178, "203.0.113.10", 8080), "cni0", "eth0")
        ports.append(out.payload.sport)
    assert ports == [20269, 20269, 21536]
    assert all(1024 <= port <= 65535 for port in ports)


def test_masquerade_without_random_keeps_the_port_until_it_clashes():
    ns = FakeNetns()
    ns.netfilter.append("nat", "POSTROUTING", "-o eth0 -j MASQUERADE")
    a, _ = forward(ns.netfilter, tcp("10.244.0.2", 40000, "203.0.113.10", 8080), "cni0", "eth0")
    b, lines = forward(ns.netfilter, tcp("10.244.0.3", 40000, "203.0.113.10", 8080), "cni0", "eth0")
    assert (a.src, a.payload.sport) == ("192.168.50.11", 40000)
    assert (b.src, b.payload.sport) == ("192.168.50.11", 29111)
    assert lines[-1] == ('nf_nat_masquerade_ipv4', 'BINDING', 'masquerade',
                         ('nat', 'POSTROUTING', ('POSTROUTING',), 1, '', 'MASQUERADE', ()),
                         ('tcp', '10.244.0.3:40000 -> 203.0.113.10:8080', 'original'),
                         {'manip': 'SRC', 'old': '10.244.0.3:40000', 'new': '192.168.50.11:29111'},
                         (('ipv4.src', '10.244.0.3', '192.168.50.11'), ('tcp.sport', 40000, 29111)))


def test_icmp_echo_id_is_remapped_and_restored():
    """Scenario 6's ping: the echo id is the ICMP "port" that --random-fully rewrites (1227 -> 21344 there)."""
    ns = FakeNetns()
    flannel(ns.netfilter)
    ping = IPv4("10.244.0.2", "203.0.113.10", IPPROTO_ICMP, ICMP(8, 0, (1227 << 16) | 1, b"x" * 56))
    out, lines = forward(ns.netfilter, ping, "cni0", "eth0")
    assert (out.src, out.payload.id, out.payload.seq) == ("192.168.50.11", 63626, 1)
    assert lines[0] == ('nf_conntrack_in', 'NEW', 'new', ('icmp', '10.244.0.2 -> 203.0.113.10 id 1227', 'original'),
                        {'tcp_state': ''}, ())
    assert lines[-1] == ('nf_nat_masquerade_ipv4', 'BINDING', 'masquerade',
                         ('nat', 'POSTROUTING', ('POSTROUTING', 'FLANNEL-POSTRTG'), 5, 'flanneld masq', 'MASQUERADE',
                          ('--random-fully',)),
                         ('icmp', '10.244.0.2 -> 203.0.113.10 id 1227', 'original'),
                         {'manip': 'SRC', 'old': '10.244.0.2 id 1227', 'new': '192.168.50.11 id 63626'},
                         (('ipv4.src', '10.244.0.2', '192.168.50.11'), ('icmp.id', 1227, 63626)))
    pong = IPv4("203.0.113.10", "192.168.50.11", IPPROTO_ICMP, ICMP(0, 0, (63626 << 16) | 1, b"x" * 56))
    back, lines = forward(ns.netfilter, pong, "eth0", "cni0")
    assert (back.dst, back.payload.id) == ("10.244.0.2", 1227)
    assert lines == [('nf_conntrack_in', 'TRACKED', 'established',
                      ('icmp', '10.244.0.2 -> 203.0.113.10 id 1227', 'reply'), {}, ()),
                     ('nf_nat_packet', 'REWRITE', 'rewrite', ('icmp', '10.244.0.2 -> 203.0.113.10 id 1227', 'reply'),
                      {'manip': 'DST', 'to': '10.244.0.2 id 1227'},
                      (('ipv4.dst', '192.168.50.11', '10.244.0.2'), ('icmp.id', 63626, 1227))),
                     ('ipt_do_table', 'RULE', 'accept',
                      ('filter', 'FORWARD', ('FORWARD', 'FLANNEL-FWD'), 2, 'flanneld forward', 'ACCEPT', ()), {}, ())]
    assert ns.conntrack.listing() == (
        "icmp     1 29 src=10.244.0.2 dst=203.0.113.10 type=8 code=0 id=1227 "
        "src=203.0.113.10 dst=192.168.50.11 type=0 code=0 id=63626 mark=0 use=1\n")


def test_related_icmp_error_is_rewritten_through_nat():
    """A router's "fragmentation needed" about a masqueraded packet reaches pod-a, and the packet
    it quotes shows pod-a's own address and port again."""
    ns = FakeNetns()
    flannel(ns.netfilter)
    out, _ = forward(ns.netfilter, tcp("10.244.0.2", 45178, "203.0.113.10", 8080), "cni0", "eth0")
    quoted = out.to_bytes()[:28]
    error = IPv4("192.168.50.1", "192.168.50.11", IPPROTO_ICMP, ICMP(3, 4, 1400, quoted), df=False)
    skb = Skb()
    pre = ns.netfilter.hook("PREROUTING", error, skb, "eth0", None)
    assert skb.ct_state == "RELATED"
    fixed = pre.packet
    assert fixed.dst == "10.244.0.2" and fixed.src == "192.168.50.1"
    inner = fixed.payload.data
    assert inner[12:16] == bytes([10, 244, 0, 2]) and struct.unpack("!H", inner[20:22])[0] == 45178
    assert inner[16:20] == bytes([203, 0, 113, 10])
    assert internet_checksum(inner[:20]) == 0                       # quoted IP header still valid
    assert told_all(pre) == [
        ('nf_conntrack_icmpv4_error', 'RELATED', 'related', ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'reply'),
         {'src': '192.168.50.1'}, ()),
        ('nf_nat_icmp_reply_translation', 'ICMP_ERROR', 'rewrite',
         ('tcp', '10.244.0.2:45178 -> 203.0.113.10:8080', 'reply'),
         {'manip': 'DST', 'to': '10.244.0.2', 'quoted': '10.244.0.2:45178'},
         (('ipv4.dst', '192.168.50.11', '10.244.0.2'), ('quoted.ipv4.src', '192.168.50.11', '10.244.0.2'),
          ('quoted.tcp.sport', 20269, 45178))),
    ]
    fwd = ns.netfilter.hook("FORWARD", fixed, skb, "eth0", "cni0")
    assert fwd.verdict == "ACCEPT"


def test_conntrack_state_match_drops_invalid_and_accepts_established():
    ns = node1()
    nf = ns.netfilter
    nf.set_policy("filter", "FORWARD", "DROP")
    stray = tcp("203.0.113.10", 80, "10.244.0.2", 5555, "SA")       # a SYN-ACK nobody asked for
    skb = Skb()
    nf.hook("PREROUTING", stray, skb, "eth0", None)
    result = nf.hook("FORWARD", stray, skb, "eth0", "cni0")
    assert (skb.ct_state, result.verdict) == ("INVALID", "DROP")
    assert told_all(result) == [('ipt_do_table', 'RULE', 'drop',
                                 ('filter', 'FORWARD', ('FORWARD', 'KUBE-FORWARD'), 1, '', 'DROP', ()), {}, ())]
    assert result.rule == "filter FORWARD: KUBE-FORWARD rule 1"
    assert ns.conntrack.entries == []


def test_reject_results():
    ns = FakeNetns()
    nf = ns.netfilter
    nf.append("filter", "INPUT", "-p tcp --dport 22 -j REJECT --reject-with tcp-reset")
    nf.append("filter", "INPUT", "-p tcp --dport 23 -j REJECT")
    nf.append("filter", "INPUT", "-p udp -j REJECT --reject-with icmp-host-prohibited")
    results = [nf.hook("INPUT", p, Skb(), "eth0", None) for p in (
        tcp("203.0.113.10", 40000, "192.168.50.11", 22), tcp("203.0.113.10", 40000, "192.168.50.11", 23),
        IPv4("203.0.113.10", "192.168.50.11", IPPROTO_UDP, UDP(5000, 53, b"q")))]
    assert [(r.verdict, r.reject_with, r.reject_name) for r in results] == [
        ("REJECT", "tcp-reset", "tcp-reset"),
        ("REJECT", (3, 3), "icmp-port-unreachable"),
        ("REJECT", (3, 10), "icmp-host-prohibited")]
    assert told_all(results[1]) == [('ipt_do_table', 'REJECT', 'reject',
                                     ('filter', 'INPUT', ('INPUT',), 2, '', 'REJECT',
                                      ('--reject-with', 'icmp-port-unreachable')),
                                     {}, ())]
    syn = tcp("203.0.113.10", 40000, "192.168.50.11", 22)
    rst = reject_reply(syn, "tcp-reset")
    assert (rst.src, rst.dst, rst.payload.sport, rst.payload.dport, rst.payload.flags, rst.payload.ack,
            rst.ttl, rst.df, rst.id) == ("192.168.50.11", "203.0.113.10", 22, 40000, "RA", 1001, 64, True, 0)
    unreach = reject_reply(syn, "icmp-port-unreachable")
    assert (unreach.payload.type, unreach.payload.code, unreach.tos, unreach.df) == (3, 3, 0xC0, False)
    assert unreach.payload.data == syn.to_bytes()
    assert reject_reply(rst, "tcp-reset") is None


def test_drop_before_confirmation_keeps_no_entry():
    ns = FakeNetns()
    nf = ns.netfilter
    nf.append("nat", "POSTROUTING", "-o eth0 -j MASQUERADE")
    nf.append("filter", "FORWARD", "-d 203.0.113.10 -j DROP")
    skb = Skb()
    nf.hook("PREROUTING", tcp("10.244.0.2", 1, "203.0.113.10", 80), skb, "cni0", None)
    result = nf.hook("FORWARD", tcp("10.244.0.2", 1, "203.0.113.10", 80), skb, "cni0", "eth0")
    assert result.verdict == "DROP"
    assert told_all(result) == [
        ('ipt_do_table', 'RULE', 'drop', ('filter', 'FORWARD', ('FORWARD',), 1, '', 'DROP', ()), {}, ()),
        ('nf_conntrack_destroy', 'DISCARD', 'discard', ('tcp', '10.244.0.2:1 -> 203.0.113.10:80', 'original'),
         {'hook_verdict': 'DROP'}, ())]
    assert ns.conntrack.listing() == ""


def test_goto_return_and_policy():
    nf = FakeNetns().netfilter
    for chain in ("A", "B"):
        nf.new_chain("filter", chain)
    nf.append("filter", "INPUT", "-j A")
    nf.append("filter", "INPUT", "-p tcp -j ACCEPT")
    nf.append("filter", "A", "-g B")
    nf.append("filter", "B", "-p udp -j RETURN")
    nf.append("filter", "B", "-j DROP")
    nf.set_policy("filter", "INPUT", "DROP")
    udp = IPv4("1.1.1.1", "192.168.50.11", IPPROTO_UDP, UDP(1, 2))
    result = nf.hook("INPUT", udp, Skb(), "eth0", None)
    # RETURN from B (reached by goto from A) goes back to INPUT, past the jump to A
    assert told_all(result) == [
        ('ipt_do_table', 'RULE', 'return', ('filter', 'INPUT', ('INPUT', 'A', 'B'), 1, '', 'RETURN', ()), {}, ()),
        ('ipt_do_table', 'POLICY', 'drop', ('filter', 'INPUT', ('INPUT',), 0, '', 'DROP', ()), {}, ()),
    ]
    assert result.verdict == "DROP"
    icmp = IPv4("1.1.1.1", "192.168.50.11", IPPROTO_ICMP, ICMP(8, 0, 1))
    assert told_all(nf.hook("INPUT", icmp, Skb(), "eth0", None)) == [
        ('ipt_do_table', 'RULE', 'drop', ('filter', 'INPUT', ('INPUT', 'A', 'B'), 2, '', 'DROP', ()), {}, ())]


def test_the_end_of_a_chain_reached_by_goto_from_the_built_in_chain_is_its_policy():
    """With nothing on the stack, the end of a user chain (or RETURN in it) is the hook's
    underflow entry, the built-in chain's policy (ipt_do_table: `e = get_entry(table_base,
    private->underflow[hook])`), not ACCEPT."""
    nf = FakeNetns().netfilter
    nf.new_chain("filter", "B")
    nf.append("filter", "INPUT", "-g B")
    nf.append("filter", "B", "-p tcp -j ACCEPT")
    nf.append("filter", "B", "-p udp -j RETURN")
    nf.set_policy("filter", "INPUT", "DROP")
    icmp = IPv4("1.1.1.1", "192.168.50.11", IPPROTO_ICMP, ICMP(8, 0, 1))
    result = nf.hook("INPUT", icmp, Skb(), "eth0", None)
    assert result.verdict == "DROP"
    assert told_all(result) == [
        ('ipt_do_table', 'POLICY', 'drop', ('filter', 'INPUT', ('INPUT',), 0, '', 'DROP', ()), {}, ())]
    udp = IPv4("1.1.1.1", "192.168.50.11", IPPROTO_UDP, UDP(1, 2))
    assert nf.hook("INPUT", udp, Skb(), "eth0", None).verdict == "DROP"
    assert nf.hook("INPUT", tcp("1.1.1.1", 1, "192.168.50.11", 2), Skb(), "eth0", None).verdict == "ACCEPT"


def test_interface_wildcard_and_negation():
    nf = FakeNetns().netfilter
    nf.append("filter", "FORWARD", "-i veth+ ! -o eth0 -j DROP")
    p = tcp("10.244.0.2", 1, "10.244.0.3", 2)
    assert nf.hook("FORWARD", p, Skb(), "veth3f2a9c1d", "cni0").verdict == "DROP"
    assert nf.hook("FORWARD", p, Skb(), "veth3f2a9c1d", "eth0").verdict == "ACCEPT"
    assert nf.hook("FORWARD", p, Skb(), "cni0", "cni0").verdict == "ACCEPT"


def test_statistic_splits_connections_deterministically():
    ns = FakeNetns()
    nf = ns.netfilter
    for chain in ("SVC", "SEP1", "SEP2"):
        nf.new_chain("nat", chain)
    nf.append("nat", "PREROUTING", "-d 10.96.0.100 -p tcp --dport 80 -j SVC")
    nf.append("nat", "SVC", "-m statistic --mode random --probability 0.5 -j SEP1")
    nf.append("nat", "SVC", "-j SEP2")
    nf.append("nat", "SEP1", "-p tcp -j DNAT --to-destination 10.244.0.2:8080")
    nf.append("nat", "SEP2", "-p tcp -j DNAT --to-destination 10.244.1.2:8080")
    chosen = [nf.hook("PREROUTING", tcp("10.244.0.9", port, "10.96.0.100", 80), Skb(), "cni0", None).packet.dst
              for port in range(40000, 40200)]
    assert chosen.count("10.244.0.2") == 100 and chosen.count("10.244.1.2") == 100
    again = [nf.hook("PREROUTING", tcp("10.244.0.9", port, "10.96.0.100", 80), Skb(), "cni0", None).packet.dst
             for port in range(40000, 40200)]
    assert again == chosen


def test_conntrack_stays_off_until_a_rule_needs_it():
    """A pod namespace has no iptables rules: the kernel never tracks its packets."""
    ns = FakeNetns()
    skb = Skb()
    result = ns.netfilter.hook("OUTPUT", tcp("10.244.0.2", 1, "10.244.0.3", 2), skb, None, "eth0")
    assert (told_all(result), skb.ct, skb.ct_state, ns.conntrack.listing()) == ([], None, "", "")
    assert ns.netfilter.conntrack_active is False
    ns.netfilter.append("filter", "INPUT", "-m conntrack --ctstate INVALID -j DROP")
    assert ns.netfilter.conntrack_active is True


def test_dnat_reached_from_postrouting_is_refused():
    nf = FakeNetns().netfilter
    nf.new_chain("nat", "X")
    nf.append("nat", "POSTROUTING", "-j X")
    nf.append("nat", "X", "-p tcp -j DNAT --to-destination 10.0.0.1")
    skb = Skb()
    nf.hook("PREROUTING", tcp("1.1.1.1", 1, "2.2.2.2", 2), skb, "eth0", None)
    with pytest.raises(ValueError, match="DNAT belongs to PREROUTING/OUTPUT"):
        nf.hook("POSTROUTING", tcp("1.1.1.1", 1, "2.2.2.2", 2), skb, None, "eth0")


def test_later_fragments_follow_their_first_fragment():
    ns = FakeNetns()
    ns.netfilter.append("nat", "POSTROUTING", "-o eth0 -j MASQUERADE")
    first = IPv4("10.244.0.2", "203.0.113.10", IPPROTO_UDP, UDP(5000, 9090, b"a" * 1472), id=77, df=False, mf=True)
    second = IPv4("10.244.0.2", "203.0.113.10", IPPROTO_UDP, b"b" * 100, id=77, df=False, frag=185)
    out1, _ = forward(ns.netfilter, first, "cni0", "eth0")
    out2, lines = forward(ns.netfilter, second, "cni0", "eth0")
    assert (out1.src, out2.src, out2.payload) == ("192.168.50.11", "192.168.50.11", b"b" * 100)
    assert lines[-1] == ('ipv4_conntrack_defrag', 'FOLLOWS_FIRST', 'accept',
                         {'hook': 'POSTROUTING', 'offset': 1480, 'src': '192.168.50.11', 'dst': '203.0.113.10',
                          'rewritten': True},
                         (('ipv4.src', '10.244.0.2', '192.168.50.11'),))
