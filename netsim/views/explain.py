"""The explanation layer: what each field means at this hop, what the kernel rewrote, at three
levels of detail.

Everything here is generated from records, never from the decisions' sentences: the header tables
of `netsim.packet` (titles and meanings, TCP options decoded with `tcp_options`), the hop's
role and direction, the trace's owners (`Trace.owner`: "node2's flannel.1 (VTEP)") and each
`Decision`'s fields (subsystem, function, verdict, the RuleRef/NftRuleRef/ConntrackRef/FdbRef/
NeighbourRef it consulted, its FieldChanges). A rule shows as its match (an iptables rule's
matches, an nftables rule's match expressions) and its action (the target and its options, or
nft's statements and the set element that decided), the way ovn-trace --detailed shows a flow's
match and actions; an iptables rule is named by table, hook, chain and number, an nftables rule
by family and table, hook, chain and handle.

Where a change shows: the walk records a rewrite on the hop where the kernel had the packet in
hand (DNAT, the TTL and the new MACs on the receiving device; VXLAN's outer headers on the
VTEP's transmit hop); the rewritten headers are those of the next capture point of the same
packet (`after_hop`).

Levels (`render`): "detailed" lists every decision with what it consulted; "summary" is one
line per hop (device, direction, verdict, what changed); "minimal" lists only the changes to
the packet's IP and transport headers and the encapsulations and decapsulations, one stable
line each, for regression tests (the link layer is rewritten at every routed hop and
`skb.mark` is not on the wire: both are left to the other levels).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..decision import (ConntrackRef, Decision, FdbRef, FieldChange, NeighbourRef, NftRuleRef, RouteRef, RuleRef,
                        Subsystem, Verdict)
from ..errors import UsageError
from ..packet import TCP, TCP_OPTIONS, UDP, Ethernet, tcp_options, vxlan_of
from ..trace import Hop, Trace
from .headers import Layer, hop_layers
from .sentences import ended_text, heading, outcome_text

LEVELS = ("minimal", "summary", "detailed")


@dataclass(frozen=True)
class FieldMeaning:
    """What one field's value is at this hop: `layer` is the header view's layer id (`ipv4`,
    `outer-ipv4`, `tcp`), `field` the table's field name (TCP options: `options.mss`, ...)."""

    layer: str
    field: str
    value: str
    text: str


@dataclass(frozen=True)
class Rewrite:
    """One decision that changed the packet, as ovn-trace --detailed shows a flow: who made the
    change (`by`: a rule's table, hook, chain and number, a conntrack entry, a device), the
    rule's `match` and `action` when a rule made it, and the changes old -> new."""

    hop: int
    decision: Decision
    by: str
    match: str
    action: str
    changes: tuple[FieldChange, ...]
    rule: RuleRef | NftRuleRef | None = None

    def lines(self) -> list[str]:
        out = [self.by]
        if self.rule is not None:
            out.append(f"  match:  {self.match or '(every packet)'}")
        if self.action:
            out.append(f"  action: {self.action}")
        out += [f"  {change_text(c)}" for c in self.changes]
        return out


def change_text(c: FieldChange) -> str:
    """`ipv4.dst 192.168.50.11 -> 10.244.1.2`; a field that did not exist before (an outer
    header being added) reads `(new)`."""
    old = c.old if c.old != "" else "(new)"
    return f"{c.layer}.{c.field} {old} -> {c.new}"


# ----------------------------------------------------------------------- ports by side
_SIDES = {"request": ("client", "server"), "reply": ("server", "client")}   # (source side, destination side)


def nat_kind(rule: RuleRef | NftRuleRef) -> str:
    """DNAT, SNAT or MASQUERADE: what the rule's target (iptables) or NAT statement (nft) is,
    "" for any other rule."""
    if isinstance(rule, RuleRef):
        return rule.target if rule.target in ("DNAT", "SNAT", "MASQUERADE") else ""
    for stmt in rule.statements:
        word = stmt.split()[0]
        if word in ("dnat", "snat", "masquerade"):
            return word.upper()
    return ""


def _via_nodeport(rule: RuleRef | NftRuleRef) -> bool:
    """Whether kube-proxy reached the DNAT rule through its NodePort chains (iptables:
    KUBE-NODEPORTS; nftables: the service's external-* chain, which the service-nodeports map
    jumps to)."""
    if isinstance(rule, RuleRef):
        return "KUBE-NODEPORTS" in rule.path
    return any(chain.startswith("external-") for chain in rule.path)


def _rule_of(d: Decision) -> RuleRef | NftRuleRef | None:
    for c in d.consulted:
        if isinstance(c, (RuleRef, NftRuleRef)):
            return c
    return None


def port_names(trace: Trace) -> dict[tuple[str, int], str]:
    """What the NAT decisions of the trace say each port is: the port a DNAT rule rewrote is
    the NodePort (the rule was reached through kube-proxy's NodePort chains) or the service
    port; its new value the endpoint's port; a source port SNAT or MASQUERADE rewrote, the port
    it picked."""
    names: dict[tuple[str, int], str] = {}
    for hop in trace.hops:
        for d in hop.decisions:
            rule = _rule_of(d)
            if rule is None or not d.changes:
                continue
            kind = nat_kind(rule)
            for c in d.changes:
                if c.layer not in ("tcp", "udp") or not isinstance(c.old, int) or not isinstance(c.new, int):
                    continue
                if c.field == "dport" and kind == "DNAT":
                    names.setdefault(("server", c.old), "the NodePort" if _via_nodeport(rule) else "the service port")
                    names.setdefault(("server", c.new), "the endpoint's port (DNAT's choice)")
                elif c.field == "sport" and kind in ("SNAT", "MASQUERADE"):
                    names.setdefault(("client", c.new), f"the client's port as {kind} rewrote it")
    return names


def _port_meaning(port: int, side: str, role: str, names: dict[tuple[str, int], str]) -> str:
    what = names.get((side, port), f"the {side}'s port")
    return f"{port}: {what}, the {side} side of this {role}"


# ----------------------------------------------------------------------- field meanings
def _option_text(kind: int, values: tuple[int, ...]) -> str:
    if kind == 2 and values:
        head = f"MSS {values[0]}"
    elif kind == 3 and values:
        head = f"window scale {values[0]} (windows x{1 << values[0]})"
    elif kind == 4:
        head = "SACK permitted"
    elif kind == 8 and len(values) == 2:
        head = f"timestamps val {values[0]} ecr {values[1]}"
    else:
        spec = TCP_OPTIONS.get(kind)
        head = spec.title if spec is not None else f"option {kind}"
    spec = TCP_OPTIONS.get(kind)
    return f"{head}: {spec.meaning}" if spec is not None else head


def _transport_of(hop: Hop) -> TCP | UDP | None:
    ip = hop.inner_ip
    payload = ip.payload if ip is not None else None
    return payload if isinstance(payload, (TCP, UDP)) else None


def field_meanings(trace: Trace, hop: Hop, layers: list[Layer] | None = None,
                   names: dict[tuple[str, int], str] | None = None) -> list[FieldMeaning]:
    """Every field of the hop's frame, each with what its value is here: addresses named by
    their owner, the carried packet's ports by side (client or server, for this direction),
    TCP options one by one, other fields by their table's meaning. A caller explaining every
    hop passes the hop's `layers` (views.headers.hop_layers) and `port_names(trace)` once."""
    layers = hop_layers(hop) if layers is None else layers
    names = port_names(trace) if names is None else names
    sides = _SIDES.get(hop.role)
    out: list[FieldMeaning] = []
    for layer in layers:
        for f in layer.fields:
            text = f.meaning if f.meaning.startswith(f"{f.value}:") else f"{f.value}: {f.meaning}"
            owner = trace.owner(f.value)
            if owner is not None:
                text = f"{f.value}: {owner}"
            elif layer.kind in ("tcp", "udp") and layer.level == 0 and sides and f.name in ("sport", "dport"):
                side = sides[0] if f.name == "sport" else sides[1]
                text = _port_meaning(int(f.value), side, hop.role, names)
            if layer.kind == "tcp" and f.name == "options":
                transport = _transport_of(hop) if layer.level == 0 else None
                opts = tcp_options(transport.options) if isinstance(transport, TCP) else ()
                shown = [o for o in opts if o.kind != 1]
                out.append(FieldMeaning(layer.id, f.name, f.value, f"{len(shown)} options: {f.value}"))
                out += [FieldMeaning(layer.id, f"options.{o.name}", str(o), _option_text(o.kind, o.values))
                        for o in shown]
                continue
            out.append(FieldMeaning(layer.id, f.name, f.value, text))
    return out


# ----------------------------------------------------------------------- rewrites
def _split_rule(rule: RuleRef | NftRuleRef) -> tuple[str, str]:
    """A rule's match (its tests) and action (the target and its options, a goto keeping its
    `-g`; for nft its statements, and the set element that decided); a chain's policy matches
    every packet."""
    if isinstance(rule, NftRuleRef):
        if not rule.handle:
            return "", rule.verdict
        statements = " ".join(rule.statements)
        if rule.element:
            statements += f" (element {rule.element}" + (f" of @{rule.set_name})" if rule.set_name else ")")
        return " ".join(rule.matches), statements
    if rule.rule == 0:
        return "", rule.target
    action = rule.action
    return " ".join(rule.matches), " ".join(action[1:] if action[:1] == ("-j",) else action)


def _rule_by(rule: RuleRef | NftRuleRef) -> str:
    """table, hook, chain and rule number (iptables) or handle (nft), and the chains jumped
    through to it."""
    via = f" (via {' > '.join(rule.path)})" if len(rule.path) > 1 else ""
    if isinstance(rule, NftRuleRef):
        number = "policy" if rule.handle == 0 else f"handle {rule.handle}"
        return f"table {rule.family} {rule.table}, {rule.hook}, chain {rule.chain}, {number}{via}"
    number = "policy" if rule.rule == 0 else f"rule {rule.rule}"
    return f"table {rule.table}, {rule.hook}, chain {rule.chain}, {number}{via}"


def describe(hop: Hop, d: Decision) -> tuple[str, str, str]:
    """(by, match, action) for one decision, from what it consulted."""
    rule = _rule_of(d)
    if rule is not None:
        match, action = _split_rule(rule)
        return _rule_by(rule), match, action
    ct = d.consulted_of(ConntrackRef)
    if d.subsystem is Subsystem.NAT and ct:
        fields = {c.field for c in d.changes if c.layer == "ipv4"}
        undo = "un-SNAT (destination restored)" if "dst" in fields else "un-DNAT (source restored)"
        return (f"conntrack entry {ct[0].proto} {ct[0].original} (reply {ct[0].reply}), "
                f"{ct[0].direction} direction", "", undo)
    fdb = d.consulted_of(FdbRef)
    if d.function == "vxlan_xmit" and fdb:
        return f"{fdb[0].device} on {hop.netns}, FDB {fdb[0].mac} dst {fdb[0].dst}", "", "encapsulate in VXLAN"
    neigh = d.consulted_of(NeighbourRef)
    if neigh and any(c.layer == "ethernet" for c in d.changes):
        n = neigh[-1]
        return (f"neighbour {n.ip} lladdr {n.lladdr} {n.state} on {n.dev} ({hop.netns})", "",
                "write the link-layer header for the next hop")
    if d.function == "ip_forward":
        return f"ip_forward on {hop.netns}", "", "decrement the TTL"
    routes = d.consulted_of(RouteRef)
    if routes:
        return f"route {routes[0].route} (table {routes[0].table}) on {hop.netns}", "", d.verdict
    return f"{d.subsystem} {d.function} on {hop.netns}", "", d.verdict


def rewrites(hop: Hop) -> list[Rewrite]:
    """The decisions at `hop` that changed the packet, in the order the kernel made them."""
    out = []
    for d in hop.decisions:
        if d.changes:
            by, match, action = describe(hop, d)
            out.append(Rewrite(hop.index, d, by, match, action, d.changes, _rule_of(d)))
    return out


def after_hop(trace: Trace, hop: Hop) -> Hop | None:
    """The next capture point of the same packet: where the rewrites made at `hop` show."""
    for later in trace.hops[hop.index + 1:]:
        if later.packet_id == hop.packet_id and later.role == hop.role:
            return later
    return None


def encapsulation(hop: Hop) -> str | None:
    """What carries the packet on this hop, if it is tunnelled: outer addresses, UDP ports and
    (VXLAN) the VNI, then the carried packet."""
    if not hop.encapsulated:
        return None
    outer = hop.ip
    inner = hop.inner_ip
    if outer is None or inner is None or not isinstance(outer.payload, UDP):
        return None
    udp = outer.payload
    vx = vxlan_of(hop.frame) if isinstance(hop.frame, Ethernet) else None
    tunnel = f"VXLAN VNI {vx.vni}" if vx is not None else "flannel's udp backend (no header of its own)"
    return (f"encapsulated: outer {outer.src} > {outer.dst} ttl {outer.ttl}, UDP {udp.sport} > {udp.dport}, "
            f"{tunnel}, carrying {inner.summary()}")


def _decapsulated(hop: Hop) -> list[str]:
    """A decapsulation at `hop` (the frame there is still the tunnelled one): what came off."""
    out = []
    for d in hop.decisions:
        if d.verdict is Verdict.DECAPSULATE:
            outer = hop.ip
            vx = vxlan_of(hop.frame) if isinstance(hop.frame, Ethernet) else None
            udp = outer.payload if outer is not None else None
            if outer is not None and isinstance(udp, UDP):
                vni = f" VNI {vx.vni}" if vx is not None else ""
                out.append(f"decapsulated by {d.function}: outer {outer.src} > {outer.dst}, "
                           f"UDP {udp.sport} > {udp.dport}{vni} removed")
    return out


def _leaving(trace: Trace, hop: Hop) -> bool:
    """Whether `hop` is the first capture point where its packet is encapsulated."""
    if not hop.encapsulated:
        return False
    for earlier in reversed(trace.hops[:hop.index]):
        if earlier.packet_id == hop.packet_id and earlier.role == hop.role:
            return not earlier.encapsulated
    return True


def hop_notes(trace: Trace, hop: Hop) -> list[str]:
    """The encapsulation a hop's frame leaves with, and any decapsulation made there."""
    notes = []
    if _leaving(trace, hop):
        enc = encapsulation(hop)
        if enc:
            notes.append(enc)
    return notes + _decapsulated(hop)


# ----------------------------------------------------------------------- levels
def _head(hop: Hop) -> str:
    return f"{hop.index:3d} {hop.where} {hop.direction}"


def _on_wire(c: FieldChange) -> bool:
    return c.layer not in ("ethernet", "skb")


def minimal(trace: Trace) -> str:
    """Only the header changes, one line each: `  5 gateway/eth1 rx ipv4.ttl 64 -> 63`."""
    return "\n".join(line for hop in trace.hops for line in minimal_lines(hop))


# The subsystems whose verdict says where a frame goes next (the others look things up on the
# way: neighbours, conntrack, netfilter rules that let it pass).
_STEERING = (Subsystem.VXLAN, Subsystem.TUN, Subsystem.IP, Subsystem.BRIDGE, Subsystem.SOCKET, Subsystem.FLANNEL)


def _verdict(hop: Hop) -> str:
    """The hop's verdict (delivered, dropped), else what the device or stack did with the frame."""
    if hop.verdict:
        return hop.verdict
    for subsystem in _STEERING:
        for d in hop.decisions:
            if d.subsystem is subsystem:
                return d.verdict
    return "-"


def summary_line(trace: Trace, hop: Hop) -> str:
    """One hop in one line: where, direction, role, verdict, what changed (else the frame)."""
    changed = [change_text(c) for r in rewrites(hop) for c in r.changes]
    changed += hop_notes(trace, hop)
    what = "; ".join(changed) if changed else hop.frame.summary()
    return f"{hop.index:3d} {hop.where:<24} {hop.direction} {hop.role:<8} {_verdict(hop):<11} {what}"


def summary(trace: Trace) -> str:
    """One line per hop: where, direction, role, verdict, what changed."""
    lines = [heading(trace)] + [summary_line(trace, hop) for hop in trace.hops]
    lines.append(f"outcome: {outcome_text(trace.outcome)}")
    return "\n".join(lines)


def _consulted(hop: Hop, d: Decision) -> list[str]:
    out = []
    for c in d.consulted:
        if isinstance(c, (RuleRef, NftRuleRef)):
            match, action = _split_rule(c)
            out += [_rule_by(c), f"  match:  {match or '(every packet)'}", f"  action: {action}"]
        elif isinstance(c, RouteRef):
            out.append(f"route (table {c.table}): {c.route}")
        elif isinstance(c, NeighbourRef):
            out.append(f"neighbour {c.ip} on {c.dev}: {c.lladdr or '(none)'} {c.state}".rstrip())
        elif isinstance(c, FdbRef):
            where = f"port {c.port}" if c.port else (f"dst {c.dst}" if c.dst else "local")
            out.append(f"fdb {c.device}: {c.mac} {where}")
        elif isinstance(c, ConntrackRef):
            out.append(f"conntrack {c.proto} {c.original} / reply {c.reply} {c.state} ({c.direction})")
    return out


def detailed_lines(trace: Trace, hop: Hop) -> list[str]:
    """One hop in full: every decision, what it consulted (rules with match and action) and
    changed, then the encapsulation it leaves with or the decapsulation made there."""
    lines = [f"{_head(hop)} {hop.role} {hop.verdict}".rstrip() + f": {hop.frame.summary()}"]
    for d in hop.decisions:
        lines.append(f"    {d.subsystem} {d.function}: {d.verdict}")
        lines += [f"        {line}" for line in _consulted(hop, d)]
        lines += [f"        {change_text(c)}" for c in d.changes]
    return lines + [f"    {note}" for note in hop_notes(trace, hop)]


def minimal_lines(hop: Hop) -> list[str]:
    """One hop's changes to the packet's IP and transport headers, and any decapsulation."""
    lines = [f"{_head(hop)} {change_text(c)}" for r in rewrites(hop) for c in r.changes if _on_wire(c)]
    return lines + [f"{_head(hop)} {note}" for note in _decapsulated(hop)]


def hop_text(trace: Trace, hop: Hop, level: str = "summary") -> str:
    """One hop at one level of detail (what a stepper shows beside the hop's headers)."""
    if level == "minimal":
        return "\n".join(minimal_lines(hop))
    if level == "summary":
        return summary_line(trace, hop)
    if level == "detailed":
        return "\n".join(detailed_lines(trace, hop))
    raise UsageError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")


def detailed(trace: Trace) -> str:
    """Every decision of every hop, with what it consulted and changed."""
    lines = [heading(trace)]
    for hop in trace.hops:
        lines += detailed_lines(trace, hop)
    for e in trace.ended:
        lines.append(f"    {ended_text(e)}")
    lines.append(f"outcome: {outcome_text(trace.outcome)}")
    return "\n".join(lines)


def render(trace: Trace, level: str = "summary") -> str:
    """The trace at one level of detail: minimal, summary or detailed."""
    if level == "minimal":
        return minimal(trace)
    if level == "summary":
        return summary(trace)
    if level == "detailed":
        return detailed(trace)
    raise UsageError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
