"""Connection tracking, as net/netfilter/nf_conntrack_core.c and nf_conntrack_proto_*.c keep it.

Theory of operation. Every tracked packet is reduced to a tuple, and a connection
(`ConntrackEntry`) holds its ORIGINAL and REPLY tuples (conntrack_entry.py). The table is a dict
keyed by both tuples, so a packet finds its connection and its direction in one lookup, as the
kernel's hash does. The NAT bindings of the namespace's connections (nf_nat_core.c) are
nf_nat.py's; `Conntrack` hands its NAT calls on to them.

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

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .addresses import FLOW_MEMO
from .conntrack_entry import (DST, ICMP_ERROR_TYPES, ICMP_NEW_TYPES, ICMP_QUERY_REPLY, ICMP_TIMEOUT, ORIGINAL, REPLY,
                              SRC, TCP_TIMEOUTS, UDP_TIMEOUT, ConnTuple, ConntrackEntry, conntrack_ref_of, conn_text,
                              conntrack_ref, endpoint, lone_ref, tuple_of)
from .decision import VERDICT_OF, ConntrackReason, ConntrackRef, Decision, Subsystem, Verdict
from .nf_nat import NatBindings, QuotedPacket, nat_icmp_error, nat_packet, parse_quoted, rewrite
from .packet import ICMP, IPPROTO_TCP, IPv4, TCP

if TYPE_CHECKING:  # pragma: no cover
    from .skb import Skb

_ICMP_ERROR = "nf_conntrack_icmpv4_error"

# The TCP state table, nf_conntrack_proto_tcp.c tcp_conntracks[dir][packet kind][old state].
_S = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
      "TIME_WAIT", "CLOSE", "SYN_SENT2")
sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 = _S
sIV, sIG = "INVALID", "IGNORE"
_STATE_INDEX = {state: i for i, state in enumerate(_S)}
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


@lru_cache(maxsize=64)
def tcp_packet_kind(flags: str) -> str:
    """get_conntrack_index(): which row of the state table a segment uses (remembered: a few
    flag strings, met by every segment)."""
    if "R" in flags:
        return "rst"
    if "S" in flags:
        return "synack" if "A" in flags else "syn"
    if "F" in flags:
        return "fin"
    if "A" in flags:
        return "ack"
    return "none"


class Conntrack:
    """The conntrack table of one network namespace (`conntrack -L` shows it)."""

    def __init__(self, netns: Any):
        self.netns = netns
        self._by_tuple: dict[ConnTuple, tuple[ConntrackEntry, int]] = {}
        self._entries: dict[int, ConntrackEntry] = {}       # insertion order, keyed by id()
        self.nat = NatBindings(self, netns)

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
        self.nat.by_source.clear()

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
        self.nat.forget_source(entry)

    def _insert(self, entry: ConntrackEntry) -> None:
        self._by_tuple[entry.original] = (entry, ORIGINAL)
        self._by_tuple[entry.reply] = (entry, REPLY)
        self._entries[id(entry)] = entry
        if entry.snat:
            self.nat.remember_source(entry)

    def tuple_taken(self, tup: ConnTuple, ignore: ConntrackEntry | None = None) -> bool:
        """nf_nat_used_tuple(): would a connection that looks like `tup` collide with another
        connection's answer? (Its reply, invert(tup), is already some entry's tuple.)"""
        found = self._by_tuple.get(tup.invert())
        return found is not None and found[0] is not ignore

    def reply_taken(self, reply: ConnTuple, ignore: ConntrackEntry | None = None) -> bool:
        """tuple_taken of the connection whose answer is `reply`: is `reply` some other entry's?"""
        found = self._by_tuple.get(reply)
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
                return [_decision(ConntrackReason.INVALID_TCP, Verdict.INVALID, lone_ref(tup), flags=payload.flags)]
        elif isinstance(payload, ICMP) and payload.type not in ICMP_NEW_TYPES:
            _set_untracked(skb)
            return [_decision(ConntrackReason.INVALID_ICMP, Verdict.INVALID, lone_ref(tup), type=payload.type,
                              src=tup.src, dst=tup.dst)]
        entry = ConntrackEntry(tup, tup.invert(), state=state)
        skb.ct, skb.ct_reply, skb.ct_state = entry, False, "NEW"
        return [_new_connection(entry.original, entry.reply, state)]

    def _existing(self, packet: IPv4, entry: ConntrackEntry, direction: int, skb: "Skb") -> list[Decision]:
        # resolve_normal_ct(): the packet's ctinfo, from the state before this packet.
        if direction == REPLY:
            ct_state = "ESTABLISHED"
        else:
            ct_state = "ESTABLISHED" if entry.seen_reply else "NEW"
        payload = packet.payload
        if isinstance(payload, TCP):
            old = entry.state
            new = _TCP_TABLE[direction][tcp_packet_kind(payload.flags)][_STATE_INDEX[old]]
            if new == old == sES and entry.assured and (direction == ORIGINAL or entry.seen_reply):
                # the common case, a segment of an established connection: nothing changes
                is_reply = direction == REPLY
                skb.ct, skb.ct_reply, skb.ct_state = entry, is_reply, ct_state
                known = entry.established.get((is_reply, ct_state)) if entry.established is not None else None
                if known is None or known[0] is not entry.original or known[1] is not entry.reply:
                    known = _remember(entry, is_reply, ct_state,
                                      _tcp_state(entry.original, entry.reply, is_reply, ct_state, old, new, False))
                return [known[2]]
        else:       # UDP, ICMP: tracked; only the reply bit changes (the same record, kept on the entry)
            is_reply = direction == REPLY
            if is_reply:
                entry.seen_reply = True
            skb.ct, skb.ct_reply, skb.ct_state = entry, is_reply, ct_state
            known = entry.established.get((is_reply, ct_state)) if entry.established is not None else None
            if known is None or known[0] is not entry.original or known[1] is not entry.reply:
                known = _remember(entry, is_reply, ct_state, _tracked(entry.original, entry.reply, is_reply, ct_state))
            return [known[2]]
        reason = ConntrackReason.TRACKED
        facts: dict[str, Any] = {}
        if isinstance(payload, TCP):
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
        if reason is ConntrackReason.TCP_STATE:
            return [_tcp_state(entry.original, entry.reply, direction == REPLY, ct_state, facts["old"], facts["new"],
                               facts["assured"])]
        if reason is ConntrackReason.TRACKED:
            return [_tracked(entry.original, entry.reply, direction == REPLY, ct_state)]
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
            return [_decision(ConntrackReason.NOT_TRACKED, Verdict.INVALID, lone_ref(inner), function=_ICMP_ERROR,
                              src=packet.src)]
        entry, direction = found
        skb.ct, skb.ct_reply, skb.ct_state = entry, direction == REPLY, "RELATED"
        return [_decision(ConntrackReason.RELATED, Verdict.RELATED, conntrack_ref(entry, direction, "RELATED"),
                          function=_ICMP_ERROR, src=packet.src)]

    # ---- NAT (nf_nat.py) ---------------------------------------------------------------------
    @staticmethod
    def nat_done(entry: ConntrackEntry, manip: str) -> bool:
        """nf_nat_initialized(): was this manipulation already decided for the connection?"""
        return entry.src_nat_done if manip == SRC else entry.dst_nat_done

    def setup_nat(self, entry: ConntrackEntry, manip: str, addr: str | None,
                  ports: tuple[int, int] | None = None, random: bool = False,
                  random_fully: bool = False) -> bool:
        """nf_nat_setup_info() (NatBindings.setup)."""
        return self.nat.setup(entry, manip, addr, ports, random, random_fully)

    def pseudo_random(self, tup: ConnTuple) -> int:
        return self.nat.pseudo_random(tup)

    # nf_nat_packet() and nf_nat_icmp_reply_translation() need no table: nf_nat.py's own
    nat_packet = staticmethod(nat_packet)
    nat_icmp_error = staticmethod(nat_icmp_error)


# The decisions of the common cases, from the tuples and states they name: frozen records,
# found again when the hooks of one trace meet the same entry the same way in several
# namespaces (a connection's tuples are the same on every host its packets cross unNATed).
@lru_cache(maxsize=FLOW_MEMO)
def _new_connection(original: ConnTuple, reply: ConnTuple, tcp_state: str) -> Decision:
    return Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.NEW, Verdict.NEW,
                    consulted=(conntrack_ref_of(original, reply, "NEW", False),), tcp_state=tcp_state)


def _remember(entry: ConntrackEntry, is_reply: bool, ct_state: str,
              decision: Decision) -> tuple[ConnTuple, ConnTuple, Decision]:
    """Keep `decision` on the entry for its packets in that direction and ctstate."""
    if entry.established is None:
        entry.established = {}
    known = entry.established[(is_reply, ct_state)] = (entry.original, entry.reply, decision)
    return known


@lru_cache(maxsize=FLOW_MEMO)
def _tcp_state(original: ConnTuple, reply: ConnTuple, is_reply: bool, ct_state: str, old: str, new: str,
               assured: bool) -> Decision:
    return Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TCP_STATE, VERDICT_OF[ct_state],
                    consulted=(conntrack_ref_of(original, reply, ct_state, is_reply),), old=old, new=new,
                    assured=assured)


@lru_cache(maxsize=FLOW_MEMO)
def _tracked(original: ConnTuple, reply: ConnTuple, is_reply: bool, ct_state: str) -> Decision:
    return Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TRACKED, VERDICT_OF[ct_state],
                    consulted=(conntrack_ref_of(original, reply, ct_state, is_reply),))


def _decision(reason: ConntrackReason, verdict: Verdict, ref: ConntrackRef | None = None,
              function: str = "nf_conntrack_in", **facts: Any) -> Decision:
    return Decision(Subsystem.CONNTRACK, function, reason, verdict, consulted=(ref,) if ref is not None else (),
                    **facts)


def _set_untracked(skb: "Skb") -> None:
    skb.ct, skb.ct_reply, skb.ct_state = None, False, "INVALID"


__all__ = [
    "ORIGINAL", "REPLY", "SRC", "DST", "ConnTuple", "ConntrackEntry", "Conntrack", "QuotedPacket",
    "tuple_of", "parse_quoted", "rewrite", "endpoint", "tcp_packet_kind", "TCP_TIMEOUTS", "conn_text",
    "conntrack_ref", "ICMP_QUERY_REPLY", "ICMP_NEW_TYPES", "ICMP_ERROR_TYPES", "UDP_TIMEOUT", "ICMP_TIMEOUT",
]
