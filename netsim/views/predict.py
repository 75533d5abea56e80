"""Predict mode (Packet Tracer's challenge): questions drawn from the kernel's decisions.

A `Challenge` is asked at one hop, the hop where the kernel takes the decision the question is
about, and before that hop's panel is shown: which device the packet goes to next, which chain
holds the rule that rewrites (or drops) it, the outer destination a tunnel puts on it, whether
it is encapsulated, the TTL, MAC, source address or source port a rewrite gives it, where the
exchange dies and what the client then sees. The right answer is read from the records (the
decision's RouteRef, RuleRef, FdbRef and FieldChanges, the next capture point's headers, the
trace's Outcome); the wrong choices are values a reader could plausibly expect. The feedback
quotes the decision that makes the answer right (`Challenge.quote`).

Nothing shown before a question may give its answer away: the stepper hides that hop's panel,
every later hop and the exchange's outcome until the question is answered (`gate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..decision import Decision, FdbRef, Outcome, RouteRef, RuleRef
from ..errors import UsageError
from ..programs.socket_errors import STRERROR
from ..trace import Hop, Trace
from . import explain
from .args import check_hop, check_trace
from .headers import hop_layers
from .hopinfo import main_drop
from .sentences import outcome_text, sentence

KINDS = ("encap", "ttl", "dst_mac", "src_ip", "next_device", "rule", "outer_dst", "drop", "errno", "masq_sport")


@dataclass(frozen=True)
class Challenge:
    """One question, asked at hop `hop`. `quote` is the decision (or outcome) that makes the
    answer right, as the feedback quotes it; `about` the hop whose headers show the answer."""

    hop: int
    kind: str
    question: str
    choices: tuple[str, ...]
    answer: int                 # index into choices
    explanation: str
    quote: str = ""
    about: int | None = None

    @property
    def correct(self) -> str:
        return self.choices[self.answer]

    @property
    def why(self) -> str:
        """The explanation and the quoted decision: what follows the verdict in the feedback."""
        return self.explanation + (f" {self.quote}" if self.quote else "")

    def feedback(self, chosen: int | None) -> str:
        """What the reader reads after choosing (`None`: skipped)."""
        head = ("Right. " if chosen == self.answer else
                f"Skipped: the answer is {self.correct}. " if chosen is None else
                f"Not quite: the answer is {self.correct}. ")
        return head + self.why


# ----------------------------------------------------------------------- helpers
def _value(hop: Hop, layer_id: str, field: str) -> str | None:
    for layer in hop_layers(hop):
        if layer.id == layer_id:
            return layer.value(field)
    return None


def _choices(right: str, others: list[str], most: int = 5) -> tuple[tuple[str, ...], int]:
    """The right answer among up to `most` - 1 distinct others, in sorted order."""
    seen = [o for o in dict.fromkeys(others) if o and o != right][:most - 1]
    unique = sorted({right, *seen})
    return tuple(unique), unique.index(right)


def _quote(hop: Hop, decisions: list[Decision]) -> str:
    said = "; ".join(sentence(d) for d in decisions)
    return f"Hop {hop.index} ({hop.where} {hop.direction}): «{said}»" if said else ""


def _after(trace: Trace, hop: Hop) -> Hop | None:
    return explain.after_hop(trace, hop)


def _first_request(trace: Trace, role: str = "request") -> Hop | None:
    return next((h for h in trace.hops if h.role == role), None)


def _mac_names(cluster) -> dict[str, str]:
    names: dict[str, str] = {"ff:ff:ff:ff:ff:ff": "broadcast"}
    if cluster is not None:
        for ns_name, ns in cluster.network.namespaces.items():
            for dev in ns.devices.values():
                if dev.mac != "00:00:00:00:00:00":
                    names.setdefault(dev.mac, f"{ns_name}/{dev.name}")
    return names


def _devices(trace: Trace, cluster, netns: str) -> list[str]:
    """Devices of a namespace, the well-known ones first (from the cluster, else the trace)."""
    names: list[str] = []
    if cluster is not None and netns in cluster.network.namespaces:
        names = list(cluster.network.namespaces[netns].devices)
    names += [h.device for h in trace.hops if h.netns == netns]
    known = ("eth0", "cni0", "flannel.1", "flannel0", "lo")
    ordered = [n for n in known if n in names] + sorted(n for n in set(names) if n not in known)
    return list(dict.fromkeys(ordered))


def _owned_by(trace: Trace, netns: str) -> list[str]:
    """The IPv4 addresses of a namespace's devices, as the trace's owners name them."""
    return sorted(a for a, o in (trace.owners or {}).items()
                  if a.count(".") == 3 and (o.startswith(f"{netns}'s ") or o.endswith(f" on {netns}")))


def _steering(hop: Hop) -> list[Decision]:
    """The decisions at a hop that chose where the frame goes next: a route lookup, a bridge's
    FDB lookup, a tunnel's encapsulation."""
    return [d for d in hop.decisions
            if (d.consulted_of(RouteRef) and d.verdict in ("forward", "output"))
            or d.function in ("br_forward", "br_dev_xmit", "br_pass_frame_up")]


def _nat_rule(hop: Hop, targets: tuple[str, ...]) -> tuple[Decision, RuleRef] | None:
    for d in hop.decisions:
        for r in d.consulted_of(RuleRef):
            if r.target in targets:
                return d, r
    return None


def _encapsulating(hop: Hop) -> Decision | None:
    return next((d for d in hop.decisions if d.verdict == "encapsulate"), None)


# ----------------------------------------------------------------------- the kinds
def _ask_encap(trace: Trace, hop: Hop, cluster) -> Challenge:
    yes = "yes: inside an outer Ethernet/IP/UDP header"
    no = "no: the frame carries the packet directly"
    later = [h for h in trace.hops[hop.index + 1:] if h.packet_id == hop.packet_id and h.role == hop.role]
    enc_hop = next((h for h in [hop, *later] if _encapsulating(h) is not None), None)
    tunnelled = enc_hop is not None and enc_hop.netns == hop.netns
    if tunnelled:
        assert enc_hop is not None
        quote = _quote(enc_hop, [d for d in enc_hop.decisions if d.verdict == "encapsulate"])
        why = ("The route sends the packet to a tunnel device, whose transmit function wraps it in UDP "
               "addressed to the other node's underlay IP; only the nodes' eth0s and the switch see the outer header.")
    else:
        quote = _quote(hop, [d for d in _steering(hop)])
        why = ("The route sends the packet out of an ordinary device: no tunnel is involved, so the frame "
               "that leaves carries the packet itself, with only its MACs rewritten.")
    where = f"{hop.netns}'s route lookup at hop {hop.index}"
    return Challenge(hop.index, "encap", f"After {where}, will the packet leave {hop.netns} encapsulated?",
                     (yes, no), 0 if tunnelled else 1, why, quote, enc_hop.index if enc_hop else None)


def _ask_ttl(trace: Trace, hop: Hop, cluster) -> Challenge:
    after = _after(trace, hop)
    d = next((d for d in hop.decisions if d.change("ipv4", "ttl") is not None), None)
    now = _value(hop, "ipv4", "ttl")
    if after is None or now is None:
        raise UsageError(f"hop {hop.index} carries no IPv4 packet that is seen again")
    right = _value(after, "ipv4", "ttl") or now
    n = int(now)
    choices, answer = _choices(right, [str(n), str(n - 1), str(n - 2), "64"])
    if d is not None:
        quote = _quote(hop, [d])
    else:       # nothing here touched the TTL: quote what moved the packet (a bridge's FDB lookup)
        moved = next((h for h in reversed(trace.hops[:hop.index + 1]) if h.packet_id == hop.packet_id
                      and h.role == hop.role and _steering(h)), hop)
        quote = _quote(moved, _steering(moved))
    return Challenge(hop.index, "ttl", f"The packet has TTL {now} at hop {hop.index} ({hop.where} {hop.direction}). "
                     f"What is its TTL at the next capture point?", choices, answer,
                     "Only IP forwarding decrements the TTL; bridges, veths and VXLAN leave it alone.", quote,
                     after.index)


def _ask_dst_mac(trace: Trace, hop: Hop, cluster) -> Challenge:
    after = _after(trace, hop)
    if after is None or not isinstance(_value(after, "ethernet", "dst"), str):
        raise UsageError(f"hop {hop.index} has no Ethernet frame seen again")
    right = _value(after, "ethernet", "dst") or ""
    names = _mac_names(cluster)
    now_dst, now_src = _value(hop, "ethernet", "dst") or "", _value(hop, "ethernet", "src") or ""
    choices, answer = _choices(right, [now_dst, now_src, "ff:ff:ff:ff:ff:ff"])
    labelled = tuple(f"{c} ({names[c]})" if c in names else c for c in choices)
    d = [d for d in hop.decisions if d.change("ethernet", "dst") is not None or d.function.startswith("br_")]
    d = d or [d for d in hop.decisions if d.subsystem == "neighbour" and d.verdict in ("send", "resolved")]
    return Challenge(hop.index, "dst_mac", f"What is the (inner) destination MAC after hop {hop.index} "
                     f"({hop.where} {hop.direction})?", labelled, answer,
                     "A routed hop rewrites both MACs: the new destination is the next hop's MAC from the "
                     "neighbour table; a bridge keeps them.", _quote(hop, d[:1] or _steering(hop)), after.index)


def _origin(hop: Hop) -> bool:
    return any(d.function == "connect" or (d.subsystem == "socket" and d.verdict == "send") for d in hop.decisions)


def _ask_src_ip(trace: Trace, hop: Hop, cluster) -> Challenge:
    """At the hop where a socket sends: the source its route lookup picks; elsewhere: the
    source after this hop's rewrites."""
    origin = _origin(hop)
    about = hop if origin else _after(trace, hop)
    now = _value(hop, "ipv4", "src")
    if about is None or now is None:
        raise UsageError(f"hop {hop.index} carries no IPv4 packet that is seen again")
    right = _value(about, "ipv4", "src") or now
    dst = _value(hop, "ipv4", "dst") or ""
    ips = [a for a in (trace.owners or {}) if a.count(".") == 3 and a not in (right, dst)]
    mine = [a for a in _owned_by(trace, hop.netns) if a in ips]
    nodes = sorted(a for a in ips if (trace.owner(a) or "").endswith("'s eth0"))
    if origin:
        d = [d for d in hop.decisions if d.consulted_of(RouteRef)][:1]
        via = [r.via for dd in d for r in dd.consulted_of(RouteRef) if r.via]
        mine = [*via, *mine]
        question = (f"At hop {hop.index} a socket in {hop.netns} sends to {dst}. Which source address does "
                    f"the packet carry?")
        why = ("An unbound socket takes the source the route lookup gives it: the preferred source (src) of "
               "the route to the destination, the address of the device the packet leaves through.")
        choices, answer = _choices(right, [*mine, *(nodes[:1] if len(mine) < 2 else [])])
    else:
        d = [d for d in hop.decisions if d.change("ipv4", "src") is not None] or _steering(hop)
        question = f"What source address will the packet carry after hop {hop.index} ({hop.where} {hop.direction})?"
        why = ("MASQUERADE (SNAT) in POSTROUTING replaces the source with the address of the egress device; "
               "without NAT the source never changes.")
        choices, answer = _choices(right, [now, dst, *mine[:1], *nodes[:2]])
    return Challenge(hop.index, "src_ip", question, choices, answer, why, _quote(hop, d), about.index)


def _ask_next_device(trace: Trace, hop: Hop, cluster) -> Challenge:
    after = _after(trace, hop)
    if after is None:
        raise UsageError(f"hop {hop.index}: its packet is not seen again, so it has no next device")
    right = after.where
    others = [f"{after.netns}/{d}" for d in _devices(trace, cluster, after.netns)]
    if after.netns != hop.netns:
        others = [f"{hop.netns}/{d}" for d in _devices(trace, cluster, hop.netns)] + others
    others = [o for o in others if o != hop.where and not o.endswith("/lo")]
    choices, answer = _choices(right, others[:6], most=4)
    if len(choices) < 2:
        raise UsageError(f"hop {hop.index}: {after.netns} has no other device to choose from")
    return Challenge(hop.index, "next_device", f"At hop {hop.index} the packet is on {hop.where} ({hop.direction}). "
                     f"On which device is it captured next?", choices, answer,
                     "The route lookup (or, inside a bridge, the FDB lookup) picks the device the packet "
                     "leaves through.", _quote(hop, _steering(hop)), after.index)


def _ask_rule(trace: Trace, hop: Hop, cluster) -> Challenge:
    found = _nat_rule(hop, ("DNAT", "SNAT", "MASQUERADE", "DROP", "REJECT"))
    if found is None:
        raise UsageError(f"hop {hop.index}: no rule rewrote or dropped the packet there")
    d, rule = found
    seen = [c for dd in hop.decisions for r in dd.consulted_of(RuleRef)
            if r.table == rule.table and r.hook == rule.hook for c in (r.chain, *r.path)]
    others = [c for c in dict.fromkeys([*rule.path, *seen]) if c != rule.chain]
    if len(others) < 3 and cluster is not None:     # the table's other chains, as iptables -S lists them
        try:
            chains = cluster.netns(hop.netns).netfilter.chains(rule.table)
        except (KeyError, ValueError, AttributeError):
            chains = []
        others += [c for c in chains if c not in others and c != rule.chain and c.upper() == c
                   and c not in ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING")]
    choices, answer = _choices(rule.chain, others, most=5)
    verb = {"DNAT": "DNATs", "SNAT": "SNATs", "MASQUERADE": "masquerades", "DROP": "drops", "REJECT": "rejects"}
    return Challenge(hop.index, "rule", f"At hop {hop.index} ({hop.where} {hop.direction}) the packet goes through "
                     f"the {rule.table} table's {rule.hook} chains. Which chain holds the rule that "
                     f"{verb[rule.target]} it?", choices, answer,
                     f"ipt_do_table walks {rule.hook} rule by rule and follows each jump; the first "
                     f"terminal target decides ({rule.table} {rule.hook} {rule.chain} rule {rule.rule}).",
                     _quote(hop, [d]), hop.index)


def _ask_outer_dst(trace: Trace, hop: Hop, cluster) -> Challenge:
    enc = _encapsulating(hop)
    after = _after(trace, hop)
    right = _value(after, "outer-ipv4", "dst") if after is not None else None
    if enc is None or right is None:
        raise UsageError(f"hop {hop.index}: the packet is not encapsulated there")
    inner_dst = _value(hop, "ipv4", "dst") or ""
    nodes = [a for a in (trace.owners or {}) if (trace.owner(a) or "").endswith("'s eth0") and a.count(".") == 3
             and a != right]
    vtep = [r.dst for r in enc.consulted_of(FdbRef)]
    choices, answer = _choices(right, [inner_dst, *sorted(nodes)[:2], *vtep])
    return Challenge(hop.index, "outer_dst", f"At hop {hop.index} {hop.where} wraps the packet for the trip to "
                     f"the other node. What is the outer destination IP?", choices, answer,
                     "The tunnel addresses the outer header to the other node's underlay IP (VXLAN: from "
                     "the FDB entry of the destination VTEP MAC; the udp backend: from flanneld's lease).",
                     _quote(hop, [enc]), after.index if after else None)


def _ask_masq_sport(trace: Trace, hop: Hop, cluster) -> Challenge:
    d = next((d for d in hop.decisions if any(r.target in ("MASQUERADE", "SNAT") for r in d.consulted_of(RuleRef))
              and (d.change("tcp", "sport") or d.change("udp", "sport"))), None)
    if d is None:
        raise UsageError(f"hop {hop.index}: no MASQUERADE or SNAT rewrote a source port there")
    c = d.change("tcp", "sport") or d.change("udp", "sport")
    assert c is not None
    dport = _value(hop, c.layer, "dport") or ""
    choices, answer = _choices(f"{c.new}", [f"{c.old}", dport, "1024"])
    return Challenge(hop.index, "masq_sport", f"At hop {hop.index} the packet's source port is {c.old}. "
                     f"What is it after {hop.netns}'s POSTROUTING?", choices, answer,
                     "MASQUERADE (with --random-fully) picks a new source port for the translated "
                     "connection; conntrack remembers it and restores the old one on replies.",
                     _quote(hop, [d]), hop.index)


def _ask_drop(trace: Trace, hop: Hop, cluster) -> Challenge:
    drop = main_drop(trace)
    if drop is None:
        raise UsageError("the trace has no drop to ask about")
    right = f"{drop.where} ({drop.direction})"
    others = [f"{h.where} ({h.direction})" for h in trace.hops
              if h.role != "arp" and h.index < drop.index and h.index >= hop.index]
    dst = _value(hop, "ipv4", "dst")
    owner = trace.owner(dst) if dst else None
    suffix = "'s eth0"
    if owner and owner.endswith(suffix):
        others.insert(0, f"{owner[:-len(suffix)]}/eth0 (rx)")
    pick = others[:1] + others[-2:] + others[1:-2]
    if len(set(pick) - {right}) < 3:      # a packet that died early: the devices it never reached
        pick += [f"{h.where} ({h.direction})" for h in trace.hops if h.direction == "rx" and h.netns != hop.netns]
    choices, answer = _choices(right, pick, most=4)
    assert drop.reason is not None
    rules = [d for d in drop.decisions if d is not drop.reason and _nat_rule(drop, ("DROP", "REJECT")) is not None
             and any(r.target in ("DROP", "REJECT") for r in d.consulted_of(RuleRef))]
    what = "answer" if hop.role == "reply" else "packet"
    return Challenge(hop.index, "drop", f"The {what} leaves {hop.where} at hop {hop.index}. Where does it die?",
                     choices, answer, "A drop is the decision of one kernel function at one capture point.",
                     _quote(drop, [*rules, drop.reason]), drop.index)


_STRERROR = {name: STRERROR[name] for name in ("ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "EMSGSIZE")}


def _ask_errno(trace: Trace, hop: Hop, cluster) -> Challenge:
    outcome = trace.outcome
    if not isinstance(outcome, Outcome):
        raise UsageError(f"trace {trace.title!r} has no outcome to ask the errno of: a tool's or a program's walk "
                         f"holds several exchanges, each socket with its own errors (ask it of one exchange, "
                         f"Cluster.send)")
    code = getattr(outcome, "errno", "")
    ok = getattr(outcome, "ok", not code)
    label = {name: f"{name} ({text})" for name, text in _STRERROR.items()}
    success = "no error: the answer arrives"
    right = success if ok else label.get(code, code)
    others = [success, label["ETIMEDOUT"], label["EHOSTUNREACH"], label["ECONNREFUSED"], label["ENETUNREACH"]]
    choices, answer = _choices(right, others, most=4)
    drop = main_drop(trace)
    cause = [h for h in trace.hops if any(d.function == "icmp_send" for d in h.decisions)]
    if cause:
        quote = _quote(cause[0], [d for d in cause[0].decisions if d.function == "icmp_send"])
    elif drop is not None and drop.reason is not None:
        quote = _quote(drop, [drop.reason])
    else:
        quote = ""
    quote = f"Outcome: «{outcome_text(outcome)}». {quote}".strip()
    first = _first_request(trace)
    sender = f"{first.netns} sends to {first.inner_ip.dst}" if first is not None and first.inner_ip else "The client sends"
    return Challenge(hop.index, "errno", f"{sender}. What does the application there get back?", choices, answer,
                     "A silent drop leaves the sender waiting until it gives up (ETIMEDOUT); an ICMP error "
                     "turns into an errno (host unreachable: EHOSTUNREACH); a reset into ECONNREFUSED.",
                     quote, drop.index if drop is not None else None)


ASK: dict[str, Callable[[Trace, Hop, object], Challenge]] = {
    "encap": _ask_encap, "ttl": _ask_ttl, "dst_mac": _ask_dst_mac, "src_ip": _ask_src_ip,
    "next_device": _ask_next_device, "rule": _ask_rule, "outer_dst": _ask_outer_dst, "drop": _ask_drop,
    "errno": _ask_errno, "masq_sport": _ask_masq_sport,
}


def challenge(trace: Trace, index: int, kind: str, cluster=None) -> Challenge:
    """The question of `kind` asked at hop `index` (see KINDS), about what the kernel decides there."""
    index = check_hop(check_trace(trace, cluster, "challenge"), index, "challenge")
    if kind not in ASK:
        raise UsageError(f"unknown challenge kind {kind!r}; kinds are {', '.join(KINDS)}")
    return ASK[kind](trace, trace.hops[index], cluster)


# ----------------------------------------------------------------------- where each kind is asked
def _forwarding_hops(trace: Trace) -> list[Hop]:
    return [h for h in trace.hops if h.role not in ("arp",) and any(
        d.consulted_of(RouteRef) and d.verdict == "forward" for d in h.decisions)]


def find_hop(trace: Trace, kind: str, cluster=None, start: int = 0) -> int | None:
    """The natural hop, from hop `start` on, to ask a question of `kind` at, if the trace has one."""
    if kind not in ASK:
        raise UsageError(f"unknown challenge kind {kind!r}; kinds are {', '.join(KINDS)}")
    hops = [h for h in trace.hops if h.role != "arp" and h.index >= start]

    def first(test) -> int | None:
        return next((h.index for h in hops if test(h)), None)

    if kind == "rule":
        return first(lambda h: _nat_rule(h, ("DNAT", "SNAT", "MASQUERADE", "DROP", "REJECT")) is not None)
    if kind == "masq_sport":
        return first(lambda h: any(any(r.target in ("MASQUERADE", "SNAT") for r in d.consulted_of(RuleRef))
                                   and (d.change("tcp", "sport") or d.change("udp", "sport")) for d in h.decisions))
    if kind == "outer_dst":
        return first(lambda h: _encapsulating(h) is not None and _after(trace, h) is not None)
    if kind == "next_device":
        def moves(h: Hop) -> bool:
            a = _after(trace, h)
            if not (_steering(h) and a is not None and a.netns == h.netns and a.where != h.where):
                return False
            try:
                return len(_ask_next_device(trace, h, cluster).choices) > 1
            except UsageError:
                return False
        routed = first(lambda h: moves(h) and any(d.consulted_of(RouteRef) and d.verdict == "forward"
                                                  for d in h.decisions))
        return routed if routed is not None else first(moves)
    if kind == "encap":
        fw = [h for h in _forwarding_hops(trace) if h.index >= start]
        tunnel = [h for h in fw if (a := _after(trace, h)) is not None and a.device_kind in ("vxlan", "tun")]
        nodes = set(getattr(cluster, "nodes", {}) or {h.netns for h in trace.hops if h.device == "cni0"})
        on_node = [h for h in fw if h.netns in nodes]
        pick = (tunnel or on_node or fw)[:1]
        return pick[0].index if pick else None
    if kind == "src_ip":
        nat = first(lambda h: any(d.change("ipv4", "src") is not None for d in h.decisions)
                    and _after(trace, h) is not None)
        if nat is not None:
            return nat

        # a sender with one address has no choice to make
        return first(lambda h: _origin(h) and h.role == "request" and len(_owned_by(trace, h.netns)) > 1)
    if kind in ("drop", "errno"):
        drop = main_drop(trace)
        if kind == "drop" and drop is None:
            return None
        if kind == "errno":
            # only an exchange has an outcome to ask about: a tool's or a program's walk (several
            # exchanges, each socket with its own errors; Network.run) has none
            if not isinstance(trace.outcome, Outcome):
                return None
            return start if start < len(trace.hops) else None
        assert drop is not None
        sent = next((h.index for h in hops if h.role == drop.role), None)
        return sent if sent is not None and sent <= drop.index else None
    field = {"ttl": ("ipv4", "ttl"), "dst_mac": ("ethernet", "dst")}[kind]
    changed = first(lambda h: any(d.change(*field) is not None for d in h.decisions) and _after(trace, h) is not None)
    if changed is None and kind == "ttl":       # a bridged path: does the bridge touch the TTL?
        return first(lambda h: any(d.function == "br_forward" for d in h.decisions) and _after(trace, h) is not None
                     and h.inner_ip is not None)
    return changed


def challenges(trace: Trace, kinds: list[str], cluster=None, in_order: bool = False) -> list[Challenge]:
    """One question per kind at its natural hop, in hop order; kinds the trace gives no hop
    for, or whose hop already has a question, are left out. `in_order`: each kind is looked
    for after the hop of the question before it (ask "ttl" after "outer_dst": the TTL on the
    far side of the tunnel)."""
    out: dict[int, Challenge] = {}
    start = 0
    for kind in kinds:
        index = find_hop(trace, kind, cluster, start)
        if index is not None and index not in out:
            out[index] = challenge(trace, index, kind, cluster)
            start = index + 1 if in_order else 0
    return [out[i] for i in sorted(out)]


AUTO = ("drop", "rule", "next_device", "outer_dst", "masq_sport", "ttl", "src_ip", "dst_mac")


def auto_challenges(trace: Trace, cluster=None, most: int = 4) -> list[Challenge]:
    """Up to `most` questions, the most telling decisions of the trace first."""
    picked = challenges(trace, list(AUTO), cluster)
    order = {k: i for i, k in enumerate(AUTO)}
    keep = sorted(picked, key=lambda c: order[c.kind])[:most]
    return sorted(keep, key=lambda c: c.hop)


def best_challenge(trace: Trace, index: int, cluster=None) -> Challenge:
    """The most telling question for a hop the author chose."""
    index = check_hop(check_trace(trace, cluster, "best_challenge"), index, "best_challenge")
    hop = trace.hops[index]
    for kind in ("rule", "outer_dst", "masq_sport", "next_device", "ttl", "dst_mac"):
        try:
            return ASK[kind](trace, hop, cluster)
        except UsageError:
            continue
    return ASK["encap"](trace, hop, cluster)


def gate(challenges: list[Challenge], answered, start: int = 0) -> float:
    """The first hop from `start` on whose question is still unanswered (infinity if none).

    Nothing from that hop on may show its answer: the stepper leaves the hop list's rows after
    it out of the page, hides that row's summary, the diagram's path beyond it, the hop's
    panel and the exchange's outcome."""
    open_ = [c.hop for c in challenges if c.hop >= start and c.hop not in answered]
    return float(min(open_)) if open_ else float("inf")
