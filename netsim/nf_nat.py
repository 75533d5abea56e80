"""NAT bindings and the rewriting they cause, as net/netfilter/nf_nat_core.c keeps and applies
them.

NAT never rewrites a connection's original tuple: it changes the reply tuple once, when the
nat chains (or nft's nat statements) decide the connection's first packet, and every later
packet is rewritten by comparing the two (`nat_packet`), which is why the nat chains see only
a connection's first packet. `NatBindings` is a namespace's binding logic: nf_nat_setup_info
with get_unique_tuple's choice of address, port or ICMP id, and the bysource hash that keeps a
source's earlier mapping. ICMP errors RELATED to a connection get their quoted packet rewritten
too (`nat_icmp_error`, with the checksums updated incrementally). The kernel's random numbers
are crc32 of the namespace name and the tuple, so every run gives the same ports.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Protocol

from .conntrack_entry import DST, ICMP_QUERY_REPLY, ORIGINAL, REPLY, SRC, ConnTuple, ConntrackEntry
from .packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TCP, UDP, evolve


class NatTable(Protocol):
    """What the bindings ask of the conntrack table they bind in (conntrack.Conntrack)."""

    def tuple_taken(self, tup: ConnTuple, ignore: ConntrackEntry | None = None) -> bool: ...

    def reply_taken(self, reply: ConnTuple, ignore: ConntrackEntry | None = None) -> bool: ...

    def remove(self, entry: ConntrackEntry) -> None: ...

    def confirm(self, entry: ConntrackEntry) -> None: ...


class NatBindings:
    """The NAT bindings of one namespace's connections (nf_nat_core.c)."""

    def __init__(self, table: NatTable, netns: Any):
        self.table = table
        self.netns = netns
        self.by_source: dict[tuple[int, str, int], ConntrackEntry] = {}   # nf_nat bysource hash

    def remember_source(self, entry: ConntrackEntry) -> None:
        """An SNATed connection entered the table: its source's mapping is reused."""
        self.by_source[(entry.proto, entry.original.src, entry.original.sport)] = entry

    def forget_source(self, entry: ConntrackEntry) -> None:
        key = (entry.proto, entry.original.src, entry.original.sport)
        if self.by_source.get(key) is entry:
            del self.by_source[key]

    def setup(self, entry: ConntrackEntry, manip: str, addr: str | None,
              ports: tuple[int, int] | None = None, random: bool = False, random_fully: bool = False) -> bool:
        """nf_nat_setup_info(): bind the connection's SRC or DST manipulation to `addr` (None:
        a null binding that keeps the address) and `ports` (an inclusive range, or None to keep
        the port when the result is unique). Picks the port or ICMP id like get_unique_tuple().
        Returns False when no unique tuple exists (the kernel drops the packet)."""
        if addr is None and ports is None and not (random or random_fully) \
                and not self.table.reply_taken(entry.reply, entry):
            # a null binding (nf_nat_alloc_null_binding) of a tuple nothing else answers to:
            # get_unique_tuple keeps it, for either manipulation
            if manip == SRC:
                entry.src_nat_done = True
            else:
                entry.dst_nat_done = True
            return True
        current = entry.reply.invert()
        if addr is None:
            addr = current.src if manip == SRC else current.dst
        new = self._unique_tuple(entry, current, manip, addr, ports, random, random_fully)
        if new is None:
            return False
        if new != current:
            was_confirmed = entry.confirmed
            if was_confirmed:  # never happens for a first packet; keep the table consistent
                self.table.remove(entry)
                entry.dying = False
            entry.reply = new.invert()
            if manip == SRC:
                entry.snat = True
            else:
                entry.dnat = True
            if was_confirmed:
                entry.confirmed = False
                self.table.confirm(entry)
        if manip == SRC:
            entry.src_nat_done = True
        else:
            entry.dst_nat_done = True
        return True

    def _unique_tuple(self, entry: ConntrackEntry, current: ConnTuple, manip: str, addr: str,
                      ports: tuple[int, int] | None, random: bool, random_fully: bool) -> ConnTuple | None:
        random_all = random or random_fully
        key_port = current.sport if manip == SRC else current.dport
        if current.proto == IPPROTO_ICMP:
            key_port = current.sport  # the id lives in the source part for either manip

        def in_range(tup: ConnTuple) -> bool:
            here = tup.src if manip == SRC else tup.dst
            port = tup.sport if (manip == SRC or tup.proto == IPPROTO_ICMP) else tup.dport
            return here == addr and (ports is None or ports[0] <= port <= ports[1])

        # 1) a source mapping keeps the original tuple, or this source's existing mapping.
        if manip == SRC and not random_all:
            if in_range(current):
                if not self.table.tuple_taken(current, entry):
                    return current
            else:
                earlier = self.by_source.get((current.proto, current.src, current.sport))
                if earlier is not None:
                    mapped = current._replace(src=earlier.reply.dst, sport=earlier.reply.dport
                                              if current.proto != IPPROTO_ICMP else earlier.reply.sport)
                    if in_range(mapped) and not self.table.tuple_taken(mapped, entry):
                        return mapped
        # 2) the address (netsim models single-address ranges only).
        if manip == SRC:
            tup = current if current.src == addr else current._replace(src=addr)
        else:
            tup = current if current.dst == addr else current._replace(dst=addr)
        # 3) keep the port when it is in range and unique.
        if not random_all:
            port = tup.sport if (manip == SRC or tup.proto == IPPROTO_ICMP) else tup.dport
            if ports is not None:
                if ports[0] <= port <= ports[1] and (ports[0] == ports[1] or not self.table.tuple_taken(tup, entry)):
                    return tup
            elif not self.table.tuple_taken(tup, entry):
                return tup
        return self._l4_unique(entry, tup, manip, ports, random_all, key_port)

    def _l4_unique(self, entry: ConntrackEntry, tup: ConnTuple, manip: str,
                   ports: tuple[int, int] | None, random_all: bool, key_port: int) -> ConnTuple | None:
        """nf_nat_l4proto_unique_tuple(): search the port (or ICMP id) range from an offset the
        kernel draws at random; netsim draws it from crc32(namespace name, tuple)."""
        icmp = tup.proto == IPPROTO_ICMP
        if tup.proto not in (IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP):
            return tup
        if icmp:
            low, size = (0, 65536) if ports is None else (ports[0], ports[1] - ports[0] + 1)
        elif ports is None:
            if manip == DST:
                return tup          # "If it's dst rewrite, can't change port"
            if key_port < 512:
                low, size = 1, 511
            elif key_port < 1024:
                low, size = 600, 424
            else:
                low, size = 1024, 64512
        else:
            low, size = ports[0], ports[1] - ports[0] + 1
        if random_all or manip != DST:
            offset = self.pseudo_random(tup) & 0xFFFF
        else:
            offset = 0
        for i in range(size):
            value = low + (offset + i) % size
            if icmp or manip == SRC:
                candidate = tup._replace(sport=value)
            else:
                candidate = tup._replace(dport=value)
            if not self.table.tuple_taken(candidate, entry):
                return candidate
        return None

    def pseudo_random(self, tup: ConnTuple) -> int:
        """What stands in for get_random_u16()/u32(): crc32 of the namespace name and the tuple."""
        text = f"{self.netns.name} {tup.proto} {tup.src} {tup.sport} {tup.dst} {tup.dport} {tup.type}"
        return zlib.crc32(text.encode())


def nat_packet(entry: ConntrackEntry, direction: int, manip: str, packet: IPv4) -> tuple[IPv4, str | None]:
    """nf_nat_packet(): apply the connection's binding for this hook's manipulation to a packet
    travelling in `direction`. Returns the packet and the address (and port) it was rewritten
    to, or None if nothing changed."""
    if not _manip_applies(entry, direction, manip):
        return packet, None
    target = (entry.reply if direction == ORIGINAL else entry.original).invert()
    new = rewrite(packet, target, manip)
    if new == packet:
        return packet, None
    return new, target.source_text() if manip == SRC else target.destination_text()

def nat_icmp_error(entry: ConntrackEntry, direction: int, manip: str,
                   packet: IPv4) -> tuple[IPv4, tuple[str, str] | None]:
    """nf_nat_icmp_reply_translation(): NAT an ICMP error RELATED to a connection. The quoted
    packet belongs to the other direction and gets the opposite manipulation; then the outer
    header is rewritten like any packet of the error's direction. Returns the packet and the
    outer address it was rewritten to with the quoted packet's new other end, or None."""
    if not _manip_applies(entry, direction, manip):
        return packet, None
    icmp = packet.payload
    assert isinstance(icmp, ICMP)
    quoted = parse_quoted(icmp.data)
    if quoted is None:
        return packet, None
    other = entry.reply if direction == ORIGINAL else entry.original
    inner_manip = DST if manip == SRC else SRC
    data = quoted.rewrite(other, inner_manip)
    outer_target = other.invert()
    outer = evolve(packet, payload=evolve(icmp, data=data))
    if manip == SRC:
        outer = evolve(outer, src=outer_target.src)
        return outer, (outer_target.src, other.destination_text())
    outer = evolve(outer, dst=outer_target.dst)
    return outer, (outer_target.dst, other.source_text())


def _manip_applies(entry: ConntrackEntry, direction: int, manip: str) -> bool:
    """The status-bit test of nf_nat_packet(): SRC at POSTROUTING/INPUT rewrites original packets
    of an SNATed connection and replies of a DNATed one; DST the other way round."""
    snat_side = manip == SRC
    if direction == REPLY:
        snat_side = not snat_side
    return entry.snat if snat_side else entry.dnat


def rewrite(packet: IPv4, target: ConnTuple, manip: str) -> IPv4:
    """Set a packet's source (SRC) or destination (DST) address and port, or its ICMP echo id,
    to the target tuple's (nf_nat_ipv4_manip_pkt + the l4 manip)."""
    payload = packet.payload
    if manip == SRC:
        address = {"src": target.src}
        if isinstance(payload, (TCP, UDP)):
            payload = evolve(payload, sport=target.sport)
    else:
        address = {"dst": target.dst}
        if isinstance(payload, (TCP, UDP)):
            payload = evolve(payload, dport=target.dport)
    if isinstance(payload, ICMP) and payload.type in ICMP_QUERY_REPLY:
        payload = payload.with_id(target.sport)
    return evolve(packet, payload=payload, **address)


# ---- the packet quoted inside an ICMP error --------------------------------------------------

def _csum_adjust(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 incremental checksum update, what the kernel's csum_replace*() do."""
    total = ~csum & 0xFFFF
    for i in range(0, len(old), 2):
        total += ~struct.unpack("!H", old[i:i + 2])[0] & 0xFFFF
        total += struct.unpack("!H", new[i:i + 2])[0]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class QuotedPacket:
    """The IP header and the first transport bytes an ICMP error carries, as raw bytes."""

    raw: bytes
    ihl: int
    tuple: ConnTuple

    def rewrite(self, target: ConnTuple, manip: str) -> bytes:
        """Set the quoted packet's source or destination (address, port or ICMP id) to the
        target's, updating the quoted checksums incrementally as the kernel does: the IP header
        always, UDP if its checksum is non-zero, TCP only if its checksum field is quoted."""
        raw = bytearray(self.raw)
        ihl = self.ihl
        addr_off = 12 if manip == SRC else 16
        old_addr = bytes(raw[addr_off:addr_off + 4])
        new_addr = IPv4Address(target.src if manip == SRC else target.dst).packed
        raw[addr_off:addr_off + 4] = new_addr
        ip_csum = struct.unpack("!H", raw[10:12])[0]
        raw[10:12] = struct.pack("!H", _csum_adjust(ip_csum, old_addr, new_addr))
        proto = self.tuple.proto
        l4 = ihl
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            port_off = l4 if manip == SRC else l4 + 2
            old_port = bytes(raw[port_off:port_off + 2])
            new_port = struct.pack("!H", target.sport if manip == SRC else target.dport)
            raw[port_off:port_off + 2] = new_port
            csum_off = l4 + (16 if proto == IPPROTO_TCP else 6)
            if len(raw) >= csum_off + 2:
                csum = struct.unpack("!H", raw[csum_off:csum_off + 2])[0]
                if proto == IPPROTO_TCP or csum != 0:
                    csum = _csum_adjust(csum, old_addr + old_port, new_addr + new_port)
                    if proto == IPPROTO_UDP and csum == 0:
                        csum = 0xFFFF
                    raw[csum_off:csum_off + 2] = struct.pack("!H", csum)
        elif proto == IPPROTO_ICMP and self.tuple.type in ICMP_QUERY_REPLY:
            old_id = bytes(raw[l4 + 4:l4 + 6])
            new_id = struct.pack("!H", target.sport)
            raw[l4 + 4:l4 + 6] = new_id
            csum = struct.unpack("!H", raw[l4 + 2:l4 + 4])[0]
            raw[l4 + 2:l4 + 4] = struct.pack("!H", _csum_adjust(csum, old_id, new_id))
        return bytes(raw)


def parse_quoted(data: bytes) -> QuotedPacket | None:
    """The quoted packet of an ICMP error: its IP header and at least 8 transport bytes."""
    if len(data) < 20:
        return None
    ihl = (data[0] & 0x0F) * 4
    if ihl < 20 or len(data) < ihl + 8:
        return None
    proto = data[9]
    src = ".".join(str(b) for b in data[12:16])
    dst = ".".join(str(b) for b in data[16:20])
    l4 = data[ihl:ihl + 8]
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        sport, dport = struct.unpack("!HH", l4[:4])
        tup = ConnTuple(proto, src, dst, sport, dport)
    elif proto == IPPROTO_ICMP:
        itype, code, _csum, ident = struct.unpack("!BBHH", l4[:6])
        if itype not in ICMP_QUERY_REPLY:
            return None
        tup = ConnTuple(proto, src, dst, ident, 0, itype, code)
    else:
        return None
    return QuotedPacket(data, ihl, tup)
