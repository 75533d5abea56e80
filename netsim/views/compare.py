"""Comparisons: two traces side by side, and one line per scenario for all six.

`path_facts` reduces a trace to what a reader compares: the capture points of the request,
the carried packet's TTL at the first and last of them, the encapsulation seen, and the
address and port rewrites between the sender's first hop and the receiver's last (NAT).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from ..trace import Hop, Trace
from .headers import hop_layers
from .sentences import outcome_text


def _endpoints(hop: Hop) -> tuple[str, str, str, str]:
    """(src, sport, dst, dport) of the carried packet; ports are ICMP ids for echo."""
    ip = hop.inner_ip
    layers = {l.id: l for l in hop_layers(hop)}
    if ip is None:
        return ("", "", "", "")
    for kind, a, b in (("tcp", "sport", "dport"), ("udp", "sport", "dport"), ("icmp", "ident", None)):
        if kind in layers and any(f.name == a for f in layers[kind].fields):
            return ip.src, layers[kind].value(a), ip.dst, layers[kind].value(b) if b else ""
    return (ip.src, "", ip.dst, "") if ip else ("", "", "", "")


def _join(addr: str, port: str) -> str:
    return f"{addr}:{port}" if port else addr


@dataclass(frozen=True)
class PathFacts:
    title: str
    hops: int
    request_points: tuple[str, ...]
    ttl: tuple[int, int] | None
    encapsulation: str
    snat: str
    dnat: str
    arp_frames: int
    outcome: str

    @property
    def ttl_text(self) -> str:
        return f"{self.ttl[0]} -> {self.ttl[1]}" if self.ttl else "-"


def path_facts(trace: Trace) -> PathFacts:
    req = [h for h in trace.hops if h.role == "request"]
    ttl = None
    snat = dnat = "none"
    if req and req[0].inner_ip is not None:
        last = req[-1].inner_ip
        ttl = (req[0].inner_ip.ttl, last.ttl if last is not None else req[0].inner_ip.ttl)
        s0, p0, d0, q0 = _endpoints(req[0])
        s1, p1, d1, q1 = _endpoints(req[-1])
        if (s0, p0) != (s1, p1):
            snat = f"{_join(s0, p0)} -> {_join(s1, p1)}"
        if (d0, q0) != (d1, q1):
            dnat = f"{_join(d0, q0)} -> {_join(d1, q1)}"
    encap = sorted({_encap_name(h) for h in req if h.encapsulated})
    return PathFacts(trace.title, len(trace), tuple(f"{h.where} {h.direction}" for h in req), ttl,
                     ", ".join(encap) or "none", snat, dnat, len(trace.arp), outcome_text(trace.outcome))


def _encap_name(hop: Hop) -> str:
    ids = [l.id for l in hop_layers(hop)]
    return "VXLAN (UDP 8472)" if "outer-vxlan" in ids else "UDP (flannel udp backend)"


_CSS = ("<style>.netsim-cmp{border-collapse:collapse;font:12px/1.35 system-ui,sans-serif}"
        ".netsim-cmp td,.netsim-cmp th{border:1px solid #ccd;padding:2px 6px;vertical-align:top;text-align:left}"
        ".netsim-cmp th{background:#f4f6fa}.netsim-cmp .mono{font-family:ui-monospace,monospace;font-size:11px}"
        ".netsim-cmp .diff{background:#ffe082}</style>")


def _table(head: list[str], rows: list[list[str]], mono: frozenset[int] | set[int] = frozenset(),
           diff_rows: frozenset[int] | set[int] = frozenset()) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = []
    for r, row in enumerate(rows):
        cls = ' class="diff"' if r in diff_rows else ""
        tds = "".join(f'<td{" class=mono" if c in mono else ""}>{escape(v).replace(chr(10), "<br>")}</td>'
                      for c, v in enumerate(row))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f'{_CSS}<table class="netsim-cmp"><tr>{th}</tr>{"".join(body)}</table>'


def _text(head: list[str], rows: list[list[str]]) -> str:
    flat = []
    for row in rows:          # a multi-line cell continues on the lines below
        cells = [c.split("\n") for c in row]
        for k in range(max(len(c) for c in cells)):
            flat.append([c[k] if k < len(c) else "" for c in cells])
    widths = [max(len(head[i]), *(len(r[i]) for r in flat)) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, flat)])


@dataclass(frozen=True)
class Comparison:
    """Two traces side by side: facts first, then the request's capture points."""

    a: Trace
    b: Trace
    labels: tuple[str, str] = ("a", "b")

    def rows(self) -> list[list[str]]:
        fa, fb = path_facts(self.a), path_facts(self.b)
        rows = [["trace", fa.title, fb.title], ["hops (all packets)", str(fa.hops), str(fb.hops)],
                ["request capture points", str(len(fa.request_points)), str(len(fb.request_points))],
                ["TTL first -> last", fa.ttl_text, fb.ttl_text], ["encapsulation", fa.encapsulation, fb.encapsulation],
                ["source NAT", fa.snat, fb.snat], ["destination NAT", fa.dnat, fb.dnat],
                ["ARP frames", str(fa.arp_frames), str(fb.arp_frames)], ["outcome", fa.outcome, fb.outcome],
                ["request path", "\n".join(fa.request_points), "\n".join(fb.request_points)]]
        return rows

    def text(self) -> str:
        return _text(["", *self.labels], self.rows())

    def html(self) -> str:
        rows = self.rows()
        differ = {i for i, r in enumerate(rows) if r[1] != r[2] and i > 0}
        return _table(["", *self.labels], rows, mono={1, 2}, diff_rows=differ)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "text/html": self.html()}


def compare(a: Trace, b: Trace, labels: tuple[str, str] = ("a", "b")) -> Comparison:
    """Two traces side by side, e.g. the vxlan and host-gw backends of one scenario."""
    return Comparison(a, b, (labels[0], labels[1]))


@dataclass(frozen=True)
class SummaryTable:
    """One line per trace: devices crossed, TTL change, encapsulation, NAT."""

    traces: tuple[tuple[str, Trace], ...]

    HEAD = ["#", "scenario", "request points", "TTL", "encapsulation", "source NAT", "destination NAT", "ARP"]

    def rows(self) -> list[list[str]]:
        out = []
        for name, trace in self.traces:
            f = path_facts(trace)
            out.append([name, f.title, str(len(f.request_points)), f.ttl_text, f.encapsulation, f.snat, f.dnat,
                        str(f.arp_frames)])
        return out

    def text(self) -> str:
        return _text(self.HEAD, self.rows())

    def html(self) -> str:
        return _table(self.HEAD, self.rows(), mono={5, 6})

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "text/html": self.html()}


def summary_table(traces: dict | None = None, backend: str = "vxlan", proto: str = "tcp") -> SummaryTable:
    """The six scenarios on one screen (or the traces given, as {name: trace})."""
    if traces is None:
        from .. import scenarios
        traces = {str(k): f(backend=backend, proto=proto) for k, f in scenarios.SIX.items()}
    return SummaryTable(tuple((str(k), v) for k, v in traces.items()))
