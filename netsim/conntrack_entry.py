"""A tracked connection and its tuples: struct nf_conntrack_tuple and struct nf_conn
(include/net/netfilter/nf_conntrack_tuple.h, nf_conntrack.h), as records.

A packet is reduced to a tuple (protocol, addresses, ports; for ICMP queries type, code and
id). A connection (`ConntrackEntry`) holds its ORIGINAL tuple (the first packet as it arrived)
and its REPLY tuple (what an answer will look like *after* NAT), its TCP state and its status
bits. A `ConntrackRef` (netsim.decision) names an entry as a decision consulted it. The table
that holds the entries is conntrack.py's, the NAT bindings nf_nat.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from .decision import ConntrackRef, Decision
from .packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, PROTO_NAMES, TCP, UDP

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


class ConnTuple(NamedTuple):
    """struct nf_conntrack_tuple for IPv4. For ICMP, `sport` holds the echo id (the kernel keeps it
    in the source part, and NAT changes it like a source port) and `dport` is 0. A named tuple: the
    table hashes and compares thousands of them."""

    proto: int
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    type: int = 0
    code: int = 0

    def invert(self) -> "ConnTuple":
        """nf_ct_invert_tuple(): the tuple of the answer."""
        proto, src, dst, sport, dport, itype, code = self
        if proto == IPPROTO_ICMP:
            return _new_tuple(ConnTuple, (proto, dst, src, sport, 0, ICMP_QUERY_REPLY.get(itype, itype), code))
        return _new_tuple(ConnTuple, (proto, dst, src, dport, sport, 0, 0))

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto) or str(self.proto)

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


_new_tuple = tuple.__new__      # a ConnTuple from all seven fields, without the keyword handling


def endpoint(proto: int, addr: str, port: int) -> str:
    """`ip:port` for TCP/UDP, `ip id N` for ICMP (the id is the ICMP "port")."""
    if proto == IPPROTO_ICMP:
        return f"{addr} id {port}"
    return f"{addr}:{port}"


def tuple_of(packet: IPv4) -> ConnTuple | None:
    """The tuple the kernel extracts from a packet (nf_ct_get_tuple); None if not trackable."""
    payload = packet.payload
    if isinstance(payload, (TCP, UDP)):
        return _new_tuple(ConnTuple, (packet.proto, packet.src, packet.dst, payload.sport, payload.dport, 0, 0))
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
    # the decision an established, assured TCP segment (or a UDP or ICMP packet) meets, by (is
    # reply, ctstate), with the tuples it names (Conntrack._existing: a connection's packets
    # meet the same few)
    established: dict[tuple[bool, str], tuple[ConnTuple, ConnTuple, Decision]] | None = field(
        default=None, repr=False)

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


def conn_text(tup: ConnTuple) -> str:
    """A tuple as a ConntrackRef names it: `src:sport -> dst:dport`, `src -> dst id N` for ICMP."""
    if tup.proto == IPPROTO_ICMP:
        return f"{tup.src} -> {tup.dst} id {tup.sport}"
    return f"{tup.src}:{tup.sport} -> {tup.dst}:{tup.dport}"


def conntrack_ref(entry: ConntrackEntry, direction: int, state: str) -> ConntrackRef:
    """The entry a decision consulted: both tuples, the packet's ctstate and its direction."""
    return conntrack_ref_of(entry.original, entry.reply, state, direction == REPLY)


def conntrack_ref_of(original: ConnTuple, reply: ConnTuple, state: str, is_reply: bool) -> ConntrackRef:
    """conntrack_ref of an entry given by its two tuples."""
    return ConntrackRef(original.proto_name, conn_text(original), conn_text(reply), state,
                        "reply" if is_reply else "original")


def lone_ref(tup: ConnTuple) -> ConntrackRef:
    """A packet's tuple that belongs to no entry (the lookup consulted the table and found none)."""
    return ConntrackRef(tup.proto_name, conn_text(tup), state="INVALID", direction="original")
