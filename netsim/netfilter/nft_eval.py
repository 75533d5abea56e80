"""nftables on the data path: a chain run as nft_do_chain runs it, and the two ways a base chain
is called from a netfilter hook.

nft_do_chain (net/netfilter/nf_tables_core.c) tests a chain's rules in order. A rule whose
expressions all hold ends with its verdict (`continue` when it has none): `jump` pushes the
return point, `goto` does not, `return` (or running off a regular chain) pops it, and off the
end of the base chain its policy decides. `accept` and `drop` end the base chain; a NAT
statement ends it with accept, `reject` with drop after sending its ICMP error.

Every rule that matched leaves one `Decision` (function "nft_do_chain") with an `NftRuleRef`
(family, table, chain, rule handle, the rule as `nft list` prints it, its verdict), and a base
chain that ran off its end leaves one for its policy: the events `nft monitor trace` prints
(tests/test_lab_nft.py compares the two on the kernel). The reason code says what kind of rule
it was: `NetfilterReason.RULE` (a verdict, a jump, a NAT statement, a rule that only matched),
`MARK` (it set the mark), `REJECT`, `POLICY`.

The namespace's `Netfilter` (core.py) runs them where the kernel does: a filter-type base chain
is a callback of its own on its hook, at its priority, beside iptables' tables
(`nft_filter_stage`); a nat-type base chain hangs off the nat core (nf_nat_register_fn), which
calls it only for a connection's first packet, ordered among the hook's other nat chains (and
iptables' nat table) by priority, until one of them binds the connection (`nft_nat_lookup`,
called from nat.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from ..decision import Decision, FieldChange, NetfilterReason, NftRuleRef, Subsystem, Verdict as V
from ..packet import ICMP_DEST_UNREACH
from .nat import NAT_HOOKS, NatChoice
from .nft import Chain, NftRuleset, Rule, Table, element_text
from .nft_expr import (
    AnonMap, AnonSet, BINOPS, Binop, Counter, Ct, Dnat, Masquerade, Match, MetaSet, NftError, Pkt, Prefix,
    Reject, SetRef, Verdict, Vmap, _element_text,
)
from .xtables import PacketContext

if TYPE_CHECKING:  # pragma: no cover
    from .hooks import HookResult


@dataclass
class ChainOutcome:
    """What one base chain decided."""

    verdict: str                         # accept or drop
    nat: Masquerade | Dnat | None = None
    reject: Reject | None = None
    ref: NftRuleRef | None = None        # the rule that decided (None: the policy)


def _match(stmt: Match, value: Any, table: Table) -> bool:
    right = stmt.right
    if isinstance(stmt.left, Ct):
        hit = bool(value & right) if isinstance(right, int) else False
    elif isinstance(right, SetRef):
        hit = value in table.sets[right.name].elements
    elif isinstance(right, AnonSet):
        hit = right.contains(value)
    elif isinstance(right, Prefix):
        hit = value in right
    else:
        hit = value == right
    return hit != stmt.negate


def _do_rule(rule: Rule, table: Table, pkt: Pkt, changes: list[FieldChange],
             found: list[tuple[str, str]]) -> tuple[Any, bool]:
    """The rule's expressions in order: (its verdict or terminal statement, matched)."""
    outcome: Any = None
    for stmt in rule.body.stmts:
        kind = type(stmt)
        if kind is Match:
            assert isinstance(stmt, Match)
            value = stmt.left.value(pkt)
            if value is None or not _match(stmt, value, table):
                return None, False
            if isinstance(stmt.right, SetRef):
                named = table.sets[stmt.right.name]
                found.append((named.name, element_text(named, value)))
        elif kind is Vmap:
            assert isinstance(stmt, Vmap)
            key = stmt.key.value(pkt)
            if key is None:
                return None, False
            if isinstance(stmt.target, AnonMap):
                hit = stmt.target.lookup(key)
                if hit is None:
                    return None, False
                found.append(("", f"{_element_text(stmt.key.dtype, key)} : {hit}"))
                return hit, True
            nft_set = table.sets[stmt.target.name]
            element = nft_set.elements.get(key)
            if element is None:
                return None, False
            found.append((nft_set.name, element_text(nft_set, key)))
            return element[0], True
        elif kind is MetaSet:
            assert isinstance(stmt, MetaSet)
            old = pkt.skb.mark
            expr = stmt.expr
            new = BINOPS[expr.op](old, expr.operand) if isinstance(expr, Binop) else expr
            pkt.skb.mark = new & 0xFFFFFFFF
            changes.append(FieldChange("skb", "mark", old, pkt.skb.mark))
        elif kind is Counter:
            rule.counts[0] += 1
            rule.counts[1] += pkt.packet.length()
        else:
            return stmt, True            # a verdict, reject, masquerade or dnat ends the rule
    return None, True


def _verdict_text(outcome: Any) -> str:
    if outcome is None:
        return "continue"
    if isinstance(outcome, Verdict):
        return str(outcome)
    return "drop" if isinstance(outcome, Reject) else "accept"


# nft's verdict word -> the record's Verdict
_VERDICTS = {"continue": V.CONTINUE, "accept": V.ACCEPT, "drop": V.DROP, "return": V.RETURN, "jump": V.JUMP,
             "goto": V.GOTO}


def _rule_ref(rule: Rule, family: str, table: str, chain: str, hook: str, verdict: str,
              path: tuple[str, ...], set_name: str, element: str) -> NftRuleRef:
    """The record of a rule met one way (shared while the rule has no counter: every packet of
    a trace meets the same few)."""
    key = (hook, verdict, path, set_name, element)
    memo = _REFS.get(rule)
    if memo is None:
        memo = _REFS[rule] = {}
    ref = memo.get(key)
    if ref is None:
        matches, statements = rule.parts()
        ref = NftRuleRef(family, table, chain, rule.handle, hook, verdict, matches, statements, path,
                         rule.body.comment or "", set_name, element)
        if rule._parts is not None:
            memo[key] = ref
    return ref


def _rule_decision(ref: NftRuleRef, reason: NetfilterReason, verdict: str) -> Decision:
    """nft_do_chain's decision on a rule that changed nothing: one record per rule met one way."""
    decision = _DECISIONS.get(id(ref))
    if decision is None or decision.consulted[0] is not ref:
        decision = Decision(Subsystem.NETFILTER, "nft_do_chain", reason, _VERDICTS[verdict.split()[0]],
                            consulted=(ref,))
        _DECISIONS[id(ref)] = decision
        if len(_DECISIONS) > 1 << 14:
            _DECISIONS.clear()
    return decision


_REFS: "WeakKeyDictionary[Rule, dict[tuple[Any, ...], NftRuleRef]]" = WeakKeyDictionary()
_DECISIONS: dict[int, Decision] = {}      # id(ref) -> its decision (the decision holds the ref: ids stay unique)
_POLICIES: "WeakKeyDictionary[Chain, dict[tuple[str, str], Decision]]" = WeakKeyDictionary()


def where(ref: NftRuleRef) -> str:
    """`ip kube-proxy services handle 54`: a rule for an error message."""
    return f"{ref.family} {ref.table} {ref.chain} handle {ref.handle}"


def nft_do_chain(table: Table, base: Chain, pkt: Pkt, hook: str, decisions: list[Decision]) -> ChainOutcome:
    """Run base chain `base` of `table` on the packet; leave a decision for every rule that
    matched and for the policy if the chain ran off its end."""
    chain = base
    index = 0
    path: tuple[str, ...] = (base.name,)
    stack: list[tuple[Chain, int, tuple[str, ...]]] = []
    family, tname = table.family, table.name
    while True:
        if index >= len(chain.rules):
            if stack:
                chain, index, path = stack.pop()
                continue
            return _policy(table, base, hook, decisions)
        rule = chain.rules[index]
        index += 1
        pkt.rule_id = (family, tname, chain.name, rule.handle)
        changes: list[FieldChange] = []
        found: list[tuple[str, str]] = []
        outcome, matched = _do_rule(rule, table, pkt, changes, found)
        if not matched:
            continue
        verdict = _verdict_text(outcome)
        set_name = element = ""
        if found:
            set_name, element = found[-1]
        ref = _rule_ref(rule, family, tname, chain.name, hook, verdict, path, set_name, element)
        if isinstance(outcome, Reject):
            decisions.append(Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.REJECT, V.REJECT,
                                      consulted=(ref,)))
        elif changes:
            decisions.append(Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.MARK,
                                      _VERDICTS[verdict.split()[0]], consulted=(ref,), changes=tuple(changes)))
        else:
            decisions.append(_rule_decision(ref, NetfilterReason.RULE, verdict))
        if outcome is None or isinstance(outcome, Verdict) and outcome.kind == "continue":
            continue
        if isinstance(outcome, Verdict):
            kind = outcome.kind
            if kind in ("accept", "drop"):
                return ChainOutcome(kind, ref=ref)
            if kind == "return":
                if stack:
                    chain, index, path = stack.pop()
                    continue
                return _policy(table, base, hook, decisions)
            target = table.chains[outcome.chain]
            if kind == "jump":
                stack.append((chain, index, path))
            chain, index, path = target, 0, path + (target.name,)
            continue
        if isinstance(outcome, Reject):
            return ChainOutcome("drop", reject=outcome, ref=ref)
        return ChainOutcome("accept", nat=outcome, ref=ref)


def _policy(table: Table, base: Chain, hook: str, decisions: list[Decision]) -> ChainOutcome:
    memo = _POLICIES.get(base)
    if memo is None:
        memo = _POLICIES[base] = {}
    decision = memo.get((hook, base.policy))
    if decision is None:
        ref = NftRuleRef(table.family, table.name, base.name, 0, hook, base.policy, path=(base.name,))
        decision = memo[(hook, base.policy)] = Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.POLICY,
                                                        _VERDICTS[base.policy], consulted=(ref,))
    decisions.append(decision)
    return ChainOutcome(base.policy)


# ---- from a hook -----------------------------------------------------------------------------------

def pkt_of(ctx: PacketContext, hook: str) -> Pkt:
    """The packet as nft's expressions read it: made once per hook, read again after a NAT
    stage rewrote the packet."""
    pkt = ctx.nft
    if pkt is None or pkt.hook != hook:
        pkt = ctx.nft = Pkt(ctx.packet, ctx.skb, ctx.indev, ctx.outdev, ctx.netns, hook)
    elif pkt.packet is not ctx.packet:
        pkt.packet = ctx.packet
        pkt.reload()
    return pkt


def nft_filter_stage(table: Table, chain: Chain, hook: str, ctx: PacketContext, result: "HookResult") -> None:
    """A filter-type base chain on its hook (nft_do_chain_ipv4): its verdict is the hook's if
    it drops; an accept lets the next callback of the hook run."""
    outcome = nft_do_chain(table, chain, pkt_of(ctx, hook), hook, result.decisions)
    if outcome.ref is not None:
        result.rule = where(outcome.ref)
    if outcome.verdict == "drop":
        result.verdict = "DROP"
        if outcome.reject is not None:
            # nft_reject_ipv4_eval: an ICMP port unreachable (the ip family's default) or a TCP reset
            result.verdict = "REJECT"
            if outcome.reject.with_tcp_reset:
                result.reject_with, result.reject_name = "tcp-reset", "tcp-reset"
            else:
                result.reject_with, result.reject_name = (ICMP_DEST_UNREACH, 3), "icmp-port-unreachable"
    elif outcome.nat is not None:
        raise NftError(f"{where(outcome.ref) if outcome.ref else chain.name}: {outcome.nat} in a {chain.type} "
                       f"chain; nft accepts NAT statements only in nat chains")


def nft_nat_lookup(table: Table, chain: Chain, hook: str, ctx: PacketContext,
                   result: "HookResult") -> tuple[str, NatChoice | None]:
    """A nat-type base chain called by the nat core for a connection's first packet: ("DROP",
    None) if it dropped the packet, else ("ACCEPT", the NAT statement it reached, if any)."""
    outcome = nft_do_chain(table, chain, pkt_of(ctx, hook), hook, result.decisions)
    if outcome.verdict == "drop":
        return "DROP", None
    stmt, ref = outcome.nat, outcome.ref
    if stmt is None:
        return "ACCEPT", None
    assert ref is not None
    name = "MASQUERADE" if isinstance(stmt, Masquerade) else "DNAT"
    if hook not in NAT_HOOKS[name]:
        # nft_nat_validate / nft_masq_validate refuse the rule set when it is loaded
        raise NftError(f"{where(ref)}: {stmt} reached in {hook}; nft refuses it there "
                       f"(dnat: prerouting/output, masquerade: postrouting)")
    if isinstance(stmt, Masquerade):
        return "ACCEPT", NatChoice("MASQUERADE", None, None, stmt.random, stmt.fully_random, ref,
                                   "nf_nat_masquerade_ipv4", where(ref))
    ports = (stmt.port, stmt.port) if stmt.port is not None else None
    return "ACCEPT", NatChoice("DNAT", stmt.addr, ports, False, False, ref, "nft_nat_eval", where(ref))


def uses_conntrack(ruleset: NftRuleset) -> bool:
    """nft_ct and the nat chains take a reference on conntrack (nf_ct_netns_get) when a rule
    with a ct expression or a NAT statement, or a nat chain, is added."""
    for table in ruleset.tables.values():
        for chain in table.chains.values():
            if chain.type == "nat":
                return True
            for rule in chain.rules:
                for stmt in rule.body.stmts:
                    if isinstance(stmt, Match) and isinstance(stmt.left, Ct) or isinstance(stmt, (Dnat, Masquerade)):
                        return True
    return False


__all__ = ["NftRuleRef", "ChainOutcome", "nft_do_chain", "nft_filter_stage", "nft_nat_lookup", "pkt_of",
           "uses_conntrack", "where"]
