"""Predict mode (Packet Tracer's challenge): guess the next header before it is shown.

A `Challenge` asks about one hop: its inner TTL, its destination MAC, its source address or
whether it is encapsulated. The right answer is read from the emulator's own frame at that hop;
the wrong choices are values a reader could plausibly expect (the previous hop's value, the
value before one more router, the broadcast address...).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..trace import Trace
from .args import check_hop, check_trace
from .headers import HopDiff, hop_layers, previous_hop, trace_diffs

KINDS = ("encap", "ttl", "dst_mac", "src_ip")


@dataclass(frozen=True)
class Challenge:
    hop: int
    kind: str
    question: str
    choices: tuple[str, ...]
    answer: int                 # index into choices
    explanation: str

    @property
    def correct(self) -> str:
        return self.choices[self.answer]


def _value(trace: Trace, index: int, layer_id: str, field: str) -> str | None:
    for layer in hop_layers(trace.hops[index]):
        if layer.id == layer_id:
            return layer.value(field)
    return None


def _inner(trace: Trace, index: int, kind: str, field: str) -> str | None:
    """A field of the carried packet (level 0), whatever the encapsulation."""
    return _value(trace, index, kind, field)


def _mac_names(cluster) -> dict[str, str]:
    names: dict[str, str] = {"ff:ff:ff:ff:ff:ff": "broadcast"}
    if cluster is not None:
        for ns_name, ns in cluster.network.namespaces.items():
            for dev in ns.devices.values():
                if dev.mac != "00:00:00:00:00:00":
                    names.setdefault(dev.mac, f"{ns_name}/{dev.name}")
    return names


def _choices(right: str, others: list[str]) -> tuple[tuple[str, ...], int]:
    unique = sorted({right, *[o for o in others if o]})
    return tuple(unique), unique.index(right)


def challenge(trace: Trace, index: int, kind: str, cluster=None) -> Challenge:
    """The question of `kind` about hop `index` (see KINDS)."""
    index = check_hop(check_trace(trace, cluster, "challenge"), index, "challenge")
    hop = trace.hops[index]
    prev = previous_hop(trace, index)
    where = f"hop {index} ({hop.where} {hop.direction})"
    right: str | None
    if kind == "encap":
        yes = "yes: inside an outer Ethernet/IP/UDP header"
        no = "no: the frame carries the packet directly"
        right = yes if hop.encapsulated else no
        return Challenge(index, kind, f"At {where}, is the packet encapsulated?", (yes, no),
                         0 if right == yes else 1,
                         "A tunnel device's lower side (eth0 under flannel.1) carries the packet inside "
                         "UDP; on the tunnel device itself the packet is bare." if hop.encapsulated else
                         "Encapsulation exists only between the two nodes' eth0s (and the switch).")
    if kind == "ttl":
        right = _inner(trace, index, "ipv4", "ttl")
        before = _inner(trace, prev.index, "ipv4", "ttl") if prev else "64"
        if right is None or before is None:
            raise UsageError(f"hop {index} carries no IPv4 packet")
        b = int(before)
        choices, answer = _choices(right, [str(b), str(b - 1), str(b - 2), "64"])
        return Challenge(index, kind, f"What is the IP TTL of the packet at {where}? It was {before} at the "
                         f"previous hop.", choices, answer,
                         "Only IP forwarding decrements the TTL; bridges, veths and VXLAN leave it alone.")
    if kind == "dst_mac":
        right = _value(trace, index, "ethernet", "dst")
        if right is None:
            raise UsageError(f"hop {index} has no Ethernet header")
        names = _mac_names(cluster)
        before = _value(trace, prev.index, "ethernet", "dst") if prev else None
        src = _value(trace, prev.index, "ethernet", "src") if prev else None
        choices, answer = _choices(right, [before or "", src or "", "ff:ff:ff:ff:ff:ff"])
        labelled = tuple(f"{c} ({names[c]})" if c in names else c for c in choices)
        return Challenge(index, kind, f"What is the (inner) destination MAC at {where}?", labelled, answer,
                         "A routed hop rewrites both MACs: the new destination is the next hop's "
                         "MAC from the neighbour table; a bridge keeps them.")
    if kind == "src_ip":
        right = _inner(trace, index, "ipv4", "src")
        before = _inner(trace, prev.index, "ipv4", "src") if prev else None
        if right is None:
            raise UsageError(f"hop {index} carries no IPv4 packet")
        dst = _inner(trace, index, "ipv4", "dst")
        choices, answer = _choices(right, [before or "", dst or ""])
        return Challenge(index, kind, f"What is the packet's source address at {where}?", choices, answer,
                         "MASQUERADE (SNAT) in POSTROUTING replaces the source with the address of the "
                         "egress device; without NAT the source never changes.")
    raise UsageError(f"unknown challenge kind {kind!r}; kinds are {', '.join(KINDS)}")


def _first(diffs: list[HopDiff], trace: Trace, test) -> int | None:
    for d in diffs:
        hop = trace.hops[d.index]
        if hop.role not in ("arp",) and d.previous is not None and test(d):
            return d.index
    return None


def auto_challenges(trace: Trace, cluster=None) -> list[Challenge]:
    """One question per kind, at the first hop where that thing changes (if it ever does)."""
    diffs = trace_diffs(trace)
    picks = [
        ("encap", _first(diffs, trace, lambda d: any(a.startswith("outer-") for a in d.added))),
        ("ttl", _first(diffs, trace, lambda d: "ipv4.ttl" in d.changed)),
        ("dst_mac", _first(diffs, trace, lambda d: "ethernet.dst" in d.changed)),
        ("src_ip", _first(diffs, trace, lambda d: "ipv4.src" in d.changed)),
    ]
    out: dict[int, Challenge] = {}
    for kind, index in picks:
        if index is not None and index not in out:
            out[index] = challenge(trace, index, kind, cluster)
    if not out:      # nothing changes (a bridged or loopback path): ask whether the TTL did
        last = [h.index for h in trace.hops if h.role == "request" and h.verdict == "delivered"]
        if last and trace.hops[last[0]].inner_ip is not None and previous_hop(trace, last[0]) is not None:
            out[last[0]] = challenge(trace, last[0], "ttl", cluster)
    return [out[i] for i in sorted(out)]


def best_challenge(trace: Trace, index: int, cluster=None) -> Challenge:
    """The most telling question for a hop the author chose."""
    index = check_hop(check_trace(trace, cluster, "best_challenge"), index, "best_challenge")
    d = trace_diffs(trace)[index]
    if any(a.startswith("outer-") for a in d.added) or d.removed:
        return challenge(trace, index, "encap", cluster)
    if "ipv4.src" in d.changed:
        return challenge(trace, index, "src_ip", cluster)
    if "ethernet.dst" in d.changed:
        return challenge(trace, index, "dst_mac", cluster)
    if trace.hops[index].inner_ip is not None:
        return challenge(trace, index, "ttl", cluster)
    return challenge(trace, index, "encap", cluster)


def gate(challenges: list[Challenge], answered, start: int = 0) -> float:
    """The first hop from `start` on whose question is still unanswered (infinity if none).

    Nothing from that hop on may show its answer: the stepper hides the hop list's rows
    after it, that row's summary, the diagram's path beyond it and the hop's headers."""
    open_ = [c.hop for c in challenges if c.hop >= start and c.hop not in answered]
    return float(min(open_)) if open_ else float("inf")
