"""nftables expressions: what a rule of an nf_tables chain is made of, as `nft` writes it and as
the kernel evaluates it.

A rule is a list of expressions the kernel runs in order (net/netfilter/nf_tables_core.c,
nft_do_chain): a match that fails ends the rule (NFT_BREAK) and the next rule is tried; a
statement acts (sets the mark, NATs, counts) and goes on; a verdict ends the rule. The left-hand
sides netsim models are the ones kube-proxy's and flannel's rulesets use:

- payload: `ip saddr`, `ip daddr`, `th sport|dport` (the transport header at offset 0/2, no
  protocol dependency), `tcp|udp sport|dport` (with nft's implicit `meta l4proto` dependency);
- `meta l4proto`, `meta mark`, `iifname`, `oifname` (nft_meta.c);
- `ct state` (nft_ct.c; a bit test: `ct state new` holds when the NEW bit is set);
- `fib saddr|daddr type` (nft_fib_ipv4.c: the address type of the address in the namespace);
- `numgen random mod N` (nft_numgen.c: reciprocal_scale(get_random_u32(), N)); netsim draws the
  32-bit number from crc32 of the namespace, the rule's table, chain and handle, and the packet's
  five-tuple, like its `-m statistic` (so one connection always takes one branch);
- concatenations (`a . b . c`) and `&`, `|`, `^` with a constant.

Relations are `==` (written without an operator) and `!=`, against a value, a prefix, an
anonymous set `{ ... }` or a named set `@name`; `vmap` looks a key up in a verdict map. The
statements are `meta mark set`, `counter`, `masquerade [fully-random|random]`, `dnat to ADDR[:PORT]`,
`reject` (ICMP port unreachable, nft_reject_ipv4.c), and the verdicts `accept`, `drop`,
`return`, `continue`, `jump CHAIN`, `goto CHAIN`.

`str()` of every expression is what `nft list ruleset` prints (nftables 1.0.6, measured: marks
as 0x%08x, `meta mark set meta mark | 0x00004000`, `==` only after a binary operation).
`parse_rule()` reads the same syntax and kube-proxy's (`mark set mark or 0x4000`, `mark and
0x4000 == 0`, `meta l4proto tcp`, `ip daddr { 10.96.0.0/12 }`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Callable, Union

from ..errors import ConfigError
from ..packet import ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP
from .xtables import ip_int


class NftError(ConfigError):
    """A rule, set, chain or command nft (or the kernel) refuses, or one netsim does not model;
    the message names the token and what is supported."""


# ---- data types (nftables src/datatype.c): parse, print, order ---------------------------------

PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "sctp": 132}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}
# ct state bits (include/uapi/linux/netfilter/nf_conntrack_common.h, NF_CT_STATE_BIT)
CT_STATES = (("invalid", 1), ("established", 2), ("related", 4), ("new", 8), ("untracked", 64))
CT_STATE_BITS = dict(CT_STATES)
ADDR_TYPES = ("unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole",
              "unreachable", "prohibit")


@dataclass(frozen=True, order=True)
class Prefix:
    """An IPv4 network `a.b.c.d/len` as a value: it matches every address inside it."""

    network: int
    length: int

    @property
    def mask(self) -> int:
        return (0xFFFFFFFF << (32 - self.length)) & 0xFFFFFFFF if self.length else 0

    def __contains__(self, addr: object) -> bool:
        return isinstance(addr, int) and (addr & self.mask) == self.network

    def __str__(self) -> str:
        return f"{IPv4Address(self.network)}/{self.length}"


def parse_value(dtype: str, text: str) -> Any:
    """A literal of `dtype` as nft reads it; the kernel's value (ints for addresses, ports,
    protocols, marks; a Prefix for a network)."""
    try:
        if dtype == "ipv4_addr":
            if "/" in text:
                net = IPv4Network(text, strict=False)
                return Prefix(int(net.network_address), net.prefixlen)
            return int(IPv4Address(text))
        if dtype == "inet_proto":
            return PROTOCOLS[text] if text in PROTOCOLS else _int(text, 0, 255)
        if dtype == "inet_service":
            return _int(text, 0, 65535)
        if dtype in ("mark", "integer"):
            return _int(text, 0, 0xFFFFFFFF)
        if dtype == "ct_state":
            bits = 0
            for name in text.split(","):
                bits |= CT_STATE_BITS[name]
            return bits
        if dtype == "fib_addrtype":
            if text not in ADDR_TYPES:
                raise KeyError(text)
            return text
        if dtype == "ifname":
            return text.strip('"')
    except (ValueError, KeyError):
        pass
    raise NftError(f"{text!r} is not a valid {dtype} value")


def _int(text: str, low: int, high: int) -> int:
    value = int(text, 0)
    if not low <= value <= high:
        raise ValueError(text)
    return value


def value_text(dtype: str, value: Any) -> str:
    """A value as nft prints it."""
    if dtype == "ipv4_addr":
        return str(value) if isinstance(value, Prefix) else str(IPv4Address(value))
    if dtype == "inet_proto":
        return PROTOCOL_NAMES.get(value, str(value))
    if dtype == "mark":
        return f"0x{value:08x}"
    if dtype == "ct_state":
        return ",".join(name for name, bit in CT_STATES if value & bit)
    if dtype == "ifname":
        return f'"{value}"'
    return str(value)


# the bytes each type takes in a concatenation (nft's datatype lengths)
TYPE_BYTES = {"ipv4_addr": 4, "inet_proto": 1, "inet_service": 2, "mark": 4, "integer": 4, "ct_state": 4}


def sort_key(dtype: str, value: Any) -> int:
    """The order nft prints set elements in (src/mergesort.c): a value by its number; a
    concatenation by its components' bytes (each in network order, unpadded) read as one
    host-endian, i.e. little-endian, number, so the last byte weighs most (measured:
    `10.96.0.104 . udp . 53` lists before `10.96.0.100 . tcp . 80`)."""
    if isinstance(value, tuple):
        data = b"".join(int(v).to_bytes(TYPE_BYTES[t], "big") for t, v in zip(dtype.split(" . "), value))
        return int.from_bytes(data, "little")
    if isinstance(value, Prefix):
        return value.network
    return value if isinstance(value, int) else 0


# ---- the packet as the expressions see it --------------------------------------------------------

class Pkt:
    """What nft_do_chain's expressions read (struct nft_pktinfo and the skb): addresses, protocol,
    ports (None for a non-first fragment or a protocol without them), the skb mark and conntrack
    state, the devices and the namespace (for fib and masquerade)."""

    __slots__ = ("packet", "skb", "indev", "outdev", "netns", "hook", "saddr", "daddr", "l4proto", "sport",
                 "dport", "rule_id")

    def __init__(self, packet: Any, skb: Any, indev: str | None, outdev: str | None, netns: Any, hook: str):
        self.packet, self.skb, self.indev, self.outdev, self.netns, self.hook = \
            packet, skb, indev, outdev, netns, hook
        self.reload()
        self.rule_id: tuple[str, str, str, int] = ("", "", "", 0)     # the rule being tested (numgen draws by it)

    sport: int | None
    dport: int | None

    def reload(self) -> None:
        """Read the header fields again (after a NAT rewrote the packet)."""
        packet = self.packet
        self.saddr = ip_int(packet.src)
        self.daddr = ip_int(packet.dst)
        self.l4proto = packet.proto
        seg = packet.payload
        if packet.frag == 0 and isinstance(seg, (TCP, UDP)):
            self.sport, self.dport = seg.sport, seg.dport
        else:
            self.sport = self.dport = None

    @property
    def ct_bits(self) -> int:
        """nft_ct_get_eval: the state bit of the skb's conntrack entry; a packet conntrack did
        not track reads as invalid."""
        return CT_STATE_BITS.get(self.skb.ct_state.lower(), CT_STATE_BITS["invalid"])

    def flow_text(self) -> str:
        return f"{self.l4proto} {self.saddr} {self.sport} {self.daddr} {self.dport}"


# ---- left-hand expressions -----------------------------------------------------------------------

class Expr:
    """Something a rule reads from the packet; `value()` is None when the kernel would break."""

    dtype = "integer"

    def value(self, pkt: Pkt) -> Any:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Payload(Expr):
    """`ip saddr`, `th dport`, `tcp dport`, ... (nft_payload.c)."""

    proto: str                   # ip, th, tcp, udp
    field: str                   # saddr, daddr, sport, dport

    @property
    def dtype(self) -> str:      # type: ignore[override]
        return "ipv4_addr" if self.proto == "ip" else "inet_service"

    def value(self, pkt: Pkt) -> Any:
        if self.proto == "ip":
            return pkt.saddr if self.field == "saddr" else pkt.daddr
        if self.proto == "tcp" and pkt.l4proto != IPPROTO_TCP or self.proto == "udp" and pkt.l4proto != IPPROTO_UDP:
            return None
        return pkt.sport if self.field == "sport" else pkt.dport

    def __str__(self) -> str:
        return f"{self.proto} {self.field}"


META_TYPES = {"l4proto": "inet_proto", "mark": "mark", "iifname": "ifname", "oifname": "ifname"}


@dataclass(frozen=True)
class Meta(Expr):
    """`meta l4proto`, `meta mark`, `iifname`, `oifname` (nft_meta.c)."""

    key: str

    @property
    def dtype(self) -> str:      # type: ignore[override]
        return META_TYPES[self.key]

    def value(self, pkt: Pkt) -> Any:
        if self.key == "l4proto":
            return pkt.l4proto
        if self.key == "mark":
            return pkt.skb.mark
        return pkt.indev if self.key == "iifname" else pkt.outdev

    def __str__(self) -> str:
        return self.key if self.key in ("iifname", "oifname") else f"meta {self.key}"


@dataclass(frozen=True)
class Ct(Expr):
    """`ct state` (nft_ct.c): the skb's conntrack state as a bit."""

    key: str = "state"
    dtype = "ct_state"

    def value(self, pkt: Pkt) -> Any:
        return pkt.ct_bits

    def __str__(self) -> str:
        return f"ct {self.key}"


@dataclass(frozen=True)
class Fib(Expr):
    """`fib saddr|daddr type` (nft_fib_ipv4.c nft_fib4_eval_type: inet_dev_addr_type with no
    device, so any address of the namespace is local)."""

    which: str                   # saddr, daddr
    dtype = "fib_addrtype"

    def value(self, pkt: Pkt) -> Any:
        addr = pkt.packet.src if self.which == "saddr" else pkt.packet.dst
        return "local" if pkt.netns.is_local_address(addr) else "unicast"

    def __str__(self) -> str:
        return f"fib {self.which} type"


@dataclass(frozen=True)
class Numgen(Expr):
    """`numgen random mod N [offset K]` (nft_numgen.c): reciprocal_scale(random, N) + K, the
    random number drawn deterministically (module docstring)."""

    mod: int
    offset: int = 0

    def value(self, pkt: Pkt) -> Any:
        family, table, chain, handle = pkt.rule_id
        draw = zlib.crc32(f"{pkt.netns.name} {family} {table} {chain} {handle} {pkt.flow_text()}".encode())
        return ((draw * self.mod) >> 32) + self.offset

    def __str__(self) -> str:
        return f"numgen random mod {self.mod}" + (f" offset {self.offset}" if self.offset else "")


@dataclass(frozen=True)
class Concat(Expr):
    """`a . b . c`: the key of a set or map of concatenated types."""

    parts: tuple[Expr, ...]

    @property
    def dtype(self) -> str:      # type: ignore[override]
        return " . ".join(p.dtype for p in self.parts)

    def value(self, pkt: Pkt) -> Any:
        values = tuple(p.value(pkt) for p in self.parts)
        return None if None in values else values

    def __str__(self) -> str:
        return " . ".join(str(p) for p in self.parts)


BINOPS: dict[str, Callable[[int, int], int]] = {
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b}


@dataclass(frozen=True)
class Binop(Expr):
    """`meta mark & 0x4000`, `meta mark | 0x4000` (nft_bitwise.c)."""

    left: Expr
    op: str
    operand: int

    @property
    def dtype(self) -> str:      # type: ignore[override]
        return self.left.dtype

    def value(self, pkt: Pkt) -> Any:
        base = self.left.value(pkt)
        return None if base is None else BINOPS[self.op](base, self.operand)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {value_text(self.dtype, self.operand)}"


# ---- right-hand sides ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SetRef:
    """`@name`: a named set or map of the table."""

    name: str

    def __str__(self) -> str:
        return f"@{self.name}"


@dataclass(frozen=True)
class AnonSet:
    """`{ a, b }` written in a rule. The kernel holds it as an anonymous set, which takes a
    handle; nft folds a set of one element into the plain value (measured)."""

    dtype: str
    items: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return any(value in item if isinstance(item, Prefix) else value == item for item in self.items)

    def __str__(self) -> str:
        texts = [_element_text(self.dtype, item) for item in sorted(self.items, key=lambda v: sort_key(self.dtype, v))]
        return "{ " + ", ".join(texts) + " }"


def _element_text(dtype: str, key: Any) -> str:
    if isinstance(key, tuple):
        return " . ".join(value_text(t, v) for t, v in zip(dtype.split(" . "), key))
    return value_text(dtype, key)


@dataclass(frozen=True)
class Verdict:
    """A verdict: accept, drop, return, continue, jump CHAIN, goto CHAIN."""

    kind: str
    chain: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.chain}" if self.chain else self.kind


@dataclass(frozen=True)
class AnonMap:
    """`{ key : verdict, ... }` written in a rule (a vmap literal; always an anonymous map)."""

    dtype: str
    items: tuple[tuple[Any, Verdict], ...]

    def lookup(self, key: Any) -> Verdict | None:
        for item, verdict in self.items:
            if item == key:
                return verdict
        return None

    def __str__(self) -> str:
        texts = [f"{_element_text(self.dtype, k)} : {v}"
                 for k, v in sorted(self.items, key=lambda kv: sort_key(self.dtype, kv[0]))]
        return "{ " + ", ".join(texts) + " }"


Right = Union[SetRef, AnonSet, Prefix, int, str]


# ---- rule parts: matches and statements ----------------------------------------------------------

@dataclass(frozen=True)
class Match:
    """A relation (nft_cmp.c, nft_range, nft_lookup.c): `LEFT [!=] RIGHT`. For `ct state` the
    relation is a bit test, as nft compiles it."""

    left: Expr
    right: Right
    negate: bool = False

    def __str__(self) -> str:
        if isinstance(self.right, (SetRef, AnonSet)):
            right = str(self.right)
        elif isinstance(self.right, Prefix):
            right = str(self.right)
        else:
            right = value_text(self.left.dtype, self.right)
        if self.negate:
            return f"{self.left} != {right}"
        if isinstance(self.left, Binop):
            return f"{self.left} == {right}"
        return f"{self.left} {right}"


@dataclass(frozen=True)
class Vmap:
    """`KEY vmap @map` or `KEY vmap { ... }`: the verdict stored for the key; no element breaks."""

    key: Expr
    target: Union[SetRef, AnonMap]

    def __str__(self) -> str:
        return f"{self.key} vmap {self.target}"


@dataclass(frozen=True)
class MetaSet:
    """`meta mark set EXPR` (nft_meta.c nft_meta_set_eval)."""

    key: str
    expr: Union[Binop, int]

    def __str__(self) -> str:
        source = self.expr if isinstance(self.expr, Binop) else value_text("mark", self.expr)
        return f"meta {self.key} set {source}"


@dataclass(frozen=True)
class Counter:
    """`counter` (nft_counter.c); the counts live with the rule set, not in the expression."""

    def __str__(self) -> str:
        return "counter"


@dataclass(frozen=True)
class Reject:
    """`reject` (nft_reject_ipv4.c): an ICMP port unreachable (the default for the ip family),
    or `reject with tcp reset`; then the packet is dropped."""

    with_tcp_reset: bool = False

    def __str__(self) -> str:
        return "reject with tcp reset" if self.with_tcp_reset else "reject"


@dataclass(frozen=True)
class Masquerade:
    """`masquerade [fully-random|random]` (nft_masq.c): SNAT to the output device's address."""

    random: bool = False
    fully_random: bool = False

    def __str__(self) -> str:
        flags = [name for name, on in (("random", self.random), ("fully-random", self.fully_random)) if on]
        return " ".join(["masquerade", *flags])


@dataclass(frozen=True)
class Dnat:
    """`dnat to ADDR[:PORT]` (nft_nat.c)."""

    addr: str
    port: int | None = None

    def __str__(self) -> str:
        return f"dnat to {self.addr}" + (f":{self.port}" if self.port is not None else "")


Stmt = Union[Match, Vmap, MetaSet, Counter, Reject, Masquerade, Dnat, Verdict]


@dataclass(frozen=True)
class RuleBody:
    """A rule as parsed: its expressions in order and its comment."""

    stmts: tuple[Stmt, ...]
    comment: str | None = None

    def __str__(self) -> str:
        text = " ".join(str(s) for s in self.stmts)
        if self.comment is not None:
            text += f' comment "{self.comment}"'
        return text


# ---- the parser ----------------------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}]|[^\s{}]+')


def tokenize(text: str) -> list[str]:
    """Words of a rule; a trailing comma is its own token (`goto a, 1 : goto b`)."""
    tokens: list[str] = []
    for token in _TOKEN.findall(text):
        if len(token) > 1 and token.endswith(",") and not token.startswith('"'):
            tokens.extend((token[:-1], ","))
        else:
            tokens.append(token)
    return tokens


VERDICTS = ("accept", "drop", "return", "continue")
_PAYLOADS = {"ip": ("saddr", "daddr"), "th": ("sport", "dport"), "tcp": ("sport", "dport"),
             "udp": ("sport", "dport")}


class _Parser:
    """Recursive descent over one rule's tokens (the subset of nft's grammar netsim models)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> str | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            want = f"{expected!r}" if expected else "more"
            raise NftError(f"rule {self.text!r}: expected {want}, found {token!r}")
        self.i += 1
        return token

    def error(self, what: str) -> NftError:
        return NftError(f"rule {self.text!r}: {what} (netsim models payload ip/th/tcp/udp, meta l4proto/mark, "
                        f"iifname, oifname, ct state, fib type, numgen, concatenations, sets, vmaps, mark set, "
                        f"counter, reject, masquerade, dnat, and the verdicts)")

    def parse(self) -> RuleBody:
        stmts: list[Stmt] = []
        comment = None
        while self.peek() is not None:
            token = self.peek()
            if token == "comment":
                self.take()
                comment = unquote(self.take())
                continue
            stmts.append(self.statement())
        if not stmts:
            raise NftError(f"rule {self.text!r} is empty")
        return RuleBody(tuple(stmts), comment)

    def statement(self) -> Stmt:
        token = self.peek()
        if token in VERDICTS:
            return Verdict(self.take())
        if token in ("jump", "goto"):
            kind = self.take()
            return Verdict(kind, self.take())
        if token == "counter":
            self.take()
            while self.peek() in ("packets", "bytes"):
                self.take()
                self.take()
            return Counter()
        if token == "reject":
            self.take()
            if self.peek() == "with":
                self.take()
                kind = self.take()
                what = self.take()
                if (kind, what) == ("tcp", "reset"):
                    return Reject(True)
                if (kind, what) == ("icmp", "port-unreachable") or (kind, what, self.peek()) == ("icmp", "type", "port-unreachable"):
                    if what == "type":
                        self.take()
                    return Reject(False)
                raise self.error(f"reject with {kind} {what} is not modelled")
            return Reject(False)
        if token == "masquerade":
            self.take()
            random = fully = False
            while self.peek() in ("random", "fully-random"):
                if self.take() == "random":
                    random = True
                else:
                    fully = True
            return Masquerade(random, fully)
        if token == "dnat":
            self.take()
            self.take("to")
            target = self.take()
            addr, _, port = target.partition(":")
            parse_value("ipv4_addr", addr)
            return Dnat(addr, parse_value("inet_service", port) if port else None)
        if token == "mark" and self.peek(1) == "set" or token == "meta" and self.peek(1) == "mark" and self.peek(2) == "set":
            if token == "meta":
                self.take()
            self.take("mark")
            self.take("set")
            return MetaSet("mark", self.mark_source())
        return self.relation()

    def mark_source(self) -> Union[Binop, int]:
        if self.peek() == "meta":
            self.take()
        if self.peek() == "mark":
            self.take()
            op = self.take()
            op = {"or": "|", "xor": "^", "and": "&"}.get(op, op)
            if op not in BINOPS:
                raise self.error(f"unknown operator {op!r}")
            return Binop(Meta("mark"), op, parse_value("mark", self.take()))
        return int(parse_value("mark", self.take()))

    def selector(self) -> Expr:
        token = self.take()
        if token in _PAYLOADS:
            field = self.take()
            if field not in _PAYLOADS[token]:
                raise self.error(f"{token} {field} is not modelled")
            return Payload(token, field)
        if token == "meta":
            key = self.take()
            if key not in META_TYPES:
                raise self.error(f"meta {key} is not modelled")
            return Meta(key)
        if token in ("mark", "l4proto"):
            return Meta(token)
        if token in ("iifname", "oifname"):
            return Meta(token)
        if token == "ct":
            key = self.take()
            if key != "state":
                raise self.error(f"ct {key} is not modelled")
            return Ct("state")
        if token == "fib":
            which = self.take()
            if which not in ("saddr", "daddr") or self.take() != "type":
                raise self.error(f"fib {which} is not modelled (only fib saddr|daddr type)")
            return Fib(which)
        if token == "numgen":
            self.take("random")
            self.take("mod")
            mod = _int(self.take(), 1, 0xFFFFFFFF)
            offset = 0
            if self.peek() == "offset":
                self.take()
                offset = _int(self.take(), 0, 0xFFFFFFFF)
            return Numgen(mod, offset)
        raise self.error(f"unknown expression {token!r}")

    def relation(self) -> Stmt:
        left = self.selector()
        while self.peek() == ".":
            self.take()
            nxt = self.selector()
            left = Concat((*left.parts, nxt)) if isinstance(left, Concat) else Concat((left, nxt))
        if self.peek() in BINOPS or self.peek() in ("and", "or", "xor"):
            op = {"or": "|", "xor": "^", "and": "&"}.get(self.take(), None) or self.tokens[self.i - 1]
            left = Binop(left, op, parse_value(left.dtype, self.take()))
        if self.peek() == "vmap":
            self.take()
            if self.peek() == "{":
                return Vmap(left, self.anon_map(left.dtype))
            target = self.take()
            if not target.startswith("@"):
                raise self.error("vmap needs @MAP or { ... }")
            return Vmap(left, SetRef(target[1:]))
        negate = False
        if self.peek() in ("!=", "=="):
            negate = self.take() == "!="
        token = self.peek()
        if token is None:
            raise self.error(f"{left} needs a value")
        if token == "{":
            return Match(left, self.anon_set(left.dtype), negate)
        self.take()
        if token.startswith("@"):
            return Match(left, SetRef(token[1:]), negate)
        return Match(left, parse_value(left.dtype, token), negate)

    def _items(self) -> list[list[str]]:
        self.take("{")
        items: list[list[str]] = [[]]
        while self.peek() != "}":
            token = self.take()
            if token == ",":
                items.append([])
            else:
                items[-1].append(token)
        self.take("}")
        return [item for item in items if item]

    def anon_set(self, dtype: str) -> AnonSet:
        return AnonSet(dtype, tuple(parse_key(dtype, item) for item in self._items()))

    def anon_map(self, dtype: str) -> AnonMap:
        entries = []
        for item in self._items():
            if ":" not in item:
                raise self.error("a vmap element is KEY : VERDICT")
            cut = item.index(":")
            entries.append((parse_key(dtype, item[:cut]), parse_verdict(item[cut + 1:])))
        return AnonMap(dtype, tuple(entries))


def parse_key(dtype: str, words: list[str]) -> Any:
    """A set element's key: one value, or a concatenation `a . b . c`."""
    types = dtype.split(" . ")
    values = [w for w in words if w != "."]
    if len(values) != len(types):
        raise NftError(f"element {' '.join(words)!r} does not fit the type {dtype}")
    parsed = tuple(parse_value(t, v) for t, v in zip(types, values))
    return parsed if len(parsed) > 1 else parsed[0]


def parse_verdict(words: list[str]) -> Verdict:
    if len(words) == 1 and words[0] in VERDICTS:
        return Verdict(words[0])
    if len(words) == 2 and words[0] in ("jump", "goto"):
        return Verdict(words[0], words[1])
    raise NftError(f"{' '.join(words)!r} is not a verdict (accept, drop, return, continue, jump C, goto C)")


def unquote(token: str) -> str:
    if len(token) < 2 or not (token.startswith('"') and token.endswith('"')):
        raise NftError(f"expected a quoted string, found {token!r}")
    return token[1:-1].replace('\\"', '"')


@lru_cache(maxsize=1 << 16)
def parse_rule(text: str) -> RuleBody:
    """One rule in nft syntax (`add rule` arguments after the chain, or a `nft list` line);
    remembered, as every node's kube-proxy writes the same rules."""
    return _Parser(text).parse()
