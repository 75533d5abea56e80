"""The extension interface of x_tables, and the value parsing of libxtables.

In the kernel every `-m NAME` match and `-j NAME` target is an extension registered with
x_tables (include/linux/netfilter/x_tables.h: struct xt_match, struct xt_target); ipt_do_table
hands each one the packet and a `struct xt_action_param` naming the hook and the devices. In
userspace, iptables parses each extension's options with the helpers of libxtables
(iptables: libxtables/xtables.c: xtables_strtoui, xtables_parse_port, xtables_ipparse_any,
xtables_save_string). This module holds netsim's counterparts of both: `Match` and `Target`
(the extension classes every match and target derives from), `PacketContext` (what
xt_action_param carries), and the parsers that turn option values into numbers, port ranges and
networks, refusing what iptables refuses with a `ConfigError` that names the option.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol, Sequence

from ..errors import ConfigError
from ..packet import IPv4
from ..skb import Skb

MASK32 = 0xFFFFFFFF


class RuleError(ConfigError):
    """A rule, chain, table or iptables-restore input that iptables (or the kernel) refuses, or
    one that uses an option netsim does not model. The message names the option and what is
    supported."""


def error(message: str) -> RuleError:
    """The error every refusal in the netfilter package raises."""
    return RuleError(message)


def save_string(value: str) -> str:
    """xtables_save_string(): bare if only [A-Za-z0-9_-], else double-quoted with \\ escapes."""
    if value and all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        return value
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f'"{escaped}"'


def parse_int(text: str, what: str) -> int:
    """xtables_strtoui(): a number in C syntax (0x.., 0.., decimal), 0 to 2^32-1."""
    try:
        value = int(text, 0)
    except ValueError:
        raise error(f"{what}: {text!r} is not a number") from None
    if not 0 <= value <= MASK32:
        raise error(f"{what}: {text!r} is out of range")
    return value


def parse_value_mask(text: str, what: str) -> tuple[int, int | None]:
    """`value[/mask]`, as --mark and --set-xmark take it."""
    value, _, mask = text.partition("/")
    return parse_int(value, what), (parse_int(mask, what) if mask else None)


def parse_port(text: str, what: str) -> int:
    """xtables_parse_port() for a number; names from /etc/services are not read."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise error(f"{what}: port {text!r} is not a number from 0 to 65535 "
                    f"(netsim does not read /etc/services)")
    return int(text)


def parse_port_range(text: str, what: str, sep: str = ":") -> tuple[int, int]:
    """`port`, `first:last`, `first:` or `:last` (NAT targets write the range with `-`)."""
    if sep in text:
        low, _, high = text.partition(sep)
        first = parse_port(low, what) if low else 0
        last = parse_port(high, what) if high else 65535
        if first > last:
            raise error(f"{what}: port range {text!r} is inverted")
        return first, last
    port = parse_port(text, what)
    return port, port


def port_range_text(ports: tuple[int, int], sep: str = ":") -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}{sep}{ports[1]}"


@functools.lru_cache(maxsize=4096)
def _network(text: str) -> IPv4Network:
    return IPv4Network(text, strict=False)


@functools.lru_cache(maxsize=65536)
def ip_int(text: str) -> int:
    """A packet's dotted address as the integer the kernel compares (remembered: the same few
    addresses meet every rule)."""
    return int(IPv4Address(text))


def parse_network(text: str, what: str) -> IPv4Network:
    """xtables_ipparse_any() without name resolution: an address, or an address/prefix or
    address/netmask, with the host bits cleared as iptables-save prints them."""
    try:
        return _network(text)
    except ValueError:
        raise error(f"{what}: {text!r} is not an IPv4 address or network "
                    f"(netsim does not resolve host names)") from None


def iface_matches(pattern: str, name: str | None) -> bool:
    """ip_packet_match()'s interface test: a trailing `+` matches any name with that prefix."""
    if name is None:
        return False
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


# ---- the context a rule is evaluated in ----------------------------------------------------------

@dataclass(slots=True)
class PacketContext:
    """What a match or target sees (struct xt_action_param and the skb): the packet as it is
    now, its skb, the input and output devices, and the namespace (for addrtype, MASQUERADE)."""

    packet: IPv4
    skb: Skb
    indev: str | None
    outdev: str | None
    netns: Any
    nft: Any = None          # the packet as nftables' expressions read it (nft_eval.pkt_of), made when needed


class RuleHeader(Protocol):
    """What an extension sees of the rule it belongs to when it checks its options (struct
    xt_mtchk_param / xt_tgchk_param: the table, the rule's ipt_ip header), and its place, which
    error messages name. grammar.Rule is one."""

    table: str
    chain: str
    proto: int | None
    proto_inv: bool
    position: int


class Match:
    """One `-m NAME` block (struct xt_match): parses its options, prints them as iptables-save
    does, and tests a packet."""

    name = ""
    options: dict[str, int] = {}           # option -> number of arguments

    def __init__(self, rule: RuleHeader):
        self.rule = rule

    def copy_into(self, rule: RuleHeader) -> "Match":
        """The same extension, with its options, in another rule (Rule.copy)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.rule = rule
        return other

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def finish(self) -> None:
        """Called once the rule is parsed: check required options (the extension's
        x6_fcheck)."""

    def save(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def matches(self, ctx: PacketContext) -> bool:  # pragma: no cover
        raise NotImplementedError


class Target:
    """A `-j NAME` target (struct xt_target) with its options."""

    name = ""
    options: dict[str, int] = {}
    terminal = True
    jump: str | None = None     # the user chain a -j calls (targets.StandardTarget)

    def __init__(self, rule: RuleHeader):
        self.rule = rule

    def copy_into(self, rule: RuleHeader) -> "Target":
        """The same extension, with its options, in another rule (Rule.copy)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.rule = rule
        return other

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        raise error(f"-j {self.name} takes no option {option}")

    def finish(self) -> None:
        """Check the options once the rule is parsed."""

    def save(self) -> str:
        return f"-j {self.name}"
