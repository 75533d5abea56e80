"""The hop stepper: diagram, headers, hex dump and the kernel's reasons for one hop at a time.

One object, two faces. Live (Jupyter with a kernel), `Stepper` is an ipywidgets widget whose
Python callbacks re-render the panels (stepper_widget.py). In the published static book no
Python runs, so the same object also renders self-contained HTML: one SVG diagram (the current
hop is highlighted by a CSS rule the script rewrites), the trace as compressed JSON (each
distinct frame once, with its layers and fields; per hop what changed, what each field means
there, the headers before and after a rewrite with the rule that made it, the decisions), and
a small inline script that draws each hop's panel (stepper_assets.JS). No CDN, no network, and
DOM ids derived from the content, so the same trace renders byte-identical HTML every run.

For each hop the panel explains (stepper_panel.py): who owns every address, which side each
port is, TCP options decoded, the drop and its decision, and at a hop that rewrites the packet
(DNAT, SNAT/MASQUERADE, un-NAT, encapsulation, decapsulation, TTL, MACs) the headers before and
after side by side with the table, chain, rule number, match and action (or the conntrack entry
or device) of each change. A switch chooses minimal / summary / detailed, the levels of
`netsim trace --detail`. Beside it a link downloads the trace as pcapng (pcapfiles.py).

Questions (`predict`, predict.py) are asked at the hop where the kernel takes the decision they
are about. Until one is answered, nothing from its hop on is in the page: the hop list stops at
its row (which shows no summary), that hop's panel holds only the question, the diagram's path
stops there, the outcome is not shown, and the answers and feedback are inside the compressed
data, not in the page's text (`predict.gate`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass
from html import escape

from ..errors import UsageError
from ..trace import Trace
from . import headers as H
from .args import check_hop, check_trace
from .diagram import HIGHLIGHT, diagram_model, dom_ids, marker_xy, min_width_px, render_svg, walked_css
from .hopinfo import main_drop
from .pcapfiles import DECODE_HINT, FOLDER, output_metadata, pcap_bytes, pcap_name
from .predict import KINDS, Challenge, auto_challenges, best_challenge, challenge, find_hop, gate
from .sentences import heading, outcome_text
from .stepper_assets import CSS, DARK_SCOPES, JS, LEVELS, PALETTE, PICK, TEXT_PAIRS, css
from .stepper_panel import HopView, hop_views, panel_html, summaries as _summaries

__all__ = ["CSS", "DARK_SCOPES", "JS", "LEVELS", "PALETTE", "PICK", "TEXT_PAIRS", "HeaderView", "HopView",
           "Stepper", "css", "decode_payload", "header_view", "hop_views", "panel_html", "stepper"]

_SEEN: dict[str, int] = {}


def _uid(payload: str) -> str:
    """`ns<hash>-<n>`: the content's hash and how many steppers of that content came before."""
    digest = hashlib.sha1(payload.encode()).hexdigest()[:10]
    n = _SEEN.get(digest, 0)
    _SEEN[digest] = n + 1
    return f"ns{digest}-{n}"


def _row(hop, cur: int, gate_at: float) -> str:
    """One hop-list row, as the script draws it. The row of an unanswered question shows no
    summary; rows after it are not drawn at all."""
    cls = f"r-{escape(hop.role)}" + (" on" if hop.index == cur else "") + (" ask" if hop.index == gate_at else "")
    text = f"{hop.index:>2} {escape(hop.where)} {hop.direction} "
    if hop.index == gate_at:
        text += '<span class="q">? predict first</span>'
    else:
        if hop.verdict == "dropped" and hop.role != "arp":
            text += '<b class="x" aria-label="dropped">✕</b> '
        s, si = _summaries(hop)
        text += f'<span class="s">{escape(s)}' + (f'<span class="in">inner {escape(si)}</span>' if si else "") + "</span>"
    return f'<li data-i="{hop.index}" class="{cls}" tabindex="0">{text}</li>'


def _guess_cluster(trace: Trace):
    """The reference cluster the trace most likely ran on, if every capture point exists in it."""
    from ..cluster import reference_cluster
    names = {h.device for h in trace.hops}
    backend = "udp" if "flannel0" in names else ("vxlan" if "flannel.1" in names else "host-gw")
    cluster = reference_cluster(backend)
    ok = all(h.netns in cluster.network.namespaces and h.device in cluster.network.namespaces[h.netns].devices
             for h in trace.hops)
    return cluster if ok else None


def _encode(data: dict) -> str:
    """JSON, deflated (raw, as the browser's DecompressionStream("deflate-raw") reads it), base64."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return base64.b64encode(squeeze.compress(raw) + squeeze.flush()).decode()


def decode_payload(html: str) -> dict:
    """The data a static stepper carries (for tests and tools): the inverse of `_encode`."""
    start = html.index('<script type="application/x-netsim" id="')
    text = html[html.index(">", start) + 1:html.index("</script>", start)]
    return json.loads(zlib.decompress(base64.b64decode(text), -15))


def _xmark(uid: str, xy: tuple[float, float], shown: bool) -> str:
    """The drop marker: a cross drawn where the packet marker sits, shown at a dropped hop."""
    return (f'<g id="{uid}-x" class="xm" transform="translate({xy[0]} {xy[1]})"'
            f'{"" if shown else " style=" + chr(34) + "display:none" + chr(34)}><path d="M -6 -6 L 6 6 M -6 6 L 6 -6" '
            f'style="stroke: var(--ns-rm, #a8321f); stroke-width: 3; stroke-linecap: round; fill: none"/></g>\n')


def _check_predict(trace: Trace, predict) -> None:
    for p in (predict if isinstance(predict, list) else []):
        if isinstance(p, tuple):
            if len(p) != 2 or p[0] not in KINDS:
                raise UsageError(f"Stepper(predict=...): {p!r:.60} is not a (kind, hop) pair; kinds are {', '.join(KINDS)}")
            check_hop(trace, p[1], "Stepper(predict=...)")
        elif isinstance(p, str):
            if p not in KINDS:
                raise UsageError(f"Stepper(predict=...): unknown question kind {p!r}; kinds are {', '.join(KINDS)}")
        elif not isinstance(p, Challenge):
            check_hop(trace, p, "Stepper(predict=...)")


class Stepper:
    """Step through a trace hop by hop; displays as a widget live and as HTML in the static book.

    `predict=True` asks a few questions at the trace's most telling decisions
    (`auto_challenges`); a list may name question kinds (`"rule"`, `"outer_dst"`, ... see
    `predict.KINDS`, each at its natural hop after the question before it; left out where the
    trace has none), `(kind, hop)` pairs (a hop or its index),
    hop indices (the best question there) or `Challenge`s. `level` is the
    panel's starting level of detail; `name` names the pcapng file (default: the trace's title).
    """

    def __init__(self, trace: Trace, cluster=None, predict: bool | list = False, start: int = 0,
                 level: str = "summary", name: str | None = None):
        check_trace(trace, cluster, "Stepper")
        if isinstance(start, bool) or not isinstance(start, int):
            raise UsageError(f"Stepper: start {start!r} must be a hop index (an integer)")
        _check_predict(trace, predict)
        if not trace.hops:
            raise UsageError("the trace has no hops to step through")
        if not 0 <= start < len(trace.hops):
            raise UsageError(f"start {start} is outside 0..{len(trace.hops) - 1}")
        if level not in LEVELS:
            raise UsageError(f"Stepper: unknown level {level!r}; use one of {', '.join(LEVELS)}")
        self.trace = trace
        self.cluster = cluster if cluster is not None else _guess_cluster(trace)
        self.start = start
        self.level = level
        self.name = name
        self.views = hop_views(trace)
        self.challenges = self._questions(predict)
        self._quiz = {c.hop: c for c in self.challenges}
        drop = main_drop(trace)
        self.drop = drop.index if drop is not None else None
        self._uid: str | None = None
        self._html: str | None = None
        self._pcap: tuple[str, bytes] | None = None

    def _questions(self, predict) -> list[Challenge]:
        """The questions, in the order given: a kind is asked at its natural hop after the hop
        of the question before it (left out if the trace has none, as a host-gw trace has no
        outer destination to ask about)."""
        if predict is True:
            return auto_challenges(self.trace, self.cluster)
        out: dict[int, Challenge] = {}
        after = 0
        for p in predict or []:
            ch: Challenge | None
            if isinstance(p, Challenge):
                ch = p
            elif isinstance(p, tuple):
                ch = challenge(self.trace, check_hop(self.trace, p[1], "Stepper(predict=...)"), p[0], self.cluster)
            elif isinstance(p, str):
                index = find_hop(self.trace, p, self.cluster, after)
                ch = challenge(self.trace, index, p, self.cluster) if index is not None else None
            else:
                ch = best_challenge(self.trace, p, self.cluster)
            if ch is not None and ch.hop not in out:
                out[ch.hop] = ch
                after = ch.hop + 1
        return [out[i] for i in sorted(out)]

    # data ---------------------------------------------------------------------------------
    def model(self, index: int):
        """The diagram model at hop `index` (None without a cluster)."""
        return diagram_model(self.cluster, self.trace, index) if self.cluster is not None else None

    def where(self) -> dict[int, str]:
        return {h.index: f"{h.where} {h.direction}" for h in self.trace.hops}

    def payload(self) -> dict:
        """The data the static face carries: distinct frames once, per hop what it shows."""
        fields: dict[tuple[str, str], int] = {}
        frames: dict[bytes, int] = {}
        frame_list: list[dict[str, object]] = []
        hops: list[object] = []
        base = diagram_model(self.cluster, self.trace) if self.cluster is not None else None
        ids = {k: int(v.rsplit("-e", 1)[1]) for k, v in dom_ids(base, "x").items()} if base else {}
        # what diagram_model(cluster, trace, i).highlighted holds, without laying the cluster out
        # again for every hop: the hop's device, its host, the arrows into it
        into: dict[int, list[str]] = {}
        for seg in base.segments if base is not None else ():
            into.setdefault(seg.to, []).append(f"seg:{seg.frm}->{seg.to}")
        for view in self.views:
            hop = self.trace.hops[view.index]
            flat_of: dict[tuple[str, str], int] = {}
            flat = 0
            for layer in view.layers:
                for f in layer.fields:
                    flat_of[(layer.id, f.name)] = flat
                    flat += 1
            if view.data not in frames:
                frames[view.data] = len(frame_list)
                layers = []
                for layer in view.layers:
                    fl = []
                    for f in layer.fields:
                        key = (f.title, f.meaning)
                        fields.setdefault(key, len(fields))
                        fl.append([fields[key], f.start, f.end, f.value])
                    layers.append([layer.title, layer.id, layer.start, layer.end, fl])
                frame_list.append({"x": view.data.hex(), "L": layers})
            marks, pos = [], None
            if base is not None:
                lit = {hop.where, hop.netns, *into.get(view.index, [])}
                marks = sorted(ids[h] for h in lit if h in ids)
                pos = list(marker_xy(base, hop.where))
            s, si = _summaries(hop)
            rec: dict[str, object] = {
                "i": view.index, "f": frames[view.data], "t": view.title, "v": view.verdict, "y": view.drop,
                "k": list(view.decisions), "d": list(view.detail),
                "x": sorted([flat_of[k], t] for k, t in view.said.items() if k in flat_of),
                "o": sorted([flat_of[(lid, "options")], [list(p) for p in opts]]
                            for lid, opts in view.options.items() if (lid, "options") in flat_of),
                "c": view.changed_flat(), "a": [i for i, l in enumerate(view.layers) if l.id in view.diff.added],
                "rm": list(view.diff.removed), "p": -1 if view.diff.previous is None else view.diff.previous,
                "e": marks, "w": hop.where, "dir": hop.direction, "r": hop.role, "s": s, "si": si, "m": pos}
            if view.ba is not None:
                rec["b"] = self._ba_data(view)
            hops.append(rec)
        quiz = {str(c.hop): {"q": c.question, "c": list(c.choices), "a": c.answer, "x": c.why, "k": c.kind}
                for c in self.challenges}
        segs = [[ids[f"seg:{s.frm}->{s.to}"], s.to] for s in base.segments] if base is not None else []
        return {"start": self.start, "fields": [list(k) for k in fields], "frames": frame_list, "hops": hops,
                "q": quiz, "css": HIGHLIGHT, "seg": segs, "out": outcome_text(self.trace.outcome),
                "drop": -1 if self.drop is None else self.drop}

    @staticmethod
    def _ba_data(view: HopView) -> dict:
        from .explain import change_text
        from .stepper_panel import change_word, rewrite_by
        ba = view.ba
        assert ba is not None
        changes = []
        for ch in ba.changes:
            by, via = rewrite_by(ch)
            changes.append([by, via, ch.match, ch.action, change_word(ch), 1 if ch.rule is not None else 0,
                            ", ".join(change_text(c) for c in ch.changes)])
        return {"n": -1 if ba.after is None else ba.after, "c": changes, "t": list(ba.notes),
                "r": [[r.group, r.title, r.before, r.after, r.by, *r.owners] for r in ba.rows]}

    # the pcapng beside the stepper --------------------------------------------------------
    def pcap(self) -> tuple[str, bytes]:
        """(file name, pcapng bytes) of the trace, as the book's download offers it."""
        if self._pcap is None:
            data = pcap_bytes(self.trace)
            self._pcap = (pcap_name(self.trace, data, self.name), data)
        return self._pcap

    # the static face ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """Self-contained HTML: markup, inline CSS, SVG, data and script; no network, no kernel."""
        if self._html is not None:
            return self._html
        data = _encode(self.payload())
        if self._uid is None:
            self._uid = _uid(data)
        uid = self._uid
        svg, minw = "", 600
        base = diagram_model(self.cluster, self.trace) if self.cluster is not None else None
        g = gate(self.challenges, {}, self.start)
        items = "".join(_row(h, self.start, g) for h in self.trace.hops if h.index <= g)
        view = self.views[self.start]
        hop = self.trace.hops[self.start]
        quiz = self._quiz.get(self.start)
        dead = hop.verdict == "dropped" and quiz is None
        marks = ""
        if base is not None:
            m = diagram_model(self.cluster, self.trace, self.start)
            svg = render_svg(m, uid)
            xy = marker_xy(base, hop.where)
            svg = svg.replace("</svg>", _xmark(uid, xy, dead) + "</svg>", 1)
            if dead:
                svg = svg.replace(f'<g id="{uid}-pkt" class="pkt"', f'<g id="{uid}-pkt" class="pkt" style="display:none"', 1)
            minw = min_width_px(base)
            ids = dom_ids(m, uid)
            marks = ",".join(f"#{ids[h]} path" for h in sorted(m.highlighted, key=lambda x: ids.get(x, "")) if h in ids)
            marks = f"{marks}{{{HIGHLIGHT}}}{walked_css(m, uid, self.start)}"
        title = escape(self.trace.title or "trace")
        outcome = "" if self.challenges else escape(outcome_text(self.trace.outcome))
        live = (f"{view.title}. Predict: {quiz.question}" if quiz is not None else
                f"{view.full_title}. " + (f"Dropped: {view.drop}" if view.drop else _summaries(hop)[0]))
        name, _ = self.pcap()
        levels = "".join(f'<button data-lv="{lv}" aria-pressed="{"true" if lv == self.level else "false"}">{lv}</button>'
                         for lv in LEVELS)
        drop = '<button data-a="drop">Go to the drop</button>' if self.drop is not None else ""
        self._html = (
            f'<div class="netsim-stepper" id="{uid}" data-level="{self.level}" data-hop="{self.start}" tabindex="0" role="group" '
            f'aria-label="{title}: hop stepper (arrow keys step)" aria-keyshortcuts="ArrowLeft ArrowRight">'
            f'<style>{css(uid, minw)}</style><style id="{uid}-hl">{marks}</style>'
            f'<div class="ctl"><b>{title}</b><button data-a="prev">Prev</button><button data-a="play">Play</button>'
            f'<button data-a="next">Next</button><span class="pos">hop {self.start} of {len(self.trace) - 1}</span>'
            f'<button data-a="arp" aria-pressed="false">Hide ARP</button>{drop}</div>'
            f'<div class="tools"><span>Detail:</span><span class="lvl" role="group" aria-label="level of detail">{levels}'
            f'</span><a class="pcap" href="{FOLDER}/{name}" download="{name}" title="{escape(DECODE_HINT)}">'
            f'Download the trace as pcapng</a></div>'
            f'<p class="out">{outcome}</p>'
            f'<p class="sr" aria-live="polite">{escape(live)}</p>'
            f'<div class="top"><div class="dia">{svg}</div><ol class="hops" aria-label="hops">{items}</ol></div>'
            f'<div class="panel">{panel_html(view, quiz, self.where())}</div>'
            f'<script type="application/x-netsim" id="{uid}-data">{data}</script>'
            f'<script>{JS.replace("ROOT", uid)}</script></div>')
        return self._html

    def text(self) -> str:
        view = self.views[self.start]
        lines = [heading(self.trace), view.title]
        if self.start not in self._quiz:
            lines += [f"  {d}" for d in view.decisions] + [H.layer_tree(list(view.layers), view.diff)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Stepper {self.trace.title!r}: {len(self.trace)} hops, {len(self.challenges)} predictions>"

    # the live face ------------------------------------------------------------------------------
    def widget(self):
        """An ipywidgets view (needs a running kernel for its buttons)."""
        from .stepper_widget import build
        return build(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": self.text(), "text/html": self.to_html()}
        name, data = self.pcap()
        meta = output_metadata(data, name)
        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:     # ipywidgets missing: the self-contained HTML face is enough
            view = None
        if view:
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle, meta


def stepper(trace: Trace, cluster=None, predict: bool | list = False, start: int = 0) -> Stepper:
    """`Stepper(trace, cluster, predict, start)`."""
    return Stepper(trace, cluster, predict, start)


@dataclass(frozen=True)
class HeaderView:
    """One hop's header tree, changes and hex dump, without the diagram or controls."""

    view: HopView
    where: tuple[tuple[int, str], ...] = ()

    def text(self) -> str:
        from .hexdump import hexdump
        return "\n".join([self.view.full_title, H.layer_tree(list(self.view.layers), self.view.diff),
                          hexdump(self.view.data, list(self.view.layers))])

    def html(self) -> str:
        uid = "nshv" + hashlib.sha1(self.view.data + self.view.title.encode()).hexdigest()[:10]
        hover = "".join(f'#{uid}:has([data-f="{k}"]:hover) [data-f="{k}"]{{{PICK}}}'
                        for k in range(sum(len(l.fields) for l in self.view.layers)))
        return (f'<div id="{uid}" data-level="summary"><style>{css(uid)}{hover}</style>'
                f'<div class="panel">{panel_html(self.view, where=dict(self.where))}</div></div>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "text/html": self.html()}


def header_view(trace: Trace, index: int) -> HeaderView:
    """The header view of hop `index`, changed fields marked against the packet's previous hop."""
    index = check_hop(check_trace(trace, where="header_view"), index, "header_view")
    return HeaderView(hop_views(trace)[index], tuple((h.index, f"{h.where} {h.direction}") for h in trace.hops))
