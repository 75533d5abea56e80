"""The cluster drawn as boxes: hosts, pods inside their node, devices, the underlay, the outside.

The layout is fixed (computed from the cluster's structure, never a random force layout), so
the same cluster gives the same picture every run. `diagram_model` returns the data behind
the picture (elements with positions, the networkx graph of cables and bridge ports, the
trace's path, what the current hop highlights), so tests check what is highlighted without
looking at pixels. `render_svg` draws it with matplotlib into a deterministic SVG whose
elements carry DOM ids, so the stepper can highlight them from CSS or JavaScript.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import networkx as nx

from ..trace import Hop, Trace
from .headers import previous_hop

NODE_H = (1.5, 7.3)         # y range of a node box
POD_W, POD_H = 2.0, 1.75
DEV_W, DEV_H = 1.0, 0.36
GAP = 0.3


@dataclass(frozen=True)
class Element:
    """A box in the picture: a host (`kind` node/pod/gateway/external/underlay) or a device."""

    id: str                  # `node1` for a host, `node1/eth0` for a device
    kind: str
    label: str
    detail: str
    x: float                 # centre
    y: float
    w: float
    h: float
    parent: str | None = None


@dataclass(frozen=True)
class Segment:
    """A move of one packet from the device of hop `frm` to the device of hop `to`."""

    frm: int
    to: int
    a: str
    b: str
    role: str


@dataclass(frozen=True)
class DiagramModel:
    elements: tuple[Element, ...]
    graph: nx.Graph                       # devices, with cables, veth pairs and bridge ports
    segments: tuple[Segment, ...] = ()    # one per hop that moved to another device
    path: tuple[str, ...] = ()            # devices the request and reply crossed, in order
    current: str | None = None            # the current hop's device
    highlighted: frozenset[str] = frozenset()   # current device, its host, the segment into it

    def element(self, ident: str) -> Element:
        return next(e for e in self.elements if e.id == ident)

    @property
    def width(self) -> float:
        return max(e.x + e.w / 2 for e in self.elements) + 0.1

    @property
    def height(self) -> float:
        return max(e.y + e.h / 2 for e in self.elements) + 0.1


def _addr(dev) -> str:
    return ", ".join(str(a) for a in dev.addresses if not str(a).startswith("127."))


class _Layout:
    def __init__(self, cluster):
        self.cluster = cluster
        self.elements: list[Element] = []
        self.graph = nx.Graph()

    def host(self, name: str, kind: str, label: str, x0: float, y0: float, w: float, h: float,
             parent: str | None = None) -> None:
        self.elements.append(Element(name, kind, label, "", x0 + w / 2, y0 + h / 2, w, h, parent))

    def device(self, ns: str, dev: str, x: float, y: float, w: float = DEV_W) -> None:
        d = self.cluster.network.namespaces[ns].devices[dev]
        ident = f"{ns}/{dev}"
        self.elements.append(Element(ident, d.kind, dev, _addr(d), x, y, w, DEV_H, ns))
        self.graph.add_node(ident, pos=(x, y), kind=d.kind)

    def placed(self, ns: str) -> set[str]:
        return {e.id.split("/", 1)[1] for e in self.elements if e.parent == ns and "/" in e.id}

    def rest(self, ns: str, x: float, y: float) -> None:
        """Devices no rule placed (extra ones), in a row."""
        for dev in self.cluster.network.namespaces[ns].devices:
            if dev not in self.placed(ns):
                self.device(ns, dev, x, y)
                x += DEV_W + 0.1


def _build(cluster) -> _Layout:
    if getattr(cluster, "lazy", False):
        cluster.materialize_all()       # a lazily built cluster holds only what traces reached
    lay = _Layout(cluster)
    namespaces = cluster.network.namespaces
    x = 0.0
    node_eth: dict[str, float] = {}
    for node in cluster.nodes.values():
        pods = node.pods
        w = max(3.0, (POD_W + 0.2) * len(pods) + 0.4)
        lay.host(node.name, "node", f"{node.name}  {node.ip}", x, NODE_H[0], w, NODE_H[1] - NODE_H[0])
        for i, pod_name in enumerate(pods):
            pod = cluster.pods[pod_name]
            px = x + 0.3 + i * (POD_W + 0.2)
            lay.host(pod_name, "pod", f"{pod_name}  {pod.ip}", px, 5.05, POD_W, POD_H, node.name)
            lay.device(pod_name, "lo", px + 0.25 + 0.35, 6.05, 0.7)
            lay.device(pod_name, "eth0", px + POD_W / 2, 5.35)
            lay.rest(pod_name, px + 1.2, 6.05)
            lay.device(node.name, pod.host_veth, px + POD_W / 2, 4.45, 1.3)
        devs = namespaces[node.name].devices
        cni_w = w - 0.6
        if "cni0" in devs:
            lay.device(node.name, "cni0", x + 0.3 + cni_w / 2, 3.6, cni_w)
        for dev in devs:
            if devs[dev].kind in ("vxlan", "tun"):
                lay.device(node.name, dev, x + w - 0.9, 2.75)
        lay.device(node.name, "eth0", x + w / 2, 1.95, 1.3)
        lay.device(node.name, "lo", x + 0.55, 2.75, 0.7)
        node_eth[node.name] = x + w / 2
        lay.rest(node.name, x + 1.0, 2.75)
        x += w + GAP
    # the right-hand column: gateway below, external hosts above
    col = 2.4
    if "gateway" in namespaces:
        lay.host("gateway", "gateway", "gateway  (router, no NAT)", x, 1.5, col, 1.9)
        lay.device("gateway", "eth0", x + col / 2, 1.95, 1.3)
        if "eth1" in namespaces["gateway"].devices:    # the outside port, made by add_external
            lay.device("gateway", "eth1", x + col / 2, 2.9, 1.3)
        lay.device("gateway", "lo", x + 0.45, 2.45, 0.6)
        lay.rest("gateway", x + 1.2, 2.45)
        node_eth["gateway"] = x + col / 2
    y = 4.6
    for ext in cluster.externals.values():
        lay.host(ext.name, "external", f"{ext.name}  {ext.ip}", x, y, col, 1.6)
        lay.device(ext.name, "eth0", x + col / 2, y + 0.4)
        lay.device(ext.name, "lo", x + 0.45, y + 1.0, 0.6)
        lay.rest(ext.name, x + 1.2, y + 1.0)
        y += 1.9
    total = x + col
    # the underlay switch along the bottom, one port under each host's eth0
    if "underlay" in namespaces:
        lay.host("underlay", "underlay", "underlay (switch sw0)", 0.0, 0.0, total, 1.2)
        lay.device("underlay", "sw0", total / 2, 0.3, total - 0.4)
        for dev in namespaces["underlay"].devices:
            host = dev[2:] if dev.startswith("p-") else None
            host = "gateway" if host == "gw" else host
            if host in node_eth:
                lay.device("underlay", dev, node_eth[host], 0.85)
        lay.device("underlay", "lo", total - 0.35, 0.85, 0.5)
        lay.rest("underlay", total - 1.4, 0.85)
    for ns_name in namespaces:      # hosts the rules above do not know, stacked on the right
        if ns_name not in {e.id for e in lay.elements}:
            lay.host(ns_name, "host", ns_name, total + GAP, 1.5, col, 1.2)
            lay.rest(ns_name, total + GAP + 0.6, 2.0)
    _wire(lay)
    return lay


def _wire(lay: _Layout) -> None:
    """Edges: veth pairs and cables (`cable`), bridge ports (`port`), VXLAN's lower device."""
    for ns_name, ns in lay.cluster.network.namespaces.items():
        for dev in ns.devices.values():
            me = f"{ns_name}/{dev.name}"
            if me not in lay.graph:
                continue
            peer = getattr(dev, "peer", None)
            if peer is not None and peer.netns is not None:
                other = f"{peer.netns.name}/{peer.name}"
                if other in lay.graph:
                    lay.graph.add_edge(me, other, kind="cable")
            if dev.master is not None:
                lay.graph.add_edge(me, f"{ns_name}/{dev.master.name}", kind="port")
            if dev.kind in ("vxlan", "tun") and f"{ns_name}/eth0" in lay.graph:
                lay.graph.add_edge(me, f"{ns_name}/eth0", kind="lower")


def _segments(trace: Trace) -> tuple[Segment, ...]:
    out = []
    for hop in trace.hops:
        prev = previous_hop(trace, hop.index)
        if prev is not None and prev.where != hop.where:
            out.append(Segment(prev.index, hop.index, prev.where, hop.where, hop.role))
    return tuple(out)


def diagram_model(cluster, trace: Trace | None = None, hop_index: int | None = None) -> DiagramModel:
    """Elements, graph and (given a trace and a hop) the path and the highlighted elements."""
    lay = _build(cluster)
    if trace is None:
        return DiagramModel(tuple(lay.elements), lay.graph)
    segments = _segments(trace)
    path: list[str] = []
    for hop in trace.hops:
        if hop.role != "arp" and hop.where not in path:
            path.append(hop.where)
    current, highlighted = None, frozenset()
    if hop_index is not None:
        hop = trace.hops[hop_index]
        current = hop.where
        into = [f"seg:{s.frm}->{s.to}" for s in segments if s.to == hop_index]
        highlighted = frozenset([current, hop.netns, *into])
    return DiagramModel(tuple(lay.elements), lay.graph, segments, tuple(path), current, highlighted)


# ------------------------------------------------------------------------------- drawing
COLOURS = {
    "node": ("#eef3fb", "#5b7db1"), "pod": ("#fdf6e3", "#b58900"), "gateway": ("#eef7ee", "#4f8a4f"),
    "external": ("#f6eef7", "#8a4f8a"), "underlay": ("#f2f2f2", "#777777"), "host": ("#f2f2f2", "#777777"),
    "veth": ("#ffffff", "#555555"), "nic": ("#ffffff", "#222222"), "bridge": ("#e3ecf7", "#3b5f99"),
    "vxlan": ("#fde8e4", "#b0412e"), "tun": ("#fde8e4", "#b0412e"), "loopback": ("#f7f7f7", "#999999"),
}


HIGHLIGHT = "stroke:#e65100 !important;stroke-width:2.5 !important;stroke-opacity:1 !important;fill-opacity:1 !important"


def dom_ids(model: DiagramModel, prefix: str) -> dict[str, str]:
    """Element id (and `seg:a->b`) -> DOM id, numbered in drawing order."""
    ids = [e.id for e in model.elements] + [f"seg:{s.frm}->{s.to}" for s in model.segments]
    return {ident: f"{prefix}-e{i}" for i, ident in enumerate(ids)}


def render_svg(model: DiagramModel, prefix: str = "netsim", width_in: float = 7.0) -> str:
    """The picture as an SVG string, byte-identical between runs (fixed hashsalt, no date)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ids = dom_ids(model, prefix)
    scale = width_in / model.width
    with matplotlib.rc_context({"svg.hashsalt": "netsim", "svg.fonttype": "none", "font.size": 7,
                                "font.family": "DejaVu Sans"}):
        fig = Figure(figsize=(width_in, model.height * scale))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, model.width)
        ax.set_ylim(0, model.height)
        ax.set_axis_off()
        for a, b, data in sorted(model.graph.edges(data=True)):
            (x1, y1), (x2, y2) = model.graph.nodes[a]["pos"], model.graph.nodes[b]["pos"]
            style = {"cable": "-", "port": "-", "lower": ":"}[data["kind"]]
            ax.plot([x1, x2], [y1, y2], style, color="#9aa5b1", lw=1.2, zorder=1)
        for e in model.elements:
            fill, edge = COLOURS.get(e.kind, ("#ffffff", "#555555"))
            is_host = "/" not in e.id
            box = FancyBboxPatch((e.x - e.w / 2, e.y - e.h / 2), e.w, e.h,
                                 boxstyle="round,pad=0,rounding_size=0.08", fc=fill, ec=edge,
                                 lw=1.0 if is_host else 0.9, zorder=0 if e.kind in ("node", "underlay") else 2)
            box.set_gid(ids[e.id])
            ax.add_artist(box)
            if is_host:
                ax.text(e.x - e.w / 2 + 0.1, e.y + e.h / 2 - 0.17, e.label, ha="left", va="center",
                        fontsize=7.5, fontweight="bold", color=edge, zorder=3)
            else:
                ax.text(e.x, e.y + (0.06 if e.detail else 0), e.label, ha="center", va="center",
                        fontsize=7.5, zorder=3)
                if e.detail:
                    ax.text(e.x, e.y - 0.12, e.detail, ha="center", va="center", fontsize=5.5, color="#555555",
                            zorder=3)
        for s in model.segments:
            a, b = model.element(s.a), model.element(s.b)
            colour = "#1f77b4" if s.role == "request" else ("#2ca02c" if s.role == "reply" else "#888888")
            # requests run slightly left of the line between two devices, replies slightly right
            dx, dy = b.x - a.x, b.y - a.y
            norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
            off = {"request": 0.06, "reply": -0.06}.get(s.role, 0.0)
            ox, oy = -dy / norm * off, dx / norm * off
            arrow = FancyArrowPatch((a.x + ox, a.y + oy), (b.x + ox, b.y + oy), arrowstyle="-|>", mutation_scale=8, lw=1.4,
                                    color=colour, shrinkA=4, shrinkB=4, zorder=4,
                                    alpha=0.55 if s.role in ("request", "reply") else 0.0)
            arrow.set_gid(ids[f"seg:{s.frm}->{s.to}"])
            ax.add_artist(arrow)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]                      # drop the XML prologue and doctype
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"\n\s*", "\n", svg)
    return svg


@dataclass(frozen=True)
class Diagram:
    """A notebook-displayable diagram (`image/svg+xml`, with a text fallback)."""

    model: DiagramModel
    prefix: str = "netsim-diagram"

    def svg(self) -> str:
        svg = render_svg(self.model, self.prefix)
        if self.model.highlighted:
            ids = dom_ids(self.model, self.prefix)
            css = ",".join(f"#{ids[h]} path" for h in sorted(self.model.highlighted) if h in ids)
            style = f"<style>{css}{{{HIGHLIGHT}}}</style>"
            svg = svg.replace("</svg>", style + "</svg>", 1)
        return svg

    def text(self) -> str:
        lines = [f"{e.id:<24} {e.kind:<9} {e.detail}" for e in self.model.elements if "/" in e.id]
        if self.model.current:
            lines.insert(0, f"current hop at {self.model.current}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "image/svg+xml": self.svg()}


def diagram(cluster, trace: Trace | None = None, hop: int | Hop | None = None) -> Diagram:
    """The topology picture, with a trace's path and one hop highlighted if given."""
    index = hop.index if isinstance(hop, Hop) else hop
    return Diagram(diagram_model(cluster, trace, index))
