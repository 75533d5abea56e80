"""What the stepper says about one hop: field meanings, the headers before and after a rewrite
with the rule or device that made each change, the drop, at three levels of detail.

Built from `explain`'s public functions (`field_meanings`, `rewrites`, `after_hop`,
`hop_notes`, `detailed_lines`) and the trace's records, never from parsing sentences. A decision
becomes text only through `netsim.views.sentences` (`sentence()`, `outcome_text()` for an
`Outcome`), so the stepper, the questions and the symptom writer say it as the CLI does.

Before and after: a rewrite recorded at a hop (DNAT, SNAT/MASQUERADE, un-NAT by conntrack,
the TTL, the new MACs, an encapsulation) shows in the headers of the next capture point of the
same packet (`explain.after_hop`); a decapsulation at a hop shows there too. `before_after`
lines up the key fields of both frames, layer by layer, and names for each changed field the
rewrite that changed it (a layer that appears or disappears is the encapsulation's or the
decapsulation's).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..decision import Decision, FieldChange, NftRuleRef, RuleRef
from ..trace import Hop, Trace
from . import explain
from .headers import Layer

LEVELS = explain.LEVELS


# The fields lined up before and after, per header kind: the ones a hop rewrites.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "ethernet": ("dst", "src"), "ipv4": ("src", "dst", "ttl"), "tcp": ("sport", "dport"),
    "udp": ("sport", "dport"), "icmp": ("type", "code"), "vxlan": ("vni",),
}


@dataclass(frozen=True)
class Change:
    """One rewrite: who made it (`by`: table, hook, chain and rule; a conntrack entry; a
    device), the rule's match and action, the decision, and its changes old -> new."""

    by: str
    short: str          # the rule or device in a few words: "nat PREROUTING KUBE-SEP-X rule 2"
    match: str
    action: str
    decision: Decision
    changes: tuple[FieldChange, ...]
    rule: RuleRef | NftRuleRef | None = None


@dataclass(frozen=True)
class Row:
    """One key field side by side: its value at the hop and at the next capture point, and
    which `Change` (index into `BeforeAfter.changes`) made the difference (-1: none recorded)."""

    layer: str          # layer id: ipv4, outer-ipv4, tcp, ...
    field: str
    group: str          # the header's title: "IPv4", "Outer IPv4", "Inner TCP"
    title: str          # the field's: "Destination address"
    before: str         # "" where the layer did not exist
    after: str
    by: int = -1
    owners: tuple[str, str] = ("", "")    # who owns the address before and after, if it is one

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class BeforeAfter:
    """The headers of hop `hop` and of the next capture point `after` of the same packet."""

    hop: int
    after: int | None
    rows: tuple[Row, ...]
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()       # encapsulation carried, decapsulation made here


def _short(rule: RuleRef | NftRuleRef | None, by: str) -> str:
    if rule is None:
        return by
    if isinstance(rule, NftRuleRef):
        number = "policy" if rule.handle == 0 else f"handle {rule.handle}"
        return f"{rule.family} {rule.table} {rule.hook} {rule.chain} {number}"
    number = "policy" if rule.rule == 0 else f"rule {rule.rule}"
    return f"{rule.table} {rule.hook} {rule.chain} {number}"


def changes_at(hop: Hop) -> list[Change]:
    """The decisions at `hop` that rewrote the packet, in the kernel's order."""
    return [Change(r.by, _short(r.rule, r.by), r.match, r.action, r.decision, r.changes, r.rule)
            for r in explain.rewrites(hop)]


def _decapsulation(hop: Hop) -> Decision | None:
    return next((d for d in hop.decisions if d.verdict == "decapsulate"), None)


def rewrites_packet(hop: Hop) -> bool:
    """Whether the kernel changed the packet at this hop (a rewrite or a decapsulation)."""
    return any(d.changes for d in hop.decisions) or _decapsulation(hop) is not None


def _key(layers: list[Layer]) -> dict[str, Layer]:
    return {l.id: l for l in layers if l.kind in KEY_FIELDS}


def _owner_of(changes: list[Change], layer_id: str, field: str) -> int:
    """The change that wrote `layer_id.field`: FieldChange layers name the carried packet's
    header (`ipv4`) or the tunnel's (`outer-ipv4`; VXLAN's header as `vxlan`)."""
    names = {layer_id, "vxlan"} if layer_id.endswith("vxlan") else {layer_id}
    for i, ch in enumerate(changes):
        if any(c.field == field and c.layer in names for c in ch.changes):
            return i
    return -1


def before_after(trace: Trace, hop: Hop, layers: list[list[Layer]]) -> BeforeAfter | None:
    """The key fields of `hop` and of its next capture point, side by side, each change
    attributed to the rewrite that made it; None at a hop that changes nothing. `layers`
    holds every hop's decomposition (views.headers.hop_layers), indexed like the trace."""
    if not rewrites_packet(hop):
        return None
    changes = changes_at(hop)
    decap = _decapsulation(hop)
    if decap is not None and all(ch.decision is not decap for ch in changes):
        changes.append(Change(f"{decap.function} on {hop.netns}", f"{hop.device}: {decap.function}", "",
                              "decapsulate", decap, ()))
    later = explain.after_hop(trace, hop)
    before = _key(layers[hop.index])
    after = _key(layers[later.index]) if later is not None else {}
    encap = next((i for i, ch in enumerate(changes) if ch.decision.verdict == "encapsulate"), -1)
    rows: list[Row] = []
    first, second = (after, before) if len(after) > len(before) else (before, after)
    ids = list(first) + [i for i in second if i not in first]      # the tunnelled frame's order
    tunnelled = any(i.startswith("outer-") for i in ids)
    for lid in ids:
        b, a = before.get(lid), after.get(lid)
        layer = a if a is not None else b
        assert layer is not None
        group = layer.title
        if tunnelled and layer.level == 0 and not group.startswith("Inner "):
            group = "Inner " + group
        for name in KEY_FIELDS[layer.kind]:
            if not any(f.name == name for f in layer.fields):
                continue
            old = b.value(name) if b is not None else ""
            new = a.value(name) if a is not None else ("" if later is not None else old)
            by = _owner_of(changes, lid, name)
            if by < 0 and old != new:
                if b is None and encap >= 0:
                    by = encap
                elif a is None and decap is not None:
                    by = len(changes) - 1
            owners = (trace.owner(old) or "" if old else "", trace.owner(new) or "" if new else "")
            rows.append(Row(lid, name, group, layer.field(name).title, old, new, by, owners))
    return BeforeAfter(hop.index, later.index if later is not None else None, tuple(rows), tuple(changes),
                       tuple(explain.hop_notes(trace, hop)))


def off_the_wire(ba: BeforeAfter) -> list[FieldChange]:
    """Changes to what is not a header on the wire (skb.mark)."""
    return [c for ch in ba.changes for c in ch.changes if c.layer == "skb"]


def detailed(trace: Trace, hop: Hop) -> list[str]:
    """The hop at the detailed level: every decision with what it consulted and changed
    (`netsim trace --detail detailed`), without the hop's own heading line."""
    return [line[4:] if line.startswith("    ") else line for line in explain.detailed_lines(trace, hop)[1:]]


def meanings(trace: Trace, hop: Hop, layers: list[Layer], names) -> tuple[dict[tuple[str, str], str],
                                                                         dict[str, list[tuple[str, str]]]]:
    """What each field's value is at this hop, where that says more than the header table
    (an owner, a port's side): {(layer id, field): text}; and TCP options decoded one by one:
    {layer id: [(option, text), ...]}."""
    table = {(l.id, f.name): f for l in layers for f in l.fields}
    said: dict[tuple[str, str], str] = {}
    options: dict[str, list[tuple[str, str]]] = {}
    for m in explain.field_meanings(trace, hop, layers, names):
        if m.field.startswith("options."):
            options.setdefault(m.layer, []).append((m.value, m.text))
            continue
        f = table.get((m.layer, m.field))
        if f is None:
            continue
        text = m.text[len(f.value) + 2:] if m.text.startswith(f"{f.value}: ") else m.text
        if text != f.meaning and m.field != "options":
            said[(m.layer, m.field)] = text
    return said, options


def main_drop(trace: Trace) -> Hop | None:
    """The hop where the exchange died: the first dropped hop that is not an ARP copy."""
    return next((h for h in trace.hops if h.verdict == "dropped" and h.role != "arp"), None)
