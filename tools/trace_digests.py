"""Digests of what netsim produces for a fixed set of exchanges, to prove a refactoring changed nothing.

For every case (the six scenarios and the extras under each backend and protocol, the
troubleshooting breakages, MTU cases, other cluster shapes) it records per hop the capture
point, direction, role, packet id, verdict and a digest of the bytes on the wire, and per
trace the outcome and a digest of every decision sentence (as netsim.views.sentences writes them). State views (`ip route`, `ip neigh`,
`bridge fdb`, `iptables-save`, `conntrack -L`) after the exchange are digested too.

    python tools/trace_digests.py            # print the digests as JSON
    python tools/trace_digests.py --write    # store them in tests/data/trace_digests.json

tests/test_trace_digests.py recomputes them and compares with the stored file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

import netsim
from netsim import scenarios
from netsim.views.sentences import outcome_text, sentence

STORE = Path(__file__).resolve().parent.parent / "tests" / "data" / "trace_digests.json"
VIEWS = ("ip route", "ip neigh", "bridge fdb", "iptables-save", "conntrack -L")


def _sha(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def _broken(fn: Callable[[netsim.Cluster], None], backend: str = "vxlan") -> netsim.Cluster:
    cluster = netsim.reference_cluster(backend)
    fn(cluster)
    return cluster


def _small_underlay(c: netsim.Cluster) -> None:
    for host, dev in (("node1", "eth0"), ("node2", "eth0"), ("underlay", "p-node1"), ("underlay", "p-node2")):
        c.set_mtu(host, dev, 1400)


def cases() -> Iterator[tuple[str, Callable[[], tuple[netsim.Cluster, netsim.Trace]]]]:
    """(name, run) for every case; run returns the cluster and the trace."""
    for backend in ("vxlan", "host-gw", "udp"):
        for proto in ("tcp", "udp", "icmp"):
            for number, fn in scenarios.SIX.items():
                def run(fn=fn, backend=backend, proto=proto):
                    c = netsim.reference_cluster(backend)
                    return c, fn(backend=backend, proto=proto, cluster=c)
                yield f"s{number}/{backend}/{proto}", run
            for name, fn in scenarios.EXTRAS.items():
                def run(fn=fn, backend=backend, proto=proto):
                    c = netsim.reference_cluster(backend)
                    return c, fn(backend=backend, proto=proto, cluster=c)
                yield f"{name}/{backend}/{proto}", run
        for dst in ("pod-c", "ext", "web", "pod-b"):
            def run(dst=dst, backend=backend):
                c = netsim.reference_cluster(backend)
                return c, c.send("pod-a", dst, proto="tcp", dport=8080 if dst != "web" else None,
                                 payload=b"GET / HTTP/1.1\r\n\r\n")
            yield f"tcp-data/pod-a-{dst}/{backend}", run
        def run_np(backend=backend):
            c = netsim.reference_cluster(backend)
            return c, c.send("ext", f"{c.nodes['node1'].ip}:30080", proto="tcp", payload=b"hello")
        yield f"tcp-data/nodeport/{backend}", run_np
        def run_warm(backend=backend):
            c = netsim.reference_cluster(backend)
            c.send("pod-a", "pod-c", proto="icmp")
            return c, c.send("pod-a", "pod-c", proto="icmp", cold=False)
        yield f"warm/{backend}", run_warm

    breakages: dict[str, Callable[[netsim.Cluster], None]] = {
        "fdb": lambda c: c.break_fdb("node1", "node2"),
        "neighbour": lambda c: c.break_neighbour("node1", "node2"),
        "forwarding": lambda c: c.break_forwarding("node1"),
        "masquerade": lambda c: c.break_masquerade("node1"),
        "route": lambda c: c.break_route("node1", "node2"),
        "pod-mtu": lambda c: c.set_mtu("pod-a", "eth0", 1500),
        "small-underlay": _small_underlay,
    }
    for bname, breaker in breakages.items():
        for dst, proto, payload in (("pod-c", "tcp", None), ("pod-c", "udp", b"x" * 1460), ("pod-b", "icmp", None),
                                    ("ext", "tcp", None), ("pod-c", "udp", bytes(1400))):
            def run(breaker=breaker, dst=dst, proto=proto, payload=payload):
                c = _broken(breaker)
                kwargs = {"dport": 8080} if proto != "icmp" else {}
                return c, c.send("pod-a", dst, proto=proto, payload=payload, **kwargs)
            yield f"broken-{bname}/{dst}/{proto}/{len(payload or b'')}", run

    shapes = {
        "3-nodes": dict(nodes=3),
        "cidr-26": dict(nodes=3, pod_cidr="10.50.0.0/16", subnet_len=26),
        "jumbo": dict(nodes=2, underlay_mtu=9000),
        "host-gw-4": dict(nodes=4, backend="host-gw"),
        "udp-3": dict(nodes=3, backend="udp"),
    }
    for sname, kwargs in shapes.items():
        def run(kwargs=kwargs):
            c = netsim.Cluster(**kwargs)
            last = f"node{len(c.nodes)}"
            c.add_pod("p1", node="node1")
            c.add_pod("p2", node=last)
            c.add_pod("p3", node="node1")
            c.add_external("ext")
            c.add_service("svc", port=80, target_port=8080, pods=["p2", "p3"], node_port=30090)
            t1 = c.send("p1", "p2", proto="tcp", dport=8080)
            t2 = c.send("p1", "svc", proto="tcp")
            t3 = c.send("ext", f"{c.nodes['node1'].ip}:30090", proto="udp")
            t4 = c.send("p1", "ext", proto="icmp")
            t5 = c.send("p1", "p2", proto="udp", dport=9, payload=bytes(3000))
            hops = t1.hops + t2.hops + t3.hops + t4.hops + t5.hops
            outcome = " | ".join(outcome_text(t.outcome) for t in (t1, t2, t3, t4, t5))
            return c, netsim.Trace(hops, "shape", outcome)
        yield f"shape/{sname}", run

    def run_lazy():
        c = netsim.Cluster(nodes=40, backend="vxlan")
        c.add_pod("p1", node="node1")
        c.add_pod("p2", node="node33")
        return c, c.send("p1", "p2", proto="tcp", dport=8080)
    yield "lazy/40", run_lazy


def digest(cluster: netsim.Cluster, trace: netsim.Trace) -> dict:
    hops = [
        [h.index, h.where, h.direction, h.role, h.packet_id, h.verdict, h.device_kind, _sha(h.data)]
        for h in trace.hops
    ]
    decisions = _sha("\n".join(f"{h.index}: " + " | ".join(sentence(d) for d in h.decisions) for h in trace.hops))
    views = {}
    for host in sorted(set(cluster.nodes) | {"underlay"}):
        if host == "underlay":
            continue
        views[host] = _sha("\n".join(cluster.show(host, v) for v in VIEWS))
    return {"hops": _sha(json.dumps(hops)), "n": len(hops), "outcome": outcome_text(trace.outcome),
            "decisions": decisions, "views": _sha(json.dumps(views, sort_keys=True)),
            "path": [f"{h[1]} {h[2]} {h[3]} {h[5]}".rstrip() for h in hops]}


def compute() -> dict:
    return {name: digest(*run()) for name, run in cases()}


def main(argv: list[str]) -> int:
    result = compute()
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if "--write" in argv:
        STORE.parent.mkdir(parents=True, exist_ok=True)
        STORE.write_text(text)
        print(f"wrote {len(result)} cases to {STORE}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
