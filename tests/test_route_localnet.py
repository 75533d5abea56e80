"""route_localnet in the input route (ip_route_input_slow): 127.0.0.0/8 arriving on a device
other than lo is a martian unless that device has net.ipv4.conf.DEV.route_localnet 1."""

from __future__ import annotations

import netsim
from netsim.decision import RouteReason, Verdict
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether


def _to_loopback(cluster, dst="127.0.0.1", src="10.244.0.2"):
    """An echo request pod-a writes to node1's cni0 MAC (a packet socket: no routing in pod-a)."""
    cni = cluster.netns("node1").devices["cni0"]
    frame = Ether(src=cluster.netns("pod-a").devices["eth0"].mac, dst=cni.mac) / IP(src=src, dst=dst) / ICMP(id=7, seq=1)
    return cluster.inject("pod-a", "eth0", bytes(frame), cold=True)


def _drop(trace):
    return [(h.where, d.function, d.reason) for h in trace.hops for d in h.decisions if d.verdict == Verdict.DROP]


def test_a_packet_for_127_0_0_1_from_a_pod_is_a_martian_destination():
    trace = _to_loopback(netsim.reference_cluster())
    assert _drop(trace) == [("node1/cni0", "ip_route_input_slow", RouteReason.MARTIAN_DESTINATION)]
    assert [h.where for h in trace.hops if h.role != "arp"][-1] == "node1/cni0"


def test_a_loopback_source_from_a_pod_is_a_martian_source():
    trace = _to_loopback(netsim.reference_cluster(), dst="10.244.0.1", src="127.0.0.5")
    assert _drop(trace) == [("node1/cni0", "ip_route_input_slow", RouteReason.MARTIAN_LOOPBACK_SOURCE)]


def test_with_route_localnet_the_packet_is_routed_and_kube_firewall_drops_it():
    """kubelet's KUBE-FIREWALL rule 1 ("block incoming localnet connections") is what stops it then."""
    cluster = netsim.reference_cluster()
    cluster.netns("node1").set_sysctl("net.ipv4.conf.cni0.route_localnet", 1)
    drops = _drop(_to_loopback(cluster))
    assert ("node1/cni0", "ip_route_input_slow", RouteReason.MARTIAN_DESTINATION) not in drops
    assert [f for _, f, _ in drops] == ["ipt_do_table", "nf_hook_slow"]
