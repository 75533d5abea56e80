"""The cluster drawn as boxes: hosts, pods inside their node, devices, the underlay, the outside.

The layout is fixed (computed from the cluster's structure, never a random force layout), so
the same cluster gives the same picture every run. `diagram_model` returns the data behind
the picture (elements with positions, the graph of cables and bridge ports (`graph.Graph`), the
trace's path, what the current hop highlights), so tests check what is highlighted without
looking at pixels. `render_svg` writes it as SVG directly, byte for byte the same in CPython
and in the browser's Pyodide: boxes are paths inside groups whose DOM ids the stepper
highlights from CSS or JavaScript, labels are SVG text whose widths come from a table of
DejaVu Sans advance widths (`dejavu_sans.json`, written by tools/font_metrics.py), the trace's
arrows and the packet marker sit on top, and arrows of hops not yet reached are hidden
(`walked_css`). Every colour is a CSS variable with a light fallback, so a dark page
(`dark_css`) recolours it, and labels are sized so that at the stepper's minimum width
(`min_width_px`) they are 11 px.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from html import escape

from ..errors import UsageError
from ..trace import Hop, Trace
from .args import check_cluster, check_hop
from .graph import Graph
from .headers import previous_hop

NODE_H = (1.5, 7.3)         # y range of a node box
POD_W, POD_H = 2.3, 1.75
DEV_W, DEV_H = 1.85, 0.5    # wide enough for "192.168.50.11/24" at FONT
GAP = 0.3
# Text: every label is FONT points in a picture PT_PER_UNIT points per layout unit; the stepper
# never draws the SVG narrower than min_width_px(), where FONT points are MIN_LABEL_PX pixels.
FONT = 9.5
PT_PER_UNIT = 45.0
MIN_LABEL_PX = 11.0
LEGEND_H = 0.6


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
    graph: Graph                          # devices, with cables, veth pairs and bridge ports
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
    texts = (str(a) for a in dev.addresses)
    return ", ".join(t for t in texts if not t.startswith("127."))


class _Layout:
    def __init__(self, cluster):
        self.cluster = cluster
        self.elements: list[Element] = []
        self.graph = Graph()
        self.placed: dict[str, set[str]] = {}     # namespace -> the devices drawn in it so far

    def host(self, name: str, kind: str, label: str, x0: float, y0: float, w: float, h: float,
             parent: str | None = None) -> None:
        self.elements.append(Element(name, kind, label, "", x0 + w / 2, y0 + h / 2, w, h, parent))

    def device(self, ns: str, dev: str, x: float, y: float, w: float = DEV_W) -> None:
        d = self.cluster.network.namespaces[ns].devices[dev]
        ident = f"{ns}/{dev}"
        self.elements.append(Element(ident, d.kind, dev, _addr(d), x, y, w, DEV_H, ns))
        self.placed.setdefault(ns, set()).add(dev)
        self.graph.add_node(ident, pos=(x, y), kind=d.kind)

    def rest(self, ns: str, x: float, y: float) -> None:
        """Devices no rule placed (extra ones), in a row."""
        placed = self.placed.setdefault(ns, set())
        for dev in self.cluster.network.namespaces[ns].devices:
            if dev not in placed:
                self.device(ns, dev, x, y)
                x += DEV_W + 0.1


def _build(cluster) -> _Layout:
    lay = _Layout(cluster)
    namespaces = cluster.network.namespaces
    x = 0.0
    node_eth: dict[str, float] = {}
    for node in cluster.nodes.values():
        pods = node.pods
        labels = [f"{p}  {cluster.pods[p].ip}" for p in pods]
        widths = [max(POD_W, round(_text_width(label, bold=True) + 0.15, 2)) for label in labels]
        w = max(3.0, sum(pw + 0.2 for pw in widths) + 0.4)
        lay.host(node.name, "node", f"{node.name}  {node.ip}", x, NODE_H[0], w, NODE_H[1] - NODE_H[0])
        px = x + 0.3
        for pod_name, label, pw in zip(pods, labels, widths):
            pod = cluster.pods[pod_name]
            lay.host(pod_name, "pod", label, px, 5.05, pw, POD_H, node.name)
            lay.device(pod_name, "lo", px + 0.25 + 0.35, 6.1, 0.7)
            lay.device(pod_name, "eth0", px + pw / 2 + 0.1, 5.4, 1.6)
            lay.rest(pod_name, px + 1.4, 6.1)
            lay.device(node.name, pod.host_veth, px + pw / 2, 4.45, 1.65)
            px += pw + 0.2
        devs = namespaces[node.name].devices
        cni_w = w - 0.6
        if "cni0" in devs:
            lay.device(node.name, "cni0", x + 0.3 + cni_w / 2, 3.6, cni_w)
        for dev in devs:
            if devs[dev].kind in ("vxlan", "tun"):
                lay.device(node.name, dev, x + w - 0.95, 2.75, 1.7)
        lay.device(node.name, "eth0", x + w / 2, 1.95, 1.95)
        lay.device(node.name, "lo", x + 0.55, 2.75, 0.7)
        node_eth[node.name] = x + w / 2
        lay.rest(node.name, x + 1.0, 2.75)
        x += w + GAP
    # the gateway and the outside in a row under the switch, at its right end: the picture grows
    # down rather than wide, so a node with three pods still fits the book's column
    nodes_w = x - GAP if cluster.nodes else 0.0
    col = 2.4
    row = col + (GAP + col) * len(cluster.externals) if "gateway" in namespaces else 0.0
    bx = max(0.0, nodes_w - row)
    if "gateway" in namespaces:
        lay.host("gateway", "gateway", "gateway (router)", bx, -2.45, col, 2.1)
        lay.device("gateway", "eth0", bx + col / 2 + 0.2, -0.8)
        if "eth1" in namespaces["gateway"].devices:    # the outside port, made by add_external
            lay.device("gateway", "eth1", bx + col / 2 + 0.2, -1.85)
        lay.device("gateway", "lo", bx + 0.45, -1.33, 0.6)
        lay.rest("gateway", bx + 1.2, -1.35)
        node_eth["gateway"] = bx + col / 2
    ex = bx + col + GAP
    for ext in cluster.externals.values():
        lay.host(ext.name, "external", f"{ext.name}  {ext.ip}", ex, -2.45, col, 1.6)
        lay.device(ext.name, "eth0", ex + col / 2 + 0.2, -1.85)
        lay.device(ext.name, "lo", ex + 0.45, -1.25, 0.6)
        lay.rest(ext.name, ex + 1.2, -1.25)
        ex += col + GAP
    total = max(nodes_w, bx + row)
    # the underlay switch along the bottom, one port under each host's eth0
    if "underlay" in namespaces:
        lay.host("underlay", "underlay", "underlay (switch sw0)", 0.0, 0.0, total, 1.45)
        lay.device("underlay", "sw0", total / 2, 0.3, total - 0.4)
        for dev in namespaces["underlay"].devices:
            host = dev[2:] if dev.startswith("p-") else None
            host = "gateway" if host == "gw" else host
            if host in node_eth:
                lay.device("underlay", dev, node_eth[host], 0.85, 1.2)
        lay.device("underlay", "lo", total - 0.35, 0.85, 0.5)
        lay.rest("underlay", total - 1.4, 0.85)
    for ns_name in namespaces:      # hosts the rules above do not know, stacked on the right
        if ns_name not in {e.id for e in lay.elements}:
            lay.host(ns_name, "host", ns_name, total + GAP, 1.5, col, 1.2)
            lay.rest(ns_name, total + GAP + 0.6, 2.0)
    _wire(lay)
    _lift(lay)
    return lay


def _shape(cluster) -> tuple:
    """Everything the layout reads (hosts, their devices, addresses, cables and bridge ports):
    equal shapes are drawn the same."""
    devices = tuple(
        (ns_name, tuple((d.name, d.kind, tuple(d.addresses), _peer_of(d), d.master.name if d.master else None)
                        for d in ns.devices.values()))
        for ns_name, ns in cluster.network.namespaces.items())
    return (tuple((n.name, n.ip, tuple(n.pods)) for n in cluster.nodes.values()),
            tuple((name, pod.ip) for name, pod in cluster.pods.items()),
            tuple((e.name, e.ip) for e in cluster.externals.values()), devices)


def _peer_of(dev) -> str | None:
    peer = getattr(dev, "peer", None)
    return f"{peer.netns.name}/{peer.name}" if peer is not None and peer.netns is not None else None


# the last layout of each cluster, with the shape it was drawn for: stepping through a trace
# asks for the same cluster's picture at every hop
_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _layout(cluster) -> _Layout:
    """The cluster's layout (_build), drawn again only when its shape changed."""
    if getattr(cluster, "lazy", False):
        cluster.materialize_all()       # a lazily built cluster holds only what traces reached
    shape = _shape(cluster)
    known = _LAYOUTS.get(cluster)
    if known is not None and known[0] == shape:
        return known[1]
    lay = _build(cluster)
    _LAYOUTS[cluster] = (shape, lay)
    return lay


def _lift(lay: _Layout) -> None:
    """Move the picture up so its lowest box starts at 0 (the row under the switch sits below it)."""
    low = min(e.y - e.h / 2 for e in lay.elements) if lay.elements else 0.0
    if low >= 0:
        return
    lay.elements = [Element(e.id, e.kind, e.label, e.detail, e.x, e.y - low, e.w, e.h, e.parent)
                    for e in lay.elements]
    for attrs in lay.graph.nodes.values():
        if "pos" in attrs:
            attrs["pos"] = (attrs["pos"][0], attrs["pos"][1] - low)


def _wire(lay: _Layout) -> None:
    """Edges: veth pairs and cables (`cable`), bridge ports (`port`), VXLAN's lower device."""
    for ns_name, ns in lay.cluster.network.namespaces.items():
        for dev in ns.devices.values():
            me = f"{ns_name}/{dev.name}"
            if me not in lay.graph:
                continue
            other = _peer_of(dev)
            if other is not None and other in lay.graph:
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
    check_cluster(cluster, trace, "diagram_model")
    if hop_index is not None:
        if trace is None:
            raise UsageError(f"diagram_model: hop {hop_index!r} given without a trace")
        hop_index = check_hop(trace, hop_index, "diagram_model")
    lay = _layout(cluster)
    if trace is None:
        return DiagramModel(tuple(lay.elements), lay.graph)
    segments = _segments(trace)
    path: list[str] = []
    for hop in trace.hops:
        if hop.role != "arp" and hop.where not in path:
            path.append(hop.where)
    current: str | None = None
    highlighted: frozenset[str] = frozenset()
    if hop_index is not None:
        hop = trace.hops[hop_index]
        current = hop.where
        into = [f"seg:{s.frm}->{s.to}" for s in segments if s.to == hop_index]
        highlighted = frozenset([current, hop.netns, *into])
    return DiagramModel(tuple(lay.elements), lay.graph, segments, tuple(path), current, highlighted)


# ------------------------------------------------------------------------------- drawing
# Colours as data: a box kind's (fill, edge, label text). The SVG refers to every colour as
# `var(--nsdN, light)`, so a page in dark mode swaps them by defining the variables (DARK).
COLOURS = {
    "node": ("#eef3fb", "#5b7db1", "#2f4f80"), "pod": ("#fdf6e3", "#b58900", "#6b5000"),
    "gateway": ("#eef7ee", "#4f8a4f", "#2f6b2f"), "external": ("#f6eef7", "#8a4f8a", "#6b3a6b"),
    "underlay": ("#f2f2f2", "#777777", "#4a4a4a"), "host": ("#f2f2f2", "#777777", "#4a4a4a"),
    "veth": ("#ffffff", "#555555", "#1f2328"), "nic": ("#ffffff", "#222222", "#1f2328"),
    "bridge": ("#e3ecf7", "#3b5f99", "#1f2328"), "vxlan": ("#fde8e4", "#b0412e", "#1f2328"),
    "tun": ("#fde8e4", "#b0412e", "#1f2328"), "loopback": ("#f7f7f7", "#999999", "#1f2328"),
}
DETAIL = "#4d4d4d"                       # an address under a device's name
LINK = "#9aa5b1"                         # cables, veth pairs, bridge ports, a tunnel's lower device
ARROW = {"request": "#1f77b4", "reply": "#2ca02c"}
MARK = "#e65100"                         # the current hop's outline and the packet marker
# The same picture on a dark page: every light colour above and its dark counterpart.
DARK = {
    "#eef3fb": "#1a2433", "#fdf6e3": "#2e2714", "#eef7ee": "#18291a", "#f6eef7": "#2a1c2c",
    "#f2f2f2": "#22262b", "#ffffff": "#0d1117", "#e3ecf7": "#1b2a40", "#fde8e4": "#3a1d18",
    "#f7f7f7": "#1c2026", "#5b7db1": "#7d9fd3", "#b58900": "#d4a72c", "#4f8a4f": "#6fb36f",
    "#8a4f8a": "#c07fc0", "#777777": "#8b949e", "#555555": "#8b949e", "#222222": "#c9d1d9",
    "#3b5f99": "#6f94d1", "#b0412e": "#e0705c", "#999999": "#6e7681", "#2f4f80": "#9ec1f5",
    "#6b5000": "#e3c063", "#2f6b2f": "#8fd18f", "#6b3a6b": "#e0a8e0", "#4a4a4a": "#b1bac4",
    "#1f2328": "#e6edf3", "#4d4d4d": "#a8b1bb", "#9aa5b1": "#5c6670", "#1f77b4": "#58a6ff",
    "#2ca02c": "#3fb950", "#e65100": "#ff8a3d",
}
_VAR = {light: f"--nsd{i}" for i, light in enumerate(DARK)}

HIGHLIGHT = (f"stroke:var({_VAR[MARK]},{MARK}) !important;stroke-width:2.5 !important;stroke-opacity:1 !important;"
             "fill-opacity:1 !important")


def dark_css(scope: str) -> str:
    """CSS giving the diagram its dark colours under `scope` on a dark page (pydata theme, JupyterLab)."""
    decl = ";".join(f"{_VAR[light]}:{dark}" for light, dark in DARK.items())
    return (f'html[data-theme="dark"] {scope},body[data-jp-theme-light="false"] {scope}{{{decl}}}')


def dom_ids(model: DiagramModel, prefix: str) -> dict[str, str]:
    """Element id (and `seg:a->b`) -> DOM id, numbered in drawing order."""
    ids = [e.id for e in model.elements] + [f"seg:{s.frm}->{s.to}" for s in model.segments]
    return {ident: f"{prefix}-e{i}" for i, ident in enumerate(ids)}


def svg_size(model: DiagramModel) -> tuple[float, float]:
    """The picture's width and height in points (= SVG user units), legend included."""
    return model.width * PT_PER_UNIT, (model.height + LEGEND_H) * PT_PER_UNIT


def min_width_px(model: DiagramModel) -> int:
    """The narrowest CSS width at which every label (FONT points) is at least MIN_LABEL_PX."""
    return int(-(-svg_size(model)[0] * MIN_LABEL_PX // FONT))


def marker_xy(model: DiagramModel, ident: str) -> tuple[float, float]:
    """Where the packet marker sits for a device, in SVG user units: its box's right end."""
    e = model.element(ident)
    return round((e.x + e.w / 2) * PT_PER_UNIT, 1), round((model.height + LEGEND_H - e.y) * PT_PER_UNIT, 1)


def _metrics() -> dict:
    """DejaVu Sans advance widths (font units), regular and bold: netsim/views/dejavu_sans.json."""
    global _FONT
    if _FONT is None:
        from importlib.resources import files
        _FONT = json.loads(files(__package__).joinpath("dejavu_sans.json").read_text(encoding="utf-8"))
    return _FONT


_FONT: dict | None = None


def _text_width(text: str, bold: bool = False) -> float:
    """The width of `text` at FONT, in layout units: the sum of its characters' advances."""
    m = _metrics()
    weight = "bold" if bold else "normal"
    widths, fallback = m[weight], m[f"{weight}_fallback"]
    units = sum(widths.get(c, fallback) for c in text)
    return units / m["units_per_em"] * FONT / PT_PER_UNIT


def _n(v: float) -> str:
    """A coordinate in points, at most two decimals, the same text in every Python."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _c(colour: str) -> str:
    """A colour as its CSS variable with the light value as fallback (see DARK)."""
    return f"var({_VAR[colour]}, {colour})" if colour in _VAR else colour


class _Svg:
    """Shapes in layout units (y up) written as SVG in points (y down), in layers drawn bottom first."""

    def __init__(self, model: DiagramModel):
        self.top = model.height + LEGEND_H
        self.layers: dict[int, list[str]] = {z: [] for z in range(6)}

    def xy(self, x: float, y: float) -> str:
        return f"{_n(x * PT_PER_UNIT)} {_n((self.top - y) * PT_PER_UNIT)}"

    def box(self, z: int, x0: float, y0: float, w: float, h: float, r: float, fill: str, edge: str,
            lw: float, gid: str | None = None) -> None:
        """A rounded rectangle from its lower left corner, as one path (a highlight restyles `#id path`)."""
        x1, y1 = x0 + w, y0 + h
        d = (f"M {self.xy(x0 + r, y0)} L {self.xy(x1 - r, y0)} Q {self.xy(x1, y0)} {self.xy(x1, y0 + r)} "
             f"L {self.xy(x1, y1 - r)} Q {self.xy(x1, y1)} {self.xy(x1 - r, y1)} L {self.xy(x0 + r, y1)} "
             f"Q {self.xy(x0, y1)} {self.xy(x0, y1 - r)} L {self.xy(x0, y0 + r)} Q {self.xy(x0, y0)} "
             f"{self.xy(x0 + r, y0)} z")
        path = f'<path d="{d}" style="fill: {_c(fill)}; stroke: {_c(edge)}; stroke-width: {_n(lw)}"/>'
        self.layers[z].append(f'<g id="{gid}">{path}</g>' if gid else path)

    def line(self, z: int, x1: float, y1: float, x2: float, y2: float, colour: str, lw: float,
             dotted: bool = False) -> None:
        dash = f"stroke-dasharray: {_n(lw)},{_n(lw * 1.65)}; " if dotted else ""
        self.layers[z].append(f'<path d="M {self.xy(x1, y1)} L {self.xy(x2, y2)}" style="fill: none; {dash}'
                              f'stroke: {_c(colour)}; stroke-width: {_n(lw)}"/>')

    def arrow(self, z: int, x1: float, x2: float, y: float, colour: str, lw: float) -> None:
        """A horizontal arrow with a filled head (the legend's request and reply)."""
        head = 5.0 / PT_PER_UNIT
        self.line(z, x1, y, x2 - head, y, colour, lw)
        half = 2.6 / PT_PER_UNIT
        self.layers[z].append(f'<path d="M {self.xy(x2, y)} L {self.xy(x2 - head, y + half)} L '
                              f'{self.xy(x2 - head, y - half)} z" style="fill: {_c(colour)}; stroke: {_c(colour)}; '
                              f'stroke-width: 0.8"/>')

    def dot(self, z: int, x: float, y: float, r_pt: float, fill: str, edge: str, lw: float) -> None:
        self.layers[z].append(f'<circle cx="{_n(x * PT_PER_UNIT)}" cy="{_n((self.top - y) * PT_PER_UNIT)}" '
                              f'r="{_n(r_pt)}" style="fill: {_c(fill)}; stroke: {_c(edge)}; stroke-width: {_n(lw)}"/>')

    def text(self, z: int, x: float, y: float, text: str, colour: str, anchor: str = "middle",
             bold: bool = False) -> None:
        """`text` centred vertically on y: its baseline half a capital's height below."""
        m = _metrics()
        base = (self.top - y) * PT_PER_UNIT + m["cap_height"] / m["units_per_em"] * FONT / 2
        weight = "font-weight: bold; " if bold else ""
        self.layers[z].append(f'<text x="{_n(x * PT_PER_UNIT)}" y="{_n(base)}" style="font-size: {_n(FONT)}px; '
                              f"font-family: 'DejaVu Sans', sans-serif; {weight}text-anchor: {anchor}; "
                              f'fill: {_c(colour)}">{escape(text)}</text>')

    def svg(self, w_pt: float, h_pt: float) -> str:
        body = "\n".join(s for z in sorted(self.layers) for s in self.layers[z])
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(w_pt)}pt" height="{_n(h_pt)}pt" '
                f'viewBox="0 0 {_n(w_pt)} {_n(h_pt)}" version="1.1">\n{body}\n</svg>\n')


LEGEND = (("link", "cable or port"), ("lower", "tunnel on eth0"),
          ("request", "request"), ("reply", "reply"), ("hop", "this hop"), ("packet", "packet"))


def _legend(out: _Svg, model: DiagramModel) -> None:
    """One row across the top: what each line style, colour and mark means."""
    y = model.height + LEGEND_H / 2
    x = 0.1
    for kind, text in LEGEND:
        if kind in ("link", "lower"):
            out.line(1, x, y, x + 0.45, y, LINK, 1.4, dotted=kind == "lower")
        elif kind in ("request", "reply"):
            out.arrow(4, x, x + 0.45, y, ARROW[kind], 1.4)
        elif kind == "hop":
            out.box(2, x + 0.02, y - 0.13, 0.41, 0.26, 0.05, "#ffffff", MARK, 2.0)
        else:
            out.dot(5, x + 0.22, y, 3.5, MARK, "#ffffff", 1.5)
        out.text(3, x + 0.55, y, text, "#1f2328", anchor="start")
        x += 0.55 + _text_width(text) + 0.3


def _describe(model: DiagramModel) -> tuple[str, str]:
    """The SVG's <title> and <desc>: the hosts drawn and how to read the marks."""
    hosts = [e for e in model.elements if "/" not in e.id and e.kind != "underlay"]
    title = "Cluster diagram: " + ", ".join(e.id for e in hosts if e.kind == "node") + " and their pods"
    parts = []
    for e in hosts:
        devs = [d.label for d in model.elements if d.parent == e.id]
        parts.append(f"{e.label.split('  ')[0]} ({e.kind}{', ' + e.label.split('  ')[1] if '  ' in e.label else ''}; "
                     f"devices {', '.join(devs)})")
    desc = "Boxes: " + "; ".join(parts) + ". The underlay switch joins the hosts' eth0s. "
    if model.segments:
        desc += ("Arrows show the path walked so far, requests in blue and replies in green; the current hop's "
                 "device is outlined in orange and an orange dot marks the packet.")
    return title, desc


_CACHE: dict[tuple, str] = {}


def _cluster_svg(model: DiagramModel) -> str:
    """The cluster without the trace (legend, links, boxes, labels), DOM ids as `@@-eN`.

    Written once per layout and kept: every stepper of a chapter shares it."""
    key = (model.elements, tuple(sorted((a, b, d["kind"]) for a, b, d in model.graph.edges(data=True))))
    if key in _CACHE:
        return _CACHE[key]
    ids = dom_ids(model, "@@")
    out = _Svg(model)
    _legend(out, model)
    for a, b, data in sorted(model.graph.edges(data=True), key=lambda e: (e[0], e[1])):
        (x1, y1), (x2, y2) = model.graph.nodes[a]["pos"], model.graph.nodes[b]["pos"]
        out.line(1, x1, y1, x2, y2, LINK, 1.2, dotted=data["kind"] == "lower")
    for e in model.elements:
        fill, edge, ink = COLOURS.get(e.kind, ("#ffffff", "#555555", "#1f2328"))
        is_host = "/" not in e.id
        out.box(0 if e.kind in ("node", "underlay") else 2, e.x - e.w / 2, e.y - e.h / 2, e.w, e.h, 0.08,
                fill, edge, 1.0 if is_host else 0.9, ids[e.id])
        if is_host:
            out.text(3, e.x - e.w / 2 + 0.1, e.y + e.h / 2 - 0.19, e.label, ink, anchor="start", bold=True)
        else:
            out.text(3, e.x, e.y + (0.1 if e.detail else 0), e.label, ink)
            if e.detail:
                out.text(3, e.x, e.y - 0.12, e.detail, DETAIL)
    svg = out.svg(*svg_size(model))
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[key] = svg
    return svg


def _arrow(model: DiagramModel, s: Segment, dom: str) -> str:
    """One move of the packet as an SVG arrow: requests left of the line, replies right of it."""
    a, b = model.element(s.a), model.element(s.b)
    top = model.height + LEGEND_H
    x1, y1, x2, y2 = a.x * PT_PER_UNIT, (top - a.y) * PT_PER_UNIT, b.x * PT_PER_UNIT, (top - b.y) * PT_PER_UNIT
    dx, dy = x2 - x1, y2 - y1
    n = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / n, dy / n
    off = {"request": -2.7, "reply": 2.7}.get(s.role, 0.0)
    ox, oy = -uy * off, ux * off
    sx, sy, ex, ey = x1 + ux * 4 + ox, y1 + uy * 4 + oy, x2 - ux * 4 + ox, y2 - uy * 4 + oy
    hx, hy = ex - ux * 6, ey - uy * 6                   # the arrowhead's base
    colour = ARROW.get(s.role)
    if colour is None:                                   # ARP floods: not drawn
        return f'<g id="{dom}" class="seg"></g>\n'
    c = f"var({_VAR[colour]}, {colour})"
    return (f'<g id="{dom}" class="seg"><path d="M {sx:.1f} {sy:.1f} L {hx:.1f} {hy:.1f}" style="fill: none; '
            f'stroke: {c}; stroke-width: 1.4; stroke-opacity: 0.8"/><path d="M {ex:.1f} {ey:.1f} L '
            f'{hx - uy * 2.6:.1f} {hy + ux * 2.6:.1f} L {hx + uy * 2.6:.1f} {hy - ux * 2.6:.1f} z" '
            f'style="fill: {c}; stroke: {c}; stroke-width: 0.8"/></g>\n')


def render_svg(model: DiagramModel, prefix: str = "netsim", width_in: float | None = None) -> str:
    """The picture as an SVG string, byte-identical between runs and between Pythons.

    Every colour is `var(--nsdN, light)` (see DARK); trace arrows carry class `seg` and the
    packet marker is `<g id="{prefix}-pkt">`, so a page can reveal the walked path and move
    the marker from CSS or a script. `width_in` is accepted for compatibility and ignored:
    the size follows the layout so that the labels fit their boxes.
    """
    ids = dom_ids(model, prefix)
    svg = _cluster_svg(model).replace('id="@@-e', f'id="{prefix}-e')
    arrows = "".join(_arrow(model, s, ids[f"seg:{s.frm}->{s.to}"]) for s in model.segments)
    title, desc = _describe(model)
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{prefix}-title {prefix}-desc" class="nsd" ', 1)
    head = svg.index(">") + 1
    svg = (svg[:head] + f'\n<title id="{prefix}-title">{escape(title)}</title><desc id="{prefix}-desc">'
           f'{escape(desc)}</desc>' + svg[head:])
    pkt = ""
    if model.current is not None or model.segments:
        x, y = marker_xy(model, model.current) if model.current is not None else (-20.0, -20.0)
        pkt = (f'<g id="{prefix}-pkt" class="pkt" transform="translate({x} {y})"><circle r="5.5" style="fill: '
               f'var({_VAR[MARK]}, {MARK}); stroke: var({_VAR["#ffffff"]}, #ffffff); stroke-width: 2"/></g>\n')
    end = svg.rindex("</svg>")
    return svg[:end] + arrows + pkt + svg[end:]


def walked_css(model: DiagramModel, prefix: str, hop_index: int | None) -> str:
    """CSS that hides the arrows of hops not yet reached (none hidden without a current hop)."""
    if hop_index is None:
        return ""
    ids = dom_ids(model, prefix)
    later = [ids[f"seg:{s.frm}->{s.to}"] for s in model.segments if s.to > hop_index]
    return ",".join(f"#{d}" for d in later) + "{visibility:hidden}" if later else ""


@dataclass(frozen=True)
class Diagram:
    """A notebook-displayable diagram (`image/svg+xml`, with a text fallback)."""

    model: DiagramModel
    prefix: str = "netsim-diagram"
    hop: int | None = None

    def svg(self) -> str:
        svg = render_svg(self.model, self.prefix)
        style = dark_css(f"#{self.prefix}-svg")
        svg = svg.replace("<svg ", f'<svg id="{self.prefix}-svg" ', 1)
        if self.model.highlighted:
            ids = dom_ids(self.model, self.prefix)
            css = ",".join(f"#{ids[h]} path" for h in sorted(self.model.highlighted) if h in ids)
            style += f"{css}{{{HIGHLIGHT}}}" + walked_css(self.model, self.prefix, self.hop)
        return svg.replace("</svg>", f"<style>{style}</style></svg>", 1)

    def text(self) -> str:
        lines = [f"{e.id:<24} {e.kind:<9} {e.detail}" for e in self.model.elements if "/" in e.id]
        if self.model.current:
            lines.insert(0, f"current hop at {self.model.current}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "image/svg+xml": self.svg()}


def diagram(cluster, trace: Trace | None = None, hop: int | Hop | None = None) -> Diagram:
    """The topology picture, with a trace's path and one hop highlighted if given."""
    check_cluster(cluster, trace, "diagram")
    if hop is not None and trace is None:
        raise UsageError(f"diagram: hop {hop!r:.40} given without the trace it belongs to")
    hop = check_hop(trace, hop, "diagram") if trace is not None and hop is not None else hop
    index = hop.index if isinstance(hop, Hop) else hop
    return Diagram(diagram_model(cluster, trace, index), hop=index)
