"""iptables as the kernel runs it: tables, chains, rules, and the netfilter hooks of IPv4.

Theory of operation. Rules are written and printed in iptables' own syntax; a rule is parsed into
the matches and the target the kernel would hold, and printed back in iptables-save's canonical
form (the form iptables 1.8.9, nf_tables backend, prints; tests/test_iptables_real.py compares the
two on a real kernel). `Netfilter.hook()` runs one hook the way net/netfilter orders its
callbacks by priority:

    PREROUTING   raw (-300), conntrack (-200), mangle (-150), nat DST (-100)
    OUTPUT       raw (-300), conntrack (-200), mangle (-150), nat DST (-100), filter (0)
    FORWARD      mangle (-150), filter (0)
    INPUT        mangle (-150), filter (0), nat SRC (100), conntrack confirm (last)
    POSTROUTING  mangle (-150), nat SRC (100), conntrack confirm (last)

The nat table is walked only for a connection's first packet; every other packet is rewritten
from the conntrack entry (netsim/conntrack.py). As in the kernel, conntrack runs in a namespace
only once something needs it: a nat table, or a rule with a conntrack/state match or NAT target.

Facts: iptables-extensions(8); the kernel's xt_* and nf_nat_* sources; checked behaviour in
shared/reference/flannel-kubernetes-facts.md F and I and kernel-observations.md s5 and s6.
"""

from __future__ import annotations

import functools
import shlex
import zlib
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Callable

from .conntrack import DST, ORIGINAL, REPLY, SRC, ConntrackEntry, endpoint, tuple_of
from .packet import (ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, PROTO_NAMES,
                     PROTO_NUMBERS, TCP, UDP)
from .skb import Skb

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
TABLE_ORDER = ("mangle", "raw", "filter", "nat")      # the order iptables-save (nf_tables) prints
BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
VERDICTS = ("ACCEPT", "DROP", "REJECT")
MASK32 = 0xFFFFFFFF

# REJECT --reject-with: name -> (ICMP type, code), as libipt_REJECT names them.
REJECT_TYPES = {
    "icmp-net-unreachable": (3, 0), "icmp-host-unreachable": (3, 1),
    "icmp-proto-unreachable": (3, 2), "icmp-port-unreachable": (3, 3),
    "icmp-net-prohibited": (3, 9), "icmp-host-prohibited": (3, 10),
    "icmp-admin-prohibited": (3, 13), "tcp-reset": None,
}
REJECT_ALIASES = {
    "net-unreach": "icmp-net-unreachable", "host-unreach": "icmp-host-unreachable",
    "proto-unreach": "icmp-proto-unreachable", "port-unreach": "icmp-port-unreachable",
    "net-prohib": "icmp-net-prohibited", "host-prohib": "icmp-host-prohibited",
    "admin-prohib": "icmp-admin-prohibited", "tcp-rst": "tcp-reset",
}
# --icmp-type names iptables knows -> (type, lowest code, highest code)
ICMP_TYPE_NAMES = {
    "any": (0xFF, 0, 0xFF), "echo-reply": (0, 0, 0xFF), "pong": (0, 0, 0xFF),
    "destination-unreachable": (3, 0, 0xFF), "network-unreachable": (3, 0, 0),
    "host-unreachable": (3, 1, 1), "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-quench": (4, 0, 0xFF), "redirect": (5, 0, 0xFF),
    "echo-request": (8, 0, 0xFF), "ping": (8, 0, 0xFF), "time-exceeded": (11, 0, 0xFF),
    "ttl-zero-during-transit": (11, 0, 0), "parameter-problem": (12, 0, 0xFF),
    "timestamp-request": (13, 0, 0xFF), "timestamp-reply": (14, 0, 0xFF),
}
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
TCP_FLAG_NAMES = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
                  ("URG", 0x20))
_TCP_LETTER_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def _error(message: str) -> ValueError:
    return ValueError(message)


def save_string(value: str) -> str:
    """xtables_save_string(): bare if only [A-Za-z0-9_-], else double-quoted with \\ escapes."""
    if value and all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        return value
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f'"{escaped}"'


def _parse_int(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise _error(f"{what}: {text!r} is not a number") from None
    if not 0 <= value <= MASK32:
        raise _error(f"{what}: {text!r} is out of range")
    return value


def _parse_value_mask(text: str, what: str) -> tuple[int, int | None]:
    value, _, mask = text.partition("/")
    return _parse_int(value, what), (_parse_int(mask, what) if mask else None)


def _parse_port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise _error(f"{what}: port {text!r} is not a number from 0 to 65535 "
                     f"(netsim does not read /etc/services)")
    return int(text)


def _parse_port_range(text: str, what: str, sep: str = ":") -> tuple[int, int]:
    if sep in text:
        low, _, high = text.partition(sep)
        first = _parse_port(low, what) if low else 0
        last = _parse_port(high, what) if high else 65535
        if first > last:
            raise _error(f"{what}: port range {text!r} is inverted")
        return first, last
    port = _parse_port(text, what)
    return port, port


def _port_range_text(ports: tuple[int, int], sep: str = ":") -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}{sep}{ports[1]}"


@functools.lru_cache(maxsize=4096)
def _network(text: str) -> IPv4Network:
    return IPv4Network(text, strict=False)


def _parse_network(text: str, what: str) -> IPv4Network:
    try:
        return _network(text)
    except ValueError:
        raise _error(f"{what}: {text!r} is not an IPv4 address or network "
                     f"(netsim does not resolve host names)") from None


def _iface_matches(pattern: str, name: str | None) -> bool:
    if name is None:
        return False
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


# ---- the context a rule is evaluated in ----------------------------------------------------------

@dataclass
class _Packet:
    """What matches look at: the packet as it is now, its skb, the devices and the namespace."""

    packet: IPv4
    skb: Skb
    indev: str | None
    outdev: str | None
    netns: Any


# ---- matches (-m NAME, xt_NAME.c) -----------------------------------------------------------------

class Match:
    """One `-m NAME` block: parses its options, prints them as iptables-save does, matches."""

    name = ""
    options: dict[str, int] = {}           # option -> number of arguments

    def __init__(self, rule: "Rule"):
        self.rule = rule

    def parse(self, option: str, args: list[str], invert: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def finish(self) -> None:
        """Called once the rule is parsed: check required options."""

    def save(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def matches(self, ctx: _Packet) -> bool:  # pragma: no cover
        raise NotImplementedError


class PortMatch(Match):
    """-m tcp / -m udp: ports (and TCP flags)."""

    def __init__(self, rule: "Rule", name: str):
        super().__init__(rule)
        self.name = name
        self.options = {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1}
        if name == "tcp":
            self.options.update({"--tcp-flags": 2, "--syn": 0})
        self.sport: tuple[int, int] | None = None
        self.dport: tuple[int, int] | None = None
        self.sport_inv = self.dport_inv = self.flags_inv = False
        self.flags: tuple[int, int] | None = None

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        if option in ("--sport", "--source-port"):
            self.sport, self.sport_inv = _parse_port_range(args[0], option), invert
        elif option in ("--dport", "--destination-port"):
            self.dport, self.dport_inv = _parse_port_range(args[0], option), invert
        elif option == "--syn":
            self.flags, self.flags_inv = (0x17, 0x02), invert
        else:
            self.flags = (self._flag_bits(args[0]), self._flag_bits(args[1]))
            self.flags_inv = invert

    @staticmethod
    def _flag_bits(text: str) -> int:
        names = dict(TCP_FLAG_NAMES, ALL=0x3F, NONE=0)
        bits = 0
        for name in text.split(","):
            if name not in names:
                raise _error(f"--tcp-flags: unknown flag {name!r}; known: {', '.join(names)}")
            bits |= names[name]
        return bits

    @staticmethod
    def _flag_text(bits: int) -> str:
        if not bits:
            return "NONE"
        return ",".join(name for name, bit in TCP_FLAG_NAMES if bits & bit)

    def save(self) -> str:
        text = f"-m {self.name}"
        if self.sport:
            text += f"{' !' if self.sport_inv else ''} --sport {_port_range_text(self.sport)}"
        if self.dport:
            text += f"{' !' if self.dport_inv else ''} --dport {_port_range_text(self.dport)}"
        if self.flags:
            text += (f"{' !' if self.flags_inv else ''} --tcp-flags {self._flag_text(self.flags[0])} "
                     f"{self._flag_text(self.flags[1])}")
        return text

    def matches(self, ctx: _Packet) -> bool:
        payload = ctx.packet.payload
        if not isinstance(payload, (TCP, UDP)) or ctx.packet.frag:
            return False
        if self.sport and (self.sport[0] <= payload.sport <= self.sport[1]) == self.sport_inv:
            return False
        if self.dport and (self.dport[0] <= payload.dport <= self.dport[1]) == self.dport_inv:
            return False
        if self.flags and isinstance(payload, TCP):
            bits = sum(_TCP_LETTER_BITS.get(letter, 0) for letter in payload.flags)
            if ((bits & self.flags[0]) == self.flags[1]) == self.flags_inv:
                return False
        return True


class IcmpMatch(Match):
    name = "icmp"
    options = {"--icmp-type": 1}

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.type: tuple[int, int, int] | None = None
        self.invert = False

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        text = args[0]
        if text in ICMP_TYPE_NAMES:
            self.type = ICMP_TYPE_NAMES[text]
        else:
            kind, _, code = text.partition("/")
            number = _parse_int(kind, option)
            if code:
                self.type = (number, _parse_int(code, option), _parse_int(code, option))
            else:
                self.type = (number, 0, 0xFF)
        self.invert = invert

    def finish(self) -> None:
        if self.type is None:
            raise _error("-m icmp needs --icmp-type")

    def save(self) -> str:
        assert self.type is not None
        kind, low, high = self.type
        value = str(kind) if (low, high) == (0, 0xFF) else f"{kind}/{low}" if low == high else f"{kind}/{low}-{high}"
        if kind == 0xFF:
            value = "any"
        return f"-m icmp{' !' if self.invert else ''} --icmp-type {value}"

    def matches(self, ctx: _Packet) -> bool:
        payload = ctx.packet.payload
        assert self.type is not None
        if not isinstance(payload, ICMP) or ctx.packet.frag:
            return False
        kind, low, high = self.type
        hit = kind == 0xFF or (payload.type == kind and low <= payload.code <= high)
        return hit != self.invert


class MarkMatch(Match):
    name = "mark"
    options = {"--mark": 1}

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.value: int | None = None
        self.mask = MASK32
        self.invert = False

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        value, mask = _parse_value_mask(args[0], option)
        self.value, self.mask, self.invert = value, MASK32 if mask is None else mask, invert

    def finish(self) -> None:
        if self.value is None:
            raise _error("-m mark needs --mark value[/mask]")

    def save(self) -> str:
        mask = "" if self.mask == MASK32 else f"/{self.mask:#x}"
        return f"-m mark{' !' if self.invert else ''} --mark {self.value:#x}{mask}"

    def matches(self, ctx: _Packet) -> bool:
        return ((ctx.skb.mark & self.mask) == self.value) != self.invert


class AddrtypeMatch(Match):
    """-m addrtype: netsim answers only LOCAL, through netns.is_local_address()."""

    name = "addrtype"
    options = {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0}

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.src: bool | None = None      # None: not tested; else the inversion flag
        self.dst: bool | None = None

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        if option.startswith("--limit-iface"):
            raise _error(f"-m addrtype {option} is not modelled by netsim; supported: "
                         f"[!] --src-type LOCAL, [!] --dst-type LOCAL")
        if args[0] != "LOCAL":
            raise _error(f"-m addrtype {option} {args[0]}: netsim models only the LOCAL address "
                         f"type")
        if option == "--src-type":
            self.src = invert
        else:
            self.dst = invert

    def finish(self) -> None:
        if self.src is None and self.dst is None:
            raise _error("-m addrtype needs --src-type or --dst-type")

    def save(self) -> str:
        text = "-m addrtype"
        if self.src is not None:
            text += f"{' !' if self.src else ''} --src-type LOCAL"
        if self.dst is not None:
            text += f"{' !' if self.dst else ''} --dst-type LOCAL"
        return text

    def matches(self, ctx: _Packet) -> bool:
        local = ctx.netns.is_local_address
        if self.src is not None and local(ctx.packet.src) == self.src:
            return False
        if self.dst is not None and local(ctx.packet.dst) == self.dst:
            return False
        return True


class ConntrackMatch(Match):
    """-m conntrack --ctstate (and the older -m state --state)."""

    def __init__(self, rule: "Rule", name: str):
        super().__init__(rule)
        self.name = name
        self.option = "--ctstate" if name == "conntrack" else "--state"
        self.options = {self.option: 1}
        self.states: set[str] = set()
        self.invert = False

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        for state in args[0].split(","):
            if state not in CT_STATES or (self.name == "state" and state in ("SNAT", "DNAT")):
                raise _error(f"{option}: unknown state {state!r}; known: {','.join(CT_STATES)}")
            self.states.add(state)
        self.invert = invert

    def finish(self) -> None:
        if not self.states:
            raise _error(f"-m {self.name} needs {self.option}; netsim models no other "
                         f"{self.name} option")

    def save(self) -> str:
        states = ",".join(s for s in CT_STATES if s in self.states)
        return f"-m {self.name}{' !' if self.invert else ''} {self.option} {states}"

    def matches(self, ctx: _Packet) -> bool:
        skb = ctx.skb
        have = {skb.ct_state or "INVALID"}
        if skb.ct is not None:
            if skb.ct.snat:
                have.add("SNAT")
            if skb.ct.dnat:
                have.add("DNAT")
        return bool(have & self.states) != self.invert


class CommentMatch(Match):
    name = "comment"
    options = {"--comment": 1}

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.comment: str | None = None

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        if invert:
            raise _error("--comment cannot be negated")
        if len(args[0]) > 255:
            raise _error("--comment: a comment is at most 255 characters")
        self.comment = args[0]

    def finish(self) -> None:
        if self.comment is None:
            raise _error("-m comment needs --comment")

    def save(self) -> str:
        return f"-m comment --comment {save_string(self.comment or '')}"

    def matches(self, ctx: _Packet) -> bool:
        return True


class StatisticMatch(Match):
    """-m statistic --mode random. The kernel matches when (get_random_u32() & 0x7fffffff) is
    below round(p * 2^31); netsim replaces the random number by crc32 of the namespace name, the
    rule's chain and position and the packet's tuple, so the same connection always takes the
    same branch and different rules draw independently."""

    name = "statistic"
    options = {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1}

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.mode: str | None = None
        self.probability: int | None = None
        self.invert = False

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        if option == "--mode":
            if args[0] != "random":
                raise _error(f"-m statistic --mode {args[0]}: netsim models only --mode random")
            self.mode = "random"
        elif option == "--probability":
            try:
                value = float(args[0])
            except ValueError:
                raise _error(f"--probability {args[0]!r} is not a number") from None
            if not 0.0 <= value <= 1.0:
                raise _error(f"--probability {args[0]!r} must be between 0 and 1")
            self.probability = int(value * 0x80000000 + 0.5)   # lround(0x80000000 * p)
            self.invert = invert
        else:
            raise _error(f"-m statistic {option} (nth mode) is not modelled by netsim; supported: "
                         f"--mode random --probability P")

    def finish(self) -> None:
        if self.mode != "random" or self.probability is None:
            raise _error("-m statistic needs --mode random --probability P")

    def save(self) -> str:
        assert self.probability is not None
        return (f"-m statistic --mode random{' !' if self.invert else ''} --probability "
                f"{self.probability / 0x80000000:.11f}")

    def draw(self, ctx: _Packet) -> int:
        tup = tuple_of(ctx.packet)
        where = f"{self.rule.table}/{self.rule.chain}/{self.rule.position}"
        key = f"{ctx.netns.name} {where} {tup}" if tup else f"{ctx.netns.name} {where} {ctx.packet.src} {ctx.packet.dst}"
        return zlib.crc32(key.encode()) & 0x7FFFFFFF

    def matches(self, ctx: _Packet) -> bool:
        assert self.probability is not None
        return (self.draw(ctx) < self.probability) != self.invert


MATCHES: dict[str, Callable[["Rule"], Match]] = {
    "tcp": lambda rule: PortMatch(rule, "tcp"),
    "udp": lambda rule: PortMatch(rule, "udp"),
    "icmp": IcmpMatch,
    "mark": MarkMatch,
    "addrtype": AddrtypeMatch,
    "conntrack": lambda rule: ConntrackMatch(rule, "conntrack"),
    "state": lambda rule: ConntrackMatch(rule, "state"),
    "comment": CommentMatch,
    "statistic": StatisticMatch,
}


# ---- targets (-j NAME) ---------------------------------------------------------------------------

class Target:
    """A `-j NAME` target with its options."""

    name = ""
    options: dict[str, int] = {}
    terminal = True

    def __init__(self, rule: "Rule"):
        self.rule = rule

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        raise _error(f"-j {self.name} takes no option {option}")

    def finish(self) -> None:
        """Check the options once the rule is parsed."""

    def save(self) -> str:
        return f"-j {self.name}"

    def describe(self) -> str:
        return self.name


class StandardTarget(Target):
    """ACCEPT, DROP, RETURN, or a jump (-j) / goto (-g) to a user chain."""

    def __init__(self, rule: "Rule", name: str, goto: bool = False):
        super().__init__(rule)
        self.name = name
        self.goto = goto

    def save(self) -> str:
        return f"{'-g' if self.goto else '-j'} {self.name}"


class RejectTarget(Target):
    name = "REJECT"
    options = {"--reject-with": 1}

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.reject_with = "icmp-port-unreachable"

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        name = REJECT_ALIASES.get(args[0], args[0])
        if name not in REJECT_TYPES:
            raise _error(f"--reject-with {args[0]!r}: known types are {', '.join(REJECT_TYPES)}")
        self.reject_with = name

    def finish(self) -> None:
        if self.reject_with == "tcp-reset" and (self.rule.proto != IPPROTO_TCP or self.rule.proto_inv):
            raise _error("REJECT --reject-with tcp-reset is valid only with -p tcp")

    def save(self) -> str:
        return f"-j REJECT --reject-with {self.reject_with}"

    def describe(self) -> str:
        return f"REJECT --reject-with {self.reject_with}"


class MarkTarget(Target):
    """MARK: the kernel keeps (value, mask) and does mark = (mark & ~mask) ^ value."""

    name = "MARK"
    options = {"--set-mark": 1, "--set-xmark": 1, "--or-mark": 1, "--and-mark": 1, "--xor-mark": 1}
    terminal = False

    def __init__(self, rule: "Rule"):
        super().__init__(rule)
        self.value: int | None = None
        self.mask = MASK32

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        if self.value is not None:
            raise _error("-j MARK takes one of --set-mark, --set-xmark, --or-mark, --and-mark, "
                         "--xor-mark")
        value, mask = _parse_value_mask(args[0], option)
        if option == "--set-xmark":
            self.value, self.mask = value, MASK32 if mask is None else mask
        elif option == "--set-mark":
            self.value, self.mask = value, (MASK32 if mask is None else mask | value)
        elif mask is not None:
            raise _error(f"{option} takes a value without a mask")
        elif option == "--or-mark":
            self.value, self.mask = value, value
        elif option == "--and-mark":
            self.value, self.mask = 0, ~value & MASK32
        else:
            self.value, self.mask = value, 0

    def finish(self) -> None:
        if self.value is None:
            raise _error("-j MARK needs --set-mark, --set-xmark, --or-mark, --and-mark or --xor-mark")

    def save(self) -> str:
        return f"-j MARK --set-xmark {self.value:#x}/{self.mask:#x}"

    def apply(self, mark: int) -> int:
        assert self.value is not None
        return (mark & ~self.mask & MASK32) ^ self.value

    def describe(self) -> str:
        value, mask = self.value, self.mask
        assert value is not None
        if mask == MASK32:
            return f"MARK set {value:#x}"
        if value == mask:
            return f"MARK or {value:#x}"
        if mask == 0:
            return f"MARK xor {value:#x}"
        if value == 0:
            return f"MARK and {~mask & MASK32:#x}"
        return f"MARK --set-xmark {value:#x}/{mask:#x}"


class NatTarget(Target):
    """DNAT --to-destination, SNAT --to-source, MASQUERADE [--to-ports]; --random, --random-fully."""

    def __init__(self, rule: "Rule", name: str):
        super().__init__(rule)
        self.name = name
        self.manip = DST if name == "DNAT" else SRC
        self.to_option = {"DNAT": "--to-destination", "SNAT": "--to-source"}.get(name, "--to-ports")
        self.options = {self.to_option: 1, "--random": 0, "--random-fully": 0, "--persistent": 0}
        self.addr: str | None = None
        self.ports: tuple[int, int] | None = None
        self.random = self.random_fully = self.persistent = False

    def parse(self, option: str, args: list[str], invert: bool) -> None:
        if option == "--random":
            self.random = True
        elif option == "--random-fully":
            self.random_fully = True
        elif option == "--persistent":
            if self.name == "MASQUERADE":
                raise _error("-j MASQUERADE has no --persistent option")
            self.persistent = True
        elif self.name == "MASQUERADE":
            self.ports = _parse_port_range(args[0], option, "-")
        else:
            if self.addr is not None:
                raise _error(f"{option}: netsim models one {option} per rule")
            text = args[0]
            addr, _, ports = text.partition(":")
            if "-" in addr:
                raise _error(f"{option} {text}: address ranges are not modelled by netsim; "
                             f"give one address")
            try:
                IPv4Address(addr)
            except ValueError:
                raise _error(f"{option}: {addr!r} is not an IPv4 address") from None
            self.addr = addr
            if ports:
                self.ports = _parse_port_range(ports, option, "-")

    def finish(self) -> None:
        if self.name != "MASQUERADE" and self.addr is None:
            raise _error(f"-j {self.name} needs {self.to_option}")
        if self.ports is not None and self.rule.proto not in (IPPROTO_TCP, IPPROTO_UDP):
            raise _error(f"-j {self.name}: a port needs -p tcp or -p udp")
        if self.rule.table != "nat":
            raise _error(f"-j {self.name} is valid only in the nat table")

    def to_text(self) -> str:
        if self.name == "MASQUERADE":
            return _port_range_text(self.ports, "-") if self.ports else ""
        text = self.addr or ""
        if self.ports:
            text += ":" + _port_range_text(self.ports, "-")
        return text

    def save(self) -> str:
        text = f"-j {self.name}"
        if self.name != "MASQUERADE" or self.ports:
            text += f" {self.to_option} {self.to_text()}"
        for flag, name in ((self.random, "--random"), (self.random_fully, "--random-fully"),
                           (self.persistent, "--persistent")):
            if flag:
                text += f" {name}"
        return text

    def describe(self) -> str:
        """The target and its flags; the address change itself is printed as old -> new."""
        text = self.name
        if self.name == "MASQUERADE" and self.ports:
            text += f" --to-ports {self.to_text()}"
        for flag, name in ((self.random, "--random"), (self.random_fully, "--random-fully"),
                           (self.persistent, "--persistent")):
            if flag:
                text += f" {name}"
        return text


TARGETS: dict[str, Callable[["Rule"], Target]] = {
    "REJECT": RejectTarget,
    "MARK": MarkTarget,
    "DNAT": lambda rule: NatTarget(rule, "DNAT"),
    "SNAT": lambda rule: NatTarget(rule, "SNAT"),
    "MASQUERADE": lambda rule: NatTarget(rule, "MASQUERADE"),
}
STANDARD = ("ACCEPT", "DROP", "RETURN")
UNSUPPORTED_MATCHES = {
    "physdev": "-m physdev is not modelled by netsim (bridge port matching needs br_netfilter's "
               "physical-device information, which the model does not carry)",
}


# ---- rules ---------------------------------------------------------------------------------------

@dataclass(eq=False)
class Rule:
    """One iptables rule: the basic header tests, the matches in load order, the target."""

    table: str
    chain: str
    src: IPv4Network | None = None
    src_inv: bool = False
    dst: IPv4Network | None = None
    dst_inv: bool = False
    iface_in: str | None = None
    iface_in_inv: bool = False
    iface_out: str | None = None
    iface_out_inv: bool = False
    proto: int | None = None
    proto_inv: bool = False
    matches: list[Match] = field(default_factory=list)
    target: Target | None = None
    position: int = 0           # 1-based place in its chain, kept up to date by the chain

    @property
    def spec(self) -> str:
        """The rule as iptables-save prints it after `-A CHAIN`."""
        parts = []
        if self.src is not None and (self.src.prefixlen or self.src_inv):
            parts.append(f"{'! ' if self.src_inv else ''}-s {self.src}")
        if self.dst is not None and (self.dst.prefixlen or self.dst_inv):
            parts.append(f"{'! ' if self.dst_inv else ''}-d {self.dst}")
        if self.iface_in is not None:
            parts.append(f"{'! ' if self.iface_in_inv else ''}-i {self.iface_in}")
        if self.iface_out is not None:
            parts.append(f"{'! ' if self.iface_out_inv else ''}-o {self.iface_out}")
        if self.proto is not None:
            parts.append(f"{'! ' if self.proto_inv else ''}-p {PROTO_NAMES[self.proto]}")
        parts.extend(match.save() for match in self.matches)
        if self.target is not None:
            parts.append(self.target.save())
        return " ".join(parts)

    @property
    def comment(self) -> str | None:
        for match in self.matches:
            if isinstance(match, CommentMatch):
                return match.comment
        return None

    def __str__(self) -> str:
        return f"-A {self.chain} {self.spec}".rstrip()

    def matches_packet(self, ctx: _Packet) -> bool:
        packet = ctx.packet
        if self.src is not None and (IPv4Address(packet.src) in self.src) == self.src_inv:
            return False
        if self.dst is not None and (IPv4Address(packet.dst) in self.dst) == self.dst_inv:
            return False
        if self.iface_in is not None and _iface_matches(self.iface_in, ctx.indev) == self.iface_in_inv:
            return False
        if self.iface_out is not None and _iface_matches(self.iface_out, ctx.outdev) == self.iface_out_inv:
            return False
        if self.proto is not None and (packet.proto == self.proto) == self.proto_inv:
            return False
        return all(match.matches(ctx) for match in self.matches)

    def uses_conntrack(self) -> bool:
        return (isinstance(self.target, NatTarget)
                or any(isinstance(match, ConntrackMatch) for match in self.matches))


_BASIC = {
    "-s": "src", "--source": "src", "--src": "src", "-d": "dst", "--destination": "dst",
    "--dst": "dst", "-i": "in", "--in-interface": "in", "-o": "out", "--out-interface": "out",
    "-p": "proto", "--protocol": "proto", "-m": "match", "--match": "match", "-j": "jump",
    "--jump": "jump", "-g": "goto", "--goto": "goto",
}
_SUPPORTED_TEXT = ("supported: -s, -d, -i, -o, -p, -m tcp|udp|icmp|mark|addrtype|conntrack|state|"
                   "comment|statistic, -j ACCEPT|DROP|REJECT|RETURN|MARK|DNAT|SNAT|MASQUERADE|"
                   "<user chain>, -g <user chain>")


@functools.lru_cache(maxsize=4096)
def _split(spec: str) -> tuple[str, ...]:
    """shlex.split, remembered: flanneld and kube-proxy write the same rule texts on every node
    and on every sync, and splitting them was most of the time it takes to build a cluster."""
    return tuple(shlex.split(spec))


def parse_rule(table: str, chain: str, spec: str, chain_exists: Callable[[str], bool]) -> Rule:
    """Parse a rule in iptables syntax (what follows `-A CHAIN`) as iptables does: options in
    any order, `!` before the option it negates, matches loaded by -m or implicitly by -p."""
    try:
        tokens = _split(spec)
    except ValueError as exc:
        raise _error(f"cannot split rule {spec!r}: {exc}") from None
    rule = Rule(table, chain)
    seen_basic: set[str] = set()
    i = 0
    invert = False
    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            if invert:
                raise _error(f"rule {spec!r}: two '!' in a row")
            invert = True
            i += 1
            continue
        i += 1
        kind = _BASIC.get(token)
        if kind is not None:
            if i >= len(tokens):
                raise _error(f"rule {spec!r}: {token} needs an argument")
            arg = tokens[i]
            i += 1
            if kind in ("src", "dst", "in", "out", "proto"):
                if kind in seen_basic:
                    raise _error(f"rule {spec!r}: {token} given twice")
                seen_basic.add(kind)
            if kind == "src":
                rule.src, rule.src_inv = _parse_network(arg, token), invert
            elif kind == "dst":
                rule.dst, rule.dst_inv = _parse_network(arg, token), invert
            elif kind == "in":
                rule.iface_in, rule.iface_in_inv = arg, invert
            elif kind == "out":
                rule.iface_out, rule.iface_out_inv = arg, invert
            elif kind == "proto":
                name = PROTO_NAMES.get(int(arg), arg) if arg.isdigit() else arg.lower()
                if name == "all" or name == "0":
                    rule.proto = None
                elif name not in PROTO_NUMBERS:
                    raise _error(f"-p {arg}: netsim models tcp, udp, icmp and all")
                else:
                    rule.proto, rule.proto_inv = PROTO_NUMBERS[name], invert
            elif kind == "match":
                if invert:
                    raise _error(f"rule {spec!r}: '!' cannot negate -m")
                _load_match(rule, arg)
            else:
                if invert:
                    raise _error(f"rule {spec!r}: '!' cannot negate {token}")
                if rule.target is not None:
                    raise _error(f"rule {spec!r}: more than one target")
                rule.target = _load_target(rule, arg, kind == "goto", chain_exists)
            invert = False
            continue
        if token in ("-f", "--fragment"):
            raise _error("-f (match non-first fragments) is not modelled by netsim; " + _SUPPORTED_TEXT)
        if not token.startswith("--"):
            raise _error(f"rule {spec!r}: unexpected argument {token!r}")
        owner = _option_owner(rule, token)
        if owner is None:
            raise _error(f"rule {spec!r}: unknown option {token!r}; {_SUPPORTED_TEXT}")
        nargs = owner.options[token]
        args = tokens[i:i + nargs]
        if len(args) < nargs:
            raise _error(f"rule {spec!r}: {token} needs {nargs} argument(s)")
        i += nargs
        owner.parse(token, args, invert)
        invert = False
    if invert:
        raise _error(f"rule {spec!r}: '!' at the end negates nothing")
    for match in rule.matches:
        if isinstance(match, PortMatch) and (rule.proto != PROTO_NUMBERS[match.name] or rule.proto_inv):
            raise _error(f"-m {match.name} needs -p {match.name}")
        if isinstance(match, IcmpMatch) and (rule.proto != IPPROTO_ICMP or rule.proto_inv):
            raise _error("-m icmp needs -p icmp")
        match.finish()
    if rule.target is not None:
        rule.target.finish()
    _check_interfaces(rule)
    return rule


def _load_match(rule: Rule, name: str) -> Match:
    if name in UNSUPPORTED_MATCHES:
        raise _error(UNSUPPORTED_MATCHES[name])
    if name not in MATCHES:
        raise _error(f"-m {name}: match not modelled by netsim; {_SUPPORTED_TEXT}")
    match = MATCHES[name](rule)
    rule.matches.append(match)
    return match


def _load_target(rule: Rule, name: str, goto: bool, chain_exists: Callable[[str], bool]) -> Target:
    if goto:
        if name in STANDARD or name in TARGETS or not chain_exists(name):
            raise _error(f"-g {name}: goto needs an existing user chain in table {rule.table}")
        return StandardTarget(rule, name, goto=True)
    if name in STANDARD:
        return StandardTarget(rule, name)
    if name in TARGETS:
        return TARGETS[name](rule)
    if chain_exists(name):
        return StandardTarget(rule, name)
    raise _error(f"-j {name}: no such target or chain in table {rule.table}; {_SUPPORTED_TEXT}")


def _option_owner(rule: Rule, option: str) -> Match | Target | None:
    """Who takes an option: the target, a loaded match, or a protocol match -p loads implicitly."""
    if rule.target is not None and option in rule.target.options:
        return rule.target
    for match in rule.matches:
        if option in match.options:
            return match
    if rule.proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP) and not rule.proto_inv:
        name = PROTO_NAMES[rule.proto]
        if not any(m.name == name for m in rule.matches):
            candidate = MATCHES[name](rule)
            if option in candidate.options:
                rule.matches.append(candidate)
                return candidate
    return None


def _check_interfaces(rule: Rule) -> None:
    """ip_tables' check: -i is meaningless where there is no input device, -o likewise."""
    if rule.iface_in is not None and rule.chain in ("OUTPUT", "POSTROUTING"):
        raise _error(f"-i cannot be used in the {rule.chain} chain (no input interface there)")
    if rule.iface_out is not None and rule.chain in ("PREROUTING", "INPUT"):
        raise _error(f"-o cannot be used in the {rule.chain} chain (no output interface there)")


# ---- tables and chains ---------------------------------------------------------------------------

@dataclass
class Chain:
    name: str
    builtin: bool
    policy: str | None = None       # ACCEPT or DROP for built-in chains, None for user chains
    rules: list[Rule] = field(default_factory=list)

    def renumber(self) -> None:
        for position, rule in enumerate(self.rules, 1):
            rule.position = position


@dataclass
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str) -> "Table":
        table = cls(name)
        for chain in BUILTIN_CHAINS[name]:
            table.chains[chain] = Chain(chain, True, "ACCEPT")
        return table

    def ordered_chains(self) -> list[Chain]:
        """Built-in chains in hook order, then user chains sorted by name (iptables-save order)."""
        builtin = [self.chains[name] for name in HOOKS if name in self.chains and self.chains[name].builtin]
        user = sorted((c for c in self.chains.values() if not c.builtin), key=lambda c: c.name)
        return builtin + user


@dataclass
class HookResult:
    """What one hook decided about a packet."""

    verdict: str                     # ACCEPT, DROP or REJECT
    packet: IPv4                     # the packet after any rewrite
    explanation: list[str] = field(default_factory=list)
    reject_with: tuple[int, int] | str | None = None   # REJECT: ICMP (type, code) or "tcp-reset"
    reject_name: str | None = None   # the --reject-with name, e.g. "icmp-port-unreachable"
    rule: str | None = None          # the rule that decided, e.g. 'filter INPUT: INPUT rule 1'


@dataclass
class _Walk:
    """The outcome of walking one table's built-in chain."""

    verdict: str | None = None       # ACCEPT, DROP, REJECT, or None for "continue" (nat: no rule)
    nat: NatTarget | None = None
    rule: Rule | None = None
    where: str = ""


_FRAGMENT_MEMORY = 1024


class Netfilter:
    """iptables state of one network namespace and the hooks its packets pass."""

    def __init__(self, netns: Any):
        self.netns = netns
        self._tables: dict[str, Table] = {}
        self._conntrack_users = False
        self._fragments: dict[tuple[Any, ...], tuple[str, str, str]] = {}

    # ---- rule management (iptables, iptables-save, iptables-restore) -------------------------
    @property
    def conntrack(self) -> Any:
        return self.netns.conntrack

    @property
    def conntrack_active(self) -> bool:
        """Is conntrack hooked into this namespace? The kernel registers it when a nat table
        exists or a rule needs it (conntrack/state match, NAT target); until then packets are
        not tracked and `conntrack -L` stays empty (as in a pod namespace)."""
        return "nat" in self._tables or self._conntrack_users

    def _table(self, name: str, create: bool = True) -> Table:
        """A table; like iptables-nft, changing a table creates it, reading one does not."""
        if name not in BUILTIN_CHAINS:
            raise _error(f"unknown table {name!r}; netsim models {', '.join(TABLE_ORDER)}")
        if name not in self._tables:
            if not create:
                return Table.new(name)
            self._tables[name] = Table.new(name)
        return self._tables[name]

    def _chain(self, table: str, chain: str, create: bool = True) -> Chain:
        found = self._table(table, create).chains.get(chain)
        if found is None:
            raise _error(f"no chain {chain!r} in table {table!r}")
        return found

    def _parse(self, table: str, chain: str, spec: str) -> Rule:
        chains = self._table(table).chains
        self._chain(table, chain)
        return parse_rule(table, chain, spec,
                          lambda name: name in chains and not chains[name].builtin)

    def _note_rule(self, rule: Rule) -> None:
        if rule.uses_conntrack():
            self._conntrack_users = True

    def new_chain(self, table: str, chain: str) -> None:
        """iptables -t TABLE -N CHAIN."""
        chains = self._table(table).chains
        if chain in chains:
            raise _error(f"chain {chain!r} already exists in table {table!r}")
        if not chain or len(chain) > 28 or chain.startswith("-") or chain in STANDARD or chain in TARGETS or " " in chain:
            raise _error(f"invalid chain name {chain!r}")
        chains[chain] = Chain(chain, False)

    def delete_chain(self, table: str, chain: str) -> None:
        """iptables -t TABLE -X CHAIN: the chain must be empty and unreferenced."""
        found = self._chain(table, chain)
        if found.builtin:
            raise _error(f"cannot delete built-in chain {chain!r}")
        if found.rules:
            raise _error(f"chain {chain!r} is not empty")
        for other in self._tables[table].chains.values():
            for rule in other.rules:
                if isinstance(rule.target, StandardTarget) and rule.target.name == chain:
                    raise _error(f"chain {chain!r} is referenced by {rule}")
        del self._tables[table].chains[chain]

    def append(self, table: str, chain: str, spec: str) -> Rule:
        """iptables -t TABLE -A CHAIN SPEC."""
        rule = self._parse(table, chain, spec)
        target = self._chain(table, chain)
        target.rules.append(rule)
        target.renumber()
        self._note_rule(rule)
        return rule

    def insert(self, table: str, chain: str, spec: str, position: int = 1) -> Rule:
        """iptables -t TABLE -I CHAIN [POSITION] SPEC (1 is the top)."""
        rule = self._parse(table, chain, spec)
        target = self._chain(table, chain)
        if not 1 <= position <= len(target.rules) + 1:
            raise _error(f"index of insertion too big: {position}")
        target.rules.insert(position - 1, rule)
        target.renumber()
        self._note_rule(rule)
        return rule

    def delete(self, table: str, chain: str, spec_or_index: str | int) -> None:
        """iptables -t TABLE -D CHAIN (SPEC | NUMBER)."""
        target = self._chain(table, chain)
        if isinstance(spec_or_index, int):
            if not 1 <= spec_or_index <= len(target.rules):
                raise _error(f"index of deletion too big: {spec_or_index}")
            del target.rules[spec_or_index - 1]
        else:
            wanted = self._parse(table, chain, spec_or_index).spec
            for index, rule in enumerate(target.rules):
                if rule.spec == wanted:
                    del target.rules[index]
                    break
            else:
                raise _error(f"bad rule (does a matching rule exist in that chain?): {spec_or_index}")
        target.renumber()

    def flush(self, table: str | None = None, chain: str | None = None) -> None:
        """iptables -F: empty one chain, every chain of a table, or (table None) every table.
        User chains stay (deleting them is `delete_chain`, iptables -X)."""
        tables = [self._table(table)] if table is not None else list(self._tables.values())
        for t in tables:
            chains = [self._chain(t.name, chain)] if chain is not None else list(t.chains.values())
            for c in chains:
                c.rules.clear()

    def set_policy(self, table: str, chain: str, policy: str) -> None:
        """iptables -t TABLE -P CHAIN ACCEPT|DROP (built-in chains only)."""
        found = self._chain(table, chain)
        if not found.builtin:
            raise _error(f"only built-in chains have a policy, {chain!r} is a user chain")
        if policy not in ("ACCEPT", "DROP"):
            raise _error(f"policy must be ACCEPT or DROP, not {policy!r}")
        found.policy = policy

    def rules(self, table: str, chain: str) -> list[Rule]:
        return list(self._chain(table, chain, create=False).rules)

    def chains(self, table: str) -> list[str]:
        return [c.name for c in self._table(table, create=False).ordered_chains()]

    def save(self, table: str | None = None) -> str:
        """iptables-save output without its "# Generated/Completed" comment lines and with zero
        counters. Only tables that exist are printed, in iptables-save's (nf_tables) order."""
        if table is not None:
            self._table(table, create=False)
        names = [n for n in TABLE_ORDER if n in self._tables and table in (None, n)]
        lines: list[str] = []
        for name in names:
            t = self._tables[name]
            lines.append(f"*{name}")
            chains = t.ordered_chains()
            for c in chains:
                lines.append(f":{c.name} {c.policy if c.builtin else '-'} [0:0]")
            for c in chains:
                lines.extend(str(rule) for rule in c.rules)
            lines.append("COMMIT")
        return "".join(line + "\n" for line in lines)

    def restore(self, text: str, noflush: bool = False) -> None:
        """iptables-restore: each `*table` block replaces that table (with `noflush`, rules are
        added and only chains declared with a `:CHAIN` line are emptied, as kube-proxy relies
        on). The whole input is checked first; on an error nothing changes."""
        staged: dict[str, Table] = {}
        current: Table | None = None
        pending: list[tuple[int, str]] = []
        declared: list[tuple[int, str, str]] = []

        def commit(lineno: int) -> None:
            assert current is not None
            for number, name, policy in declared:
                chain = current.chains.get(name)
                if chain is None:
                    if policy != "-":
                        raise _error(f"line {number}: {name!r} is not a built-in chain of "
                                     f"{current.name}, its policy must be '-'")
                    current.chains[name] = Chain(name, False)
                elif chain.builtin:
                    if policy not in ("ACCEPT", "DROP"):
                        raise _error(f"line {number}: bad policy {policy!r} for {name}")
                    chain.policy = policy
                    if noflush:
                        chain.rules.clear()
                elif noflush:
                    chain.rules.clear()
            for number, line in pending:
                try:
                    self._restore_line(current, line)
                except ValueError as exc:
                    raise _error(f"line {number}: {exc}") from None
            staged[current.name] = current

        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                if current is not None:
                    raise _error(f"line {lineno}: table {line[1:]!r} starts before COMMIT of "
                                 f"{current.name!r}")
                name = line[1:]
                if name not in BUILTIN_CHAINS:
                    raise _error(f"line {lineno}: unknown table {name!r}")
                if noflush:
                    base = staged.get(name) or self._tables.get(name)
                    current = _copy_table(base) if base is not None else Table.new(name)
                else:
                    current = Table.new(name)
                pending, declared = [], []
            elif current is None:
                raise _error(f"line {lineno}: {line!r} outside a *table block")
            elif line == "COMMIT":
                commit(lineno)
                current = None
            elif line.startswith(":"):
                fields = line[1:].split()
                if len(fields) < 2:
                    raise _error(f"line {lineno}: bad chain line {line!r}")
                declared.append((lineno, fields[0], fields[1]))
            else:
                pending.append((lineno, line))
        if current is not None:
            raise _error(f"table {current.name!r} has no COMMIT")
        for name, table in staged.items():
            self._tables[name] = table
            for chain in table.chains.values():
                for rule in chain.rules:
                    self._note_rule(rule)

    def _restore_line(self, table: Table, line: str) -> None:
        tokens = shlex.split(line)
        if len(tokens) < 2:
            raise _error(f"cannot parse {line!r}")
        command, chain_name = tokens[0], tokens[1]
        chains = table.chains

        def exists(name: str) -> bool:
            return name in chains and not chains[name].builtin

        if command in ("-N", "--new-chain"):
            if chain_name in chains:
                raise _error(f"chain {chain_name!r} already exists")
            chains[chain_name] = Chain(chain_name, False)
            return
        if chain_name not in chains:
            raise _error(f"no chain {chain_name!r} in table {table.name!r}")
        chain = chains[chain_name]
        rest = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
        if command in ("-A", "--append"):
            chain.rules.append(parse_rule(table.name, chain_name, rest, exists))
        elif command in ("-I", "--insert"):
            position = 1
            parts = rest.split(None, 1)
            if parts and parts[0].isdigit():
                position, rest = int(parts[0]), parts[1] if len(parts) > 1 else ""
            chain.rules.insert(position - 1, parse_rule(table.name, chain_name, rest, exists))
        elif command in ("-F", "--flush"):
            chain.rules.clear()
        elif command in ("-X", "--delete-chain"):
            if chain.builtin or chain.rules:
                raise _error(f"cannot delete chain {chain_name!r}")
            del chains[chain_name]
        elif command in ("-D", "--delete"):
            wanted = parse_rule(table.name, chain_name, rest, exists).spec
            for index, rule in enumerate(chain.rules):
                if rule.spec == wanted:
                    del chain.rules[index]
                    break
            else:
                raise _error(f"bad rule (does a matching rule exist in that chain?): {rest}")
        else:
            raise _error(f"iptables-restore command {command!r} is not modelled; use -A, -I, -D, "
                         f"-N, -F or -X")
        chain.renumber()

    # ---- the data path --------------------------------------------------------------------
    def hook(self, hook: str, packet: IPv4, skb: Skb, indev: str | None, outdev: str | None,
             nexthop: str | None = None) -> HookResult:
        """Run one netfilter hook on a packet, in the kernel's priority order (see module doc).
        Updates skb.mark, skb.ct, skb.ct_reply and skb.ct_state. `nexthop` is the gateway the
        route chose (MASQUERADE asks the namespace for the source address toward it)."""
        if hook not in HOOKS:
            raise _error(f"unknown hook {hook!r}; hooks are {', '.join(HOOKS)}")
        result = HookResult("ACCEPT", packet)
        if packet.frag > 0:
            return self._non_first_fragment(hook, packet, result)
        before = (packet.src, packet.dst)
        ctx = _Packet(packet, skb, indev, outdev, self.netns)
        active = self.conntrack_active
        stages: list[Callable[[], None]] = []
        raw = lambda: self._filter_like("raw", hook, ctx, result)            # noqa: E731
        mangle = lambda: self._filter_like("mangle", hook, ctx, result)      # noqa: E731
        filt = lambda: self._filter_like("filter", hook, ctx, result)        # noqa: E731
        track = lambda: self._track(ctx, result)                             # noqa: E731
        nat_dst = lambda: self._nat(hook, DST, ctx, result, nexthop)         # noqa: E731
        nat_src = lambda: self._nat(hook, SRC, ctx, result, nexthop)         # noqa: E731
        confirm = lambda: self._confirm(ctx)                                 # noqa: E731
        if hook == "PREROUTING":
            stages = [raw, track, mangle, nat_dst] if active else [raw, mangle]
        elif hook == "OUTPUT":
            stages = [raw, track, mangle, nat_dst, filt] if active else [raw, mangle, filt]
        elif hook == "FORWARD":
            stages = [mangle, filt]
        elif hook == "INPUT":
            stages = [mangle, filt, nat_src, confirm] if active else [mangle, filt]
        else:
            stages = [mangle, nat_src, confirm] if active else [mangle]
        for stage in stages:
            stage()
            if result.verdict != "ACCEPT":
                break
        result.packet = ctx.packet
        if result.verdict != "ACCEPT" and skb.ct is not None and not skb.ct.confirmed and not skb.ct.dying:
            fate = "dropped" if result.verdict == "DROP" else "rejected"
            result.explanation.append(f"conntrack: packet {fate}, unconfirmed "
                                      f"{skb.ct.original.proto_name} entry {_conn(skb.ct)} discarded")
            skb.ct, skb.ct_state = None, ""
        if packet.mf:
            self._remember_fragment(hook, packet, before, result)
        return result

    # conntrack defragments at PREROUTING/OUTPUT, so iptables sees whole packets. netsim keeps
    # fragments apart: the first fragment (it carries the ports) is tracked and filtered; each
    # later fragment of the same datagram (same src, dst, protocol and IP id) gets at every hook
    # the verdict and address rewrite its first fragment got there. A later fragment seen before
    # its first fragment passes untouched (the kernel would hold it until reassembly).
    def _remember_fragment(self, hook: str, packet: IPv4, before: tuple[str, str],
                           result: HookResult) -> None:
        key = (hook, before[0], before[1], packet.proto, packet.id)
        self._fragments[key] = (result.verdict, result.packet.src, result.packet.dst)
        if len(self._fragments) > _FRAGMENT_MEMORY:
            del self._fragments[next(iter(self._fragments))]

    def _non_first_fragment(self, hook: str, packet: IPv4, result: HookResult) -> HookResult:
        key = (hook, packet.src, packet.dst, packet.proto, packet.id)
        found = self._fragments.get(key)
        if found is None:
            result.explanation.append(f"netfilter {hook}: fragment at offset {packet.frag * 8} of "
                                      f"an unseen datagram, passed untouched")
            return result
        verdict, src, dst = found
        result.verdict = verdict
        result.packet = replace(packet, src=src, dst=dst)
        if packet.mf:
            self._fragments[(hook, src, dst, packet.proto, packet.id)] = found
        result.explanation.append(f"netfilter {hook}: fragment at offset {packet.frag * 8} follows "
                                  f"its first fragment: {verdict}"
                                  + (f", now {src} -> {dst}" if (src, dst) != (packet.src, packet.dst) else ""))
        return result

    def _track(self, ctx: _Packet, result: HookResult) -> None:
        skb = ctx.skb
        if skb.ct is not None or skb.ct_state:
            return                                    # already tracked (loopback, br_netfilter)
        result.explanation.extend(self.conntrack.track(ctx.packet, skb))

    def _confirm(self, ctx: _Packet) -> None:
        entry = ctx.skb.ct
        if entry is not None and not entry.confirmed and not entry.dying:
            self.conntrack.confirm(entry)

    def _nat(self, hook: str, manip: str, ctx: _Packet, result: HookResult, nexthop: str | None) -> None:
        """nf_nat_inet_fn(): for a connection's first packet walk the nat chain (or make a null
        binding), then rewrite the packet from the connection's binding."""
        skb = ctx.skb
        entry = skb.ct
        if entry is None:
            return
        ct = self.conntrack
        direction = REPLY if skb.ct_reply else ORIGINAL
        if skb.ct_state == "RELATED":
            packet, what = ct.nat_icmp_error(entry, direction, manip, ctx.packet)
            if what:
                ctx.packet = packet
                result.explanation.append(f"conntrack: icmp error related to {entry.original.proto_name} "
                                          f"{_conn(entry)}, {what}")
            return
        if skb.ct_state == "NEW" and not ct.nat_done(entry, manip):
            walk = self._walk("nat", hook, ctx, result)
            before = ctx.packet
            if walk.nat is not None:
                target = walk.nat
                if (manip == DST) != (target.name == "DNAT"):
                    raise _error(f"{walk.where}: -j {target.name} reached in {hook}; iptables "
                                 f"refuses this: DNAT belongs to PREROUTING/OUTPUT, SNAT and "
                                 f"MASQUERADE to POSTROUTING/INPUT")
                addr = target.addr
                if target.name == "MASQUERADE":
                    # nf_nat_masquerade_ipv4(): no address on the device -> NF_DROP
                    try:
                        addr = self.netns.masquerade_source(ctx.outdev, nexthop)
                    except Exception as exc:   # the namespace says why it has no address
                        addr, why = None, str(exc)
                    else:
                        why = f"{ctx.outdev} has no IPv4 address"
                    if addr is None:
                        result.verdict = "DROP"
                        result.explanation.append(f"{walk.where}: MASQUERADE finds no source "
                                                  f"address ({why}): packet dropped")
                        return
                ok = ct.setup_nat(entry, manip, addr, target.ports, target.random, target.random_fully)
                after_tuple = entry.reply.invert()
            else:
                ok = ct.setup_nat(entry, manip, None)
                after_tuple = entry.reply.invert()
            if not ok:
                result.verdict = "DROP"
                result.explanation.append(f"nat {hook}: no free {'port' if entry.proto != IPPROTO_ICMP else 'id'} "
                                          f"for {_conn(entry)}: packet dropped")
                return
            packet, _ = ct.nat_packet(entry, direction, manip, before)
            ctx.packet = packet
            if walk.nat is not None:
                old = endpoint(entry.proto, *_side(before, manip))
                new = endpoint(entry.proto, after_tuple.src if manip == SRC else after_tuple.dst,
                               after_tuple.sport if manip == SRC or entry.proto == IPPROTO_ICMP else after_tuple.dport)
                side = "source" if manip == SRC else "destination"
                change = f"{old} -> {new}" if old != new else f"{old} unchanged"
                result.explanation.append(f"{walk.where}: {walk.nat.describe()}, {side} {change}")
                result.rule = walk.where
            elif packet != before:
                result.explanation.append(f"nat {hook}: {_conn(entry)} would clash with another "
                                          f"connection, source port remapped: "
                                          f"{endpoint(entry.proto, *_side(before, SRC))} -> "
                                          f"{endpoint(entry.proto, *_side(packet, SRC))}")
            return
        packet, what = ct.nat_packet(entry, direction, manip, ctx.packet)
        if what:
            ctx.packet = packet
            head = "reply of " if direction == REPLY else ""
            result.explanation.append(f"conntrack: {head}{entry.original.proto_name} {_conn(entry)}, {what}")

    def _filter_like(self, table: str, hook: str, ctx: _Packet, result: HookResult) -> None:
        if table not in self._tables or hook not in self._tables[table].chains:
            return
        walk = self._walk(table, hook, ctx, result)
        if walk.rule is not None:
            result.rule = walk.where
        if walk.verdict in ("DROP", "REJECT"):
            result.verdict = walk.verdict
            if walk.verdict == "REJECT" and walk.rule is not None:
                assert isinstance(walk.rule.target, RejectTarget)
                name = walk.rule.target.reject_with
                result.reject_name = name
                result.reject_with = REJECT_TYPES[name] or name

    def _walk(self, table_name: str, hook: str, ctx: _Packet, result: HookResult) -> _Walk:
        """ipt_do_table(): walk a built-in chain with jumps, gotos and RETURN."""
        table = self._tables.get(table_name)
        if table is None or hook not in table.chains:
            return _Walk()
        chain = table.chains[hook]
        if not chain.rules and chain.policy == "ACCEPT":
            return _Walk()
        prefix = f"{table_name} {hook}"
        stack: list[tuple[Chain, int, list[str]]] = []
        path: list[str] = []
        index = 0
        while True:
            if index >= len(chain.rules):
                if not stack:
                    if table_name == "nat":
                        return _Walk()
                    policy = chain.policy or "ACCEPT"
                    result.explanation.append(f"{prefix}: no rule decided, policy {policy}")
                    return _Walk(policy, where=f"{prefix} policy")
                chain, index, path = stack.pop()
                continue
            rule = chain.rules[index]
            index += 1
            if not rule.matches_packet(ctx):
                continue
            where = f"{prefix}: {' -> '.join(path) if path else chain.name} rule {rule.position}"
            if rule.comment:
                where += f' "{rule.comment}"'
            target = rule.target
            if target is None:
                continue
            if isinstance(target, MarkTarget):
                old = ctx.skb.mark
                ctx.skb.mark = target.apply(old)
                result.explanation.append(f"{where}: {target.describe()}, mark {old:#x} -> {ctx.skb.mark:#x}")
                continue
            if isinstance(target, NatTarget):
                return _Walk(nat=target, rule=rule, where=where)
            if isinstance(target, RejectTarget):
                result.explanation.append(f"{where}: {target.describe()}")
                return _Walk("REJECT", rule=rule, where=where)
            assert isinstance(target, StandardTarget)
            name = target.name
            if name in ("ACCEPT", "DROP"):
                result.explanation.append(f"{where}: {name}")
                return _Walk(name, rule=rule, where=where)
            if name == "RETURN":
                if stack:
                    result.explanation.append(f"{where}: RETURN")
                    chain, index, path = stack.pop()
                    continue
                index = len(chain.rules)          # RETURN in a built-in chain: its policy
                continue
            called = table.chains[name]
            if not target.goto:
                stack.append((chain, index, path))
            path = path + [called.name]
            chain, index = called, 0


def _conn(entry: ConntrackEntry) -> str:
    tup = entry.original
    if tup.proto == IPPROTO_ICMP:
        return f"{tup.src} -> {tup.dst} id {tup.sport}"
    return f"{tup.src}:{tup.sport} -> {tup.dst}:{tup.dport}"


def _side(packet: IPv4, manip: str) -> tuple[str, int]:
    payload = packet.payload
    if isinstance(payload, ICMP):
        return (packet.src if manip == SRC else packet.dst), payload.id
    if isinstance(payload, (TCP, UDP)):
        return (packet.src, payload.sport) if manip == SRC else (packet.dst, payload.dport)
    return (packet.src if manip == SRC else packet.dst), 0


def _copy_table(table: Table) -> Table:
    copy = Table(table.name)
    for name, chain in table.chains.items():
        copy.chains[name] = Chain(chain.name, chain.builtin, chain.policy, list(chain.rules))
    return copy


# ---- what REJECT sends back (net/ipv4/netfilter/nf_reject_ipv4.c) --------------------------------

def reject_reply(packet: IPv4, reject_with: str, source: str | None = None) -> IPv4 | None:
    """The packet REJECT makes the stack send back, or None where the kernel sends nothing.

    tcp-reset (nf_send_reset): from the rejected packet's destination to its source, ports
    swapped, TTL 64, IP ID 0, DF set, window 0; seq = the segment's ack if it had ACK, else
    flags RA with ack = seq + SYN + FIN + payload length. Never in answer to a RST.
    ICMP (nf_send_unreach -> icmp_send): destination unreachable with the type's code, quoting
    the rejected packet up to 576 bytes in all; TOS = (tos & 0x1e) | 0xc0, TTL 64, DF clear.
    `source` is the address icmp_send picks (the stack knows it; default: the packet's
    destination). The stack assigns the IP ID. Not sent for non-first fragments or about
    ICMP errors."""
    if reject_with == "tcp-reset":
        seg = packet.payload
        if not isinstance(seg, TCP) or "R" in seg.flags or packet.frag:
            return None
        if "A" in seg.flags:
            reply = TCP(seg.dport, seg.sport, seq=seg.ack, ack=0, flags="R", window=0)
        else:
            length = len(seg.payload) + ("S" in seg.flags) + ("F" in seg.flags)
            reply = TCP(seg.dport, seg.sport, seq=0, ack=(seg.seq + length) & MASK32, flags="RA", window=0)
        return IPv4(packet.dst, packet.src, IPPROTO_TCP, reply, ttl=64, id=0, df=True)
    kind_code = REJECT_TYPES.get(reject_with)
    if kind_code is None:
        raise _error(f"unknown --reject-with {reject_with!r}")
    if packet.frag:
        return None
    if isinstance(packet.payload, ICMP) and packet.payload.type in (3, 4, 5, 11, 12):
        return None
    quoted = packet.to_bytes()[:576 - 20 - 8]
    icmp = ICMP(kind_code[0], kind_code[1], 0, quoted)
    return IPv4(source or packet.dst, packet.src, IPPROTO_ICMP, icmp, ttl=64, id=0, df=False,
                tos=(packet.tos & 0x1E) | 0xC0)


__all__ = ["Netfilter", "HookResult", "Rule", "Chain", "Table", "parse_rule", "reject_reply",
           "save_string", "HOOKS", "TABLE_ORDER"]
