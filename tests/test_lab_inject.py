"""Cluster.inject against the real kernel: the same frame written to a packet socket bound to
the same device in the lab (netsim.lab.tools.inject_frame), every frame at every capture point
compared as tests/test_lab_dns.py compares them (addresses, MACs, TTL, DF, length, ports,
payload; the kernel's IP ids by rule: the injected frame's as written, the replies' random;
IGMP reports left out; ARP as a set). Root on Linux only; skipped with the reason elsewhere.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from netsim import reference_cluster
from netsim.lab import Lab
from netsim.lab.tools import inject_frame
from test_lab import needs_lab
from netsim.lab.walks import arp_set, by_capture_point

pytestmark = [needs_lab]


@pytest.fixture(scope="module")
def inject_lab():
    cluster = reference_cluster()
    with Lab(cluster) as lab:
        yield cluster, lab


def frames(cluster):
    pod_a = cluster.netns("pod-a").devices["eth0"].mac
    cni0 = cluster.netns("node1").devices["cni0"]
    pod_b = cluster.netns("pod-b").devices["eth0"].mac
    return {
        "echo-across-nodes": ("pod-a", "eth0", Ether(src=pod_a, dst=cni0.mac)
                              / IP(src="10.244.0.2", dst="10.244.1.2", id=4242, ttl=9)
                              / ICMP(id=7, seq=1) / Raw(b"netsim!!")),
        "unknown-unicast": ("pod-a", "eth0", Ether(src=pod_a, dst="02:00:00:00:00:99")
                            / IP(src="10.244.0.2", dst="10.244.1.2", id=4243) / ICMP(id=8, seq=1)),
        "udp-from-cni0": ("node1", "cni0", Ether(src=cni0.mac, dst=pod_b)
                          / IP(src="10.244.0.1", dst="10.244.0.3", id=4244) / UDP(sport=40000, dport=9090)
                          / Raw(b"REQ")),
    }


@pytest.mark.parametrize("case", ["echo-across-nodes", "unknown-unicast", "udp-from-cni0"])
def test_an_injected_frame_goes_where_the_kernel_sends_it(inject_lab, case):
    cluster, lab = inject_lab
    host, device, packet = frames(cluster)[case]
    kernel = inject_frame(lab, host, device, bytes(packet))
    model = cluster.inject(host, device, packet, cold=True)
    assert kernel.returncode == 0
    first_k = next(h for h in kernel.trace.hops if h.where == f"{host}/{device}" and h.direction == "tx")
    assert first_k.frame.to_bytes() == model.hops[0].frame.to_bytes() == bytes(packet)
    k, m = by_capture_point(kernel.trace), by_capture_point(model)
    assert sorted(k) == sorted(m)
    for point in m:
        assert k[point] == m[point], point
    assert arp_set(kernel.trace) == arp_set(model)
