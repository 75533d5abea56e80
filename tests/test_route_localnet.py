"""route_localnet in netsim's routing (ip_input.py, ip_output.py, arp.py, icmp.py): 127/8 from
outside is a martian without it, a 127/8 source may not leave by a device without it, and
kube-proxy's iptables mode turns it on for every device (all). The kernel comparison is
tests/test_lab_route_localnet.py."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import netsim
from netsim.decision import Decision, RouteReason, Subsystem, Verdict


def _drops(trace):
    return [(h.where, d) for h in trace.hops for d in h.decisions if d.verdict == Verdict.DROP]


def _syn_to_loopback(c: netsim.Cluster):
    n2, n1 = c.netns("node2").devices["eth0"], c.netns("node1").devices["eth0"]
    return c.inject("node2", "eth0", Ether(src=n2.mac, dst=n1.mac) / IP(src="192.168.50.12", dst="127.0.0.1", id=77)
                    / TCP(sport=40000, dport=9, flags="S", seq=1000))


def test_kube_proxys_iptables_mode_turns_route_localnet_on_and_its_nftables_mode_does_not():
    assert netsim.reference_cluster().netns("node1").sysctl.route_localnet is True
    assert netsim.reference_cluster().netns("node1").sysctl.lines()[-1] == "net.ipv4.conf.all.route_localnet = 1"
    assert netsim.reference_cluster(proxy_mode="nftables").netns("node1").sysctl.route_localnet is False
    assert netsim.reference_cluster().netns("pod-a").sysctl.route_localnet is False


def test_a_packet_to_127_0_0_1_from_another_host_is_a_martian_destination_without_route_localnet():
    c = netsim.reference_cluster()
    c.netns("node1").set_sysctl("net.ipv4.conf.all.route_localnet", 0)
    ((where, d),) = _drops(_syn_to_loopback(c))[-1:]
    assert where == "node1/eth0"
    assert d == Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.MARTIAN_DESTINATION, Verdict.DROP,
                         dst="127.0.0.1", src="192.168.50.12", dev="eth0")


def test_with_route_localnet_the_packet_reaches_input_where_kube_firewall_drops_it():
    c = netsim.reference_cluster()
    where, d = _drops(_syn_to_loopback(c))[-2]
    assert where == "node1/eth0" and d.function == "ipt_do_table"
    rule = d.consulted[0]
    assert (rule.table, rule.hook, rule.chain, rule.rule, rule.target) == ("filter", "INPUT", "KUBE-FIREWALL", 1, "DROP")


def test_a_nodeport_through_127_0_0_1_needs_route_localnet_on_the_way_out():
    c = netsim.reference_cluster()
    assert c.send("node1", "127.0.0.1", proto="tcp", dport=30080).outcome.kind.value == "connected"
    c.netns("node1").set_sysctl("net.ipv4.conf.all.route_localnet", 0)
    t = c.send("node1", "127.0.0.1", proto="tcp", dport=30080)
    assert (t.outcome.kind.value, t.outcome.errno, len(t.hops)) == ("local-error", "EINVAL", 0)
    ((_, d),) = dict(t.outcome.facts)["ended"]
    assert (d.function, d.reason, d.verdict) == ("ip_route_me_harder", RouteReason.LOOPBACK_SOURCE, Verdict.DROP)
    assert d.facts == (("src", "127.0.0.1"), ("dst", "10.244.1.2"), ("dev", "flannel.1"), ("errno", "EINVAL"))
    # a per-device key is enough for that device: flannel.1's own route_localnet
    c.netns("node1").set_sysctl("net.ipv4.conf.flannel/1.route_localnet", 1)
    assert c.send("node1", "127.0.0.1", proto="tcp", dport=30080).outcome.kind.value == "connected"
