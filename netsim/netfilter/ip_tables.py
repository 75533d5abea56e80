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
from typing import TYPE_CHECKING

from ..decision import VERDICT_OF, Decision, FieldChange, NetfilterReason, RuleRef, Subsystem, Verdict
from .grammar import Rule
from .hooks import HOOKS
from .nat import NatTarget
from .reject import RejectTarget
from .targets import MarkTarget, StandardTarget
from .xtables import PacketContext

if TYPE_CHECKING:  # pragma: no cover
    from .core import HookResult

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
    where: str = ""                  # 'nat PREROUTING: KUBE-SERVICES -> ... rule 2 "comment"'
    ref: RuleRef | None = None

    def consulted(self) -> tuple[RuleRef, ...]:
        return (self.ref,) if self.ref is not None else ()


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
    assert isinstance(ref, RuleRef)
    return ref


def _where(prefix: str, chain: str, path: list[str], rule: Rule) -> str:
    where = f"{prefix}: {' -> '.join(path) if path else chain} rule {rule.position}"
    if rule.comment:
        where += f' "{rule.comment}"'
    return where


def ipt_do_table(table: Table | None, hook: str, ctx: PacketContext, result: "HookResult") -> WalkOutcome:
    """Walk `table`'s built-in chain for `hook` with jumps, gotos and RETURN; leave a Decision
    on `result` for every rule that acted and for a policy that decided."""
    if table is None or hook not in table.chains:
        return WalkOutcome()
    chain = table.chains[hook]
    if not chain.rules and chain.policy == "ACCEPT":
        return WalkOutcome()
    table_name = table.name
    prefix = f"{table_name} {hook}"
    stack: list[tuple[Chain, int, list[str]]] = []
    path: list[str] = []
    index = 0
    decisions = result.decisions
    while True:
        if index >= len(chain.rules):
            if not stack:
                if table_name == "nat":
                    return WalkOutcome()
                policy = chain.policy or "ACCEPT"
                decision = _rule_decision(NetfilterReason.POLICY, VERDICT_OF[policy], table_name, hook, policy, (),
                                          None, 0)
                decisions.append(decision)
                return WalkOutcome(policy, where=f"{prefix} policy", ref=_ref_of(decision))
            chain, index, path = stack.pop()
            continue
        rule = chain.rules[index]
        index += 1
        if not rule.matches_packet(ctx):
            continue
        target = rule.target
        if target is None:            # a rule with matches only (KUBE-FW-'s last): counted, the walk goes on
            decisions.append(_rule_decision(NetfilterReason.RULE, Verdict.CONTINUE, table_name, hook, chain.name,
                                            tuple(path), rule, rule.position))
            continue
        if isinstance(target, MarkTarget):
            old = ctx.skb.mark
            ctx.skb.mark = target.apply(old)
            decisions.append(Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.MARK, Verdict.CONTINUE,
                                      consulted=(_ref(table_name, hook, chain.name, path, rule),),
                                      changes=(FieldChange("skb", "mark", old, ctx.skb.mark),)))
            continue
        if isinstance(target, NatTarget):
            return WalkOutcome(nat=target, rule=rule, where=_where(prefix, chain.name, path, rule),
                               ref=_ref(table_name, hook, chain.name, path, rule))
        if isinstance(target, RejectTarget):
            decision = _rule_decision(NetfilterReason.REJECT, Verdict.REJECT, table_name, hook, chain.name, tuple(path),
                                      rule, rule.position)
            decisions.append(decision)
            return WalkOutcome("REJECT", rule=rule, where=_where(prefix, chain.name, path, rule),
                               ref=_ref_of(decision))
        assert isinstance(target, StandardTarget)
        name = target.name
        if name in ("ACCEPT", "DROP"):
            decision = _rule_decision(NetfilterReason.RULE, VERDICT_OF[name], table_name, hook, chain.name, tuple(path),
                                      rule, rule.position)
            decisions.append(decision)
            return WalkOutcome(name, rule=rule, where=_where(prefix, chain.name, path, rule),
                               ref=_ref_of(decision))
        if name == "RETURN":
            if stack:
                decisions.append(_rule_decision(NetfilterReason.RULE, Verdict.RETURN, table_name, hook, chain.name,
                                                tuple(path), rule, rule.position))
                chain, index, path = stack.pop()
                continue
            index = len(chain.rules)          # RETURN in a built-in chain: its policy
            continue
        called = table.chains[name]
        if not target.goto:
            stack.append((chain, index, path))
        path = path + [called.name]
        chain, index = called, 0
