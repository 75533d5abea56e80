"""route_localnet against the real kernel (ip_input.py, ip_output.py, icmp.py model it).

One lab, a cluster in kube-proxy's nftables mode (it writes no KUBE-FIREWALL and leaves
net.ipv4.conf.all.route_localnet at 0) with a hostPort pod on node1, so the CNI portmap plugin
has turned route_localnet on for cni0 alone. The same sysctl is then switched in the model and
in the lab namespace between exchanges:
- a datagram to 127.0.0.1 that pod-a writes onto its eth0 (a packet to 127/8 arriving from
  another namespace): with cni0's route_localnet 1 node1 takes it, answers ICMP port
  unreachable from 127.0.0.1 (also its ARP request's sender); with 0 it is a martian destination
  and nothing follows;
- node1 reaching the hostPort through 127.0.0.1 with cni0's route_localnet 0: the SYN, DNATed
  to the pod, may not leave by cni0 with its 127.0.0.1 source (EINVAL) and the client hears
  nothing.
Every frame at every capture point and every rule evaluation compared; root on Linux only.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import netsim
from netsim.decision import RouteReason
from netsim.lab import Lab, compare
from netsim.lab._netns import write_sysctls
from netsim.lab.process import run, tool
from netsim.views.sentences import outcome_text
from netsim.lab.tools import inject_frame
from test_lab import needs_lab
from netsim.lab.walks import arp_set, by_capture_point

pytestmark = [needs_lab]
KEY = "net.ipv4.conf.cni0.route_localnet"
DROP_TIMEOUT = 0.9      # a silent drop: less than TCP's first SYN retransmission (1 s)


def localnet_cluster() -> netsim.Cluster:
    c = netsim.reference_cluster(proxy_mode="nftables")
    c.add_pod("hostweb", "node1", listen=(("tcp", 80),),
              host_ports=[{"container_port": 80, "host_port": 8080, "protocol": "tcp"}])
    return c


@pytest.fixture(scope="module")
def lab():
    with Lab(localnet_cluster(), trace_rules=True) as lab:
        # node1 knows pod-a's MAC for good: the error leaves without an ARP request (one
        # "tell 127.0.0.1" would go unanswered, pod-a's arp_process finding a martian sender,
        # and its retries come a second apart, after the capture window)
        mac = lab.cluster.netns("pod-a").devices["eth0"].mac
        lab.cluster.netns("node1").neigh_add("10.244.0.2", "cni0", mac)
        run([tool("ip") or "ip", "-n", lab.netns("node1"), "neigh", "replace", "10.244.0.2", "lladdr", mac,
             "dev", "cni0", "nud", "permanent"])
        yield lab


def set_localnet(lab: Lab, value: int) -> None:
    lab.cluster.netns("node1").set_sysctl(KEY, value)
    write_sysctls(lab.netns("node1"), [(KEY, str(value))], RuntimeError)


def probe(cluster: netsim.Cluster) -> Ether:
    pod_a, cni0 = cluster.netns("pod-a").devices["eth0"], cluster.netns("node1").devices["cni0"]
    return (Ether(src=pod_a.mac, dst=cni0.mac) / IP(src="10.244.0.2", dst="127.0.0.1", id=4246)
            / UDP(sport=40000, dport=9) / Raw(b"REQ"))


def _ends(trace):
    return [(h.where, d.function, d.reason) for h in trace.hops for d in h.decisions if d.verdict.value == "drop"]


@pytest.mark.parametrize("value", [1, 0])
def test_a_datagram_to_127_0_0_1_from_a_pod_is_what_the_kernel_makes_of_it(lab, value):
    set_localnet(lab, value)
    packet = probe(lab.cluster)
    kernel = inject_frame(lab, "pod-a", "eth0", bytes(packet))
    model = lab.cluster.inject("pod-a", "eth0", packet, cold=True)
    k, m = by_capture_point(kernel.trace), by_capture_point(model)
    assert sorted(k) == sorted(m)
    for point in m:
        assert k[point] == m[point], point
    assert arp_set(kernel.trace) == arp_set(model)
    errors = [(h.where, h.ip.src, h.ip.dst) for h in model.hops
              if h.ip is not None and h.ip.proto == 1 and h.direction == "tx"]
    if value:
        assert errors[0] == ("node1/cni0", "127.0.0.1", "10.244.0.2")
        # pod-a has no route_localnet on its eth0: the error is a martian source there
        assert ("pod-a/eth0", "ip_route_input_slow", RouteReason.MARTIAN) in _ends(model)
    else:
        assert errors == []
        assert _ends(model) == [("node1/cni0", "ip_route_input_slow", RouteReason.MARTIAN_DESTINATION)]


# route_localnet 1 (connected) is tests/test_lab_portmap.py's node1-127.0.0.1 case, in iptables
# mode: here, in nftables mode, the kernel shows portmap's mark 0x2000 already leaving
# kube-proxy's filter-output chain where netsim shows 0x0 (hook order of iptables-nft's nat
# OUTPUT and kube-proxy's table: a gap of hostPorts in nftables mode, not of route_localnet)
@pytest.mark.parametrize("value, seen", [(0, "no answer reached the sender")])
def test_the_hostport_through_127_0_0_1_needs_route_localnet_on_cni0(lab, value, seen):
    set_localnet(lab, value)
    model = lab.cluster.send("node1", "127.0.0.1", proto="tcp", dport=8080)
    observed = lab.exchange("node1", "127.0.0.1", "tcp", 8080, timeout=3.0 if value else DROP_TIMEOUT)
    result = compare(model, observed, cluster=lab.cluster, title=f"node1 -> 127.0.0.1:8080, route_localnet {value}")
    # nothing reaches a device on either side; the model's outcome names the drop the kernel's
    # client cannot see (the SYN never left OUTPUT), so the outcomes agree up to that detail
    assert [d for d in result.differences if d.field != "outcome"] == [], "\n" + str(result)
    assert observed.outcome == seen and not observed.hops and not model.hops
    assert outcome_text(model.outcome).startswith(seen + "; dropped: after NAT, 127.0.0.1 -> 10.244.0.5: ")
