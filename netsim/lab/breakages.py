"""The troubleshooting chapter's broken clusters, each on the model and on the kernel.

Every case is a reference cluster with one fault (netsim.cluster.breakages), one exchange the
chapter sends, and how long the lab's client waits for an answer. `run_case(case)` builds the
broken cluster in a lab of its own, reads the kernel's drop and error counters
(netsim.lab.counters) before and after the exchange, and returns the frame-by-frame comparison
with the model's trace and the counters that differ from the model's (netsim.counters).

The model sends each packet once. So that the kernel does too, a TCP client gives up before
its first SYN retransmission (1 s, TCP_TIMEOUT_INIT), and the lab's namespaces retransmit no
SYN-ACK (net.ipv4.tcp_synack_retries 0): a SYN-ACK dropped on its way back would otherwise be
sent again a second later, while the counters are read. A ping waits at least a second (ping
-W); a neighbour that never answers takes three ARP probes a second apart (mcast_solicit 3,
retrans_time 1 s) before the kernel gives up, so that case waits 4 s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..cluster import Cluster, reference_cluster
from ..counters import counters
from ..trace import Trace
from . import counters as kernel_counters
from ._netns import write_sysctls
from .commands import LabError
from .process import run, tool
from .compare import Comparison, compare
from .kernel import Lab

TCP_WAIT = 0.9            # below the first SYN (and SYN-ACK) retransmission, 1 s


def _with(*faults: Callable[[Cluster], object]) -> Callable[[], Cluster]:
    def build() -> Cluster:
        cluster = reference_cluster()
        for fault in faults:
            fault(cluster)
        return cluster
    return build


def _pod_network_1500(c: Cluster) -> None:
    """The pod network at 1500 up to flannel.1 (a CNI configuration with its own MTU)."""
    c.set_mtu("pod-a", "eth0", 1500)
    c.set_mtu("node1", c.pods["pod-a"].host_veth, 1500)
    c.set_mtu("node1", "cni0", 1500)


def _underlay_1400(c: Cluster) -> None:
    """The nodes' network lowered to 1400 after flannel.1 was made at 1450."""
    for host, dev in (("node1", "eth0"), ("node2", "eth0"), ("underlay", "p-node1"), ("underlay", "p-node2")):
        c.set_mtu(host, dev, 1400)


def _no_endpoints(c: Cluster) -> None:
    c.add_service("api", port=80, target_port=8080, pods=[])


@dataclass(frozen=True)
class LabCase:
    """One cluster (or bare network, netsim.lab.chapters) and the exchange a chapter sends
    through it: `send(cluster)` is the chapter's call on the model, `Lab.exchange` the same
    exchange on the kernel."""

    key: str
    title: str
    build: Callable[[], Any]           # a Cluster, or a chapters.NetworkCluster
    src: str
    dst: str
    proto: str = "icmp"
    payload: int | bytes | None = None  # UDP payload: its size (zero bytes), or the bytes
    wait: float = 1.0                   # how long the lab's client waits for an answer
    dport: int | None = None

    def send(self, cluster: Any) -> Trace:
        """The model's exchange (what the chapter's cell sends)."""
        return cluster.send(self.src, self.dst, proto=self.proto, dport=self.dport,
                            payload=bytes(self.payload) if self.payload is not None else None)



CASES = (
    LabCase("fdb", "node1 has no FDB entry for node2's VTEP", _with(lambda c: c.break_fdb("node1", "node2")),
               "pod-a", "pod-c"),
    LabCase("fdb-back", "node2 has no FDB entry for node1's VTEP (the SYN-ACK dies)",
               _with(lambda c: c.break_fdb("node2", "node1")), "pod-a", "pod-c", "tcp", wait=TCP_WAIT),
    LabCase("neighbour", "node1 has no neighbour entry for node2's VTEP",
               _with(lambda c: c.break_neighbour("node1", "node2")), "pod-a", "pod-c", wait=4.0),
    LabCase("forwarding", "ip_forward off on node1", _with(lambda c: c.break_forwarding("node1")),
               "pod-a", "pod-c"),
    LabCase("forwarding-same-node", "ip_forward off on node1, a pod on the same node",
               _with(lambda c: c.break_forwarding("node1")), "pod-a", "pod-b"),
    LabCase("masquerade", "no MASQUERADE rule for pod traffic leaving node1",
               _with(lambda c: c.break_masquerade("node1")), "pod-a", "ext", "tcp", wait=TCP_WAIT),
    LabCase("route", "node1 has no route to node2's pods", _with(lambda c: c.break_route("node1", "node2")),
               "pod-a", "pod-c"),
    LabCase("route-tcp", "node1 has no route to node2's pods (TCP)",
               _with(lambda c: c.break_route("node1", "node2")), "pod-a", "pod-c", "tcp", wait=TCP_WAIT),
    LabCase("pod-mtu", "pod-a's eth0 at 1500 over a 1450 host veth",
               _with(lambda c: c.set_mtu("pod-a", "eth0", 1500)), "pod-a", "pod-c", "udp", payload=1460),
    LabCase("underlay-1400", "the underlay lowered to 1400 under flannel.1's 1450", _with(_underlay_1400),
               "pod-a", "pod-c", "udp", payload=1400),
    LabCase("backend-port", "node2's firewall drops UDP 8472",
               _with(lambda c: c.break_backend_port("node2")), "pod-a", "pod-c"),
    LabCase("public-ip", "node2's public-ip annotation names Vagrant's NAT address 10.0.2.15",
               _with(lambda c: c.break_public_ip("node2", "10.0.2.15")), "pod-a", "pod-c"),
    LabCase("no-endpoints", "a Service with no endpoints: kube-proxy's REJECT", _with(_no_endpoints),
               "pod-a", "api", "tcp", wait=TCP_WAIT),
    LabCase("pod-network-1500", "the pod network at 1500 over flannel.1's 1450: fragmentation needed",
               _with(_pod_network_1500), "pod-a", "pod-c", "udp", payload=1460),
)
BY_KEY = {case.key: case for case in CASES}


@dataclass
class CaseResult:
    case: LabCase
    comparison: Comparison
    counters: list[str] = field(default_factory=list)      # differences, model against kernel
    kernel_counters: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.comparison.ok and not self.counters


PORTS_WAIT = 5.0


def wait_for_bridge_ports(lab: Lab) -> None:
    """Until every bridge port of the lab forwards. A port starts forwarding when the bridge
    hears its carrier come up, and the kernel reports carrier changes from its linkwatch work,
    up to a second later (net/core/link_watch.c); a small lab can send its first frame sooner."""
    bridge = tool("bridge") or "bridge"
    hosts = [n for n, ns in lab.cluster.network.namespaces.items() if any(d.kind == "bridge" for d in ns.devices.values())]
    deadline = time.monotonic() + PORTS_WAIT
    for host in hosts:
        while True:
            ports = json.loads(run([bridge, "-n", lab.netns(host), "-j", "link", "show"]).stdout or "[]")
            if all(p.get("state") == "forwarding" for p in ports):
                break
            if time.monotonic() > deadline:
                raise LabError(f"{lab.netns(host)}: bridge ports not forwarding after {PORTS_WAIT} s: "
                               f"{[(p.get('ifname'), p.get('state')) for p in ports]}")
            time.sleep(0.02)


def run_case(case: LabCase, family: str = "troubleshooting") -> CaseResult:
    """The case's cluster in a lab of its own: the exchange compared frame by frame, and the
    drop and error counters the kernel moved compared with the model's."""
    t0 = time.perf_counter()
    cluster = case.build()
    with Lab(cluster, trace_rules=True) as lab:
        for host in cluster.network.namespaces:
            write_sysctls(lab.netns(host), [("net.ipv4.tcp_synack_retries", "0")], RuntimeError)
        wait_for_bridge_ports(lab)
        model = case.send(cluster)
        before = kernel_counters.snapshot(lab)
        observed = lab.exchange(case.src, case.dst, case.proto, case.dport,
                                payload=bytes(case.payload) if case.payload is not None else None, timeout=case.wait)
        moved = kernel_counters.moved(before, kernel_counters.snapshot(lab))
        result = compare(model, observed, cluster=cluster, title=f"{family} {case.key} ({case.proto})")
    return CaseResult(case, result, kernel_counters.compare_counters(counters(model), moved), moved,
                      time.perf_counter() - t0)
