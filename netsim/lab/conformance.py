"""Every scenario, on the model and on the kernel, compared; and the report for the book.

`run_scenario(lab, 4, "tcp")` runs netsim's scenario function on the lab's cluster (the
model trace) and the same exchange in the lab (the kernel's), and compares them.
`conformance()` does that for every scenario, protocol, backend and cluster shape, and
`report()` turns the result into the Markdown appendix (tools/conformance_report.py).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import scenarios
from ..cluster import Cluster, reference_cluster
from .compare import IGNORED_ROLES, KNOWN_DEVIATIONS, RULES, Comparison, compare
from .kernel import Lab

SCENARIOS: dict[object, tuple[str, Callable]] = {
    1: ("container to container (loopback)", scenarios.container_to_container),
    2: ("pod to pod, same node", scenarios.pod_to_pod_same_node),
    3: ("host to pod", scenarios.host_to_pod),
    4: ("pod to pod, across nodes", scenarios.pod_to_pod_cross_node),
    5: ("external client to NodePort", scenarios.external_to_nodeport),
    6: ("pod to external host", scenarios.pod_to_external),
    "host-to-remote-pod": ("host to remote pod", scenarios.host_to_remote_pod),
    "pod-to-cluster-ip": ("pod to ClusterIP", scenarios.pod_to_cluster_ip),
}
PROTOS = ("tcp", "udp", "icmp")
BACKENDS = ("vxlan", "host-gw")


def _populate(cluster: Cluster, remote: str = "node2") -> Cluster:
    """The reference cluster's workload on any shape: pods a and b on node1, pod c on `remote`,
    the external host, and service web in front of pod-c."""
    cluster.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
    cluster.add_pod("pod-b", node="node1")
    cluster.add_pod("pod-c", node=remote)
    cluster.add_external("ext", ip="203.0.113.10")
    cluster.add_service("web", port=80, target_port=8080, pods=["pod-c"], node_port=30080)
    return cluster


def _three_nodes(backend: str) -> Cluster:
    cluster = Cluster(nodes=3, backend=backend)
    cluster.add_pod("pod-x", node="node2")           # a bystander on the node in between
    _populate(cluster, remote="node3")
    return cluster


SHAPES: dict[str, tuple[str, Callable[[str], Cluster]]] = {
    "reference": ("two nodes, 10.244.0.0/16 in /24s, MTU 1500 (reference_cluster)", reference_cluster),
    "three-nodes": ("three nodes; pod-c on node3, a bystander pod on node2", _three_nodes),
    "small-subnets": ("pod_cidr 10.50.0.0/16 with subnet_len 26",
                      lambda b: _populate(Cluster(nodes=2, backend=b, pod_cidr="10.50.0.0/16", subnet_len=26))),
    "jumbo": ("underlay_mtu 9000", lambda b: _populate(Cluster(nodes=2, backend=b, underlay_mtu=9000))),
    "nftables": ("the reference cluster with kube-proxy in nftables mode and flannel's EnableNFTables "
                 "(table ip kube-proxy, table ip flannel-ipv4; no iptables rule on the nodes)",
                 lambda b: _populate(Cluster(nodes=2, backend=b, proxy_mode="nftables", flannel_nftables=True))),
}


class _Recorder:
    """The cluster as a scenario function sees it, noting what it sends."""

    def __init__(self, cluster: Cluster):
        self._cluster = cluster
        self.calls: list[tuple[tuple, dict]] = []

    def __getattr__(self, name):
        return getattr(self._cluster, name)

    def send(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self._cluster.send(*args, **kwargs)


def run_scenario(lab: Lab, scenario, proto: str = "tcp", known: dict | None = None) -> Comparison:
    """Scenario `scenario` (1-6 or an extra's name) on the model and in the lab, compared."""
    name, fn = SCENARIOS[scenario]
    t0 = time.perf_counter()
    recorder = _Recorder(lab.cluster)
    model = fn(cluster=recorder, proto=proto)
    (src, dst, *rest), kwargs = recorder.calls[-1]
    observed = lab.exchange(src, dst, kwargs.get("proto", proto), kwargs.get("dport"))
    label = f"s{scenario}" if isinstance(scenario, int) else "extra:"
    result = compare(model, observed, cluster=lab.cluster, known=known,
                     title=f"{lab.cluster.backend} {label} {name} ({proto})")
    result.seconds = time.perf_counter() - t0
    return result


@dataclass
class Run:
    """One cluster shape and backend: its lab's timings and every comparison made in it."""

    shape: str
    backend: str
    comparisons: list[Comparison] = field(default_factory=list)
    build: float = 0.0
    teardown: float = 0.0
    kernel: str = field(default_factory=platform.release)

    @property
    def seconds(self) -> float:
        return self.build + self.teardown + sum(c.seconds for c in self.comparisons)


def conformance(shapes=tuple(SHAPES), backends=BACKENDS, protos=PROTOS, scenario_keys=tuple(SCENARIOS),
                progress: Callable[[str], None] | None = None) -> list[Run]:
    """Run every scenario x protocol, for each backend and cluster shape, in a fresh lab each."""
    runs = []
    for shape in shapes:
        for backend in backends:
            cluster = SHAPES[shape][1](backend)
            run = Run(shape, backend)
            with Lab(cluster, trace_rules=True) as lab:
                run.build = lab.timings["build"]
                for key in scenario_keys:
                    for proto in protos:
                        result = run_scenario(lab, key, proto)
                        run.comparisons.append(result)
                        if progress:
                            progress(f"{shape}: {result.summary()}")
            run.teardown = lab.timings.get("teardown", 0.0)
            runs.append(run)
    return runs


def capture_points(comparisons: list[Comparison]) -> str:
    """One line: how many of the model's hops had the kernel's frame at the same device and
    direction compared with them (Comparison.pairs), on how many devices of which kinds."""
    def point(h) -> tuple[str, str, str]:
        return (h.netns, h.device, h.direction)
    hops = sum(1 for c in comparisons for h in c.model.hops if h.role not in IGNORED_ROLES)
    lined = [m for c in comparisons for m, k in c.pairs if point(m) == point(k)]
    kinds = {(m.netns, m.device): m.device_kind for m in lined}
    count = {kind: sum(1 for k in kinds.values() if k == kind) for kind in ("bridge", "vxlan")}
    return (f"- Capture points: {len(lined)} of the model's {hops} hops compared with the kernel's frame on the same "
            f"device in the same direction, on {len(kinds)} devices ({count['bridge']} of them bridge devices such as "
            f"cni0, {count['vxlan']} VXLAN devices); ARP frames as a set per device and direction.")


def report(runs: list[Run], generated: str = "", cni: str = "") -> str:
    """The conformance appendix, in Markdown. `cni`: a line on the real CNI plugins' pods."""
    kernels = sorted({r.kernel for r in runs})
    total = sum(r.seconds for r in runs)
    comparisons = [c for r in runs for c in r.comparisons]
    failed = [c for c in comparisons if not c.ok]
    out = [
        "# Conformance with the Linux kernel",
        "",
        "Every trace in this book comes from netsim, a model. To check it, the lab (`netsim.lab`) builds the same "
        "cluster for real on a Linux kernel, with one network namespace per node, pod, gateway, external host and "
        "the underlay switch, and generates every device, address, route, neighbour and FDB entry, sysctl and "
        "iptables rule from netsim's own state. It then sends the same packets with real sockets (a TCP connect, "
        "one UDP datagram and its answer, `ping -c1`), captures every frame on every device in both directions, "
        "and compares the kernel's frames with the model's, hop by hop and field by field.",
        "",
        f"- Kernel: {', '.join(f'Linux {k}' for k in kernels)}" + (f"; generated {generated}" if generated else ""),
        f"- {len(comparisons)} exchanges in {len(runs)} labs, {sum(c.hops_compared for c in comparisons)} hops, "
        f"{sum(sum(c.compared.values()) for c in comparisons)} values compared; "
        f"{len(comparisons) - len(failed)} match, {len(failed)} differ.",
        f"- {sum(c.compared['rule evaluations'] for c in comparisons)} netfilter rule evaluations checked against "
        f"the kernel's own trace (`xtables-monitor --trace`, `nft monitor trace` for nftables rulesets; "
        f"{sum(c.compared['netfilter mark'] for c in comparisons)} "
        f"marks, {sum(c.compared['netfilter nat'] for c in comparisons)} NAT results); "
        f"{sum(1 for c in comparisons for d in c.differences if d.field.startswith('netfilter'))} differ.",
        capture_points(comparisons),
        *([f"- {cni}"] if cni else []),
        f"- Time: {total:.1f} s in all (lab builds {sum(r.build for r in runs):.2f} s, "
        f"teardowns {sum(r.teardown for r in runs):.2f} s).",
        "- Regenerate with `python tools/conformance_report.py` (root, Linux); `tests/test_lab.py` runs the same "
        "comparison in `make test`.",
        "",
        "## What is compared, and how",
        "",
        "| Field | Rule |",
        "|---|---|",
        *(f"| {name} | {rule} |" for name, rule in RULES.items()),
        "",
        "Lab conditions: IPv6 off in every namespace, rp_filter 0, non-promiscuous capture sockets, transmit "
        "checksum offload off on every device (what `ethtool -K IF tx off` does), and a cold start before each "
        "exchange (dynamic neighbours, learned bridge FDB entries and conntrack flushed), as netsim's `send()` "
        "does. The udp backend is not in the lab: its `flannel0` is a TUN device served by flanneld's userspace "
        "proxy, which has no kernel counterpart without flanneld.",
        "",
    ]
    if KNOWN_DEVIATIONS:
        out += ["## Known deviations of the model", ""]
        for name, why in KNOWN_DEVIATIONS.items():
            seen = sorted({f"model {d.model}, kernel {d.kernel}" for c in comparisons for d in c.known
                           if d.field.endswith(name)})
            out.append(f"- **{name}**: {why}." + (f" Seen in this run: {'; '.join(seen)}." if seen else ""))
        out.append("")
    out += ["## Results", ""]
    for run in runs:
        out += [f"### {run.shape}, {run.backend}", "", f"{SHAPES[run.shape][0]}. Lab build {run.build:.2f} s, "
                f"teardown {run.teardown:.2f} s.", "",
                "| Scenario | Protocol | Hops | Values | Result | Time |", "|---|---|---:|---:|---|---:|"]
        for c in run.comparisons:
            title = c.title.split(" ", 1)[1].rsplit(" (", 1)[0]
            proto = c.title.rsplit("(", 1)[1].rstrip(")")
            verdict = "match" if c.ok else f"**{len(c.differences)} differences**"
            if c.known:
                verdict += f" (known: {', '.join(sorted({d.field.replace('inner ', '') for d in c.known}))})"
            out.append(f"| {title} | {proto} | {c.hops_compared} | {sum(c.compared.values())} | {verdict} | "
                       f"{c.seconds:.2f} s |")
        out.append("")
    if failed:
        out += ["## Differences", ""]
        for c in failed:
            out += [f"**{c.title}**", "", "```", *(str(d) for d in c.differences[:20]), "```", ""]
    return "\n".join(out).rstrip() + "\n"
