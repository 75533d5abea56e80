"""nftables on the data path: a chain run as nft_do_chain runs it, and a netfilter hook run with
the namespace's nft base chains, conntrack and the nat core, as nf_hook_slow runs them.

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

On a hook (`NftHooks.hook`), the stages run in priority order (hooks.py for the numbers):
conntrack (-200) where a rule needs it, each filter base chain at its priority (at equal
priority the one registered last first), the nat core at NF_IP_PRI_NAT_DST (-100) on prerouting
and output and NF_IP_PRI_NAT_SRC (100) on input and postrouting, conntrack's confirmation last.
The nat core (nf_nat_inet_fn) runs the nat chains of the hook, ordered by their own priority,
only for a connection's first packet and only until one of them binds it; every packet is then
rewritten from the conntrack entry (netsim/conntrack.py), as in iptables mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from weakref import WeakKeyDictionary

from ..conntrack import DST, ORIGINAL, REPLY, SRC, ConntrackEntry, conntrack_ref, endpoint
from ..decision import (Decision, FieldChange, NatReason, NetfilterReason, NftRuleRef, Subsystem,
                        Verdict as V)
from ..errors import NetsimError
from ..packet import ICMP, ICMP_DEST_UNREACH, IPPROTO_ICMP, TCP, UDP, IPv4
from ..skb import Skb
from .core import HookResult
from .hooks import (
    HOOKS, INT_MAX, NF_IP_PRI_CONNTRACK, NF_IP_PRI_CONNTRACK_CONFIRM, NF_IP_PRI_NAT_DST, NF_IP_PRI_NAT_SRC,
)
from .nat import field_changes
from .nft import Chain, NftRuleset, Rule, Table, element_text
from .nft_expr import (
    AnonMap, AnonSet, BINOPS, Binop, Counter, Ct, Dnat, Masquerade, Match, MetaSet, NftError, Pkt, Prefix,
    Reject, SetRef, Verdict, Vmap, _element_text,
)


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


_REFS: "WeakKeyDictionary[Rule, dict[tuple[Any, ...], NftRuleRef]]" = WeakKeyDictionary()


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
        pkt.rule_id = f"{family} {tname} {chain.name} {rule.handle}"
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
            decisions.append(Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.RULE,
                                      _VERDICTS[verdict.split()[0]], consulted=(ref,)))
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
    ref = NftRuleRef(table.family, table.name, base.name, 0, hook, base.policy, path=(base.name,))
    decisions.append(Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.POLICY, _VERDICTS[base.policy],
                              consulted=(ref,)))
    return ChainOutcome(base.policy)


# ---- a hook ----------------------------------------------------------------------------------------

# the nat core's own hooks (nf_nat_ipv4_ops): which manipulation, at which priority
NAT_CORE = {"PREROUTING": (DST, NF_IP_PRI_NAT_DST), "OUTPUT": (DST, NF_IP_PRI_NAT_DST),
            "INPUT": (SRC, NF_IP_PRI_NAT_SRC), "POSTROUTING": (SRC, NF_IP_PRI_NAT_SRC)}
# where each NAT statement may run (nft_nat_validate, nft_masq_validate)
NAT_STMT_HOOKS = {Dnat: ("PREROUTING", "OUTPUT"), Masquerade: ("POSTROUTING",)}


@dataclass(frozen=True)
class NftStage:
    """One callback on a hook: a filter-type base chain, conntrack's, or the nat core."""

    name: str                    # "chain", "conntrack", "nat", "confirm"
    priority: int
    order: int                   # registration order (higher runs first at equal priority)
    table: Table | None = None
    chain: Chain | None = None
    nat_chains: tuple[tuple[Table, Chain], ...] = ()   # the nat core's chains on this hook, in order


class NftHooks:
    """The netfilter hooks of one namespace whose packet filtering is nftables: `hook()` is
    Netfilter.hook's counterpart for an NftRuleset."""

    def __init__(self, netns: Any, ruleset: NftRuleset | None = None):
        self.netns = netns
        self.ruleset = ruleset if ruleset is not None else NftRuleset()
        self._stages: dict[str, list[NftStage]] = {}
        self._generation = -1

    @property
    def conntrack_active(self) -> bool:
        """nft_ct and nft_nat take a reference on conntrack (nf_ct_netns_get) when a rule with
        a ct expression or a nat chain is added."""
        for table in self.ruleset.tables.values():
            for chain in table.chains.values():
                if chain.type == "nat":
                    return True
                for rule in chain.rules:
                    for stmt in rule.body.stmts:
                        if isinstance(stmt, Match) and isinstance(stmt.left, Ct) or isinstance(stmt, (Dnat, Masquerade)):
                            return True
        return False

    def stages(self, hook: str) -> list[NftStage]:
        """The callbacks on `hook` in the order nf_hook_slow runs them."""
        if self._generation != self.ruleset.generation:
            self._stages = {h: self._build(h) for h in HOOKS}
            self._generation = self.ruleset.generation
        return self._stages[hook]

    def _build(self, hook: str) -> list[NftStage]:
        chains = self.ruleset.base_chains(hook.lower())
        stages = [NftStage("chain", c.priority or 0, c.registered, t, c) for t, c in chains if c.type != "nat"]
        nat_chains = [c.registered for t in self.ruleset.tables.values() if t.family == "ip"
                      for c in t.chains.values() if c.type == "nat"]
        if nat_chains and hook in NAT_CORE:
            stages.append(NftStage("nat", NAT_CORE[hook][1], min(nat_chains),
                                   nat_chains=tuple((t, c) for t, c in chains if c.type == "nat")))
        if self.conntrack_active:
            if hook in ("PREROUTING", "OUTPUT"):
                stages.append(NftStage("conntrack", NF_IP_PRI_CONNTRACK, 0))
            if hook in ("INPUT", "POSTROUTING"):
                stages.append(NftStage("confirm", NF_IP_PRI_CONNTRACK_CONFIRM, 0))
        stages.sort(key=lambda s: (s.priority, -s.order))
        return stages

    def hook(self, hook: str, packet: IPv4, skb: Skb, indev: str | None, outdev: str | None,
             nexthop: str | None = None) -> HookResult:
        """Run one netfilter hook on a packet (see the module docstring)."""
        if hook not in HOOKS:
            raise NftError(f"unknown hook {hook!r}; hooks are {', '.join(HOOKS)}")
        result = HookResult("ACCEPT", packet)
        if packet.frag > 0:
            # netsim does not model fragments under nftables: a later fragment passes untouched
            result.decisions.append(Decision(Subsystem.NETFILTER, "ipv4_conntrack_defrag",
                                             NetfilterReason.UNSEEN_FRAGMENT, V.ACCEPT, hook=hook,
                                             offset=packet.frag * 8))
            return result
        pkt = Pkt(packet, skb, indev, outdev, self.netns, hook)
        for stage in self.stages(hook):
            self._RUN[stage.name](self, stage, hook, pkt, result, nexthop)
            if result.verdict != "ACCEPT":
                break
        result.packet = pkt.packet
        entry = skb.ct
        if result.verdict != "ACCEPT" and entry is not None and not entry.confirmed and not entry.dying:
            skb.ct, skb.ct_state = None, ""
        return result

    def _chain(self, stage: NftStage, hook: str, pkt: Pkt, result: HookResult, nexthop: str | None) -> None:
        assert stage.table is not None and stage.chain is not None
        outcome = nft_do_chain(stage.table, stage.chain, pkt, hook, result.decisions)
        if outcome.ref is not None:
            result.rule = where(outcome.ref)
        if outcome.verdict == "drop":
            result.verdict = "DROP"
            if outcome.reject is not None:
                result.verdict = "REJECT"
                if outcome.reject.with_tcp_reset:
                    result.reject_with, result.reject_name = "tcp-reset", "tcp-reset"
                else:
                    result.reject_with, result.reject_name = (ICMP_DEST_UNREACH, 3), "icmp-port-unreachable"
        elif outcome.nat is not None:
            raise NftError(f"{where(outcome.ref) if outcome.ref else stage.chain.name}: {outcome.nat} in a "
                           f"{stage.chain.type} chain; nft accepts NAT statements only in nat chains")

    def _conntrack(self, stage: NftStage, hook: str, pkt: Pkt, result: HookResult, nexthop: str | None) -> None:
        skb = pkt.skb
        if skb.ct is None and not skb.ct_state:
            result.decisions.extend(self.netns.conntrack.track(pkt.packet, skb))

    def _confirm(self, stage: NftStage, hook: str, pkt: Pkt, result: HookResult, nexthop: str | None) -> None:
        entry = pkt.skb.ct
        if entry is not None and not entry.confirmed and not entry.dying:
            self.netns.conntrack.confirm(entry)

    def _nat(self, stage: NftStage, hook: str, pkt: Pkt, result: HookResult, nexthop: str | None) -> None:
        """nf_nat_inet_fn for one hook."""
        skb = pkt.skb
        entry = skb.ct
        if entry is None:
            return
        ct = self.netns.conntrack
        manip = NAT_CORE[hook][0]
        direction = REPLY if skb.ct_reply else ORIGINAL
        before = pkt.packet
        if skb.ct_state == "RELATED":
            packet, rewritten = ct.nat_icmp_error(entry, direction, manip, before)
            if rewritten is not None:
                pkt.packet = packet
                pkt.reload()
                result.decisions.append(Decision(
                    Subsystem.NAT, "nf_nat_icmp_reply_translation", NatReason.ICMP_ERROR, V.REWRITE,
                    consulted=(conntrack_ref(entry, direction, "RELATED"),), changes=field_changes(before, packet),
                    manip=manip, to=rewritten[0], quoted=rewritten[1]))
            return
        if skb.ct_state == "NEW" and not ct.nat_done(entry, manip):
            if not self._bind(stage, hook, manip, pkt, result, nexthop, entry, direction):
                return
            packet, _ = ct.nat_packet(entry, direction, manip, before)
            if packet != before:
                pkt.packet = packet
                pkt.reload()
            return
        packet, to = ct.nat_packet(entry, direction, manip, before)
        if to is not None:
            pkt.packet = packet
            pkt.reload()
            result.decisions.append(Decision(
                Subsystem.NAT, "nf_nat_packet", NatReason.REWRITE, V.REWRITE,
                consulted=(conntrack_ref(entry, direction, skb.ct_state),), changes=field_changes(before, packet),
                manip=manip, to=to))

    def _bind(self, stage: NftStage, hook: str, manip: str, pkt: Pkt, result: HookResult, nexthop: str | None,
              entry: ConntrackEntry, direction: int) -> bool:
        """A connection's first packet: the nat chains decide its binding (or a null binding)."""
        ct = self.netns.conntrack
        before = pkt.packet
        for table, chain in stage.nat_chains:
            outcome = nft_do_chain(table, chain, pkt, hook, result.decisions)
            if outcome.verdict == "drop":
                result.verdict = "DROP"
                return False
            if outcome.nat is None:
                continue
            stmt, ref = outcome.nat, outcome.ref
            assert ref is not None
            if hook not in NAT_STMT_HOOKS[type(stmt)]:
                raise NftError(f"{where(ref)}: {stmt} reached in {hook}; nft refuses it there "
                               f"(dnat: prerouting/output, masquerade: postrouting)")
            if isinstance(stmt, Masquerade):
                function = "nf_nat_masquerade_ipv4"
                try:
                    addr = self.netns.masquerade_source(pkt.outdev, nexthop)
                except NetsimError as exc:
                    addr, why = None, str(exc)
                else:
                    why = f"{pkt.outdev} has no IPv4 address"
                if addr is None:
                    result.verdict = "DROP"
                    result.decisions.append(Decision(Subsystem.NAT, "nf_nat_masquerade_ipv4", NatReason.NO_SOURCE,
                                                     V.DROP, consulted=(ref,), error=why))
                    return False
                ok = ct.setup_nat(entry, manip, addr, None, stmt.random, stmt.fully_random)
            else:
                function = "nft_nat_eval"
                ports = (stmt.port, stmt.port) if stmt.port is not None else None
                ok = ct.setup_nat(entry, manip, stmt.addr, ports)
            if not ok:
                result.verdict = "DROP"
                result.decisions.append(Decision(
                    Subsystem.NAT, "nf_nat_setup_info", NatReason.NO_FREE_TUPLE, V.DROP,
                    consulted=(ref, conntrack_ref(entry, direction, "NEW")), hook=hook))
                return False
            packet, _ = ct.nat_packet(entry, direction, manip, before)
            after = entry.reply.invert()
            old = endpoint(entry.proto, *_side(before, manip))
            new = endpoint(entry.proto, after.src if manip == SRC else after.dst,
                           after.sport if manip == SRC or entry.proto == IPPROTO_ICMP else after.dport)
            result.decisions.append(Decision(
                Subsystem.NAT, function, NatReason.BINDING, V.MASQUERADE if isinstance(stmt, Masquerade) else V.DNAT,
                consulted=(ref, conntrack_ref(entry, direction, "NEW")), changes=field_changes(before, packet),
                manip=manip, old=old, new=new))
            result.rule = where(ref)
            return True
        ct.setup_nat(entry, manip, None)          # nf_nat_alloc_null_binding
        packet, _ = ct.nat_packet(entry, direction, manip, before)
        if packet != before:
            result.decisions.append(Decision(
                Subsystem.NAT, "nf_nat_alloc_null_binding", NatReason.NULL_BINDING_CLASH, V.SNAT,
                consulted=(conntrack_ref(entry, direction, "NEW"),), changes=field_changes(before, packet),
                hook=hook, old=endpoint(entry.proto, *_side(before, SRC)),
                new=endpoint(entry.proto, *_side(packet, SRC))))
        return True

    _RUN: dict[str, Callable[["NftHooks", NftStage, str, Pkt, HookResult, str | None], None]] = {
        "chain": _chain, "conntrack": _conntrack, "confirm": _confirm, "nat": _nat,
    }


def _side(packet: IPv4, manip: str) -> tuple[str, int]:
    """The address and port (ICMP: the echo id) a manipulation rewrites."""
    payload = packet.payload
    addr = packet.src if manip == SRC else packet.dst
    if isinstance(payload, ICMP):
        return addr, payload.id
    if isinstance(payload, (TCP, UDP)):
        return addr, payload.sport if manip == SRC else payload.dport
    return addr, 0


__all__ = ["NftHooks", "NftRuleRef", "where", "NftStage", "ChainOutcome", "nft_do_chain", "INT_MAX"]
