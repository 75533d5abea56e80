"""One hop's panel in the stepper, drawn in Python (the live widget, the static page's first
hop); the static page's script draws the same markup from the JSON (`stepper_assets.JS`).

A panel holds, for one hop: its title; the drop and the decision that made it, if the frame
ended here; the kernel's decisions (one sentence each, or at the detailed level every
decision with what it consulted); at a hop that rewrites the packet, the key header fields
before (here) and after (the next capture point) side by side, each change numbered by the
rewrite that made it, and the rewrites themselves (table, hook, chain, rule number, match,
action; or the conntrack entry or device); then the header tree, where every field says what
its value is here (who owns an address, which side a port is), TCP options decoded one by one,
and the hex dump. The page's level switch (minimal / summary / detailed) only shows and hides
parts of this markup (CSS), so the markup is the same at every level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from ..decision import NftRuleRef
from ..trace import Trace
from . import explain
from . import headers as H
from .hexdump import byte_map
from .hopinfo import BeforeAfter, Change, before_after, detailed, meanings
from .sentences import sentence
from .predict import Challenge


@dataclass(frozen=True)
class HopView:
    """Everything shown for one hop."""

    index: int
    title: str                      # without the verdict, which a question may be about
    decisions: tuple[str, ...]      # one sentence each
    layers: tuple[H.Layer, ...]
    data: bytes
    diff: H.HopDiff
    verdict: str = ""
    drop: str = ""                  # the decision that dropped the frame here
    said: dict = field(default_factory=dict)        # (layer id, field) -> what the value is here
    options: dict = field(default_factory=dict)     # layer id -> [(option, what it says)]
    detail: tuple[str, ...] = ()
    ba: BeforeAfter | None = None

    @property
    def full_title(self) -> str:
        return self.title + (f" · {self.verdict}" if self.verdict else "")

    def changed_flat(self) -> list[int]:
        out, flat = [], 0
        for layer in self.layers:
            for f in layer.fields:
                if self.diff.is_changed(layer, f.name):
                    out.append(flat)
                flat += 1
        return out


def hop_views(trace: Trace) -> list[HopView]:
    layers = [H.hop_layers(h) for h in trace.hops]
    diffs = H.trace_diffs(trace, layers)
    names = explain.port_names(trace)
    last = len(trace.hops) - 1
    out = []
    for hop in trace.hops:
        said, opts = meanings(trace, hop, layers[hop.index], names)
        title = f"Hop {hop.index} of {last}: {hop.where} {hop.direction} · {hop.role}"
        drop = sentence(hop.reason) if hop.verdict == "dropped" and hop.reason is not None else ""
        out.append(HopView(hop.index, title, tuple(sentence(d) for d in hop.decisions), tuple(layers[hop.index]),
                           hop.data, diffs[hop.index], hop.verdict, drop, said, opts,
                           tuple(detailed(trace, hop)), before_after(trace, hop, layers)))
    return out


# ------------------------------------------------------------------ pieces
def summaries(hop) -> tuple[str, str]:
    """The hop list's text for a hop: (the frame, or the outer packet; the inner packet if tunnelled)."""
    if hop.is_arp:
        return hop.frame.payload.summary(), ""
    if hop.encapsulated and hop.ip is not None and hop.inner_ip is not None:
        return f"outer {hop.ip.summary()}", hop.inner_ip.summary()
    ip = hop.inner_ip
    return (ip.summary() if ip is not None else hop.frame.summary()), ""


def rewrite_by(ch: Change) -> tuple[str, str]:
    """Who made a change, and through which chains (shown at the detailed level)."""
    rule = ch.rule
    if rule is None:
        return ch.by, ""
    via = " > ".join(rule.path) if len(rule.path) > 1 else ""
    if isinstance(rule, NftRuleRef):
        number = "policy" if rule.handle == 0 else f"handle {rule.handle}"
        return f"table {rule.family} {rule.table}, {rule.hook}, chain {rule.chain}, {number}", via
    number = "policy" if rule.rule == 0 else f"rule {rule.rule}"
    return f"table {rule.table}, {rule.hook}, chain {rule.chain}, {number}", via


def change_word(ch: Change) -> str:
    """The change in a word or two, for the before/after table: the rule's target (DNAT,
    MASQUERADE), conntrack's un-NAT, else the kernel function that made it (ip_forward, ...)."""
    if ch.rule is not None:
        return ch.action.split(" ", 1)[0]
    if ch.action.startswith("un-"):
        return ch.action.split(" ", 1)[0]
    return ch.decision.function


def why_html(view: HopView) -> str:
    items = [f"<li>{escape(d)}</li>" for d in view.decisions] or [
        '<li class="none">no decision recorded here: the frame just passes this point</li>']
    return '<ul class="why">' + "".join(items) + "</ul>"


def detail_html(view: HopView) -> str:
    return f'<pre class="dl">{escape(chr(10).join(view.detail))}</pre>' if view.detail else ""


def drop_html(view: HopView) -> str:
    return (f'<div class="drop" role="note"><b>✕ Dropped here</b> {escape(view.drop)}</div>' if view.drop else "")


def ba_html(ba: BeforeAfter | None, where: dict[int, str]) -> str:
    """The key fields before and after side by side, then the numbered rewrites."""
    if ba is None:
        return ""
    after = f"hop {ba.after} {where.get(ba.after, '')}" if ba.after is not None else "not captured again"
    out = [f'<div class="ba"><table><thead><tr><th>Field</th><th>Before: hop {ba.hop} {escape(where.get(ba.hop, ""))}</th>'
           f'<th>After: {escape(after)}</th><th>Changed by</th></tr></thead><tbody>']
    group = None
    for r in ba.rows:
        if r.group != group:
            group = r.group
            out.append(f'<tr class="grp"><td colspan="4">{escape(group)}</td></tr>')
        by = (f'<span class="n">{r.by + 1}</span> {escape(change_word(ba.changes[r.by]))}' if r.by >= 0 else "")
        cells = "".join(f'<td>{escape(v or "—")}' + (f'<span class="ow">{escape(o)}</span>' if o else "") + "</td>"
                        for v, o in ((r.before, r.owners[0]), (r.after, r.owners[1])))
        out.append(f'<tr class="{"chg" if r.changed else "same"}"><td>{escape(r.title)}</td>{cells}<td>{by}</td></tr>')
    out.append('</tbody></table><ol class="rw">')
    for i, ch in enumerate(ba.changes):
        by, via = rewrite_by(ch)
        parts = [f'<li><span class="n">{i + 1}</span> <b>{escape(by)}</b>']
        if via:
            parts.append(f'<span class="via"> via {escape(via)}</span>')
        if ch.rule is not None:
            parts.append(f'<span class="m">match: {escape(ch.match or "(every packet)")}</span>')
        if ch.action:
            parts.append(f'<span class="m">action: {escape(ch.action)}</span>')
        if ch.changes:
            parts.append(f'<span class="m">{escape(", ".join(explain.change_text(c) for c in ch.changes))}</span>')
        out.append("".join(parts) + "</li>")
    out.append("</ol>")
    out += [f'<p class="note">{escape(n)}</p>' for n in ba.notes]
    out.append("</div>")
    return "".join(out)


def quiz_html(ch: Challenge) -> str:
    buttons = "".join(f'<button class="ch" data-c="{i}">{escape(c)}</button>' for i, c in enumerate(ch.choices))
    return (f'<div class="quiz"><p class="qq">Predict: {escape(ch.question)}</p>'
            f'<div class="qc">{buttons}</div><p class="qx"></p></div>')


def hdr_html(view: HopView) -> str:
    out = ['<div class="hdr">']
    flat = 0
    changed = set(view.changed_flat())
    for li, layer in enumerate(view.layers):
        added = layer.id in view.diff.added
        out.append(f'<div class="ly L{li}{" added" if added else ""}" data-l="{escape(layer.id)}"><div class="lt" '
                   f'tabindex="0" role="button" aria-expanded="true">{escape(layer.title)} '
                   f'<span class="rng">bytes {layer.start}-{layer.end - 1}</span>'
                   f'{" <b>added</b>" if added else ""}</div><table>')
        for f in layer.fields:
            chg = " chg" if flat in changed else ""
            said = view.said.get((layer.id, f.name))
            meaning = (f'{escape(said)}<span class="gm">{escape(f.meaning)}</span>' if said is not None
                       else escape(f.meaning))
            out.append(f'<tr class="fld{chg}" data-f="{flat}" tabindex="0"><td class="fn">{escape(f.title)}</td>'
                       f'<td class="fv">{escape(f.value)}</td><td class="fm">{meaning}</td></tr>')
            if f.name == "options":
                out += [f'<tr class="opt" data-f="{flat}"><td class="fn">option</td><td class="fv">{escape(v)}</td>'
                        f'<td class="fm">{escape(t)}</td></tr>' for v, t in view.options.get(layer.id, [])]
            flat += 1
        out.append("</table></div>")
    if view.diff.removed:
        out.append(f'<div class="rm">Removed since hop {view.diff.previous}: {escape(", ".join(view.diff.removed))}</div>')
    out.append("</div>")
    return "".join(out)


def hex_html(view: HopView) -> str:
    out = ['<div class="hex" aria-label="the frame&#x27;s bytes">']
    cells = byte_map(list(view.layers), len(view.data))
    changed = set(view.changed_flat())
    # bytes of a changed field get an outline; an added layer's are all new and not outlined
    added_layers = {li for li, layer in enumerate(view.layers) if layer.id in view.diff.added}
    for off in range(0, len(view.data), 16):
        out.append(f'<div class="hrow"><span class="off">{off:04x}</span>')
        for b in range(off, min(off + 16, len(view.data))):
            li, fi = cells[b]
            c = " c" if fi in changed and li not in added_layers else ""
            out.append(f'<span class="b L{li}{c}" data-f="{fi}">{view.data[b]:02x}</span>')
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def panel_html(view: HopView, quiz: Challenge | None = None, where: dict[int, str] | None = None,
               answered: bool = False) -> str:
    """One hop's panel. With an unanswered question only the title and the question: nothing
    else of the hop is in the page until it is answered (the script draws it then)."""
    if quiz is not None and not answered:
        return f'<div class="title">{escape(view.title)}</div>{quiz_html(quiz)}'
    where = where or {}
    return (f'<div class="title">{escape(view.full_title)}</div>' + (quiz_html(quiz) if quiz is not None else "")
            + '<div class="reveal">' + drop_html(view) + why_html(view) + detail_html(view)
            + ba_html(view.ba, where) + hdr_html(view) + hex_html(view) + "</div>")
