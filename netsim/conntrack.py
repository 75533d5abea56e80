"""Connection tracking and NAT bindings, as net/netfilter/nf_conntrack_*.c and nf_nat_core.c keep them.

Theory of operation. Every tracked packet is reduced to a tuple (protocol, addresses, ports; for
ICMP queries type, code and id). A connection (`ConntrackEntry`) holds its ORIGINAL tuple (the
first packet as it arrived) and its REPLY tuple (what an answer will look like *after* NAT). The
table is a dict keyed by both tuples, so a packet finds its connection and its direction in one
lookup, as the kernel's hash does. NAT never rewrites the original tuple: it only changes the reply
tuple, and every later packet is rewritten by comparing the two (`nat_packet`), which is why the
nat chains see only a connection's first packet.

Kept from the kernel: the TCP state table of nf_conntrack_proto_tcp.c (with loose pick-up of
mid-stream ACKs, RST-before-reply killing the entry, ASSURED on the handshake's third packet),
UDP's [UNREPLIED], ICMP query tuples, RELATED ICMP errors with NAT of the quoted header, the
unconfirmed-until-the-last-hook rule, and get_unique_tuple's choice of NAT port or ICMP id.
Simplified, and documented where used: there is no clock (timeouts print as `conntrack -L` shows
them just after the last packet: the state's default minus one second), no TCP window or
sequence tracking, and the kernel's random numbers are replaced by zlib.crc32 of the namespace
name and the tuple, so every run gives the same ports. Real values seen on a 6.18 kernel are in
shared/reference/kernel-observations.md (s5, s6).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from .decision import VERDICT_OF, ConntrackReason, ConntrackRef, Decision, Subsystem, Verdict
from .packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, PROTO_NAMES, TCP, UDP

if TYPE_CHECKING:  # pragma: no cover
    from .skb import Skb

ORIGINAL, REPLY = 0, 1
SRC, DST = "SRC", "DST"          # the two NAT manipulations (nf_nat_manip_type)

# ICMP query types and the type their answer carries (nf_conntrack_proto_icmp.c invmap).
ICMP_QUERY_REPLY = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP_NEW_TYPES = (8, 13, 15, 17)  # only requests may start a connection
ICMP_ERROR_TYPES = (3, 4, 5, 11, 12)  # icmp_is_err(): errors quote the packet they are about

# Default timeouts in seconds (nf_conntrack_proto_tcp.c tcp_timeouts, _udp.c, _icmp.c).
TCP_TIMEOUTS = {
    "SYN_SENT": 120, "SYN_RECV": 60, "ESTABLISHED": 432000, "FIN_WAIT": 120, "CLOSE_WAIT": 60,
    "LAST_ACK": 30, "TIME_WAIT": 120, "CLOSE": 10, "SYN_SENT2": 120,
}
UDP_TIMEOUT = 30         # UDP_CT_UNREPLIED; the 120 s "stream" timeout needs traffic 2 s later
ICMP_TIMEOUT = 30

# The TCP state table, nf_conntrack_proto_tcp.c tcp_conntracks[dir][packet kind][old state].
_S = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
      "TIME_WAIT", "CLOSE", "SYN_SENT2")
sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 = _S
sIV, sIG = "INVALID", "IGNORE"
_TCP_TABLE = {
    ORIGINAL: {
        "syn":    (sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2),
        "synack": (sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR),
        "fin":    (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),
        "ack":    (sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV),
        "rst":    (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),
        "none":   (sIV,) * 10,
    },
    REPLY: {
        "syn":    (sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2),
        "synack": (sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR),
        "fin":    (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),
        "ack":    (sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG),
        "rst":    (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),
        "none":   (sIV,) * 10,
    },
}


def tcp_packet_kind(flags: str) -> str:
    """get_conntrack_index(): which row of the state table a segment uses."""
    if "R" in flags:
        return "rst"
    if "S" in flags:
        return "synack" if "A" in flags else "syn"
    if "F" in flags:
        return "fin"
    if "A" in flags:
        return "ack"
    return "none"


@dataclass(frozen=True)
class ConnTuple:
    """struct nf_conntrack_tuple for IPv4. For ICMP, `sport` holds the echo id (the kernel keeps it
    in the source part, and NAT changes it like a source port) and `dport` is 0."""

    proto: int
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    type: int = 0
    code: int = 0

    def invert(self) -> "ConnTuple":
        """nf_ct_invert_tuple(): the tuple of the answer."""
        if self.proto == IPPROTO_ICMP:
            return ConnTuple(self.proto, self.dst, self.src, self.sport, 0,
                             ICMP_QUERY_REPLY.get(self.type, self.type), self.code)
        return ConnTuple(self.proto, self.dst, self.src, self.dport, self.sport)

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def fields(self) -> str:
        """The tuple as `conntrack -L` prints it."""
        text = f"src={self.src} dst={self.dst}"
        if self.proto == IPPROTO_ICMP:
            return f"{text} type={self.type} code={self.code} id={self.sport}"
        return f"{text} sport={self.sport} dport={self.dport}"

    def source_text(self) -> str:
        return endpoint(self.proto, self.src, self.sport)

    def destination_text(self) -> str:
        # an ICMP query's id belongs to both ends of the exchange
        return endpoint(self.proto, self.dst, self.sport if self.proto == IPPROTO_ICMP else self.dport)

    def __str__(self) -> str:
        if self.proto == IPPROTO_ICMP:
            return f"icmp {self.src} -> {self.dst} id {self.sport}"
        return f"{self.proto_name} {self.src}:{self.sport} -> {self.dst}:{self.dport}"


def endpoint(proto: int, addr: str, port: int) -> str:
    """`ip:port` for TCP/UDP, `ip id N` for ICMP (the id is the ICMP "port")."""
    if proto == IPPROTO_ICMP:
        return f"{addr} id {port}"
    return f"{addr}:{port}"


def tuple_of(packet: IPv4) -> ConnTuple | None:
    """The tuple the kernel extracts from a packet (nf_ct_get_tuple); None if not trackable."""
    payload = packet.payload
    if isinstance(payload, (TCP, UDP)):
        return ConnTuple(packet.proto, packet.src, packet.dst, payload.sport, payload.dport)
    if isinstance(payload, ICMP):
        return ConnTuple(IPPROTO_ICMP, packet.src, packet.dst, payload.id, 0, payload.type, payload.code)
    return None


@dataclass(eq=False)
class ConntrackEntry:
    """struct nf_conn: one connection, its two tuples, its state and its NAT status bits."""

    original: ConnTuple
    reply: ConnTuple
    state: str = ""                  # TCP state name; "" for UDP and ICMP
    seen_reply: bool = False         # IPS_SEEN_REPLY ([UNREPLIED] until set)
    assured: bool = False            # IPS_ASSURED
    confirmed: bool = False          # in the table (nf_conntrack_confirm ran)
    snat: bool = False               # IPS_SRC_NAT
    dnat: bool = False               # IPS_DST_NAT
    src_nat_done: bool = False       # IPS_SRC_NAT_DONE: the SRC manip was decided
    dst_nat_done: bool = False       # IPS_DST_NAT_DONE
    mark: int = 0                    # ct mark (CONNMARK), not the packet mark
    dying: bool = False              # killed (e.g. RST before any reply)

    @property
    def proto(self) -> int:
        return self.original.proto

    @property
    def timeout(self) -> int:
        """The state's default timeout in seconds (no clock in the model)."""
        if self.proto == IPPROTO_TCP:
            return TCP_TIMEOUTS[self.state]
        if self.proto == IPPROTO_UDP:
            return UDP_TIMEOUT
        return ICMP_TIMEOUT

    def line(self) -> str:
        """The entry as `conntrack -L` (conntrack-tools 1.4.7) prints it, right after the last
        packet: the remaining timeout shows as the default minus one second."""
        parts = [f"{self.original.proto_name:<8} {self.proto} {self.timeout - 1}"]
        if self.state:
            parts.append(self.state)
        parts.append(self.original.fields())
        if not self.seen_reply:
            parts.append("[UNREPLIED]")
        parts.append(self.reply.fields())
        if self.assured:
            parts.append("[ASSURED]")
        parts.append(f"mark={self.mark} use=1")
        return " ".join(parts)

    def __str__(self) -> str:
        return str(self.original)


class Conntrack:
    """The conntrack table of one network namespace (`conntrack -L` shows it)."""

    def __init__(self, netns: Any):
        self.netns = netns
        self._by_tuple: dict[ConnTuple, tuple[ConntrackEntry, int]] = {}
        self._entries: dict[int, ConntrackEntry] = {}       # insertion order, keyed by id()
        self._by_source: dict[tuple[int, str, int], ConntrackEntry] = {}  # nf_nat bysource hash

    # ---- the table -------------------------------------------------------------------------
    @property
    def entries(self) -> list[ConntrackEntry]:
        """Confirmed entries in the order they were confirmed (the kernel lists in hash order)."""
        return list(self._entries.values())

    def listing(self) -> str:
        """`conntrack -L` output (the "N flow entries have been shown." line goes to stderr)."""
        lines = [entry.line() for entry in self._entries.values()]
        return "".join(line + "\n" for line in lines)

    def flush(self) -> None:
        """`conntrack -F`."""
        self._by_tuple.clear()
        self._entries.clear()
        self._by_source.clear()

    def lookup(self, tup: ConnTuple) -> tuple[ConntrackEntry, int] | None:
        """The confirmed entry a tuple belongs to, and the direction (ORIGINAL or REPLY)."""
        return self._by_tuple.get(tup)

    def confirm(self, entry: ConntrackEntry) -> None:
        """nf_conntrack_confirm(): insert an entry into the table at the packet's last hook."""
        if entry.confirmed or entry.dying:
            return
        entry.confirmed = True
        self._insert(entry)

    def remove(self, entry: ConntrackEntry) -> None:
        """Kill an entry (nf_ct_kill): it leaves the table; packets holding it keep it."""
        entry.dying = True
        if not entry.confirmed:
            return
        for tup in (entry.original, entry.reply):
            if self._by_tuple.get(tup, (None,))[0] is entry:
                del self._by_tuple[tup]
        self._entries.pop(id(entry), None)
        key = (entry.proto, entry.original.src, entry.original.sport)
        if self._by_source.get(key) is entry:
            del self._by_source[key]

    def _insert(self, entry: ConntrackEntry) -> None:
        self._by_tuple[entry.original] = (entry, ORIGINAL)
        self._by_tuple[entry.reply] = (entry, REPLY)
        self._entries[id(entry)] = entry
        if entry.snat:
            self._by_source[(entry.proto, entry.original.src, entry.original.sport)] = entry

    def tuple_taken(self, tup: ConnTuple, ignore: ConntrackEntry | None = None) -> bool:
        """nf_nat_used_tuple(): would a connection that looks like `tup` collide with another
        connection's answer? (Its reply, invert(tup), is already some entry's tuple.)"""
        found = self._by_tuple.get(tup.invert())
        return found is not None and found[0] is not ignore

    # ---- tracking (nf_conntrack_in) ---------------------------------------------------------
    def track(self, packet: IPv4, skb: "Skb") -> list[Decision]:
        """Find or create the packet's connection and set skb.ct, skb.ct_reply, skb.ct_state, as
        nf_conntrack_in() does at PREROUTING and OUTPUT. Returns what it decided (subsystem
        "conntrack"; the verdict is the packet's ctstate, lower case). A new entry stays
        unconfirmed (outside the table) until `confirm` at the packet's last hook."""
        payload = packet.payload
        if isinstance(payload, ICMP) and payload.type in ICMP_ERROR_TYPES:
            return self._track_icmp_error(packet, payload, skb)
        tup = tuple_of(packet)
        if tup is None:
            _set_untracked(skb)
            return [_decision(ConntrackReason.NOT_MODELLED, Verdict.INVALID, proto=packet.proto_name)]
        found = self._by_tuple.get(tup)
        if found is None:
            return self._new(packet, tup, skb)
        entry, direction = found
        if entry.proto == IPPROTO_TCP:
            kind = tcp_packet_kind(payload.flags)  # type: ignore[union-attr]
            if direction == ORIGINAL and kind == "syn" and entry.state in (sTW, sCL):
                # tcp_packet(): a SYN reopening a closed connection kills the old entry and the
                # packet is looked up again (-NF_REPEAT), creating a new one.
                self.remove(entry)
                reopened = _decision(ConntrackReason.REOPEN, Verdict.REMOVE, conntrack_ref(entry, ORIGINAL, entry.state),
                                     function="nf_conntrack_tcp_packet")
                return [reopened, *self._new(packet, tup, skb)]
        return self._existing(packet, entry, direction, skb)

    def _new(self, packet: IPv4, tup: ConnTuple, skb: "Skb") -> list[Decision]:
        payload = packet.payload
        state = ""
        if isinstance(payload, TCP):
            kind = tcp_packet_kind(payload.flags)
            state = _TCP_TABLE[ORIGINAL][kind][0]
            if state == sIV:
                _set_untracked(skb)
                return [_decision(ConntrackReason.INVALID_TCP, Verdict.INVALID, _lone_ref(tup), flags=payload.flags)]
        elif isinstance(payload, ICMP) and payload.type not in ICMP_NEW_TYPES:
            _set_untracked(skb)
            return [_decision(ConntrackReason.INVALID_ICMP, Verdict.INVALID, _lone_ref(tup), type=payload.type,
                              src=tup.src, dst=tup.dst)]
        entry = ConntrackEntry(tup, tup.invert(), state=state)
        skb.ct, skb.ct_reply, skb.ct_state = entry, False, "NEW"
        return [_decision(ConntrackReason.NEW, Verdict.NEW, conntrack_ref(entry, ORIGINAL, "NEW"), tcp_state=state)]

    def _existing(self, packet: IPv4, entry: ConntrackEntry, direction: int, skb: "Skb") -> list[Decision]:
        # resolve_normal_ct(): the packet's ctinfo, from the state before this packet.
        if direction == REPLY:
            ct_state = "ESTABLISHED"
        else:
            ct_state = "ESTABLISHED" if entry.seen_reply else "NEW"
        reason = ConntrackReason.TRACKED
        facts: dict[str, Any] = {}
        payload = packet.payload
        if isinstance(payload, TCP):
            old = entry.state
            new = _TCP_TABLE[direction][tcp_packet_kind(payload.flags)][_S.index(old)]
            if new == sIV:
                _set_untracked(skb)
                return [_decision(ConntrackReason.TCP_INVALID, Verdict.INVALID, conntrack_ref(entry, direction, "INVALID"),
                                  flags=payload.flags, old=old)]
            if new == sIG:
                reason, facts = ConntrackReason.TCP_IGNORED, {"old": old, "flags": payload.flags}
            elif not entry.seen_reply and "R" in payload.flags:
                # tcp_packet(): a RST before any reply kills the entry at once.
                self.remove(entry)
                reason, facts = ConntrackReason.TCP_RST_REMOVED, {"flags": payload.flags}
            else:
                assured = entry.seen_reply and not entry.assured and old in (sSR, sES) and new == sES
                if assured:
                    entry.assured = True
                entry.state = new
                reason, facts = ConntrackReason.TCP_STATE, {"old": old, "new": new, "assured": assured}
        if direction == REPLY:
            entry.seen_reply = True
        skb.ct, skb.ct_reply, skb.ct_state = entry, direction == REPLY, ct_state
        return [_decision(reason, VERDICT_OF[ct_state], conntrack_ref(entry, direction, ct_state), **facts)]

    def _track_icmp_error(self, packet: IPv4, icmp: ICMP, skb: "Skb") -> list[Decision]:
        """icmp_error(): an ICMP error is RELATED to the connection of the packet it quotes."""
        quoted = parse_quoted(icmp.data)
        if quoted is None:
            _set_untracked(skb)
            return [_decision(ConntrackReason.SHORT_QUOTE, Verdict.INVALID, function=_ICMP_ERROR, src=packet.src)]
        inner = quoted.tuple
        found = self._by_tuple.get(inner.invert())
        if found is None:
            _set_untracked(skb)
            return [_decision(ConntrackReason.NOT_TRACKED, Verdict.INVALID, _lone_ref(inner), function=_ICMP_ERROR,
                              src=packet.src)]
        entry, direction = found
        skb.ct, skb.ct_reply, skb.ct_state = entry, direction == REPLY, "RELATED"
        return [_decision(ConntrackReason.RELATED, Verdict.RELATED, conntrack_ref(entry, direction, "RELATED"),
                          function=_ICMP_ERROR, src=packet.src)]

    # ---- NAT bindings (nf_nat_core.c) -------------------------------------------------------
    def nat_done(self, entry: ConntrackEntry, manip: str) -> bool:
        """nf_nat_initialized(): was this manipulation already decided for the connection?"""
        return entry.src_nat_done if manip == SRC else entry.dst_nat_done

    def setup_nat(self, entry: ConntrackEntry, manip: str, addr: str | None,
                  ports: tuple[int, int] | None = None, random: bool = False,
                  random_fully: bool = False) -> bool:
        """nf_nat_setup_info(): bind the connection's SRC or DST manipulation to `addr` (None:
        a null binding that keeps the address) and `ports` (an inclusive range, or None to keep
        the port when the result is unique). Picks the port or ICMP id like get_unique_tuple().
        Returns False when no unique tuple exists (the kernel drops the packet)."""
        current = entry.reply.invert()
        if addr is None:
            addr = current.src if manip == SRC else current.dst
        new = self._unique_tuple(entry, current, manip, addr, ports, random, random_fully)
        if new is None:
            return False
        if new != current:
            was_confirmed = entry.confirmed
            if was_confirmed:  # never happens for a first packet; keep the table consistent
                self.remove(entry)
                entry.dying = False
            entry.reply = new.invert()
            if manip == SRC:
                entry.snat = True
            else:
                entry.dnat = True
            if was_confirmed:
                entry.confirmed = False
                self.confirm(entry)
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
                if not self.tuple_taken(current, entry):
                    return current
            else:
                earlier = self._by_source.get((current.proto, current.src, current.sport))
                if earlier is not None:
                    mapped = replace(current, src=earlier.reply.dst, sport=earlier.reply.dport
                                     if current.proto != IPPROTO_ICMP else earlier.reply.sport)
                    if in_range(mapped) and not self.tuple_taken(mapped, entry):
                        return mapped
        # 2) the address (netsim models single-address ranges only).
        tup = replace(current, src=addr) if manip == SRC else replace(current, dst=addr)
        # 3) keep the port when it is in range and unique.
        if not random_all:
            port = tup.sport if (manip == SRC or tup.proto == IPPROTO_ICMP) else tup.dport
            if ports is not None:
                if ports[0] <= port <= ports[1] and (ports[0] == ports[1] or not self.tuple_taken(tup, entry)):
                    return tup
            elif not self.tuple_taken(tup, entry):
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
                candidate = replace(tup, sport=value)
            else:
                candidate = replace(tup, dport=value)
            if not self.tuple_taken(candidate, entry):
                return candidate
        return None

    def pseudo_random(self, tup: ConnTuple) -> int:
        """What stands in for get_random_u16()/u32(): crc32 of the namespace name and the tuple."""
        text = f"{self.netns.name} {tup.proto} {tup.src} {tup.sport} {tup.dst} {tup.dport} {tup.type}"
        return zlib.crc32(text.encode())

    def nat_packet(self, entry: ConntrackEntry, direction: int, manip: str,
                   packet: IPv4) -> tuple[IPv4, str | None]:
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

    def nat_icmp_error(self, entry: ConntrackEntry, direction: int, manip: str,
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
        outer = replace(packet, payload=replace(icmp, data=data))
        if manip == SRC:
            outer = replace(outer, src=outer_target.src)
            return outer, (outer_target.src, other.destination_text())
        outer = replace(outer, dst=outer_target.dst)
        return outer, (outer_target.dst, other.source_text())


def conn_text(tup: ConnTuple) -> str:
    """A tuple as a ConntrackRef names it: `src:sport -> dst:dport`, `src -> dst id N` for ICMP."""
    if tup.proto == IPPROTO_ICMP:
        return f"{tup.src} -> {tup.dst} id {tup.sport}"
    return f"{tup.src}:{tup.sport} -> {tup.dst}:{tup.dport}"


_conn_text = conn_text
_ICMP_ERROR = "nf_conntrack_icmpv4_error"


def conntrack_ref(entry: ConntrackEntry, direction: int, state: str) -> ConntrackRef:
    """The entry a decision consulted: both tuples, the packet's ctstate and its direction."""
    return ConntrackRef(entry.original.proto_name, conn_text(entry.original), conn_text(entry.reply),
                        state, "reply" if direction == REPLY else "original")


def _lone_ref(tup: ConnTuple) -> ConntrackRef:
    """A packet's tuple that belongs to no entry (the lookup consulted the table and found none)."""
    return ConntrackRef(tup.proto_name, conn_text(tup), state="INVALID", direction="original")


def _decision(reason: ConntrackReason, verdict: Verdict, ref: ConntrackRef | None = None,
              function: str = "nf_conntrack_in", **facts: Any) -> Decision:
    return Decision(Subsystem.CONNTRACK, function, reason, verdict, consulted=(ref,) if ref is not None else (),
                    **facts)


def _set_untracked(skb: "Skb") -> None:
    skb.ct, skb.ct_reply, skb.ct_state = None, False, "INVALID"


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
        packet = replace(packet, src=target.src)
        if isinstance(payload, (TCP, UDP)):
            payload = replace(payload, sport=target.sport)
    else:
        packet = replace(packet, dst=target.dst)
        if isinstance(payload, (TCP, UDP)):
            payload = replace(payload, dport=target.dport)
    if isinstance(payload, ICMP) and payload.type in ICMP_QUERY_REPLY:
        payload = payload.with_id(target.sport)
    return replace(packet, payload=payload)


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


__all__ = [
    "ORIGINAL", "REPLY", "SRC", "DST", "ConnTuple", "ConntrackEntry", "Conntrack", "QuotedPacket",
    "tuple_of", "parse_quoted", "rewrite", "endpoint", "tcp_packet_kind", "TCP_TIMEOUTS", "conn_text",
    "conntrack_ref",
]
