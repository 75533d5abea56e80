"""Tables, chains and the chain traversal of iptables, as net/ipv4/netfilter/ip_tables.c
ipt_do_table() walks them.

A table (raw, mangle, filter, nat) holds one built-in chain per hook it is registered on
(`BUILTIN_CHAINS`, from each iptable_*.c's valid_hooks) and any user chains. ipt_do_table
starts at the hook's built-in chain and tests the rules in order; a rule whose matches all hold
runs its target: ACCEPT, DROP and REJECT end the walk, MARK changes skb->mark and goes on, a
jump pushes the return point on a stack (`-j CHAIN`; `-g CHAIN` does not), RETURN pops it, and
running off the end of a user chain returns too. Off the end of the built-in chain the chain's
policy decides. The nat table's chains decide only a binding (their policy is always ACCEPT,
nf_nat_inet_fn then makes a null binding). Every verdict leaves a `Decision` (subsystem
"netfilter", function "ipt_do_table") whose RuleRef names the table, hook, chain, rule number,
the rule as iptables-save prints it, the jump path and the comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from ..decision import VERDICT_OF, Decision, FieldChange, NetfilterReason, RuleRef, Subsystem, Verdict
from ..packet import ICMP, TCP, UDP
from .grammar import Rule
from .matches import (AddrtypeMatch, CommentMatch, ConntrackMatch, IcmpMatch, MarkMatch, MultiportMatch, NfacctMatch,
                      PortMatch)
from .hooks import HOOKS
from .nat import NatTarget
from .reject import RejectTarget
from .targets import MarkTarget, StandardTarget
from .xtables import PacketContext, ip_int


class HookDecisions(Protocol):
    """Where a table's walk leaves its decisions: the hook's result (core.HookResult)."""

    decisions: list[Decision]

TABLE_ORDER = ("mangle", "raw", "filter", "nat")      # the order iptables-save (nf_tables) prints
BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}


@dataclass
class Chain:
    name: str
    builtin: bool
    policy: str | None = None       # ACCEPT or DROP for built-in chains, None for user chains
    rules: list[Rule] = field(default_factory=list)
    # the rules by the one destination address they test (rules_for), with the rules it was made from
    _by_dst: tuple[tuple[Rule, ...], dict[int, tuple[Rule, ...]], tuple[Rule, ...]] | None = field(
        default=None, init=False, repr=False, compare=False)

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

    def copy(self) -> "Table":
        """A copy whose chains can change without touching this one (rules are shared: a
        parsed rule does not change)."""
        copy = Table(self.name)
        for name, chain in self.chains.items():
            copy.chains[name] = Chain(chain.name, chain.builtin, chain.policy, list(chain.rules))
        return copy


@dataclass
class WalkOutcome:
    """The outcome of walking one table's built-in chain."""

    verdict: str | None = None       # ACCEPT, DROP, REJECT, or None for "continue" (nat: no rule)
    nat: NatTarget | None = None
    rule: Rule | None = None
    ref: RuleRef | None = None       # the rule (or the policy) that decided
    _where: str | None = field(default=None, repr=False, compare=False)

    def consulted(self) -> tuple[RuleRef, ...]:
        return (self.ref,) if self.ref is not None else ()

    @property
    def where(self) -> str:
        """The rule that decided as an error message names it, from `ref`:
        'nat PREROUTING: KUBE-SERVICES -> KUBE-SVC-... rule 2 "comment"', 'filter INPUT policy'
        (worked out once: a rule's verdict is one shared outcome)."""
        where = self._where
        if where is None:
            ref = self.ref
            if ref is None:
                where = ""
            elif ref.rule == 0:
                where = f"{ref.table} {ref.hook} policy"
            else:
                path = ref.path[1:]
                where = f"{ref.table} {ref.hook}: {' -> '.join(path) if path else ref.chain} rule {ref.rule}"
                where += f' "{ref.comment}"' if ref.comment else ""
            self._where = where
        return where


_INDEXED = 8       # a chain of at least this many rules is walked through its destination index


def rules_for(chain: Chain, dst: str) -> list[Rule] | tuple[Rule, ...]:
    """The rules of `chain` a packet to `dst` can match, in order: a rule whose -d is one
    other address (`-d 10.96.0.10/32`, as kube-proxy writes a Service's rule in KUBE-SERVICES)
    cannot, so a long chain skips those (ip_packet_match would refuse each of them, and a rule
    that does not match leaves no record). The index is made again whenever the chain's rules
    are not the ones it was made from."""
    rules = chain.rules
    if len(rules) < _INDEXED:
        return rules
    index = chain._by_dst
    snapshot = tuple(rules)
    if index is None or index[0] != snapshot:       # the same Rule objects: compared by identity
        index = chain._by_dst = _index_by_dst(snapshot)
    return index[1].get(ip_int(dst), index[2])


def _index_by_dst(rules: tuple[Rule, ...]) -> tuple[tuple[Rule, ...], dict[int, tuple[Rule, ...]], tuple[Rule, ...]]:
    """(the rules, address -> the rules a packet to it can match, the rules for any other address)."""
    def one_address(rule: Rule) -> int | None:
        dst = rule.dst
        return int(dst.network_address) if dst is not None and not rule.dst_inv and dst.prefixlen == 32 else None
    addresses = {a for a in map(one_address, rules) if a is not None}
    by_dst = {a: tuple(r for r in rules if one_address(r) in (None, a)) for a in addresses}
    return rules, by_dst, tuple(r for r in rules if one_address(r) is None)


def _ref(table: str, hook: str, chain: str, path: list[str], rule: Rule) -> RuleRef:
    return _rule_ref(table, hook, chain, tuple(path), rule, rule.position)


@lru_cache(maxsize=1 << 12)
def _rule_ref(table: str, hook: str, chain: str, path: tuple[str, ...], rule: Rule, position: int) -> RuleRef:
    """The same rule met the same way is the same record (every trace meets the same few)."""
    matches, target = rule.saved()
    return RuleRef(table, hook, chain, position, matches, target[1] if target else "", target[2:],
                   (hook, *path), rule.comment or "", target[:1] == ("-g",))


@lru_cache(maxsize=1 << 12)
def _rule_decision(reason: NetfilterReason, verdict: Verdict, table: str, hook: str, chain: str,
                   path: tuple[str, ...], rule: Rule | None, position: int) -> Decision:
    """ipt_do_table's verdict on a rule (or, with no rule, the chain's policy `chain`): the
    same verdict on the same rule met the same way is the same record."""
    if rule is None:
        ref = RuleRef(table, hook, hook, 0, (), chain, (), (hook,))
    else:
        ref = _rule_ref(table, hook, chain, path, rule, position)
    return Decision(Subsystem.NETFILTER, "ipt_do_table", reason, verdict, consulted=(ref,))


def _ref_of(decision: Decision) -> RuleRef:
    ref = decision.consulted[0]
    if TYPE_CHECKING:
        assert isinstance(ref, RuleRef)
    return ref


# What ipt_do_table does with a rule that matched, by its target's class (StandardTarget by name).
_MARK, _NAT, _REJECT = 1, 2, 3
_TARGET_KIND = {MarkTarget: _MARK, NatTarget: _NAT, RejectTarget: _REJECT}
_NOTHING = WalkOutcome()            # no rule decided (shared: a WalkOutcome is only read)
_DECIDED: dict[tuple, tuple[Decision, WalkOutcome]] = {}
_POLICIES: dict[tuple[str, str, str], tuple[Decision, WalkOutcome]] = {}   # (table, hook, policy)


def _decided(reason: NetfilterReason, verdict: Verdict, table: str, hook: str, chain: str,
             path: tuple[str, ...], rule: Rule) -> tuple[Decision, WalkOutcome]:
    """_rule_decision for a rule, and the walk's outcome when that verdict ends it, found by
    the rule itself (hashed by identity) and how it was met, without hashing the enums: the
    walk meets the same few rules in every trace (an outcome is only read, so it is shared)."""
    key = (rule, hook, path, rule.position, verdict is Verdict.RETURN)
    found = _DECIDED.get(key)
    if found is None:
        if len(_DECIDED) >= 1 << 12:
            _DECIDED.clear()
        decision = _rule_decision(reason, verdict, table, hook, chain, path, rule, rule.position)
        outcome = WalkOutcome(verdict.name if verdict is not Verdict.RETURN else None, rule=rule,
                              ref=_ref_of(decision))
        found = _DECIDED[key] = (decision, outcome)
    return found


def ipt_do_table(table: Table | None, hook: str, ctx: PacketContext, result: HookDecisions) -> WalkOutcome:
    """Walk `table`'s built-in chain for `hook` with jumps, gotos and RETURN; leave a Decision
    on `result` for every rule that acted and for a policy that decided. A jump (-j) into an
    empty chain comes straight back, so it is not taken. Each chain is walked by an iterator
    over its rules; a jump keeps the caller's iterator on the stack, where the walk resumes."""
    if table is None:
        return _NOTHING
    chains = table.chains
    chain = chains.get(hook)
    if chain is None:
        return _NOTHING
    if not chain.rules and chain.policy == "ACCEPT":
        return _NOTHING
    table_name = table.name
    # the end of a chain with nothing on the stack (a goto from the built-in chain, RETURN there)
    # is the built-in chain's policy: ipt_do_table jumps to the hook's underflow entry
    base_policy = chain.policy or "ACCEPT"
    stack: list[tuple[Chain, Iterator[Rule], tuple[str, ...]]] = []
    path: tuple[str, ...] = ()
    dst = ctx.packet.dst            # no rule of a table walk rewrites the packet
    rules: Iterator[Rule] = iter(rules_for(chain, dst))
    decisions = result.decisions
    while True:
        for rule in rules:
            target = rule.target
            if target is not None and target.jump is not None and not chains[target.jump].rules:
                continue        # a call into an empty chain comes straight back: nothing to match
            if not rule.matches_packet(ctx):
                continue
            if target is None:        # a rule with matches only (KUBE-FW-'s last): counted, the walk goes on
                decisions.append(_decided(NetfilterReason.RULE, Verdict.CONTINUE, table_name, hook, chain.name,
                                          path, rule)[0])
                continue
            kind = _TARGET_KIND.get(type(target))
            if kind is _MARK:
                if TYPE_CHECKING:
                    assert isinstance(target, MarkTarget)
                skb = ctx.skb
                old = skb.mark
                skb.mark = target.apply(old)
                decisions.append(Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.MARK, Verdict.CONTINUE,
                                          consulted=(_ref(table_name, hook, chain.name, list(path), rule),),
                                          changes=(FieldChange("skb", "mark", old, skb.mark),)))
                continue
            if kind is _NAT:
                if TYPE_CHECKING:
                    assert isinstance(target, NatTarget)
                return WalkOutcome(nat=target, rule=rule, ref=_ref(table_name, hook, chain.name, list(path), rule))
            if kind is _REJECT:
                decision, outcome = _decided(NetfilterReason.REJECT, Verdict.REJECT, table_name, hook, chain.name,
                                             path, rule)
                decisions.append(decision)
                return outcome
            if TYPE_CHECKING:     # the class was looked up above; no test on the hot path
                assert isinstance(target, StandardTarget)
            name = target.name
            if name == "ACCEPT" or name == "DROP":
                decision, outcome = _decided(NetfilterReason.RULE, VERDICT_OF[name], table_name, hook, chain.name,
                                             path, rule)
                decisions.append(decision)
                return outcome
            if name == "RETURN":
                if stack:
                    decisions.append(_decided(NetfilterReason.RULE, Verdict.RETURN, table_name, hook, chain.name,
                                              path, rule)[0])
                    chain, rules, path = stack.pop()
                else:
                    rules = iter(())          # RETURN in a built-in chain: its policy
                break
            called = chains[name]
            if target.goto:
                path = path + (name,)
                chain, rules = called, iter(rules_for(called, dst))
                break
            if called.rules:
                stack.append((chain, rules, path))
                path = path + (name,)
                chain, rules = called, iter(rules_for(called, dst))
                break
        else:       # the chain ran out: back to the caller, or the built-in chain's policy
            if not stack:
                if table_name == "nat":
                    return _NOTHING
                policy = base_policy
                found = _POLICIES.get((table_name, hook, policy))
                if found is None:
                    decision = _rule_decision(NetfilterReason.POLICY, VERDICT_OF[policy], table_name, hook, policy,
                                              (), None, 0)
                    found = (decision, WalkOutcome(policy, ref=_ref_of(decision)))
                    _POLICIES[(table_name, hook, policy)] = found
                decisions.append(found[0])
                return found[1]
            chain, rules, path = stack.pop()


_WALKS_KEPT = 4096
# what a rule's tests read beyond the addresses, the protocol and the devices (TableWalks.reads)
_RL4, _RCT, _RMARK, _RLOCAL, _RSPORT = 1, 2, 4, 8, 16
_READS: dict[type, int] = {CommentMatch: 0, NfacctMatch: 0, PortMatch: _RL4, MultiportMatch: _RL4, IcmpMatch: _RL4,
                           ConntrackMatch: _RCT, MarkMatch: _RMARK, AddrtypeMatch: _RLOCAL}
_TARGET_READS: dict[type, int] = {StandardTarget: 0, RejectTarget: 0, MarkTarget: _RMARK, NatTarget: 0}


def _match_reads(match: object) -> int | None:
    """What one match reads (None: not known); a source port only where it tests one."""
    reads = _READS.get(type(match))
    if reads == _RL4:
        if isinstance(match, PortMatch) and match.sport is not None:
            reads |= _RSPORT
        elif isinstance(match, MultiportMatch) and match.flag != "--dports":
            reads |= _RSPORT
    return reads


class TableWalks:
    """The walks of a namespace's tables, remembered by what their rules can read: ipt_do_table
    is a pure function of the table's rules and, of the packet, its addresses, protocol and
    devices, and, where a rule tests them, its destination port, TCP flags and ICMP type (-p tcp
    --dport, -m multiport, -m icmp), its source port (--sport, multiport --sports or --ports),
    its conntrack state (-m conntrack), its mark (-m mark, -j MARK) and whether its addresses
    are local (-m addrtype). A nat walk ends at its NAT target: the nat core binds from it. A walk met again
    leaves the same decisions (the same frozen records), the same outcome and the same mark.
    A table with a rule whose reads are not known (-m statistic draws by the whole tuple) is
    walked every time. Netfilter.changed forgets them all."""

    def __init__(self) -> None:
        self._reads: dict[int, int | None] = {}            # id(table) -> its reads (None: not remembered)
        self._tables: list[Table] = []                      # the tables _reads names, kept alive
        self._walks: dict[tuple[Any, ...], tuple[tuple[Decision, ...], WalkOutcome, int]] = {}

    def clear(self) -> None:
        self._reads.clear()
        self._tables.clear()
        self._walks.clear()

    def reads(self, table: Table) -> int | None:
        reads = 0
        for chain in table.chains.values():
            for rule in chain.rules:
                for match in rule.matches:
                    more = _match_reads(match)
                    if more is None:
                        return None
                    reads |= more
                if rule.target is not None:
                    more = _TARGET_READS.get(type(rule.target))
                    if more is None:
                        return None
                    reads |= more
        return reads

    def walk(self, table: Table, hook: str, ctx: PacketContext, result: HookDecisions) -> WalkOutcome:
        reads = self._reads.get(id(table), -1)
        if reads == -1:
            reads = self._reads[id(table)] = self.reads(table)
            self._tables.append(table)
        if reads is None:
            return ipt_do_table(table, hook, ctx, result)
        packet, skb = ctx.packet, ctx.skb
        key: tuple[Any, ...]
        if not reads & (_RL4 | _RLOCAL):
            # the filter table's usual reads (ctstate, mark) in one tuple: reading what no rule
            # tests as well only makes fewer walks alike
            ct = skb.ct
            key = (table.name, hook, packet.src, packet.dst, packet.proto, ctx.indev, ctx.outdev, skb.ct_state,
                   ct is not None and ct.snat, ct is not None and ct.dnat, skb.mark)
        else:
            # ports and flags, local addresses: one flat tuple (the nat table's walks), what no
            # rule reads in it as a constant
            lsrc = ldst = False
            if reads & _RLOCAL:
                local = ctx.netns.is_local_address
                lsrc, ldst = local(packet.src), local(packet.dst)
            kind: type | None = None
            first: Any = None
            second: Any = None
            sport = 0
            if reads & _RL4:
                payload = packet.payload
                kind = type(payload)
                if kind is TCP:
                    if TYPE_CHECKING:
                        assert isinstance(payload, TCP)
                    first, second = payload.dport, payload.flags
                    if reads & _RSPORT:
                        sport = payload.sport
                elif kind is UDP:
                    if TYPE_CHECKING:
                        assert isinstance(payload, UDP)
                    first = payload.dport
                    if reads & _RSPORT:
                        sport = payload.sport
                elif kind is ICMP:
                    if TYPE_CHECKING:
                        assert isinstance(payload, ICMP)
                    first, second = payload.type, payload.code
            ct = skb.ct
            key = (table.name, hook, packet.src, packet.dst, packet.proto, ctx.indev, ctx.outdev, skb.ct_state,
                   ct is not None and ct.snat, ct is not None and ct.dnat, skb.mark, lsrc, ldst, kind, first, second,
                   sport)
        walks = self._walks
        found = walks.get(key)
        if found is not None:
            decisions, outcome, mark = found
            if decisions:
                result.decisions.extend(decisions)
            if reads & _RMARK:
                skb.mark = mark
            return outcome
        before = len(result.decisions)
        outcome = ipt_do_table(table, hook, ctx, result)
        if len(walks) >= _WALKS_KEPT:
            walks.clear()
        walks[key] = (tuple(result.decisions[before:]), outcome, skb.mark)
        return outcome
