"""The stepper and the diagram draw any cluster the API builds, not only the reference one.

A grid of shapes: for each backend (vxlan, host-gw, udp), one node and three nodes without an
external host (the gateway then has no eth1), and six nodes with one. For each shape, traces of
several kinds (same node, across nodes, a ClusterIP service, node to pod, a pod's own loopback,
the gateway, and with an external host a NodePort and masquerade out). The checks are on what
a reader sees: every device the trace crosses is a box in the diagram model and in the SVG, no
two device boxes overlap and each sits inside its host, each hop highlights its own device, and
the stepper's HTML and widget name every hop's capture point.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from functools import lru_cache

import pytest

import netsim
from netsim.views import Stepper, diagram
from netsim.views.diagram import diagram_model, dom_ids
from netsim.views.stepper import decode_payload

BACKENDS = ("vxlan", "host-gw", "udp")
# One node and three nodes without an external host (the gateway then has no eth1), six with one.
SHAPES = [(b, n, ext) for b in BACKENDS for n, ext in ((1, False), (3, False), (6, True))]


def _shape_id(shape) -> str:
    backend, nodes, ext = shape
    return f"{backend}-{nodes}node{'s' if nodes > 1 else ''}-{'ext' if ext else 'noext'}"


@lru_cache(maxsize=None)
def build(backend: str, nodes: int, ext: bool):
    """Two pods on every node, a NodePort service on the first pod, an external host if asked."""
    cluster = netsim.Cluster(nodes=nodes, backend=backend)
    for i in range(1, nodes + 1):
        cluster.add_pod(f"p{i}a", node=f"node{i}")
        cluster.add_pod(f"p{i}b", node=f"node{i}", containers=("app", "sidecar"))
    cluster.add_service("web", port=80, target_port=8080, pods=["p1a"], node_port=30080)
    if ext:
        cluster.add_external("outside")
    return cluster


def traces(backend: str, nodes: int, ext: bool):
    """(kind, trace) for every kind of path the shape has."""
    c = build(backend, nodes, ext)
    last = f"node{nodes}"
    kinds = [
        ("same-node", c.send("p1a", "p1b", proto="tcp", dport=8080)),
        ("cross-node", c.send(f"p{nodes}a", "p1a", proto="udp", dport=9090)),
        ("service", c.send(f"p{nodes}b", "web", proto="tcp")),
        ("node-to-pod", c.send(last, "p1b", proto="tcp", dport=8080)),
        ("loopback", c.send("p1b/app", "p1b/sidecar", proto="tcp", dport=8080)),
        ("gateway", c.send(f"p{nodes}a", "gateway", proto="icmp")),
    ]
    if ext:
        kinds += [
            ("nodeport", c.send("outside", f"{c.nodes[last].ip}:30080", proto="tcp")),
            ("masquerade", c.send("p1a", "outside", proto="tcp", dport=8080)),
        ]
    return kinds


def _devices(model):
    return [e for e in model.elements if "/" in e.id]


def _overlap(a, b) -> bool:
    return abs(a.x - b.x) < (a.w + b.w) / 2 - 1e-9 and abs(a.y - b.y) < (a.h + b.h) / 2 - 1e-9


def _data(page: str) -> dict:
    return decode_payload(page)


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_diagram_draws_every_device_of_the_shape_once_inside_its_host(shape):
    backend, nodes, ext = shape
    cluster = build(*shape)
    model = diagram_model(cluster)
    devices = _devices(model)
    expected = {f"{ns_name}/{dev}" for ns_name, ns in cluster.network.namespaces.items() for dev in ns.devices}
    assert sorted(e.id for e in devices) == sorted(expected)
    hosts = {e.id: e for e in model.elements if "/" not in e.id}
    assert {f"node{i}" for i in range(1, nodes + 1)} <= set(hosts)
    assert ("outside" in hosts) is ext
    assert ("gateway/eth1" in {e.id for e in devices}) is ext
    for a, b in itertools.combinations(devices, 2):
        assert not _overlap(a, b), f"{a.id} and {b.id} overlap"
    for d in devices:
        h = hosts[d.parent]
        assert h.x - h.w / 2 <= d.x - d.w / 2 + 1e-9 and d.x + d.w / 2 <= h.x + h.w / 2 + 1e-9, d.id
        assert h.y - h.h / 2 <= d.y - d.h / 2 + 1e-9 and d.y + d.h / 2 <= h.y + h.h / 2 + 1e-9, d.id
    tunnel = {"vxlan": "flannel.1", "udp": "flannel0", "host-gw": None}[backend]
    for i in range(1, nodes + 1):
        names = {e.label for e in devices if e.parent == f"node{i}"}
        assert {"eth0", "cni0", "lo"} <= names
        assert (tunnel in names) if tunnel else not (names & {"flannel.1", "flannel0"})


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_stepper_and_diagram_render_every_kind_of_trace(shape):
    cluster = build(*shape)
    kinds = traces(*shape)
    for kind, trace in kinds:
        assert trace.hops, kind
        crossed = [h.where for h in trace.hops]

        # the diagram model: every crossed device is a box; each hop highlights its own device
        for hop in trace.hops:
            model = diagram_model(cluster, trace, hop.index)
            assert set(crossed) <= {e.id for e in model.elements}, kind
            assert model.current == hop.where and hop.where in model.highlighted
        assert list(model.path) == list(dict.fromkeys(h.where for h in trace.hops if h.role != "arp"))

        # the static face: one SVG box per crossed device, and every hop's capture point named in order
        st = Stepper(trace, cluster)
        page = st.to_html()
        uid = re.match(r'<div class="netsim-stepper" id="([^"]+)"', page).group(1)
        ids = dom_ids(diagram_model(cluster, trace), uid)
        for where in set(crossed):
            assert f'id="{ids[where]}"' in page, (kind, where)
        items = re.findall(r'<li data-i="(\d+)" class="r-[a-z]+(?: on)?" tabindex="0">(.*?)</li>', page)
        assert [int(i) for i, _ in items] == list(range(len(trace.hops)))
        for (_, text), hop in zip(items, trace.hops):
            assert html.unescape(text).split()[1] == hop.where
        data = _data(page)
        assert [h["w"] for h in data["hops"]] == crossed
        number = {k: int(v.rsplit("-e", 1)[1]) for k, v in ids.items()}
        for rec, hop in zip(data["hops"], trace.hops):
            assert number[hop.where] in rec["e"], (kind, hop.index)

    # the diagram on its own and the live face, for the longest trace of the shape
    kind, trace = max(kinds, key=lambda kt: len(kt[1].hops))
    index = len(trace.hops) // 2
    d = diagram(cluster, trace, index)
    svg, ids = d.svg(), dom_ids(d.model, d.prefix)
    for where in {h.where for h in trace.hops}:
        assert f'id="{ids[where]}"' in svg, (kind, where)
    assert f"#{ids[trace.hops[index].where]} path" in svg
    assert d.text().splitlines()[0] == f"current hop at {trace.hops[index].where}"
    picker = Stepper(trace, cluster).widget().children[1]
    assert [label.split()[1] for label, _ in picker.options] == [h.where for h in trace.hops]


def test_cross_node_traces_leave_through_each_backends_device():
    """The shapes differ where they should: the tunnel device (or none) each backend uses."""
    seen = {}
    for backend in BACKENDS:
        trace = dict(traces(backend, 6, False))["cross-node"]
        seen[backend] = {h.device for h in trace.hops} & {"flannel.1", "flannel0"}
        assert "node6/eth0" in [h.where for h in trace.hops]
        assert "node1/eth0" in [h.where for h in trace.hops]
    assert seen == {"vxlan": {"flannel.1"}, "udp": {"flannel0"}, "host-gw": set()}
