"""The rule grammar of iptables: a rule's text parsed into the header tests, matches and target
the kernel holds (struct ipt_entry), and printed back as iptables-save prints it.

iptables (iptables/iptables.c do_parse, xshared.c) reads options in any order: `!` negates
the option after it; -s, -d, -i, -o and -p are tests of the IP header every rule has (struct
ipt_ip, tested by ip_packet_match in net/ipv4/netfilter/ip_tables.c); `-m NAME` loads a match
extension, and -p tcp|udp|icmp loads its protocol's match on demand when one of its options
comes up; `-j NAME` loads a target or names a user chain, `-g` jumps without return. `_BASIC`
is the table of the header options, `MATCHES` (matches.py) and `TARGETS` the tables of the
extensions; an option no table knows is refused with a `RuleError` that names it and lists what
netsim supports. `Rule.spec` is the canonical text (iptables 1.8.9, nf_tables backend;
tests/test_iptables_real.py compares it with a real iptables-save).
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass, field, fields
from ipaddress import IPv4Network
from typing import Callable

from ..packet import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PROTO_NAMES, PROTO_NUMBERS
from .matches import MATCHES, UNSUPPORTED_MATCHES, CommentMatch, ConntrackMatch, IcmpMatch, PortMatch
from .nat import NatTarget
from .reject import RejectTarget
from .targets import STANDARD, MarkTarget, StandardTarget
from .xtables import Match, PacketContext, Target, error, iface_matches, ip_int, parse_network

_new_rule = object.__new__
TARGETS: dict[str, Callable[["Rule"], Target]] = {
    "REJECT": RejectTarget,
    "MARK": MarkTarget,
    "DNAT": lambda rule: NatTarget(rule, "DNAT"),
    "SNAT": lambda rule: NatTarget(rule, "SNAT"),
    "MASQUERADE": lambda rule: NatTarget(rule, "MASQUERADE"),
}


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
    _spec: str | None = field(default=None, init=False, repr=False)
    _saved: tuple[tuple[str, ...], tuple[str, ...]] | None = field(default=None, init=False, repr=False)
    # -s and -d as (network, mask) integers, the form ip_packet_match compares
    _src_mask: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _dst_mask: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _tests: tuple[Match, ...] | None = field(default=None, init=False, repr=False)   # matches that test
    _headers: bool = field(default=True, init=False, repr=False)     # any ipt_ip test at all

    def copy(self) -> "Rule":
        """A rule of its own with the same tests and target, not yet in a chain: each extension
        copied into it (a match's options are fixed once parsed; the statistic match reads its
        rule's place)."""
        other = _new_rule(Rule)
        other.__dict__.update(self.__dict__)
        other.position = 0
        for name, default in _WORKED_OUT:           # what a rule works out about itself, afresh
            setattr(other, name, default)
        other.matches = [match.copy_into(other) for match in self.matches]
        other.target = self.target.copy_into(other) if self.target is not None else None
        return other

    def _prepare(self) -> tuple[Match, ...]:
        """At the first packet: keep the address tests as integers, and the matches that test
        something (a comment matches every packet). Most rules of a big cluster never meet a
        packet, so this is not done at parse time."""
        if self.src is not None:
            self._src_mask = (int(self.src.network_address), int(self.src.netmask))
        if self.dst is not None:
            self._dst_mask = (int(self.dst.network_address), int(self.dst.netmask))
        self._headers = not (self.src is None and self.dst is None and self.iface_in is None
                             and self.iface_out is None and self.proto is None)
        self._tests = tuple(m for m in self.matches if not isinstance(m, CommentMatch))
        return self._tests

    @property
    def spec(self) -> str:
        """The rule as iptables-save prints it after `-A CHAIN` (worked out once: a parsed rule
        does not change)."""
        if self._spec is None:
            self._spec = self._save()
        return self._spec

    def _save(self) -> str:
        matches, target = self.saved()
        return " ".join((*matches, *target))

    def saved(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The rule's tests, one per entry, and its target's tokens (`-j`/`-g`, the name, the
        options), as iptables-save prints them (worked out once)."""
        if self._saved is None:
            self._saved = self._parts()
        return self._saved

    def _parts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        parts: list[str] = []
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
        target = tuple(self.target.save().split(" ")) if self.target is not None else ()
        return tuple(parts), target

    @property
    def comment(self) -> str | None:
        for match in self.matches:
            if isinstance(match, CommentMatch):
                return match.comment
        return None

    def __str__(self) -> str:
        return f"-A {self.chain} {self.spec}".rstrip()

    def matches_packet(self, ctx: PacketContext) -> bool:
        """ip_packet_match() (the header tests), then every match in load order."""
        tests = self._tests
        if tests is None:
            tests = self._prepare()
        if not self._headers:           # most of kube-proxy's rules test matches alone
            for match in tests:
                if not match.matches(ctx):
                    return False
            return True
        packet = ctx.packet
        src = self._src_mask
        if src is not None and ((ip_int(packet.src) & src[1]) == src[0]) == self.src_inv:
            return False
        dst = self._dst_mask
        if dst is not None and ((ip_int(packet.dst) & dst[1]) == dst[0]) == self.dst_inv:
            return False
        if self.iface_in is not None and iface_matches(self.iface_in, ctx.indev) == self.iface_in_inv:
            return False
        if self.iface_out is not None and iface_matches(self.iface_out, ctx.outdev) == self.iface_out_inv:
            return False
        if self.proto is not None and (packet.proto == self.proto) == self.proto_inv:
            return False
        for match in tests:
            if not match.matches(ctx):
                return False
        return True

    def uses_conntrack(self) -> bool:
        return (isinstance(self.target, NatTarget)
                or any(isinstance(match, ConntrackMatch) for match in self.matches))


# the fields a rule works out about itself (init=False), with their defaults: Rule.copy resets them
_WORKED_OUT = tuple((f.name, f.default) for f in fields(Rule) if not f.init)

_BASIC = {
    "-s": "src", "--source": "src", "--src": "src", "-d": "dst", "--destination": "dst",
    "--dst": "dst", "-i": "in", "--in-interface": "in", "-o": "out", "--out-interface": "out",
    "-p": "proto", "--protocol": "proto", "-m": "match", "--match": "match", "-j": "jump",
    "--jump": "jump", "-g": "goto", "--goto": "goto",
}
# what a refusal lists as supported, from the option tables themselves
_SUPPORTED_TEXT = ("supported: -s, -d, -i, -o, -p, -m " + "|".join(MATCHES) + ", -j "
                   + "|".join((*STANDARD, *TARGETS)) + "|<user chain>, -g <user chain>")


@functools.lru_cache(maxsize=4096)
def _split(spec: str) -> tuple[str, ...]:
    """shlex.split, remembered: flanneld and kube-proxy write the same rule texts on every node
    and on every sync, and splitting them was most of the time it takes to build a cluster."""
    return tuple(shlex.split(spec))


# parsed rules by (table, chain, text): the rule, never handed out, and what it asked about
# chains (name, exists); each hit is copied (Rule.copy). Bounded like the split texts.
_PARSED: dict[tuple[str, str, str], tuple[Rule, tuple[tuple[str, bool], ...]]] = {}
_PARSED_MAX = 4096


def parse_rule(table: str, chain: str, spec: str, chain_exists: Callable[[str], bool]) -> Rule:
    """Parse a rule in iptables syntax (what follows `-A CHAIN`) as iptables does: options in
    any order, `!` before the option it negates, matches loaded by -m or implicitly by -p.

    Remembered: flanneld and kube-proxy write the same texts on every node and on every sync.
    A text seen before, in the same table and chain, whose -j/-g names are user chains exactly
    as they were then, gives a copy of the rule it gave (its extensions do not change once
    parsed); a text that was refused is parsed, and refused, again."""
    key = (table, chain, spec)
    known = _PARSED.get(key)
    if known is not None:
        template, asked = known
        if all(bool(chain_exists(name)) is answer for name, answer in asked):
            return template.copy()
    answers: list[tuple[str, bool]] = []

    def exists(name: str) -> bool:
        answer = bool(chain_exists(name))
        answers.append((name, answer))
        return answer
    rule = _parse_rule(table, chain, spec, exists)
    if len(_PARSED) >= _PARSED_MAX:
        del _PARSED[next(iter(_PARSED))]
    _PARSED[key] = (rule.copy(), tuple(answers))
    return rule


def _parse_rule(table: str, chain: str, spec: str, chain_exists: Callable[[str], bool]) -> Rule:
    try:
        tokens = _split(spec)
    except ValueError as exc:
        raise error(f"cannot split rule {spec!r}: {exc}") from None
    rule = Rule(table, chain)
    seen_basic: set[str] = set()
    i = 0
    invert = False
    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            if invert:
                raise error(f"rule {spec!r}: two '!' in a row")
            invert = True
            i += 1
            continue
        i += 1
        kind = _BASIC.get(token)
        if kind is not None:
            if i >= len(tokens):
                raise error(f"rule {spec!r}: {token} needs an argument")
            arg = tokens[i]
            i += 1
            if kind in ("src", "dst", "in", "out", "proto"):
                if kind in seen_basic:
                    raise error(f"rule {spec!r}: {token} given twice")
                seen_basic.add(kind)
            if kind == "src":
                rule.src, rule.src_inv = parse_network(arg, token), invert
            elif kind == "dst":
                rule.dst, rule.dst_inv = parse_network(arg, token), invert
            elif kind == "in":
                rule.iface_in, rule.iface_in_inv = arg, invert
            elif kind == "out":
                rule.iface_out, rule.iface_out_inv = arg, invert
            elif kind == "proto":
                name = PROTO_NAMES.get(int(arg), arg) if arg.isdigit() else arg.lower()
                if name == "all" or name == "0":
                    rule.proto = None
                elif name not in PROTO_NUMBERS:
                    raise error(f"-p {arg}: netsim models tcp, udp, icmp and all")
                else:
                    rule.proto, rule.proto_inv = PROTO_NUMBERS[name], invert
            elif kind == "match":
                if invert:
                    raise error(f"rule {spec!r}: '!' cannot negate -m")
                _load_match(rule, arg)
            else:
                if invert:
                    raise error(f"rule {spec!r}: '!' cannot negate {token}")
                if rule.target is not None:
                    raise error(f"rule {spec!r}: more than one target")
                rule.target = _load_target(rule, arg, kind == "goto", chain_exists)
            invert = False
            continue
        if token in ("-f", "--fragment"):
            raise error("-f (match non-first fragments) is not modelled by netsim; " + _SUPPORTED_TEXT)
        if not token.startswith("--"):
            raise error(f"rule {spec!r}: unexpected argument {token!r}")
        owner = _option_owner(rule, token)
        if owner is None:
            loaded = [f"-m {m.name} takes {', '.join(m.options)}" for m in rule.matches if m.options]
            if rule.target is not None and rule.target.options:
                loaded.append(f"-j {rule.target.name} takes {', '.join(rule.target.options)}")
            raise error(f"rule {spec!r}: unknown option {token!r}; "
                        + "".join(part + "; " for part in loaded) + _SUPPORTED_TEXT)
        nargs = owner.options[token]
        args = tokens[i:i + nargs]
        if len(args) < nargs:
            raise error(f"rule {spec!r}: {token} needs {nargs} argument(s)")
        i += nargs
        owner.parse(token, args, invert)
        invert = False
    if invert:
        raise error(f"rule {spec!r}: '!' at the end negates nothing")
    for match in rule.matches:
        if isinstance(match, PortMatch) and (rule.proto != PROTO_NUMBERS[match.name] or rule.proto_inv):
            raise error(f"-m {match.name} needs -p {match.name}")
        if isinstance(match, IcmpMatch) and (rule.proto != IPPROTO_ICMP or rule.proto_inv):
            raise error("-m icmp needs -p icmp")
        match.finish()
    if rule.target is not None:
        rule.target.finish()
    _check_interfaces(rule)
    return rule


def _load_match(rule: Rule, name: str) -> Match:
    if name in UNSUPPORTED_MATCHES:
        raise error(UNSUPPORTED_MATCHES[name])
    if name not in MATCHES:
        raise error(f"-m {name}: match not modelled by netsim; {_SUPPORTED_TEXT}")
    match = MATCHES[name](rule)
    rule.matches.append(match)
    return match


def _load_target(rule: Rule, name: str, goto: bool, chain_exists: Callable[[str], bool]) -> Target:
    if goto:
        if name in STANDARD or name in TARGETS or not chain_exists(name):
            raise error(f"-g {name}: goto needs an existing user chain in table {rule.table}")
        return StandardTarget(rule, name, goto=True)
    if name in STANDARD:
        return StandardTarget(rule, name)
    if name in TARGETS:
        return TARGETS[name](rule)
    if chain_exists(name):
        return StandardTarget(rule, name)
    raise error(f"-j {name}: no such target or chain in table {rule.table}; {_SUPPORTED_TEXT}")


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
        raise error(f"-i cannot be used in the {rule.chain} chain (no input interface there)")
    if rule.iface_out is not None and rule.chain in ("PREROUTING", "INPUT"):
        raise error(f"-o cannot be used in the {rule.chain} chain (no output interface there)")
