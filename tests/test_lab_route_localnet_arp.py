"""route_localnet and ARP against the real kernel (netsim.lab): pod-a writes an ICMP echo request
for 127.0.0.1 to node1's cni0 MAC (a packet socket, as Cluster.inject models it). Beside
tests/test_lab_route_localnet.py, this file lets node1's ARP for pod-a run its course.

- route_localnet 0 (all and cni0): ip_route_input_slow drops it as a martian
  destination; nothing answers.
- route_localnet 1 and KUBE-FIREWALL flushed: node1 takes it and answers from 127.0.0.1, and
  its ARP for pod-a says "tell 127.0.0.1"; pod-a never answers that request (arp_process: the
  input route of a loopback sender is a martian without route_localnet), so node1 probes three
  times and gives up, and the echo reply dies in node1's neighbour queue. The test waits for
  node1's neighbour entry for pod-a to become FAILED, then reads the rest of the capture.
Compared: every IP frame per capture point (addresses, TTL, protocol, ICMP type and code) and
the ARP requests and replies (op, sender, target) at every capture point, IGMP left out.
Root on Linux only; skipped with the reason elsewhere.
"""

from __future__ import annotations

import subprocess
import time

from scapy.layers.inet import ICMP as ScapyICMP
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

import netsim
from netsim.decision import ArpReason, RouteReason
from netsim.lab import Lab
from netsim.lab.tools import _captured, inject_frame
from netsim.packet import ARP, ICMP, Ethernet
from test_lab import needs_lab

pytestmark = [needs_lab]
IPPROTO_IGMP = 2


def _cluster(route_localnet: bool):
    """The reference cluster (kube-proxy in iptables mode sets all.route_localnet 1, as v1.31's
    NewProxier does for localhost NodePorts), with node1's keys set to `route_localnet`."""
    cluster = netsim.reference_cluster()
    cluster.netns("node1").set_sysctl("net.ipv4.conf.all.route_localnet", int(route_localnet))
    if route_localnet:
        cluster.netns("node1").set_sysctl("net.ipv4.conf.cni0.route_localnet", 1)
        cluster.netns("node1").netfilter.flush("filter", "KUBE-FIREWALL")
    return cluster


def _frame(cluster) -> bytes:
    cni = cluster.netns("node1").devices["cni0"]
    return bytes(Ether(src=cluster.netns("pod-a").devices["eth0"].mac, dst=cni.mac)
                 / IP(src="10.244.0.2", dst="127.0.0.1") / ScapyICMP(id=7, seq=1))


def view(hops) -> tuple[dict, list]:
    ip_rows: dict[tuple[str, str], list] = {}
    arp_rows = []
    for h in hops:
        eth = h.frame
        if isinstance(eth, Ethernet) and isinstance(eth.payload, ARP):
            a = eth.payload
            arp_rows.append((h.where, h.direction, a.op, a.psrc, a.pdst))
        elif h.ip is not None and h.ip.proto != IPPROTO_IGMP and not h.where.endswith("/lo"):
            l4 = h.ip.payload
            ip_rows.setdefault((h.where, h.direction), []).append(
                (h.ip.src, h.ip.dst, h.ip.ttl, h.ip.proto) + ((l4.type, l4.code) if isinstance(l4, ICMP) else ()))
    return ip_rows, sorted(arp_rows)


def _neigh_failed(lab, netns: str, dst: str, dev: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "-n", netns, "neigh", "show", dst, "dev", dev], capture_output=True, text=True).stdout
        if "FAILED" in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"{dst} on {dev} never became FAILED: {out!r}")


def test_127_0_0_1_from_a_pod_is_a_martian_destination_on_the_kernel_too():
    cluster = _cluster(False)
    model = cluster.inject("pod-a", "eth0", _frame(cluster), cold=True)
    assert [(d.function, d.reason) for h in model.hops for d in h.decisions if d.reason is RouteReason.MARTIAN_DESTINATION] \
        == [("ip_route_input_slow", RouteReason.MARTIAN_DESTINATION)]
    with Lab(cluster) as lab:
        kernel = inject_frame(lab, "pod-a", "eth0", _frame(cluster))
    assert view(kernel.trace.hops) == view(model.hops)
    assert list(view(model.hops)[0])[-1] == ("node1/cni0", "rx")


def test_with_route_localnet_node1_answers_from_127_0_0_1_and_pod_a_ignores_its_arp():
    cluster = _cluster(True)
    model = cluster.inject("pod-a", "eth0", _frame(cluster), cold=True)
    ignored = [d for h in model.hops for d in h.decisions if d.reason is ArpReason.MARTIAN_SENDER]
    assert len(ignored) == 3 and all(d.fact("sender") == "127.0.0.1" for d in ignored)
    with Lab(cluster) as lab:
        kernel = inject_frame(lab, "pod-a", "eth0", _frame(cluster))
        _neigh_failed(lab, lab.netns("node1"), "10.244.0.2", "cni0")
        rest, _ = _captured(lab, lab._sockets, "the rest")
    k_ip, k_arp = view(list(kernel.trace.hops) + list(rest.hops))
    m_ip, m_arp = view(model.hops)
    assert k_ip == m_ip
    assert k_arp == m_arp
    assert sum(1 for row in m_arp if row[:3] == ("node1/cni0", "tx", 1)) == 3
