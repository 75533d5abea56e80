"""The ICMP redirect ip_forward asks for when a packet leaves by the device it came in on, and
nf_nat's drop of it on a NATed connection (netsim/ip_forward.py; the lab's chapter 13 case
clusterip-same-node-brnf-off measures the kernel's IpOutDiscards)."""

from __future__ import annotations

import netsim
from netsim.counters import CounterKey, counters
from netsim.lab import chapters


def _redirects(trace):
    return [(h.where, h.direction, d.fact("src"), d.fact("dev")) for h in trace.hops for d in h.decisions
            if d.function == "nf_nat_icmp_reply_translation"]


def test_a_clusterip_routed_back_out_of_cni0_costs_node1_one_ipoutdiscards():
    case = chapters.BY_KEY["clusterip-same-node-brnf-off"]
    trace = case.send(case.build())
    assert _redirects(trace) == [("node1/cni0", "rx", "10.244.0.3", "cni0")]
    moved = [c for c in counters(trace) if c.key.host == "node1"]
    assert [(c.key, c.delta) for c in moved] == [(CounterKey("node1", "nstat", "IpOutDiscards"), 1)]


def test_bridged_dnat_asks_for_no_redirect():
    """bridge-nf-call-iptables 1: br_netfilter bridges the DNATed frame, ip_forward never runs."""
    trace = netsim.reference_cluster().send("pod-b", "10.96.0.10:53", proto="udp")
    assert _redirects(trace) == []
    assert not [c for c in counters(trace) if c.key.name == "IpOutDiscards"]


def test_a_packet_routed_between_two_devices_asks_for_no_redirect():
    trace = netsim.reference_cluster().send("pod-a", "pod-c", proto="udp")
    assert _redirects(trace) == []
