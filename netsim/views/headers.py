"""Header fields as tables, a frame's layers, and what changed between two hops.

Each header is described once, in the core (`netsim.packet`: one `Header` table per header,
dpkt's way); `spec_of` reads a table into the view's `HeaderSpec`, whose `Field`s carry byte
offset, width, an optional bit slice, a formatter name and one sentence of meaning.
`decompose` walks the bytes on the wire with those tables and a dispatch table (`NEXT`:
EtherType -> ARP/IPv4, IP protocol -> ICMP/TCP/UDP, UDP port 8472/4789 -> VXLAN, 8285 ->
flannel's udp backend), so every byte of a frame is attributed to one field of one layer.
`diff` compares two decompositions layer by layer, aligning the carried packet (level 0) of an
encapsulated frame with the plain frame it was before encapsulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Callable

from .. import packet as P
from ..packet import Header, tcp_flags_text, tcp_options
from ..trace import Hop, Trace


@dataclass(frozen=True)
class Field:
    """One header field as the view reads it: `size` bytes at `offset` (-1: to the end of the
    header); `bits=(shift, width)` picks a bit slice of those bytes read as one big-endian
    number. Derived from the core's tables (`netsim.packet.Header`), never written here."""

    name: str
    title: str
    offset: int
    size: int
    fmt: str
    meaning: str
    bits: tuple[int, int] | None = None


@dataclass(frozen=True)
class HeaderSpec:
    kind: str
    title: str
    length: int | Callable[[bytes], int]       # header length, fixed or read from the header
    fields: tuple[Field, ...]
    next_on: tuple[str, ...] = ()              # fields whose value selects the next header

    def header_length(self, raw: bytes) -> int:
        return self.length if isinstance(self.length, int) else self.length(raw)


def spec_of(header: Header, next_on: tuple[str, ...] = ()) -> HeaderSpec:
    """The view's table for a core header table: the same fields, offsets and bit slices."""
    fields = tuple(Field(s.name, s.field.title, s.offset, s.size, s.field.show, s.field.meaning, s.bits)
                   for s in header.slots)
    length: int | Callable[[bytes], int] = header.size if header.length_from is None else header.length
    return HeaderSpec(header.kind, header.title, length, fields, next_on)


_ETHERTYPES = {0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6"}
_PROTOS = {1: "ICMP", 6: "TCP", 17: "UDP"}
_ICMP_TYPES = {0: "echo reply", 3: "destination unreachable", 8: "echo request", 11: "time exceeded"}
_ARP_OPS = {1: "request", 2: "reply"}


def _int(raw: bytes, v: int) -> str:
    return str(v)


def _tcp_options(raw: bytes, v: int) -> str:
    """tcpdump's words for each option: `mss 1410, sackOK, TS val 1 ecr 0, nop, wscale 10`."""
    return ", ".join(str(o) for o in tcp_options(raw)) or "none"


FORMATS: dict[str, Callable[[bytes, int], str]] = {
    "int": _int,
    "hex": lambda raw, v: f"0x{v:0{max(2, len(raw) * 2)}x}",
    "hex1": lambda raw, v: f"0x{v:x}",
    "mac": lambda raw, v: ":".join(f"{b:02x}" for b in raw),
    "ipv4": lambda raw, v: str(IPv4Address(raw)),
    "ethertype": lambda raw, v: f"0x{v:04x} ({_ETHERTYPES.get(v, 'unknown')})",
    "proto": lambda raw, v: f"{v} ({_PROTOS.get(v, 'other')})",
    "icmp_type": lambda raw, v: f"{v} ({_ICMP_TYPES.get(v, 'other')})",
    "arp_op": lambda raw, v: f"{v} ({_ARP_OPS.get(v, 'other')})",
    "flag": lambda raw, v: "set" if v else "not set",
    "words": lambda raw, v: f"{v} ({v * 4} bytes)",
    "frag": lambda raw, v: f"{v} ({v * 8} bytes)",
    "tcp_flags": lambda raw, v: f"0x{v:03x} [{tcp_flags_text(v & 0xFF) or '.'}]",
    "tcp_options": _tcp_options,
    "bytes": lambda raw, v: f"{len(raw)} bytes" + (f": {raw.hex()}" if 0 < len(raw) <= 16 else ""),
}

ETHERNET = spec_of(P.ETHERNET_HEADER, next_on=("type",))
ARP = spec_of(P.ARP_HEADER)
IPV4 = spec_of(P.IPV4_HEADER, next_on=("proto",))
ICMP_ECHO = spec_of(P.ICMP_ECHO_HEADER)
ICMP_OTHER = spec_of(P.ICMP_HEADER)
TCP = spec_of(P.TCP_HEADER)
UDP = spec_of(P.UDP_HEADER, next_on=("dport", "sport"))
VXLAN = spec_of(P.VXLAN_HEADER)
DATA = HeaderSpec("data", "Payload", lambda raw: len(raw), (
    Field("data", "Data", 0, -1, "bytes", "Application bytes (or ICMP echo data)."),
))

SPECS: dict[str, HeaderSpec] = {s.kind: s for s in (ETHERNET, ARP, IPV4, TCP, UDP, VXLAN, DATA)}

# (header kind, selecting value) -> (next header kind, whether the next header starts a carried packet)
NEXT: dict[tuple[str, int], tuple[str, bool]] = {
    ("ethernet", 0x0800): ("ipv4", False),
    ("ethernet", 0x0806): ("arp", False),
    ("ipv4", 1): ("icmp", False),
    ("ipv4", 6): ("tcp", False),
    ("ipv4", 17): ("udp", False),
    ("udp", 8472): ("vxlan", False),      # Flannel's VXLAN port (Linux's default, not IANA's)
    ("udp", 4789): ("vxlan", False),      # IANA's VXLAN port
    ("udp", 8285): ("ipv4", True),        # Flannel's udp backend: a bare IP packet in UDP
    ("vxlan", 0): ("ethernet", True),
}
# Headers whose successor does not depend on a field.
ALWAYS_NEXT = {"vxlan": 0}


def spec_for(kind: str, raw: bytes) -> HeaderSpec:
    """The table for a header; ICMP has two shapes (echo, and the rest)."""
    if kind == "icmp":
        return ICMP_ECHO if raw[:1] in (b"\x00", b"\x08") else ICMP_OTHER
    return SPECS[kind]


@dataclass(frozen=True)
class FieldValue:
    """A field as found in one frame: absolute byte range [start, end) and its text value."""

    name: str
    title: str
    start: int
    end: int
    value: str
    meaning: str
    bits: tuple[int, int] | None = None


@dataclass(frozen=True)
class Layer:
    """One header of a frame. `level` counts encapsulations: 0 is the carried packet."""

    kind: str
    title: str
    level: int
    start: int
    end: int
    fields: tuple[FieldValue, ...]

    @property
    def id(self) -> str:
        """`ipv4` for the carried packet, `outer-ipv4` for the tunnel's header."""
        return self.kind if self.level == 0 else "outer-" * self.level + self.kind

    def field(self, name: str) -> FieldValue:
        return next(f for f in self.fields if f.name == name)

    def value(self, name: str) -> str:
        return self.field(name).value


def _field_values(spec: HeaderSpec, raw: bytes, base: int, hlen: int) -> tuple[FieldValue, ...]:
    out = []
    for f in spec.fields:
        size = hlen - f.offset if f.size < 0 else f.size
        if size <= 0 or f.offset + size > len(raw):
            continue
        chunk = raw[f.offset:f.offset + size]
        number = int.from_bytes(chunk, "big") if size <= 8 else 0
        if f.bits:
            shift, width = f.bits
            number = (number >> shift) & ((1 << width) - 1)
        out.append(FieldValue(f.name, f.title, base + f.offset, base + f.offset + size,
                              FORMATS[f.fmt](chunk, number), f.meaning, f.bits))
    return tuple(out)


def _next(spec: HeaderSpec, raw: bytes) -> tuple[str, bool] | None:
    if spec.kind in ALWAYS_NEXT:
        return NEXT[(spec.kind, ALWAYS_NEXT[spec.kind])]
    for name in spec.next_on:
        f = next(x for x in spec.fields if x.name == name)
        value = int.from_bytes(raw[f.offset:f.offset + f.size], "big")
        if (spec.kind, value) in NEXT:
            return NEXT[(spec.kind, value)]
    return None


def decompose(data: bytes, link_type: str = "ether") -> list[Layer]:
    """Split the bytes of a frame into layers and fields, outermost first."""
    found: list[tuple[HeaderSpec, int, int, int]] = []      # spec, start, end, encapsulation depth
    kind: str | None = "ethernet" if link_type == "ether" else "ipv4"
    pos, depth, end = 0, 0, len(data)
    while kind and pos < end:
        raw = data[pos:end]
        spec = spec_for(kind, raw)
        hlen = spec.header_length(raw)
        if hlen <= 0 or hlen > len(raw):
            break
        if kind == "ipv4":      # an IP packet ends at its total length (Ethernet may pad)
            end = min(end, pos + int.from_bytes(raw[2:4], "big"))
        found.append((spec, pos, pos + hlen, depth))
        step = _next(spec, raw)
        pos += hlen
        if step is None:
            break
        kind, starts_packet = step
        depth += starts_packet
    if pos < end:
        found.append((DATA, pos, end, depth))
    layers = []
    for spec, start, stop, d in found:
        raw = data[start:stop]
        level = depth - d
        title = spec.title
        if depth and spec.kind != "vxlan":
            title = ("Inner " if level == 0 else "Outer ") + title
        layers.append(Layer(spec.kind, title, level, start, stop, _field_values(spec, raw, start, stop - start)))
    return layers


def hop_layers(hop: Hop) -> list[Layer]:
    return decompose(hop.data, hop.link_type)


# ---------------------------------------------------------------------------------- diffs
@dataclass(frozen=True)
class HopDiff:
    """What changed at a hop since the previous hop of the same packet (`previous`).

    `changed` holds `layer_id.field` names (e.g. `ipv4.ttl`, `ethernet.dst`, `outer-udp.sport`);
    `added`/`removed` hold layer ids that appeared (encapsulation) or went away (decapsulation).
    """

    index: int
    previous: int | None
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def is_changed(self, layer: Layer, name: str) -> bool:
        return f"{layer.id}.{name}" in self.changed or layer.id in self.added


def previous_hop(trace: Trace, index: int) -> Hop | None:
    """The last earlier hop of the same packet (same packet_id and role), if any."""
    hop = trace.hops[index]
    for earlier in reversed(trace.hops[:index]):
        if earlier.packet_id == hop.packet_id and earlier.role == hop.role:
            return earlier
    return None


def diff_layers(before: list[Layer], after: list[Layer]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Changed fields, added layers, removed layers between two decompositions."""
    old = {l.id: l for l in before}
    new = {l.id: l for l in after}
    changed = []
    for layer in after:
        prior = old.get(layer.id)
        if prior is None:
            continue
        values = {f.name: f.value for f in prior.fields}
        changed += [f"{layer.id}.{f.name}" for f in layer.fields if values.get(f.name) != f.value]
    added = tuple(l.id for l in after if l.id not in old)
    removed = tuple(l.id for l in before if l.id not in new)
    return tuple(changed), added, removed


def hop_diff(trace: Trace, index: int) -> HopDiff:
    prev = previous_hop(trace, index)
    if prev is None:
        return HopDiff(index, None)
    changed, added, removed = diff_layers(hop_layers(prev), hop_layers(trace.hops[index]))
    return HopDiff(index, prev.index, changed, added, removed)


def trace_diffs(trace: Trace, layers: list[list[Layer]] | None = None) -> list[HopDiff]:
    """`hop_diff` for every hop, decomposing each frame once (or given each hop's layers)."""
    if layers is None:
        layers = [hop_layers(h) for h in trace.hops]
    last: dict[tuple[int, str], int] = {}
    out = []
    for hop in trace.hops:
        key = (hop.packet_id, hop.role)
        prev = last.get(key)
        last[key] = hop.index
        if prev is None:
            out.append(HopDiff(hop.index, None))
        else:
            out.append(HopDiff(hop.index, prev, *diff_layers(layers[prev], layers[hop.index])))
    return out


def layer_tree(layers: list[Layer], diff: HopDiff | None = None, meanings: bool = False) -> str:
    """The layers as an indented text tree, Wireshark style; `*` marks a changed field."""
    lines = []
    for layer in layers:
        mark = "  (added)" if diff and layer.id in diff.added else ""
        lines.append(f"{layer.title}  [bytes {layer.start}-{layer.end - 1}]{mark}")
        for f in layer.fields:
            star = "*" if diff and diff.is_changed(layer, f.name) else " "
            lines.append(f" {star} {f.title:<22} {f.value}")
            if meanings:
                lines.append(f"      {f.meaning}")
    if diff and diff.removed:
        lines.append(f"(removed since hop {diff.previous}: {', '.join(diff.removed)})")
    return "\n".join(lines)
