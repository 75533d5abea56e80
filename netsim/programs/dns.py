"""DNS messages (RFC 1035, EDNS0 RFC 6891): a small codec of netsim's own, table-driven.

The header, the question's and a resource record's fixed parts and each record type's RDATA
are tables of `netsim.packet.Field` (the same declarative tables the IP, TCP and UDP headers
use), so the header view and byte annotations can read a DNS message as they read any header.
Names are text with the trailing dot ("web.default.svc.cluster.local."), case kept.

- Parsing follows compression pointers (RFC 1035 section 4.1.4), refusing loops and pointers
  that run forward.
- Writing is uncompressed unless asked: CoreDNS replies uncompressed whenever the message fits
  (miekg/dns `Msg.Truncate` turns compression off when the uncompressed length fits the
  client's size); `to_bytes(compress=True)` compresses each name against the names before it,
  as a truncated reply is written.
- `truncate(limit)` is miekg/dns's `Msg.Truncate`: keep the question, then as many answer,
  authority and additional records as fit (compressed) in `limit` bytes less the OPT record,
  set TC if any record was dropped, and keep OPT. The limit is 512 bytes without EDNS, else
  the client's advertised UDP size (at least 512); over TCP, 65535.

scapy's DNS layer is used in the tests as the reference dissector; netsim's core does not need it.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from ipaddress import IPv4Address, IPv6Address
from typing import Union

from ..errors import ConfigError
from ..packet import Field as F, Header, Word

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_MX, TYPE_TXT, TYPE_AAAA, TYPE_SRV, TYPE_OPT = (
    1, 2, 5, 6, 12, 15, 16, 28, 33, 41)
TYPE_AXFR, TYPE_IXFR, TYPE_ANY = 252, 251, 255
CLASS_IN = 1
TYPE_NAMES = {TYPE_A: "A", TYPE_NS: "NS", TYPE_CNAME: "CNAME", TYPE_SOA: "SOA", TYPE_PTR: "PTR", TYPE_MX: "MX",
              TYPE_TXT: "TXT", TYPE_AAAA: "AAAA", TYPE_SRV: "SRV", TYPE_OPT: "OPT", TYPE_IXFR: "IXFR",
              TYPE_AXFR: "AXFR", TYPE_ANY: "ANY"}
TYPE_NUMBERS = {name: number for number, name in TYPE_NAMES.items()}
CLASS_NAMES = {CLASS_IN: "IN", 3: "CH", 4: "HS"}

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODE_NAMES = {NOERROR: "NOERROR", FORMERR: "FORMERR", SERVFAIL: "SERVFAIL", NXDOMAIN: "NXDOMAIN",
               NOTIMP: "NOTIMP", REFUSED: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
               10: "NOTZONE", 16: "BADVERS"}
OPCODE_NAMES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}

EDNS0_COOKIE = 10
MIN_UDP_SIZE = 512                   # RFC 1035's limit without EDNS (dns.MinMsgSize)
MAX_MSG_SIZE = 65535                 # over TCP (dns.MaxMsgSize)

# RFC 1035 section 4.1.1; the flags word as dig prints it: qr aa tc rd ra (z) ad cd.
DNS_HEADER = Header("dns", "DNS", (
    F("id", "ID", "Chosen by the client; the reply carries the same one.", "H", show="hex"),
    Word("H", (
        F("qr", "QR", "0 query, 1 response.", bits=(15, 1)),
        F("opcode", "Opcode", "0: a standard query.", bits=(11, 4)),
        F("aa", "AA", "Authoritative answer: CoreDNS sets it for the cluster zone.", bits=(10, 1)),
        F("tc", "TC", "Truncated: the answer did not fit; ask again over TCP.", bits=(9, 1)),
        F("rd", "RD", "Recursion desired: stub resolvers always set it.", bits=(8, 1)),
        F("ra", "RA", "Recursion available.", bits=(7, 1)),
        F("z", "Z", "Reserved, zero.", bits=(6, 1)),
        F("ad", "AD", "Authentic data (DNSSEC); dig sets it in queries.", bits=(5, 1)),
        F("cd", "CD", "Checking disabled (DNSSEC).", bits=(4, 1)),
        F("rcode", "RCODE", "0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED.", bits=(0, 4)),
    )),
    F("qdcount", "QDCOUNT", "Questions: one.", "H", attr=""),
    F("ancount", "ANCOUNT", "Answer records.", "H", attr=""),
    F("nscount", "NSCOUNT", "Authority records (the zone's SOA for NXDOMAIN and no-data).", "H", attr=""),
    F("arcount", "ARCOUNT", "Additional records (the OPT pseudo-record of EDNS).", "H", attr=""),
))
QUESTION_TAIL = Header("dns-question", "Question", (
    F("qtype", "QTYPE", "A 1, AAAA 28, PTR 12, SRV 33.", "H", TYPE_A),
    F("qclass", "QCLASS", "IN 1.", "H", CLASS_IN),
))
RR_FIXED = Header("dns-rr", "Resource record", (
    F("type", "TYPE", "The record type.", "H", TYPE_A),
    F("rclass", "CLASS", "IN 1 (for OPT: the sender's UDP payload size).", "H", CLASS_IN),
    F("ttl", "TTL", "Seconds a cache may keep it (for OPT: extended RCODE, version, DO).", "I"),
    F("rdlength", "RDLENGTH", "Bytes of RDATA.", "H", attr=""),
))
SOA_NUMBERS = Header("dns-soa", "SOA numbers", (
    F("serial", "Serial", "CoreDNS: the time the cluster's data last changed.", "I"),
    F("refresh", "Refresh", "7200 from CoreDNS.", "I", 7200),
    F("retry", "Retry", "1800 from CoreDNS.", "I", 1800),
    F("expire", "Expire", "86400 from CoreDNS.", "I", 86400),
    F("minimum", "Minimum", "The negative-caching TTL: CoreDNS's ttl.", "I"),
))
OPTION_HEADER = Header("edns-option", "EDNS option", (
    F("code", "Code", "10 COOKIE, 12 PADDING, 3 NSID.", "H"),
    F("length", "Length", "Bytes of option data.", "H", attr=""),
))


class DnsFormatError(ConfigError):
    """Bytes that are not a well-formed DNS message (a server answers FORMERR)."""


def check_name(name: str) -> str:
    """A domain name as text, with its trailing dot added; labels of 1 to 63 octets, 255 in all."""
    if not isinstance(name, str):
        raise ConfigError(f"DNS name {name!r} must be text such as 'web.default.svc.cluster.local'")
    return _checked_name(name)


@lru_cache(maxsize=1024)
def _checked_name(name: str) -> str:
    """check_name's verdict on a text name, reached once per name (a bad name raises every time)."""
    if name in ("", "."):
        return "."
    text = name if name.endswith(".") else name + "."
    labels = text[:-1].split(".")
    if any(not label for label in labels):
        raise ConfigError(f"DNS name {name!r} has an empty label (two dots in a row or a leading dot)")
    if any(len(label.encode()) > 63 for label in labels):
        raise ConfigError(f"DNS name {name!r} has a label over 63 octets")
    if sum(len(label.encode()) + 1 for label in labels) + 1 > 255:
        raise ConfigError(f"DNS name {name!r} is over 255 octets")
    return text


def name_labels(name: str) -> list[str]:
    return [] if name == "." else name.rstrip(".").split(".")


# ------------------------------------------------------------------------------ RDATA records


@dataclass(frozen=True)
class A:
    address: str

    def text(self) -> str:
        return self.address


@dataclass(frozen=True)
class AAAA:
    address: str

    def text(self) -> str:
        return self.address


@dataclass(frozen=True)
class CNAME:
    target: str

    def text(self) -> str:
        return self.target


@dataclass(frozen=True)
class PTR:
    target: str

    def text(self) -> str:
        return self.target


@dataclass(frozen=True)
class NS:
    target: str

    def text(self) -> str:
        return self.target


@dataclass(frozen=True)
class SOA:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int

    def text(self) -> str:
        return f"{self.mname} {self.rname} {self.serial} {self.refresh} {self.retry} {self.expire} {self.minimum}"


@dataclass(frozen=True)
class EdnsOption:
    code: int
    data: bytes


@dataclass(frozen=True)
class OPT:
    """The EDNS0 pseudo-record's options; its size, version and DO live in the RR's class
    and TTL (`Edns` reads them)."""

    options: tuple[EdnsOption, ...] = ()


@dataclass(frozen=True)
class Unknown:
    data: bytes

    def text(self) -> str:                 # RFC 3597's generic form, as dig prints it
        return f"\\# {len(self.data)} {self.data.hex().upper()}" if self.data else "\\# 0"


RData = Union[A, AAAA, CNAME, PTR, NS, SOA, OPT, Unknown]
NAME_RDATA = {TYPE_CNAME: CNAME, TYPE_PTR: PTR, TYPE_NS: NS}


@dataclass(frozen=True)
class Question:
    name: str
    qtype: int = TYPE_A
    qclass: int = CLASS_IN


@dataclass(frozen=True)
class ResourceRecord:
    name: str
    type: int
    ttl: int
    data: RData
    rclass: int = CLASS_IN


@dataclass(frozen=True)
class Edns:
    """What a message's OPT record says: UDP payload size, DO bit, version, options."""

    udp_size: int = 1232
    do: bool = False
    version: int = 0
    ext_rcode: int = 0
    options: tuple[EdnsOption, ...] = ()

    def record(self) -> ResourceRecord:
        ttl = (self.ext_rcode << 24) | (self.version << 16) | (0x8000 if self.do else 0)
        return ResourceRecord(".", TYPE_OPT, ttl, OPT(self.options), rclass=self.udp_size)

    @classmethod
    def of(cls, rr: ResourceRecord) -> Edns:
        options = rr.data.options if isinstance(rr.data, OPT) else ()
        return cls(rr.rclass, bool(rr.ttl & 0x8000), (rr.ttl >> 16) & 0xFF, rr.ttl >> 24, options)


def opt_record(udp_size: int = 1232, cookie: bytes | None = None, do: bool = False) -> ResourceRecord:
    options = (EdnsOption(EDNS0_COOKIE, cookie),) if cookie is not None else ()
    return Edns(udp_size, do, options=options).record()


@dataclass(frozen=True)
class Message:
    """One DNS message: the header's fields, then the four sections."""

    id: int
    qr: bool = False
    opcode: int = 0
    aa: bool = False
    tc: bool = False
    rd: bool = True
    ra: bool = False
    ad: bool = False
    cd: bool = False
    rcode: int = NOERROR
    questions: tuple[Question, ...] = ()
    answers: tuple[ResourceRecord, ...] = ()
    authority: tuple[ResourceRecord, ...] = ()
    additional: tuple[ResourceRecord, ...] = field(default_factory=tuple)
    z: bool = False

    @property
    def question(self) -> Question:
        if not self.questions:
            raise DnsFormatError("the message has no question")
        return self.questions[0]

    @cached_property
    def edns(self) -> Edns | None:
        for rr in self.additional:
            if rr.type == TYPE_OPT:
                return Edns.of(rr)
        return None

    def reply(self, **changes: object) -> Message:
        """The reply skeleton miekg/dns `SetReply` makes: same id, opcode, RD, CD and
        question; QR set."""
        fields: dict[str, object] = {"id": self.id, "qr": True, "opcode": self.opcode, "rd": self.rd, "cd": self.cd,
                                     "questions": self.questions[:1]}
        fields.update(changes)
        return Message(**fields)  # type: ignore[arg-type]

    @cached_property
    def wire(self) -> bytes:
        """The uncompressed bytes, written once: a message never changes (a server sizes its
        reply, then sends the same bytes)."""
        return Writer().message(self)

    def to_bytes(self, compress: bool = False) -> bytes:
        return Writer(True).message(self) if compress else self.wire

    def length(self, compress: bool = False) -> int:
        return len(self.to_bytes(compress))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Message:
        return parse_message(bytes(raw))

    def truncate(self, limit: int) -> tuple[Message, bool]:
        """miekg/dns Msg.Truncate: (the message that fits `limit` bytes, whether to compress it)."""
        limit = max(limit, MIN_UDP_SIZE)
        if self.length() <= limit:
            return self, False
        opt = [rr for rr in self.additional if rr.type == TYPE_OPT]
        rest = [rr for rr in self.additional if rr.type != TYPE_OPT]
        budget = limit - sum(len(Writer().rr(rr, 0)) for rr in opt)
        probe = replace(self, answers=(), authority=(), additional=())
        sections = [list(self.answers), list(self.authority), rest]
        kept: list[list[ResourceRecord]] = [[], [], []]
        full = False
        for section, keep in zip(sections, kept):
            for rr in section:
                keep.append(rr)
                if _with_sections(probe, kept).length(compress=True) > budget:
                    keep.pop()
                    full = True
                    break
            if full:
                break
        dropped = any(len(keep) < len(section) for keep, section in zip(kept, sections))
        out = _with_sections(probe, kept)
        return replace(out, additional=out.additional + tuple(opt), tc=self.tc or dropped), True


@lru_cache(maxsize=512)
def parse_message(raw: bytes) -> Message:
    """The message in `raw`. A message never changes, so the same bytes (the same query asked
    again, the same answer to it) are parsed once; bytes that are not a message raise each time."""
    return Reader(raw).message()


def _with_sections(base: Message, sections: list[list[ResourceRecord]]) -> Message:
    parts = [tuple(s) for s in sections] + [()] * (3 - len(sections))
    return replace(base, answers=parts[0], authority=parts[1], additional=parts[2])


# ------------------------------------------------------------------------------ wire format


@lru_cache(maxsize=1024)
def packed_ipv4(address: str) -> bytes:
    """An A record's RDATA: the address's four octets."""
    return IPv4Address(address).packed


@lru_cache(maxsize=1024)
def encode_name(name: str) -> bytes:
    """A name uncompressed: each label's length and octets, then the root's zero."""
    out = bytearray()
    for label in name_labels(name):
        raw = label.encode()
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


class Writer:
    """Serialise a message; with `compress`, each name points at the longest suffix already
    written (offsets below 0x4000)."""

    def __init__(self, compress: bool = False) -> None:
        self.compress = compress
        self.offsets: dict[str, int] = {}

    def message(self, m: Message) -> bytes:
        out = bytearray(DNS_HEADER.pack(
            id=m.id, qr=int(m.qr), opcode=m.opcode, aa=int(m.aa), tc=int(m.tc), rd=int(m.rd), ra=int(m.ra),
            z=int(m.z), ad=int(m.ad), cd=int(m.cd), rcode=m.rcode & 0xF, qdcount=len(m.questions),
            ancount=len(m.answers), nscount=len(m.authority), arcount=len(m.additional)))
        for q in m.questions:
            out += self.name(q.name, len(out))
            out += QUESTION_TAIL.pack(qtype=q.qtype, qclass=q.qclass)
        for rr in m.answers + m.authority + m.additional:
            out += self.rr(rr, len(out))
        return bytes(out)

    def name(self, name: str, offset: int) -> bytes:
        if not self.compress:
            return encode_name(name)
        labels = name_labels(name)
        out = bytearray()
        for i in range(len(labels)):
            suffix = ".".join(labels[i:]).lower()
            if suffix in self.offsets:
                return bytes(out) + struct.pack("!H", 0xC000 | self.offsets[suffix])
            if offset + len(out) < 0x4000:
                self.offsets[suffix] = offset + len(out)
            raw = labels[i].encode()
            out += bytes([len(raw)]) + raw
        return bytes(out) + b"\x00"

    def rr(self, rr: ResourceRecord, offset: int) -> bytes:
        head = self.name(rr.name, offset)
        start = offset + len(head) + RR_FIXED.size
        rdata = self.rdata(rr.data, start)
        return head + RR_FIXED.pack(type=rr.type, rclass=rr.rclass, ttl=rr.ttl & 0xFFFFFFFF,
                                    rdlength=len(rdata)) + rdata

    def rdata(self, data: RData, offset: int) -> bytes:
        if isinstance(data, A):
            return packed_ipv4(data.address)
        if isinstance(data, AAAA):
            return IPv6Address(data.address).packed
        if isinstance(data, (CNAME, PTR, NS)):
            return self.name(data.target, offset)
        if isinstance(data, SOA):
            mname = self.name(data.mname, offset)
            rname = self.name(data.rname, offset + len(mname))
            return mname + rname + SOA_NUMBERS.pack(serial=data.serial, refresh=data.refresh, retry=data.retry,
                                                    expire=data.expire, minimum=data.minimum)
        if isinstance(data, OPT):
            return b"".join(OPTION_HEADER.pack(code=o.code, length=len(o.data)) + o.data for o in data.options)
        return data.data


class Reader:
    """Parse a message, following compression pointers."""

    def __init__(self, raw: bytes) -> None:
        self.raw = bytes(raw)

    def need(self, offset: int, size: int, what: str) -> None:
        if offset + size > len(self.raw):
            raise DnsFormatError(f"DNS message of {len(self.raw)} bytes ends inside the {what} at offset {offset}")

    def message(self) -> Message:
        self.need(0, DNS_HEADER.size, "header")
        h = DNS_HEADER.unpack(self.raw)
        offset = DNS_HEADER.size
        questions = []
        for _ in range(int(h["qdcount"])):
            name, offset = self.name(offset)
            self.need(offset, QUESTION_TAIL.size, "question")
            qtype, qclass = QUESTION_TAIL.struct.unpack_from(self.raw, offset)
            questions.append(Question(name, qtype, qclass))
            offset += QUESTION_TAIL.size
        sections: list[list[ResourceRecord]] = []
        for count in (h["ancount"], h["nscount"], h["arcount"]):
            records = []
            for _ in range(int(count)):
                rr, offset = self.rr(offset)
                records.append(rr)
            sections.append(records)
        return Message(int(h["id"]), bool(h["qr"]), int(h["opcode"]), bool(h["aa"]), bool(h["tc"]), bool(h["rd"]),
                       bool(h["ra"]), bool(h["ad"]), bool(h["cd"]), int(h["rcode"]), tuple(questions),
                       tuple(sections[0]), tuple(sections[1]), tuple(sections[2]), bool(h["z"]))

    def name(self, offset: int) -> tuple[str, int]:
        """The name at `offset` and the offset after it (after the first pointer, if any)."""
        raw = self.raw
        size = len(raw)
        labels: list[str] = []
        end = -1
        seen = set()
        total = 1
        while True:
            if offset >= size:
                self.need(offset, 1, "name")
            length = raw[offset]
            if length & 0xC0 == 0xC0:
                self.need(offset, 2, "name")
                target = ((length & 0x3F) << 8) | raw[offset + 1]
                if target in seen or target >= offset:
                    raise DnsFormatError(f"DNS name compression pointer at offset {offset} loops or points forward")
                seen.add(target)
                if end < 0:
                    end = offset + 2
                offset = target
                continue
            if length & 0xC0:
                raise DnsFormatError(f"DNS label type {length >> 6:#x} at offset {offset} is not supported")
            if length == 0:
                if end < 0:
                    end = offset + 1
                break
            offset += 1
            if offset + length > size:
                self.need(offset, length, "name")
            labels.append(raw[offset:offset + length].decode("ascii", "backslashreplace"))
            total += length + 1
            if total > 255:
                raise DnsFormatError("DNS name over 255 octets")
            offset += length
        return (".".join(labels) + "." if labels else "."), end

    def rr(self, offset: int) -> tuple[ResourceRecord, int]:
        name, offset = self.name(offset)
        self.need(offset, RR_FIXED.size, "record")
        rtype, rclass, ttl, length = RR_FIXED.struct.unpack_from(self.raw, offset)
        offset += RR_FIXED.size
        self.need(offset, length, "RDATA")
        data = self.rdata(rtype, offset, length)
        return ResourceRecord(name, rtype, ttl, data, rclass), offset + length

    def rdata(self, rtype: int, offset: int, length: int) -> RData:
        body = self.raw[offset:offset + length]
        if rtype == TYPE_A and length == 4:
            return A(socket.inet_ntoa(body))
        if rtype == TYPE_AAAA and length == 16:
            return AAAA(str(IPv6Address(body)))
        if rtype in NAME_RDATA:
            target = self.name(offset)[0]
            return CNAME(target) if rtype == TYPE_CNAME else PTR(target) if rtype == TYPE_PTR else NS(target)
        if rtype == TYPE_SOA:
            mname, at = self.name(offset)
            rname, at = self.name(at)
            self.need(at, SOA_NUMBERS.size, "SOA")
            n = SOA_NUMBERS.unpack(self.raw[at:])
            return SOA(mname, rname, int(n["serial"]), int(n["refresh"]), int(n["retry"]), int(n["expire"]),
                       int(n["minimum"]))
        if rtype == TYPE_OPT:
            options, at = [], 0
            while at + OPTION_HEADER.size <= len(body):
                code, size = struct.unpack_from("!HH", body, at)
                options.append(EdnsOption(code, body[at + 4:at + 4 + size]))
                at += 4 + size
            return OPT(tuple(options))
        return Unknown(body)


def query(ident: int, name: str, qtype: int = TYPE_A, rd: bool = True, ad: bool = False,
          edns: ResourceRecord | None = None) -> Message:
    """A stub resolver's or dig's query."""
    return Message(ident, rd=rd, ad=ad, questions=(Question(check_name(name), qtype),),
                   additional=(edns,) if edns is not None else ())


def tcp_frame(message: bytes) -> bytes:
    """DNS over TCP (RFC 1035 section 4.2.2): a two-byte length, then the message."""
    return struct.pack("!H", len(message)) + message


def tcp_unframe(stream: bytes) -> tuple[list[bytes], bytes]:
    """The whole messages in a TCP byte stream, and the bytes left over."""
    messages = []
    while len(stream) >= 2:
        size = struct.unpack_from("!H", stream)[0]
        if len(stream) < 2 + size:
            break
        messages.append(stream[2:2 + size])
        stream = stream[2 + size:]
    return messages, stream
