"""Frames and headers as the kernel writes them on the wire.

Each header's layout is one declarative table (`Header`: fields in wire order with their
struct format or bit slice, default, title and meaning), as dpkt's `__hdr__` does. The
layouts follow the kernel's own structs: struct ethhdr (include/uapi/linux/if_ether.h),
struct arphdr (include/uapi/linux/if_arp.h), struct iphdr (include/uapi/linux/ip.h), struct
icmphdr (include/uapi/linux/icmp.h), struct tcphdr (include/uapi/linux/tcp.h), struct udphdr
(include/uapi/linux/udp.h) and struct vxlanhdr (include/net/vxlan.h); TCP options as
tcp_options_write() writes them (net/ipv4/tcp_output.c).

Each header is also an immutable record with the fields a capture shows; `Ethernet.to_bytes()`
serialises a whole frame with valid checksums (what `tcpdump` shows with checksum offload
off, see shared/reference/kernel-observations.md "txcsumoff"). The emulator rewrites headers
with `evolve` (dataclasses.replace without its checks), so a frame seen at one hop is never
changed by a later hop.

Serialisation is `struct` packing compiled from the tables at import: scapy costs about
0.5 ms per packet, so it is used only on demand (`Hop.packet`) and in tests, as the
independent reference dissector.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field, fields
from functools import lru_cache
from ipaddress import IPv4Address
from operator import attrgetter
from typing import Any, Callable, ClassVar, TypeVar, Union

from .errors import ConfigError
# the tables' own module; packet.py declares every header with them (and names them for its importers)
from .header_table import Field, FieldValue, Header, Slot, Word  # noqa: F401

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
PROTO_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}
PROTO_NUMBERS = {name: number for number, name in PROTO_NAMES.items()}

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
# destination unreachable codes
ICMP_NET_UNREACH = 0
ICMP_HOST_UNREACH = 1
ICMP_PORT_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMP_ADMIN_PROHIBITED = 13

ARP_REQUEST = 1
ARP_REPLY = 2

VXLAN_FLAG_I = 0x08

TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
TCP_FLAG_ORDER = "FSRPAUEC"


_LITTLE_ENDIAN = sys.byteorder == "little"
# a frozen record filling in what it worked out; the hot records' own __init__ (IPv4, Ethernet,
# TCP, UDP, VXLAN) sets its whole dict in one call instead of the dataclass's one frozen-safe
# setattr per field: the walk makes several of them per hop
_set_attr = object.__setattr__


@lru_cache(maxsize=1 << 16)       # a trace packs the same few MACs into every frame
def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@lru_cache(maxsize=1 << 16)       # a trace packs the same few addresses into every header
def ip_bytes(addr: str) -> bytes:
    return IPv4Address(addr).packed


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones'-complement sum, as every IPv4, ICMP, TCP and UDP header uses. The words
    are summed in the machine's byte order and the result swapped back (RFC 1071 2(B): the sum
    does not depend on byte order), which lets memoryview add them in C."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(memoryview(data).cast("H"))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    return ((total & 0xFF) << 8) | (total >> 8) if _LITTLE_ENDIAN else total


def _pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    return ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, length)


def tcp_flags_value(flags: str) -> int:
    value = 0
    for letter in flags:
        try:
            value |= TCP_FLAG_BITS[letter]
        except KeyError:
            raise ConfigError(f"unknown TCP flag {letter!r}; valid flags are {TCP_FLAG_ORDER}") from None
    return value


def tcp_flags_text(value: int) -> str:
    return "".join(letter for letter in TCP_FLAG_ORDER if value & TCP_FLAG_BITS[letter])


# ---------------------------------------------------------------------------- header tables
# Each header's layout is written once, as a table (dpkt's `__hdr__` idea): the fields in wire
# order, each with its struct format or its bit slice of a shared word, its default, a title
# and one sentence of meaning. Packing, parsing, the header view (views/headers.py), the hex
# byte ranges (views/hexdump.py) and the lab's field-by-field comparison (lab/compare.py) all
# read these tables; nothing else writes an offset down.

F = Field

ETHERNET_HEADER = Header("ethernet", "Ethernet II", (
    F("dst", "Destination MAC", "The next box on this link that should take the frame; rewritten at every "
      "routed hop, kept by bridges.", "6s", bytes(6), show="mac"),
    F("src", "Source MAC", "The interface that put the frame on this link.", "6s", bytes(6), show="mac"),
    F("type", "EtherType", "What the payload is: 0x0800 IPv4, 0x0806 ARP.", "H", ETH_P_IP, show="ethertype"),
))

ARP_HEADER = Header("arp", "ARP", (
    F("htype", "Hardware type", "1: Ethernet.", "H", 1, attr=""),
    F("ptype", "Protocol type", "The address family asked about: IPv4.", "H", ETH_P_IP, show="ethertype", attr=""),
    F("hlen", "Hardware size", "Length of a MAC address in bytes.", "B", 6, attr=""),
    F("plen", "Protocol size", "Length of an IPv4 address in bytes.", "B", 4, attr=""),
    F("op", "Opcode", "1 asks who has an address (broadcast); 2 answers (unicast).", "H", ARP_REQUEST,
      show="arp_op"),
    F("sha", "Sender MAC", "The asker's (or answerer's) MAC; receivers may cache it.", "6s", bytes(6),
      show="mac", attr="hwsrc"),
    F("spa", "Sender IP", "The sender's IPv4 address.", "4s", bytes(4), show="ipv4", attr="psrc"),
    F("tha", "Target MAC", "Zero in a request: this is what is being asked.", "6s", bytes(6), show="mac",
      attr="hwdst"),
    F("tpa", "Target IP", "The address whose MAC is wanted (or the asker, in a reply).", "4s", bytes(4),
      show="ipv4", attr="pdst"),
))

IPV4_HEADER = Header("ipv4", "IPv4", (
    Word("B", (
        F("version", "Version", "4 for IPv4.", default=4, bits=(4, 4), attr=""),
        F("ihl", "Header length", "In 32-bit words; 5 means no options.", default=5, bits=(0, 4), show="words",
          attr=""),
    )),
    F("tos", "DSCP/ECN", "Type of service; Flannel and kube-proxy leave it 0.", "B", show="hex"),
    F("total_length", "Total length", "Header plus payload in bytes; grows by the encapsulation overhead when "
      "a packet is tunnelled.", "H", attr=""),
    F("id", "Identification", "Set by the sender, kept unchanged by forwarding, NAT and encapsulation (an "
      "outer header gets its own).", "H", show="hex"),
    Word("H", (       # bit 15 is reserved (zero)
        F("df", "Don't fragment", "Set by TCP and UDP sockets for path MTU discovery; VXLAN's outer header "
          "leaves it clear.", default=True, bits=(14, 1), show="flag"),
        F("mf", "More fragments", "Set on every fragment but the last.", default=False, bits=(13, 1), show="flag"),
        F("frag", "Fragment offset", "Where this fragment's data starts, in 8-byte units.", bits=(0, 13),
          show="frag"),
    )),
    F("ttl", "Time to live", "Decremented by one by every router that forwards the packet; bridges, veths "
      "and encapsulation leave it alone.", "B", 64),
    F("proto", "Protocol", "What the payload is: 1 ICMP, 6 TCP, 17 UDP.", "B", show="proto"),
    F("checksum", "Header checksum", "Covers the header only, so it changes with the TTL and with any NAT "
      "rewrite.", "H", show="hex", attr=""),
    F("src", "Source address", "The sender; rewritten by SNAT/MASQUERADE.", "4s", bytes(4), show="ipv4"),
    F("dst", "Destination address", "Where routing sends it; rewritten by DNAT.", "4s", bytes(4), show="ipv4"),
), tail=F("options", "Options", "IP options (none in this book's traffic).", default=b"", show="bytes", attr=""),
   length_from=("ihl", 4))

_ICMP_TOP = (
    F("type", "Type", "3 destination unreachable, 11 time exceeded.", "B", show="icmp_type"),
    F("code", "Code", "The reason, e.g. 4 for fragmentation needed, 13 administratively prohibited.", "B"),
    F("checksum", "Checksum", "Covers the ICMP message.", "H", show="hex", attr=""),
)
ICMP_HEADER = Header("icmp", "ICMP", _ICMP_TOP + (
    F("rest", "Rest of header", "Unused, or the next-hop MTU for fragmentation needed.", "I", show="hex"),
))
# Echo request and reply: the same 8 bytes, the last four read as identifier and sequence.
ICMP_ECHO_HEADER = Header("icmp", "ICMP", (
    F("type", "Type", "8 echo request, 0 echo reply.", "B", ICMP_ECHO_REQUEST, show="icmp_type"),
    F("code", "Code", "0 for echo messages.", "B"),
    _ICMP_TOP[2],
    Word("I", (
        F("ident", "Identifier", "Matches replies to the pinging socket; masquerade may rewrite it as it "
          "rewrites a port.", bits=(16, 16), attr="id"),
        F("seq", "Sequence number", "Counts the echo requests of one ping.", bits=(0, 16)),
    )),
))

TCP_HEADER = Header("tcp", "TCP", (
    F("sport", "Source port", "The client's ephemeral port; MASQUERADE --random-fully picks a new one.", "H"),
    F("dport", "Destination port", "The service port; DNAT may rewrite it (30080 -> 8080).", "H"),
    F("seq", "Sequence number", "Position of the first data byte; random in a SYN.", "I"),
    F("ack", "Acknowledgment number", "Next byte expected from the peer (when ACK is set).", "I"),
    Word("H", (       # bits 9-11 are reserved (zero)
        F("data_offset", "Header length", "In 32-bit words.", default=5, bits=(12, 4), show="words", attr=""),
        F("flags", "Flags", "S opens, SA answers, A acknowledges, F closes, R resets.", default=0x02,
          bits=(0, 9), show="tcp_flags"),
    )),
    F("window", "Window", "How many bytes the sender can take.", "H", 64240),
    F("checksum", "Checksum", "Covers a pseudo-header with both addresses, so NAT must update it.", "H",
      show="hex", attr=""),
    F("urgent", "Urgent pointer", "Unused (0).", "H", attr=""),
), tail=F("options", "Options", "Each is kind, length, value: a SYN offers its MSS, SACK and window "
          "scale; with timestamps on, every segment carries its clock.", default=b"", show="tcp_options"),
   length_from=("data_offset", 4))

UDP_HEADER = Header("udp", "UDP", (
    F("sport", "Source port", "For VXLAN, a hash of the inner flow in 32768-60999, so routers can spread "
      "tunnels over links.", "H"),
    F("dport", "Destination port", "8472: Flannel's VXLAN port (the Linux default); 8285: its udp backend.", "H"),
    F("length", "Length", "UDP header plus payload in bytes.", "H", attr=""),
    F("checksum", "Checksum", "Covers a pseudo-header, header and payload; 0 means none.", "H", show="hex",
      attr=""),
))

# RFC 7348 section 5; the kernel's struct vxlanhdr (include/net/vxlan.h).
VXLAN_HEADER = Header("vxlan", "VXLAN", (
    Word("I", (
        F("flags", "Flags", "0x08: the I flag, the VNI is valid.", default=VXLAN_FLAG_I, bits=(24, 8), show="hex"),
        F("reserved1", "Reserved", "Zero.", bits=(0, 24), show="hex", attr=""),
    )),
    Word("I", (
        F("vni", "VNI", "VXLAN network identifier; Flannel uses 1.", bits=(8, 24)),
        F("reserved2", "Reserved", "Zero.", bits=(0, 8), show="hex", attr=""),
    )),
))

# Flannel's udp backend (backend/udp, proxy_amd64.c) puts the bare IP packet read from flannel0
# straight into a UDP datagram to port 8285: it adds no header of its own, so it has no table.
HEADERS: dict[str, Header] = {h.kind: h for h in (ETHERNET_HEADER, ARP_HEADER, IPV4_HEADER, ICMP_HEADER,
                                                    TCP_HEADER, UDP_HEADER, VXLAN_HEADER)}


# TCP options (RFC 9293 section 3.1, RFC 7323, RFC 2018): kind, length, value. The kernel
# writes them in tcp_options_write() (net/ipv4/tcp_output.c) and reads them in
# tcp_parse_options() (net/ipv4/tcp_input.c). `fmt` is the struct format of the value.

@dataclass(frozen=True)
class TCPOptionKind:
    kind: int
    name: str            # as tcpdump prints it
    fmt: str             # the value after kind and length; "" for none (NOP and EOL have no length byte)
    title: str
    meaning: str

    @property
    def length(self) -> int:
        """Bytes on the wire: 1 for NOP and EOL, else kind, length and the value."""
        return 1 if self.kind in (TCPOPT_EOL, TCPOPT_NOP) else 2 + struct.calcsize("!" + self.fmt)


TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP = 0, 1, 2, 3, 4, 5, 8

TCP_OPTIONS: dict[int, TCPOptionKind] = {k.kind: k for k in (
    TCPOptionKind(TCPOPT_EOL, "eol", "", "End of options", "Nothing follows but padding."),
    TCPOptionKind(TCPOPT_NOP, "nop", "", "No operation", "Padding, so the next option starts on a 32-bit word."),
    TCPOptionKind(TCPOPT_MSS, "mss", "H", "Maximum segment size",
                  "The largest segment the sender takes: its MTU less 40 bytes of IP and TCP headers."),
    TCPOptionKind(TCPOPT_WINDOW, "wscale", "B", "Window scale",
                  "The peer shifts every window it receives left by this many bits (SYN only)."),
    TCPOptionKind(TCPOPT_SACK_PERM, "sackOK", "", "SACK permitted",
                  "The sender understands selective acknowledgements (SYN only)."),
    TCPOptionKind(TCPOPT_SACK, "sack", "", "Selective acknowledgement",
                  "Blocks of data received beyond the acknowledgement number."),
    TCPOptionKind(TCPOPT_TIMESTAMP, "TS", "II", "Timestamps",
                  "The sender's clock and the last one it heard (RTT measurement, PAWS)."),
)}


@dataclass(frozen=True)
class TCPOption:
    """One option as found in a segment: its `offset` within the options and its numbers."""

    kind: int
    offset: int
    length: int
    values: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        spec = TCP_OPTIONS.get(self.kind)
        return spec.name if spec is not None else f"option-{self.kind}"

    def __str__(self) -> str:
        if self.kind == TCPOPT_TIMESTAMP and len(self.values) == 2:
            return f"TS val {self.values[0]} ecr {self.values[1]}"
        if self.kind == TCPOPT_SACK:
            return " ".join(["sack", *(f"{a}:{b}" for a, b in zip(self.values[::2], self.values[1::2]))])
        if self.kind not in TCP_OPTIONS:
            return f"option {self.kind} ({self.length} bytes)"
        return " ".join([self.name, *map(str, self.values)])


def tcp_options(raw: bytes) -> tuple[TCPOption, ...]:
    """Decode a TCP header's options. An option of a known kind with the wrong length, or one
    that runs past the end, is kept with no values, as tcp_parse_options() skips it."""
    out: list[TCPOption] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind in (TCPOPT_EOL, TCPOPT_NOP):
            out.append(TCPOption(kind, i, 1))
            i += 1
            if kind == TCPOPT_EOL:
                break
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            out.append(TCPOption(kind, i, len(raw) - i))
            break
        length = raw[i + 1]
        body = raw[i + 2:i + length]
        spec = TCP_OPTIONS.get(kind)
        values: tuple[int, ...] = ()
        if kind == TCPOPT_SACK and len(body) % 8 == 0:
            values = struct.unpack(f"!{len(body) // 4}I", body)
        elif spec is not None and spec.fmt and length == spec.length:
            values = struct.unpack("!" + spec.fmt, body)
        out.append(TCPOption(kind, i, length, values))
        i += length
    return tuple(out)


def tcp_option_bytes(kind: int, *values: int) -> bytes:
    """One option as the kernel writes it, from TCP_OPTIONS."""
    spec = TCP_OPTIONS[kind]
    if spec.length == 1:
        return bytes([kind])
    return struct.pack("!BB" + spec.fmt, kind, spec.length, *values)


# ---------------------------------------------------------------------------- the headers
# The records the model builds and rewrites. Each packs itself through its table's packer;
# a checksum is computed over the packed bytes and written at the offset the table gives.

_ETH_PACK = ETHERNET_HEADER.pack
_ARP_PACK = ARP_HEADER.pack
_IPV4_PACK = IPV4_HEADER.pack
_IPV4_CSUM = IPV4_HEADER.slot("checksum").offset
_ETH_STRUCT_PACK = ETHERNET_HEADER.struct.pack      # dst, src, type: three whole fields, in order
_ICMP_PACK = ICMP_HEADER.pack
_ICMP_CSUM = ICMP_HEADER.slot("checksum").offset
_TCP_PACK = TCP_HEADER.pack
_TCP_CSUM = TCP_HEADER.slot("checksum").offset
_UDP_PACK = UDP_HEADER.pack
_UDP_CSUM = UDP_HEADER.slot("checksum").offset
_VXLAN_PACK = VXLAN_HEADER.pack


@lru_cache(maxsize=1 << 14)       # the same few links carry every frame of a trace
def _ethernet_header(dst: str, src: str, ethertype: int) -> bytes:
    return _ETH_STRUCT_PACK(mac_bytes(dst), mac_bytes(src), ethertype)


def _with_checksum(data: bytes, offset: int, csum: int) -> bytes:
    return data[:offset] + csum.to_bytes(2, "big") + data[offset + 2:]


@dataclass(frozen=True)
class ARP:
    """An ARP packet for IPv4 over Ethernet (RFC 826)."""

    header: ClassVar[Header] = ARP_HEADER

    op: int
    hwsrc: str
    psrc: str
    hwdst: str
    pdst: str
    pad: int = 0        # zero bytes after the message: a sender that pads its frames to 60 bytes
    #                     (the kernel's arp_create does not, and a veth adds none)

    def to_bytes(self) -> bytes:
        return _ARP_PACK(op=self.op, sha=mac_bytes(self.hwsrc), spa=ip_bytes(self.psrc),
                         tha=mac_bytes(self.hwdst), tpa=ip_bytes(self.pdst)) + bytes(self.pad)

    def length(self) -> int:
        return ARP_HEADER.size + self.pad

    def summary(self) -> str:
        if self.op == ARP_REQUEST:
            return f"ARP who-has {self.pdst} tell {self.psrc}"
        return f"ARP {self.psrc} is-at {self.hwsrc}"


@dataclass(frozen=True)
class ICMP:
    """An ICMP message; `rest` is the 32-bit field after the checksum (echo id and sequence,
    or the next-hop MTU of "fragmentation needed")."""

    header: ClassVar[Header] = ICMP_HEADER

    type: int
    code: int = 0
    rest: int = 0
    data: bytes = b""

    @property
    def id(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def is_error(self) -> bool:
        return self.type in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)

    def with_id(self, ident: int) -> "ICMP":
        return evolve(self, rest=(ident << 16) | self.seq)

    def encode(self, src: str, dst: str) -> bytes:
        body = _ICMP_PACK(type=self.type, code=self.code, rest=self.rest) + self.data
        return _with_checksum(body, _ICMP_CSUM, internet_checksum(body))

    def length(self) -> int:
        return ICMP_HEADER.size + len(self.data)

    def summary(self) -> str:
        names = {ICMP_ECHO_REQUEST: "echo request", ICMP_ECHO_REPLY: "echo reply",
                 ICMP_TIME_EXCEEDED: "time exceeded", ICMP_DEST_UNREACH: "destination unreachable"}
        name = names.get(self.type, f"type {self.type}")
        if self.type in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
            return f"ICMP {name} id {self.id} seq {self.seq}"
        return f"ICMP {name} code {self.code}"


@dataclass(frozen=True)
class TCP:
    """A TCP segment; `flags` are letters as tcpdump prints them (S, SA, A, PA, R, RA, FA);
    `options` are the raw option bytes (`option_list` decodes them)."""

    header: ClassVar[Header] = TCP_HEADER

    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: str = "S"
    window: int = 64240
    options: bytes = b""
    payload: bytes = b""
    # the last encoding, (src, dst, bytes): a forwarded segment rides in several IP packets
    # that differ only in their TTL, and its checksum covers the addresses alone
    _encoded: tuple[str, str, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, sport: int, dport: int, seq: int = 0, ack: int = 0, flags: str = "S", window: int = 64240,
                 options: bytes = b"", payload: bytes = b"") -> None:
        _set_attr(self, "__dict__", {"sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": flags,
                                     "window": window, "options": options, "payload": payload, "_encoded": None})

    @property
    def option_list(self) -> tuple[TCPOption, ...]:
        """The options decoded (worked out once: a segment's options are read several times)."""
        found: tuple[TCPOption, ...] | None = self.__dict__.get("_options")
        if found is None:
            found = self.__dict__["_options"] = tcp_options(self.options)
        return found

    def encode(self, src: str, dst: str) -> bytes:
        encoded = self._encoded
        if encoded is not None and encoded[0] == src and encoded[1] == dst:
            return encoded[2]
        header = _TCP_PACK(sport=self.sport, dport=self.dport, seq=self.seq, ack=self.ack,
                           data_offset=(TCP_HEADER.size + len(self.options)) // 4,
                           flags=tcp_flags_value(self.flags), window=self.window)
        segment = header + self.options + self.payload
        csum = internet_checksum(_pseudo_header(src, dst, IPPROTO_TCP, len(segment)) + segment)
        wire = _with_checksum(segment, _TCP_CSUM, csum)
        _set_attr(self, "_encoded", (src, dst, wire))
        return wire

    def length(self) -> int:
        return TCP_HEADER.size + len(self.options) + len(self.payload)

    def summary(self) -> str:
        extra = f" len {len(self.payload)}" if self.payload else ""
        return f"TCP {self.sport} > {self.dport} [{self.flags}]{extra}"


@dataclass(frozen=True)
class VXLAN:
    """The 8-byte VXLAN header (RFC 7348) and the Ethernet frame it carries."""

    header: ClassVar[Header] = VXLAN_HEADER

    vni: int
    payload: "Ethernet"
    flags: int = VXLAN_FLAG_I

    def __init__(self, vni: int, payload: Ethernet, flags: int = VXLAN_FLAG_I) -> None:
        _set_attr(self, "__dict__", {"vni": vni, "payload": payload, "flags": flags})

    def to_bytes(self) -> bytes:
        return _VXLAN_PACK(flags=self.flags, vni=self.vni) + self.payload.to_bytes()

    def length(self) -> int:
        return VXLAN_HEADER.size + self.payload.length()


@dataclass(frozen=True)
class UDP:
    """A UDP datagram. `checksum=False` sends a zero checksum, as `noudpcsum` does."""

    header: ClassVar[Header] = UDP_HEADER

    sport: int
    dport: int
    payload: Union[VXLAN, "IPv4", bytes] = b""
    checksum: bool = True

    def __init__(self, sport: int, dport: int, payload: Union[VXLAN, IPv4, bytes] = b"", checksum: bool = True) -> None:
        _set_attr(self, "__dict__", {"sport": sport, "dport": dport, "payload": payload, "checksum": checksum})

    def payload_bytes(self) -> bytes:
        payload = self.payload
        return payload if isinstance(payload, bytes) else payload.to_bytes()

    def encode(self, src: str, dst: str) -> bytes:
        body = self.payload_bytes()
        length = UDP_HEADER.size + len(body)
        datagram = _UDP_PACK(sport=self.sport, dport=self.dport, length=length) + body
        if not self.checksum:
            return datagram
        csum = internet_checksum(_pseudo_header(src, dst, IPPROTO_UDP, length) + datagram) or 0xFFFF
        return _with_checksum(datagram, _UDP_CSUM, csum)

    def length(self) -> int:
        payload = self.payload
        return UDP_HEADER.size + (len(payload) if isinstance(payload, bytes) else payload.length())

    def summary(self) -> str:
        return f"UDP {self.sport} > {self.dport}"


Transport = Union[ICMP, TCP, UDP, bytes]


@dataclass(frozen=True, slots=True)
class IPv4:
    """An IPv4 packet. `payload` is a transport header, or raw bytes for a non-first fragment.
    `frag` is the fragment offset in 8-byte units. Slotted, as Ethernet."""

    header: ClassVar[Header] = IPV4_HEADER

    src: str
    dst: str
    proto: int
    payload: Transport
    ttl: int = 64
    id: int = 0
    df: bool = True
    tos: int = 0
    mf: bool = False
    frag: int = 0
    # worked out once, on first use (the same packet is measured and packed at several hops)
    _length: int | None = field(default=None, init=False, repr=False, compare=False)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, src: str, dst: str, proto: int, payload: Transport, ttl: int = 64, id: int = 0,
                 df: bool = True, tos: int = 0, mf: bool = False, frag: int = 0) -> None:
        # straight into the slots, as Ethernet
        _IP_SRC(self, src)
        _IP_DST(self, dst)
        _IP_PROTO(self, proto)
        _IP_PAYLOAD(self, payload)
        _IP_TTL(self, ttl)
        _IP_ID(self, id)
        _IP_DF(self, df)
        _IP_TOS(self, tos)
        _IP_MF(self, mf)
        _IP_FRAG(self, frag)
        _IP_LENGTH(self, None)
        _IP_WIRE(self, None)

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag > 0

    def payload_bytes(self) -> bytes:
        payload = self.payload
        if isinstance(payload, bytes):
            return payload
        return payload.encode(self.src, self.dst)

    def length(self) -> int:
        """The total length (worked out once: every MTU check asks for it)."""
        length = self._length
        if length is None:
            payload = self.payload
            length = IPV4_HEADER.size + (len(payload) if isinstance(payload, bytes) else payload.length())
            _set_attr(self, "_length", length)
        return length

    def header_bytes(self, total_length: int) -> bytes:
        header = _IPV4_PACK(tos=self.tos, total_length=total_length, id=self.id, df=self.df, mf=self.mf,
                            frag=self.frag, ttl=self.ttl, proto=self.proto, src=ip_bytes(self.src),
                            dst=ip_bytes(self.dst))
        return _with_checksum(header, _IPV4_CSUM, internet_checksum(header))

    def to_bytes(self) -> bytes:
        """The packet on the wire (worked out once: the same packet rides in several frames)."""
        wire = self._wire
        if wire is None:
            body = self.payload_bytes()
            wire = self.header_bytes(IPV4_HEADER.size + len(body)) + body
            _set_attr(self, "_wire", wire)
        return wire

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def summary(self) -> str:
        inner = self.payload
        detail = inner.summary() if not isinstance(inner, bytes) else f"fragment offset {self.frag * 8}"
        return f"{self.src} > {self.dst} ttl {self.ttl} {detail}"


@dataclass(frozen=True, slots=True)
class Ethernet:
    """An Ethernet II frame; what every capture point in the trace records. It has slots, no
    __dict__: every hop of a trace keeps one (a 100 kB transfer keeps 1,500)."""

    header: ClassVar[Header] = ETHERNET_HEADER

    dst: str
    src: str
    type: int
    payload: Union[ARP, IPv4, bytes]
    _length: int | None = field(default=None, init=False, repr=False, compare=False)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, dst: str, src: str, type: int, payload: Union[ARP, IPv4, bytes]) -> None:
        # straight into the slots (their descriptors' __set__): the frozen class refuses setattr
        _ETH_DST(self, dst)
        _ETH_SRC(self, src)
        _ETH_TYPE(self, type)
        _ETH_PAYLOAD(self, payload)
        _ETH_LENGTH(self, None)
        _ETH_WIRE(self, None)

    def length(self) -> int:
        """The frame's length (worked out once, like its bytes)."""
        length = self._length
        if length is None:
            payload = self.payload
            length = ETHERNET_HEADER.size + (len(payload) if isinstance(payload, bytes) else payload.length())
            _set_attr(self, "_length", length)
        return length

    def to_bytes(self) -> bytes:
        """The frame on the wire (worked out once; the frozen record keeps it beside its fields)."""
        wire = self._wire
        if wire is None:
            payload = self.payload
            body = payload if isinstance(payload, bytes) else payload.to_bytes()
            wire = _ethernet_header(self.dst, self.src, self.type) + body
            _set_attr(self, "_wire", wire)
        return wire

    @property
    def ip(self) -> IPv4 | None:
        payload = self.payload
        return payload if isinstance(payload, IPv4) else None

    @property
    def arp(self) -> ARP | None:
        payload = self.payload
        return payload if isinstance(payload, ARP) else None

    def summary(self) -> str:
        payload = self.payload
        inner = payload.summary() if not isinstance(payload, bytes) else f"{len(payload)} bytes"
        return f"{self.src} > {self.dst} {inner}"


# the slots' descriptors' __set__, with which __init__ and with_ttl fill a frozen record
(_IP_SRC, _IP_DST, _IP_PROTO, _IP_PAYLOAD, _IP_TTL, _IP_ID, _IP_DF, _IP_TOS, _IP_MF, _IP_FRAG, _IP_LENGTH,
 _IP_WIRE) = (IPv4.__dict__[name].__set__ for name in ("src", "dst", "proto", "payload", "ttl", "id", "df", "tos",
                                                        "mf", "frag", "_length", "_wire"))
_ETH_DST, _ETH_SRC, _ETH_TYPE, _ETH_PAYLOAD, _ETH_LENGTH, _ETH_WIRE = (
    Ethernet.__dict__[name].__set__ for name in ("dst", "src", "type", "payload", "_length", "_wire"))
_FIELDS: dict[type, tuple[Callable[[Any], tuple], dict[str, int]]] = {}
R = TypeVar("R", bound=Union[ARP, ICMP, TCP, UDP, VXLAN, IPv4, Ethernet])


def evolve(record: R, **changes: Any) -> R:
    """`dataclasses.replace` for the packet records, without its checks: the walk rewrites a
    TTL, a MAC or a payload at almost every hop. What a record worked out about itself (its
    bytes, its length) stays behind. The fields are read in one call (an attrgetter)."""
    cls = type(record)
    known = _FIELDS.get(cls)
    if known is None:
        order = tuple(f.name for f in fields(cls) if f.init)
        getter = attrgetter(*order) if len(order) > 1 else (lambda r: (getattr(r, order[0]),))
        known = _FIELDS[cls] = (getter, {name: i for i, name in enumerate(order)})
    getter, index = known
    values = list(getter(record))
    for name, value in changes.items():
        i = index.get(name)
        if i is None:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        values[i] = value
    return cls(*values)


def with_ttl(ip: IPv4, ttl: int) -> IPv4:
    """`evolve(ip, ttl=ttl)` that keeps the length the packet worked out (a TTL changes its
    header's bytes, not its size): ip_forward's rewrite at every router."""
    other = object.__new__(IPv4)
    _IP_SRC(other, ip.src)
    _IP_DST(other, ip.dst)
    _IP_PROTO(other, ip.proto)
    _IP_PAYLOAD(other, ip.payload)
    _IP_TTL(other, ttl)
    _IP_ID(other, ip.id)
    _IP_DF(other, ip.df)
    _IP_TOS(other, ip.tos)
    _IP_MF(other, ip.mf)
    _IP_FRAG(other, ip.frag)
    _IP_LENGTH(other, ip._length)
    _IP_WIRE(other, None)
    return other


def vxlan_of(frame: Ethernet) -> VXLAN | None:
    """The VXLAN header inside an outer frame, if the frame is VXLAN-encapsulated."""
    ip = frame.ip
    if ip is not None and isinstance(ip.payload, UDP) and isinstance(ip.payload.payload, VXLAN):
        return ip.payload.payload
    return None


def innermost_ip(frame: Ethernet) -> IPv4 | None:
    """The IP packet a reader cares about: inside any VXLAN or UDP-backend encapsulation."""
    ip = frame.ip
    while ip is not None and isinstance(ip.payload, UDP):
        inner = ip.payload.payload
        if isinstance(inner, VXLAN):
            ip = inner.payload.ip
        elif isinstance(inner, IPv4):
            ip = inner
        else:
            break
    return ip


# Parsing: the inverse of to_bytes, used for frames that come from outside the model
# (the real-kernel lab, pcaps). Only the layers the model builds are understood; each is
# read with its table.

def ip_str(raw: bytes) -> str:
    return str(IPv4Address(raw))


def _mac(value: FieldValue) -> str:
    return mac_str(value) if isinstance(value, bytes) else ""


def _ip(value: FieldValue) -> str:
    return ip_str(value) if isinstance(value, bytes) else ""


def _bytes(value: FieldValue) -> bytes:
    return value if isinstance(value, bytes) else b""


def _int(value: FieldValue) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


def parse_ethernet(raw: bytes, vxlan_ports: tuple[int, ...] = (8472, 4789)) -> Ethernet:
    if len(raw) < ETHERNET_HEADER.size:
        raise ConfigError(f"an Ethernet frame is at least {ETHERNET_HEADER.size} bytes, got {len(raw)}")
    eth = ETHERNET_HEADER.unpack(raw)
    etype = _int(eth["type"])
    body = raw[ETHERNET_HEADER.size:]
    payload: Union[ARP, IPv4, bytes] = body
    if etype == ETH_P_ARP and len(body) >= ARP_HEADER.size:
        a = ARP_HEADER.unpack(body)
        payload = ARP(_int(a["op"]), _mac(a["sha"]), _ip(a["spa"]), _mac(a["tha"]), _ip(a["tpa"]),
                      pad=len(body) - ARP_HEADER.size)
    elif etype == ETH_P_IP:
        payload = parse_ipv4(body, vxlan_ports)
    return Ethernet(_mac(eth["dst"]), _mac(eth["src"]), etype, payload)


def parse_ipv4(raw: bytes, vxlan_ports: tuple[int, ...] = (8472, 4789)) -> IPv4:
    f = IPV4_HEADER.unpack(raw)
    body = raw[IPV4_HEADER.length(raw):_int(f["total_length"])]
    df, mf, frag = bool(f["df"]), bool(f["mf"]), _int(f["frag"])
    proto = _int(f["proto"])
    payload: Transport = body
    if not mf and frag == 0:
        payload = _parse_transport(proto, body, vxlan_ports)
    return IPv4(_ip(f["src"]), _ip(f["dst"]), proto, payload, ttl=_int(f["ttl"]), id=_int(f["id"]), df=df,
                tos=_int(f["tos"]), mf=mf, frag=frag)


def _parse_transport(proto: int, body: bytes, vxlan_ports: tuple[int, ...]) -> Transport:
    if proto == IPPROTO_ICMP and len(body) >= ICMP_HEADER.size:
        i = ICMP_HEADER.unpack(body)
        return ICMP(_int(i["type"]), _int(i["code"]), _int(i["rest"]), body[ICMP_HEADER.size:])
    if proto == IPPROTO_TCP and len(body) >= TCP_HEADER.size:
        t = TCP_HEADER.unpack(body)
        hlen = TCP_HEADER.length(body)
        return TCP(_int(t["sport"]), _int(t["dport"]), _int(t["seq"]), _int(t["ack"]),
                   tcp_flags_text(_int(t["flags"])), _int(t["window"]), _bytes(t["options"]), body[hlen:])
    if proto == IPPROTO_UDP and len(body) >= UDP_HEADER.size:
        u = UDP_HEADER.unpack(body)
        data = body[UDP_HEADER.size:_int(u["length"])]
        inner: Union[VXLAN, IPv4, bytes] = data
        dport = _int(u["dport"])
        if dport in vxlan_ports and len(data) >= VXLAN_HEADER.size + ETHERNET_HEADER.size and data[0] & VXLAN_FLAG_I:
            v = VXLAN_HEADER.unpack(data)
            inner = VXLAN(_int(v["vni"]), parse_ethernet(data[VXLAN_HEADER.size:], vxlan_ports), _int(v["flags"]))
        return UDP(_int(u["sport"]), dport, inner, checksum=u["checksum"] != 0)
    return body
