"""Frames and headers as the kernel writes them on the wire.

Each header is an immutable record with the fields a capture shows; `Ethernet.to_bytes()`
serialises a whole frame with valid checksums (what `tcpdump` shows with checksum offload
off, see shared/reference/kernel-observations.md "txcsumoff"). The emulator rewrites headers
with `dataclasses.replace`, so a frame seen at one hop is never changed by a later hop.

Serialisation is plain `struct` packing: scapy costs about 0.5 ms per packet, so it is used
only on demand (`Hop.packet`) and in tests, as the independent reference dissector.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from ipaddress import IPv4Address
from typing import Union

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


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@lru_cache(maxsize=1 << 16)       # a trace packs the same few addresses into every header
def ip_bytes(addr: str) -> bytes:
    return IPv4Address(addr).packed


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones'-complement sum, as every IPv4, ICMP, TCP and UDP header uses."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    return ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, length)


def tcp_flags_value(flags: str) -> int:
    value = 0
    for letter in flags:
        try:
            value |= TCP_FLAG_BITS[letter]
        except KeyError:
            raise ValueError(f"unknown TCP flag {letter!r}; valid flags are {TCP_FLAG_ORDER}") from None
    return value


def tcp_flags_text(value: int) -> str:
    return "".join(letter for letter in TCP_FLAG_ORDER if value & TCP_FLAG_BITS[letter])


@dataclass(frozen=True)
class ARP:
    """An ARP packet for IPv4 over Ethernet (RFC 826)."""

    op: int
    hwsrc: str
    psrc: str
    hwdst: str
    pdst: str

    def to_bytes(self) -> bytes:
        return (
            struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, self.op)
            + mac_bytes(self.hwsrc)
            + ip_bytes(self.psrc)
            + mac_bytes(self.hwdst)
            + ip_bytes(self.pdst)
        )

    def length(self) -> int:
        return 28

    def summary(self) -> str:
        if self.op == ARP_REQUEST:
            return f"ARP who-has {self.pdst} tell {self.psrc}"
        return f"ARP {self.psrc} is-at {self.hwsrc}"


@dataclass(frozen=True)
class ICMP:
    """An ICMP message; `rest` is the 32-bit field after the checksum (echo id and sequence,
    or the next-hop MTU of "fragmentation needed")."""

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
        return replace(self, rest=(ident << 16) | self.seq)

    def encode(self, src: str, dst: str) -> bytes:
        body = struct.pack("!BBHI", self.type, self.code, 0, self.rest) + self.data
        csum = internet_checksum(body)
        return body[:2] + struct.pack("!H", csum) + body[4:]

    def length(self) -> int:
        return 8 + len(self.data)

    def summary(self) -> str:
        names = {ICMP_ECHO_REQUEST: "echo request", ICMP_ECHO_REPLY: "echo reply",
                 ICMP_TIME_EXCEEDED: "time exceeded", ICMP_DEST_UNREACH: "destination unreachable"}
        name = names.get(self.type, f"type {self.type}")
        if self.type in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
            return f"ICMP {name} id {self.id} seq {self.seq}"
        return f"ICMP {name} code {self.code}"


@dataclass(frozen=True)
class TCP:
    """A TCP segment; `flags` are letters as tcpdump prints them (S, SA, A, PA, R, RA, FA)."""

    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: str = "S"
    window: int = 64240
    options: bytes = b""
    payload: bytes = b""

    def encode(self, src: str, dst: str) -> bytes:
        offset = (20 + len(self.options)) // 4
        header = struct.pack(
            "!HHIIBBHHH", self.sport, self.dport, self.seq, self.ack,
            offset << 4, tcp_flags_value(self.flags), self.window, 0, 0,
        ) + self.options
        segment = header + self.payload
        csum = internet_checksum(_pseudo_header(src, dst, IPPROTO_TCP, len(segment)) + segment)
        return segment[:16] + struct.pack("!H", csum) + segment[18:]

    def length(self) -> int:
        return 20 + len(self.options) + len(self.payload)

    def summary(self) -> str:
        extra = f" len {len(self.payload)}" if self.payload else ""
        return f"TCP {self.sport} > {self.dport} [{self.flags}]{extra}"


@dataclass(frozen=True)
class VXLAN:
    """The 8-byte VXLAN header (RFC 7348) and the Ethernet frame it carries."""

    vni: int
    payload: "Ethernet"
    flags: int = VXLAN_FLAG_I

    def to_bytes(self) -> bytes:
        return struct.pack("!I", self.flags << 24) + struct.pack("!I", self.vni << 8) + self.payload.to_bytes()

    def length(self) -> int:
        return 8 + self.payload.length()


@dataclass(frozen=True)
class UDP:
    """A UDP datagram. `checksum=False` sends a zero checksum, as `noudpcsum` does."""

    sport: int
    dport: int
    payload: Union[VXLAN, "IPv4", bytes] = b""
    checksum: bool = True

    def payload_bytes(self) -> bytes:
        payload = self.payload
        return payload if isinstance(payload, bytes) else payload.to_bytes()

    def encode(self, src: str, dst: str) -> bytes:
        body = self.payload_bytes()
        length = 8 + len(body)
        datagram = struct.pack("!HHHH", self.sport, self.dport, length, 0) + body
        csum = 0
        if self.checksum:
            csum = internet_checksum(_pseudo_header(src, dst, IPPROTO_UDP, length) + datagram) or 0xFFFF
        return datagram[:6] + struct.pack("!H", csum) + datagram[8:]

    def length(self) -> int:
        payload = self.payload
        return 8 + (len(payload) if isinstance(payload, bytes) else payload.length())

    def summary(self) -> str:
        return f"UDP {self.sport} > {self.dport}"


Transport = Union[ICMP, TCP, UDP, bytes]


@dataclass(frozen=True)
class IPv4:
    """An IPv4 packet. `payload` is a transport header, or raw bytes for a non-first fragment.
    `frag` is the fragment offset in 8-byte units."""

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

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag > 0

    def payload_bytes(self) -> bytes:
        payload = self.payload
        if isinstance(payload, bytes):
            return payload
        return payload.encode(self.src, self.dst)

    def length(self) -> int:
        payload = self.payload
        return 20 + (len(payload) if isinstance(payload, bytes) else payload.length())

    def header_bytes(self, total_length: int) -> bytes:
        flags = (0x4000 if self.df else 0) | (0x2000 if self.mf else 0) | self.frag
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, self.tos, total_length, self.id, flags,
            self.ttl, self.proto, 0, ip_bytes(self.src), ip_bytes(self.dst),
        )
        return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]

    def to_bytes(self) -> bytes:
        body = self.payload_bytes()
        return self.header_bytes(20 + len(body)) + body

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def summary(self) -> str:
        inner = self.payload
        detail = inner.summary() if not isinstance(inner, bytes) else f"fragment offset {self.frag * 8}"
        return f"{self.src} > {self.dst} ttl {self.ttl} {detail}"


@dataclass(frozen=True)
class Ethernet:
    """An Ethernet II frame; what every capture point in the trace records."""

    dst: str
    src: str
    type: int
    payload: Union[ARP, IPv4, bytes]

    def length(self) -> int:
        payload = self.payload
        return 14 + (len(payload) if isinstance(payload, bytes) else payload.length())

    @cached_property
    def _bytes(self) -> bytes:
        payload = self.payload
        body = payload if isinstance(payload, bytes) else payload.to_bytes()
        return mac_bytes(self.dst) + mac_bytes(self.src) + struct.pack("!H", self.type) + body

    def to_bytes(self) -> bytes:
        return self._bytes

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
# (the real-kernel lab, pcaps). Only the layers the model builds are understood.

def parse_ethernet(raw: bytes, vxlan_ports: tuple[int, ...] = (8472, 4789)) -> Ethernet:
    if len(raw) < 14:
        raise ValueError(f"an Ethernet frame is at least 14 bytes, got {len(raw)}")
    dst, src, etype = mac_str(raw[0:6]), mac_str(raw[6:12]), struct.unpack("!H", raw[12:14])[0]
    body = raw[14:]
    payload: Union[ARP, IPv4, bytes] = body
    if etype == ETH_P_ARP and len(body) >= 28:
        op = struct.unpack("!H", body[6:8])[0]
        payload = ARP(op, mac_str(body[8:14]), str(IPv4Address(body[14:18])),
                      mac_str(body[18:24]), str(IPv4Address(body[24:28])))
    elif etype == ETH_P_IP:
        payload = parse_ipv4(body, vxlan_ports)
    return Ethernet(dst, src, etype, payload)


def parse_ipv4(raw: bytes, vxlan_ports: tuple[int, ...] = (8472, 4789)) -> IPv4:
    ihl = (raw[0] & 0x0F) * 4
    tos, total, ident, flags, ttl, proto = struct.unpack("!xBHHHBB", raw[:10])
    src, dst = str(IPv4Address(raw[12:16])), str(IPv4Address(raw[16:20]))
    body = raw[ihl:total]
    df, mf, frag = bool(flags & 0x4000), bool(flags & 0x2000), flags & 0x1FFF
    payload: Transport = body
    if not mf and frag == 0:
        payload = _parse_transport(proto, body, vxlan_ports)
    return IPv4(src, dst, proto, payload, ttl=ttl, id=ident, df=df, tos=tos, mf=mf, frag=frag)


def _parse_transport(proto: int, body: bytes, vxlan_ports: tuple[int, ...]) -> Transport:
    if proto == IPPROTO_ICMP and len(body) >= 8:
        itype, code, _csum, rest = struct.unpack("!BBHI", body[:8])
        return ICMP(itype, code, rest, body[8:])
    if proto == IPPROTO_TCP and len(body) >= 20:
        sport, dport, seq, ack, off, flags, window = struct.unpack("!HHIIBBH", body[:16])
        hlen = (off >> 4) * 4
        return TCP(sport, dport, seq, ack, tcp_flags_text(flags), window, body[20:hlen], body[hlen:])
    if proto == IPPROTO_UDP and len(body) >= 8:
        sport, dport, length, csum = struct.unpack("!HHHH", body[:8])
        data = body[8:length]
        inner: Union[VXLAN, IPv4, bytes] = data
        if dport in vxlan_ports and len(data) >= 22 and data[0] & VXLAN_FLAG_I:
            inner = VXLAN(struct.unpack("!I", data[4:8])[0] >> 8, parse_ethernet(data[8:], vxlan_ports), data[0])
        return UDP(sport, dport, inner, checksum=csum != 0)
    return body
