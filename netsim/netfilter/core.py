"""The netfilter state of one network namespace, and a hook run on a packet as nf_hook_slow
(net/netfilter/core.c) runs it.

`Netfilter` holds the namespace's iptables tables and answers the iptables commands (-N, -X,
-A, -I, -D, -F, -P, iptables-save, iptables-restore), and its nf_tables ruleset (`nftables`,
an NftRuleset that `nft -f` changes: nft.py). `Netfilter.hook()` runs one hook's stages in the
order of their priorities, as nf_hook_slow runs a hook's callbacks: the stages of `HOOK_ORDER`
(hooks.py: the raw, mangle and filter tables through ipt_do_table (ip_tables.py), conntrack's
nf_conntrack_in and nf_conntrack_confirm (netsim/conntrack.py), the nat core (nat.py)) and,
beside them, every filter-type nft base chain registered on the hook at its own priority (at
equal priority the callback registered last runs first: nf_hook_entries_grow); the first
verdict other than ACCEPT ends the hook. nft's nat-type base chains and iptables' nat table
are not callbacks of their own: the nat core calls them (`nat_lookups`). As in the kernel,
conntrack is hooked into a namespace only once something needs it: a nat table or nat chain,
or a rule with a conntrack/state match, a ct expression or a NAT target. What each stage
decided is a list of `Decision` records on the `HookResult`.

Facts: iptables-extensions(8); the kernel's ip_tables.c, xt_*.c and nf_nat_*.c; checked
behaviour in shared/reference/flannel-kubernetes-facts.md F and I and kernel-observations.md s5
and s6.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from types import MethodType
from typing import Any, Callable, ClassVar, Iterable

from ..conntrack import DST, ORIGINAL, REPLY, SRC, Conntrack, conntrack_ref
from ..decision import VERDICT_OF, ConntrackReason, Decision, FieldChange, NetfilterReason, Subsystem, Verdict
from ..packet import IPv4
from ..skb import Skb
from . import save_restore
from .grammar import TARGETS, Rule, parse_rule
from .hooks import HOOKS, NAT_CORE_PRIORITY, HookResult, Stage, stages
from .ip_tables import BUILTIN_CHAINS, TABLE_ORDER, Chain, Table, TableWalks, WalkOutcome, ipt_do_table
from .nat import NatChoice, iptables_nat_lookup, nf_nat_inet_fn
from .nft import NftRuleset
from .nft_eval import nft_filter_stage, nft_nat_lookup, uses_conntrack
from .reject import RejectTarget
from .targets import STANDARD, StandardTarget
from .xtables import PacketContext, error


_FRAGMENT_MEMORY = 1024

_TABLE_STAGES = frozenset(("raw", "mangle", "filter"))     # the stages that only walk their table
_NAT_MANIP = {"nat-dst": DST, "nat-src": SRC}               # the nat core's stages and what they rewrite
_PASSIVE_STAGES = frozenset(("nat-dst", "nat-src", "confirm"))   # nothing to do for an established, unNATed packet
# a hook's callback as the plan calls it: (hook, its stage or the nat stage's manip, ctx, result, nexthop)
StageCall = Callable[[str, Any, PacketContext, HookResult, "str | None"], None]
# a nat chain as the nat core calls it: (hook, ctx, result) -> (verdict, its NAT choice or None)
NatLookup = Callable[[str, PacketContext, HookResult], tuple[str, NatChoice | None]]
Plan = tuple[tuple[StageCall, Any], ...]       # a hook's callbacks in order, with their argument


def table_stage(nf: Netfilter, hook: str, stage: Stage, ctx: PacketContext, result: HookResult,
                nexthop: str | None) -> None:
    """The raw, mangle and filter stages (a Netfilter method, bound in its plans): walk the
    table, or find the walk remembered (TableWalks); its verdict is the hook's."""
    t = nf.tables.get(stage.table)
    if t is None:
        return
    chain = t.chains.get(hook)
    if chain is None or (not chain.rules and chain.policy == "ACCEPT"):
        return                  # nothing to walk (kube-proxy's empty mangle chains)
    walk = nf._walks.walk(t, hook, ctx, result)
    if walk.rule is not None:
        result.rule = walk.where
    if walk.verdict in ("DROP", "REJECT"):
        result.verdict = walk.verdict
        if walk.verdict == "REJECT" and walk.rule is not None:
            assert isinstance(walk.rule.target, RejectTarget)
            result.reject_name = walk.rule.target.reject_with
            result.reject_with = walk.rule.target.reply


class Netfilter:
    """iptables state of one network namespace and the hooks its packets pass."""

    def __init__(self, netns: Any):
        self.netns = netns
        self.tables: dict[str, Table] = {}
        self.nftables = NftRuleset()
        self._registered: dict[str, int] = {}       # iptables table -> when its hooks were registered
        self._conntrack_users = False
        self._fragments = FragmentVerdicts()      # later fragments follow their first
        self._callbacks = Callbacks(self)
        self._ipt_nat: tuple[NatLookup] = (partial(iptables_nat_lookup, self),)    # the nat table, for the nat core
        self._nft_ct = (-1, False)                  # (ruleset generation, does it need conntrack)
        self._plans: dict[str, Plan] | None = None  # each hook's callbacks (None: work them out again)
        self._plans_generation = -1                 # the nft ruleset generation they were worked out for
        self._passive: frozenset[str] = frozenset()  # the hooks with only nat and confirm callbacks
        self._walks = TableWalks()                  # the raw, mangle and filter walks, by what they read

    def changed(self) -> None:
        """The tables changed (every change goes through this class): the hooks' plans are redone,
        and the remembered table walks forgotten."""
        self._plans = None
        self._walks.clear()

    # ---- rule management (iptables, iptables-save, iptables-restore) -------------------------
    @property
    def conntrack(self) -> Conntrack:
        conntrack: Conntrack = self.netns.conntrack
        return conntrack

    @property
    def conntrack_active(self) -> bool:
        """Is conntrack hooked into this namespace? The kernel registers it when a nat table
        exists or a rule needs it (conntrack/state match, NAT target); until then packets are
        not tracked and `conntrack -L` stays empty (as in a pod namespace)."""
        if "nat" in self.tables or self._conntrack_users:
            return True
        if not self.nftables.tables:
            return False
        generation, active = self._nft_ct
        if generation != self.nftables.generation:
            active = uses_conntrack(self.nftables)
            self._nft_ct = (self.nftables.generation, active)
        return active

    def _table(self, name: str, create: bool = True) -> Table:
        """A table; like iptables-nft, changing a table creates it, reading one does not."""
        if name not in BUILTIN_CHAINS:
            raise error(f"unknown table {name!r}; netsim models {', '.join(TABLE_ORDER)}")
        if name not in self.tables:
            if not create:
                return Table.new(name)
            self.tables[name] = Table.new(name)
            self.changed()
            # its built-in chains are registered on their hooks now (iptables-nft: base chains of
            # table `ip NAME`, which takes a table handle), numbered in one sequence with nft's
            self._registered[name] = self.nftables.next_registration()
            self.nftables.table_handles += 1
        return self.tables[name]

    def _chain(self, table: str, chain: str, create: bool = True) -> Chain:
        t = self._table(table, create)
        found = t.chains.get(chain)
        if found is None:
            raise error(f"no chain {chain!r} in table {table!r}; its chains are "
                        f"{', '.join(c.name for c in t.ordered_chains())}")
        return found

    def _parse(self, table: str, chain: str, spec: str) -> Rule:
        chains = self._table(table).chains
        self._chain(table, chain)
        return parse_rule(table, chain, spec,
                          lambda name: name in chains and not chains[name].builtin)

    def note_rule(self, rule: Rule) -> None:
        """A rule entered the tables: does it hook conntrack into the namespace?"""
        if rule.uses_conntrack() and not self._conntrack_users:
            self._conntrack_users = True
            self.changed()

    def new_chain(self, table: str, chain: str) -> None:
        """iptables -t TABLE -N CHAIN."""
        chains = self._table(table).chains
        if chain in chains:
            raise error(f"chain {chain!r} already exists in table {table!r}")
        if (not chain or len(chain) > 28 or chain.startswith("-") or chain in STANDARD or chain in TARGETS
                or " " in chain):
            raise error(f"invalid chain name {chain!r}: 1 to 28 characters, no blank, not starting "
                        f"with '-', not a target name")
        chains[chain] = Chain(chain, False)

    def delete_chain(self, table: str, chain: str) -> None:
        """iptables -t TABLE -X CHAIN: the chain must be empty and unreferenced."""
        found = self._chain(table, chain)
        if found.builtin:
            raise error(f"cannot delete built-in chain {chain!r}")
        if found.rules:
            raise error(f"chain {chain!r} is not empty")
        for other in self.tables[table].chains.values():
            for rule in other.rules:
                if isinstance(rule.target, StandardTarget) and rule.target.name == chain:
                    raise error(f"chain {chain!r} is referenced by {rule}")
        del self.tables[table].chains[chain]

    def append(self, table: str, chain: str, spec: str) -> Rule:
        """iptables -t TABLE -A CHAIN SPEC."""
        rule = self._parse(table, chain, spec)
        target = self._chain(table, chain)
        target.rules.append(rule)
        rule.position = len(target.rules)
        self.changed()
        self.note_rule(rule)
        return rule

    def insert(self, table: str, chain: str, spec: str, position: int = 1) -> Rule:
        """iptables -t TABLE -I CHAIN [POSITION] SPEC (1 is the top)."""
        rule = self._parse(table, chain, spec)
        target = self._chain(table, chain)
        if not 1 <= position <= len(target.rules) + 1:
            raise error(f"index of insertion too big: {position}")
        target.rules.insert(position - 1, rule)
        target.renumber()
        self.changed()
        self.note_rule(rule)
        return rule

    def delete(self, table: str, chain: str, spec_or_index: str | int) -> None:
        """iptables -t TABLE -D CHAIN (SPEC | NUMBER)."""
        target = self._chain(table, chain)
        if isinstance(spec_or_index, int):
            if not 1 <= spec_or_index <= len(target.rules):
                raise error(f"index of deletion too big: {spec_or_index}")
            del target.rules[spec_or_index - 1]
        else:
            wanted = self._parse(table, chain, spec_or_index).spec
            for index, rule in enumerate(target.rules):
                if rule.spec == wanted:
                    del target.rules[index]
                    break
            else:
                raise error(f"bad rule (does a matching rule exist in that chain?): {spec_or_index}")
        target.renumber()
        self.changed()

    def flush(self, table: str | None = None, chain: str | None = None) -> None:
        """iptables -F: empty one chain, every chain of a table, or (table None) every table.
        User chains stay (deleting them is `delete_chain`, iptables -X)."""
        tables = [self._table(table)] if table is not None else list(self.tables.values())
        for t in tables:
            chains = [self._chain(t.name, chain)] if chain is not None else list(t.chains.values())
            for c in chains:
                c.rules.clear()
        self.changed()

    def set_policy(self, table: str, chain: str, policy: str) -> None:
        """iptables -t TABLE -P CHAIN ACCEPT|DROP (built-in chains only)."""
        found = self._chain(table, chain)
        if not found.builtin:
            raise error(f"only built-in chains have a policy, {chain!r} is a user chain")
        if policy not in ("ACCEPT", "DROP"):
            raise error(f"policy must be ACCEPT or DROP, not {policy!r}")
        found.policy = policy
        self.changed()

    def rules(self, table: str, chain: str) -> list[Rule]:
        return list(self._chain(table, chain, create=False).rules)

    def chains(self, table: str) -> list[str]:
        return [c.name for c in self._table(table, create=False).ordered_chains()]

    def save(self, table: str | None = None) -> str:
        """iptables-save output without its "# Generated/Completed" comment lines and with zero
        counters. Only tables that exist are printed, in iptables-save's (nf_tables) order."""
        if table is not None:
            self._table(table, create=False)
        return save_restore.save(self.tables, table)

    def restore(self, text: str, noflush: bool = False) -> None:
        """iptables-restore: each `*table` block replaces that table (with `noflush`, rules are
        added and only chains declared with a `:CHAIN` line are emptied, as kube-proxy relies
        on). The whole input is checked first; on an error nothing changes."""
        save_restore.restore(self, text, noflush)
        self.changed()

    # ---- the data path --------------------------------------------------------------------
    def hook(self, hook: str, packet: IPv4, skb: Skb, indev: str | None, outdev: str | None,
             nexthop: str | None = None) -> HookResult:
        """Run one netfilter hook on a packet: its stages in HOOK_ORDER (hooks.py), until one
        decides other than ACCEPT. Updates skb.mark, skb.ct, skb.ct_reply and skb.ct_state.
        `nexthop` is the gateway the route chose (MASQUERADE asks the namespace for the source
        address toward it)."""
        result = self.run(hook, packet, skb, indev, outdev, nexthop)
        return result if result is not None else HookResult("ACCEPT", packet, skb, indev, outdev, self.netns)

    def run(self, hook: str, packet: IPv4, skb: Skb, indev: str | None, outdev: str | None,
            nexthop: str | None = None) -> HookResult | None:
        """`hook` as the walk runs it: None when the hook leaves a whole packet as it is and
        records nothing: no callback, or only the nat core's and confirm with nothing to do (no
        entry, or established, unNATed, confirmed)."""
        plans = self._plans
        if plans is None or self._plans_generation != self.nftables.generation or hook not in plans:
            if hook not in HOOKS:
                raise error(f"unknown hook {hook!r}; hooks are {', '.join(HOOKS)}")
            plans = self._replan()
        plan = plans[hook]
        if not packet.mf and not packet.frag:
            if not plan:
                return None             # no callback on this hook (a pod's namespace)
            if hook in self._passive:
                entry = skb.ct
                if entry is None or (skb.ct_state == "ESTABLISHED" and not entry.snat and not entry.dnat
                                     and (entry.confirmed or entry.dying)):
                    return None
        result = HookResult("ACCEPT", packet, skb, indev, outdev, self.netns)   # the callbacks' context too
        if packet.frag > 0:
            return self._fragments.follow(hook, packet, result)
        for run, arg in plan:
            run(hook, arg, result, result, nexthop)
            if result.verdict != "ACCEPT":
                break
        entry = skb.ct
        if result.verdict != "ACCEPT" and entry is not None and not entry.confirmed and not entry.dying:
            result.decisions.append(Decision(
                Subsystem.CONNTRACK, "nf_conntrack_destroy", ConntrackReason.DISCARD, Verdict.DISCARD,
                consulted=(conntrack_ref(entry, REPLY if skb.ct_reply else ORIGINAL, skb.ct_state),),
                hook_verdict=result.verdict))
            skb.ct, skb.ct_state = None, ""
        if packet.mf:
            self._fragments.remember(hook, packet, (packet.src, packet.dst), result)
        return result

    # ---- which stages, in which order -----------------------------------------------------------
    def plan(self, hook: str) -> Plan:
        """The callbacks `hook` runs, in order (Callbacks.plans), until the rules change."""
        plans = self._plans
        if plans is None or self._plans_generation != self.nftables.generation:
            plans = self._replan()
        return plans[hook]

    def _replan(self) -> dict[str, Plan]:
        self._plans, self._passive = self._callbacks.plans()     # see Callbacks.plans
        self._plans_generation = self.nftables.generation
        return self._plans

    def stages(self, hook: str) -> tuple[Stage, ...]:
        """The callbacks on `hook`, in the order nf_hook_slow runs them."""
        if not self.nftables.tables:
            return stages(hook, self.conntrack_active)
        return self._callbacks.of(hook)[0]

    def nat_lookups(self, hook: str) -> tuple[NatLookup, ...]:
        """The nat chains the nat core calls at `hook` for a connection's first packet, in
        order: iptables' nat table and nft's nat-type base chains, by priority (at equal
        priority the one registered last first)."""
        if not self.nftables.tables:
            return self._ipt_nat
        return self._callbacks.of(hook)[1]

    # ---- the stages, one method each (the nat stages: nat.py's nf_nat_inet_fn, called with the
    # manip it makes); _RUN maps a Stage's name to its method
    def _conntrack_in(self, hook: str, stage: Stage, ctx: PacketContext, result: HookResult,
                      nexthop: str | None) -> None:
        """nf_conntrack_in (ipv4_conntrack_in / ipv4_conntrack_local)."""
        skb = ctx.skb
        if skb.ct is None and not skb.ct_state:   # else already tracked (loopback, br_netfilter)
            result.decisions.extend(self.netns.conntrack.track(ctx.packet, skb))

    def _confirm(self, hook: str, stage: Stage, ctx: PacketContext, result: HookResult,
                 nexthop: str | None) -> None:
        """nf_conntrack_confirm (ipv4_confirm): a new entry enters the table."""
        entry = ctx.skb.ct
        if entry is not None and not entry.confirmed and not entry.dying:
            self.netns.conntrack.confirm(entry)

    def _nft_stage(self, hook: str, stage: Stage, ctx: PacketContext, result: HookResult,
                   nexthop: str | None) -> None:
        table, chain = stage.nft
        nft_filter_stage(table, chain, hook, ctx, result)

    _RUN: ClassVar[dict[str, Callable[..., None]]] = {
        "raw": table_stage, "conntrack": _conntrack_in, "mangle": table_stage, "nat-dst": nf_nat_inet_fn,
        "filter": table_stage, "nat-src": nf_nat_inet_fn, "confirm": _confirm, "nft": _nft_stage,
    }

    def do_table(self, table: str, hook: str, ctx: PacketContext, result: HookResult) -> WalkOutcome:
        """ipt_do_table() on this namespace's `table`, for `hook` (remembered: TableWalks)."""
        found = self.tables.get(table)
        return self._walks.walk(found, hook, ctx, result) if found is not None else ipt_do_table(None, hook, ctx, result)


class FragmentVerdicts:
    """What netfilter decided about each first fragment, for the later fragments of its datagram.

    conntrack defragments at PREROUTING/OUTPUT, so iptables sees whole packets. netsim keeps
    fragments apart: the first fragment (it carries the ports) is tracked and filtered; each
    later fragment of the same datagram (same src, dst, protocol and IP id) gets at every hook
    the verdict and address rewrite its first fragment got there. A later fragment seen before
    its first fragment passes untouched (the kernel would hold it until reassembly)."""

    def __init__(self) -> None:
        self._fragments: dict[tuple[Any, ...], tuple[str, str, str]] = {}

    def remember(self, hook: str, packet: IPv4, before: tuple[str, str], result: HookResult) -> None:
        key = (hook, before[0], before[1], packet.proto, packet.id)
        self._fragments[key] = (result.verdict, result.packet.src, result.packet.dst)
        if len(self._fragments) > _FRAGMENT_MEMORY:
            del self._fragments[next(iter(self._fragments))]

    def follow(self, hook: str, packet: IPv4, result: HookResult) -> HookResult:
        key = (hook, packet.src, packet.dst, packet.proto, packet.id)
        found = self._fragments.get(key)
        if found is None:
            result.decisions.append(Decision(Subsystem.NETFILTER, "ipv4_conntrack_defrag", NetfilterReason.UNSEEN_FRAGMENT,
                                             Verdict.ACCEPT, hook=hook, offset=packet.frag * 8))
            return result
        verdict, src, dst = found
        result.verdict = verdict
        result.packet = replace(packet, src=src, dst=dst)
        if packet.mf:
            self._fragments[(hook, src, dst, packet.proto, packet.id)] = found
        changes = tuple(FieldChange("ipv4", name, old, new)
                        for name, old, new in (("src", packet.src, src), ("dst", packet.dst, dst)) if old != new)
        result.decisions.append(Decision(Subsystem.NETFILTER, "ipv4_conntrack_defrag", NetfilterReason.FOLLOWS_FIRST,
                                         VERDICT_OF[verdict], changes=changes, hook=hook, offset=packet.frag * 8,
                                         src=src, dst=dst, rewritten=(src, dst) != (packet.src, packet.dst)))
        return result


def iptables_first(nf: Netfilter) -> bool:
    """Whether iptables' tables were registered before nft's first base chain (the order the
    lab loads them in: registration order decides between callbacks of equal priority)."""
    if not nf._registered:
        return False
    chains = [c.registered for t in nf.nftables.tables.values() for c in t.chains.values() if c.base]
    return not chains or min(nf._registered.values()) < min(chains)


def nfacct_objects(tables: Iterable[Table]) -> list[str]:
    """The nfacct accounting objects the rules of `tables` count in (`-m nfacct --nfacct-name`),
    in the order first used: each must exist (nfnetlink_acct, `nfacct add NAME`) before its rule."""
    names: list[str] = []
    for table in tables:
        for chain in table.chains.values():
            for rule in chain.rules:
                for match in rule.matches:
                    name = getattr(match, "object", None) if match.name == "nfacct" else None
                    if name is not None and name not in names:
                        names.append(name)
    return names


class Callbacks:
    """The callbacks registered on each hook of a namespace that has nftables base chains, as
    nf_hook_entries_grow orders them: iptables' stages (HOOK_ORDER) and the filter-type nft
    base chains by priority, at equal priority the one registered last first; and the nat
    chains the nat core calls, in the same order. Rebuilt when the ruleset or the set of
    iptables tables changes."""

    def __init__(self, nf: Netfilter):
        self.nf = nf
        self._key: tuple[int, int, bool] | None = None
        self._hooks: dict[str, tuple[tuple[Stage, ...], tuple[NatLookup, ...]]] = {}

    def plans(self) -> tuple[dict[str, Plan], frozenset[str]]:
        """The callbacks each hook runs, in order, as (a bound Netfilter._RUN entry, its stage or a
        nat stage's manip). A table stage whose table does not exist registered nothing; one
        whose built-in chain for the hook is empty with policy ACCEPT is left out too, since
        walking it changes nothing (kube-proxy's empty mangle chains): Netfilter.plan keeps
        these until a table, a rule or the nft ruleset changes. And the hooks whose callbacks
        are only the nat core's and conntrack's confirmation (Netfilter.passes)."""
        nf = self.nf
        stages = {h: [s for s in nf.stages(h) if s.name not in _TABLE_STAGES or _walks(nf, s.table, h)] for h in HOOKS}
        passive = frozenset(h for h, found in stages.items()
                            if found and all(s.name in _PASSIVE_STAGES for s in found))
        return {h: tuple(self._call(s) for s in found) for h, found in stages.items()}, passive

    def of(self, hook: str) -> tuple[tuple[Stage, ...], tuple[NatLookup, ...]]:
        nf = self.nf
        key = (nf.nftables.generation, len(nf.tables), nf.conntrack_active)
        if key != self._key:
            self._hooks = {h: self._merge(h, key[2]) for h in HOOKS}
            self._key = key
        return self._hooks[hook]

    def _call(self, stage: Stage) -> tuple[StageCall, Any]:
        return MethodType(self.nf._RUN[stage.name], self.nf), _NAT_MANIP.get(stage.name, stage)

    def _merge(self, hook: str, active: bool) -> tuple[tuple[Stage, ...], tuple[NatLookup, ...]]:
        nf = self.nf
        ranked: list[tuple[int, int, int, Stage]] = []
        for i, stage in enumerate(stages(hook, active)):
            if stage.name in _TABLE_STAGES:
                if stage.table not in nf.tables:
                    continue
                ranked.append((stage.priority, -nf._registered[stage.table], i, stage))
            else:
                ranked.append((stage.priority, 0, i, stage))
        nat: list[tuple[int, int, NatLookup]] = []
        if "nat" in nf.tables and hook in nf.tables["nat"].chains:
            nat.append((NAT_CORE_PRIORITY[hook], -nf._registered["nat"], nf._ipt_nat[0]))
        for table, chain in nf.nftables.base_chains(hook.lower()):
            priority = chain.priority or 0
            if chain.type == "nat":
                nat.append((priority, -chain.registered, _nft_nat(table, chain)))
            else:
                ranked.append((priority, -chain.registered, len(ranked) + 100,
                               Stage("nft", priority, "nft_do_chain", table=table.ident, nft=(table, chain))))
        ranked.sort(key=lambda r: r[:3])
        nat.sort(key=lambda n: n[:2])
        return tuple(r[3] for r in ranked), tuple(n[2] for n in nat)


def _walks(nf: Netfilter, table: str, hook: str) -> bool:
    """Would walking `table` at `hook` do anything: does the table exist, with a built-in chain
    for the hook that has a rule or a policy other than ACCEPT?"""
    found = nf.tables.get(table)
    chain = found.chains.get(hook) if found is not None else None
    return chain is not None and (bool(chain.rules) or chain.policy != "ACCEPT")


def _nft_nat(table: Any, chain: Any) -> NatLookup:
    return lambda hook, ctx, result: nft_nat_lookup(table, chain, hook, ctx, result)
