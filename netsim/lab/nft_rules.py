"""netsim's nftables decisions against `nft monitor trace`, rule by rule (rules.py does the same
for iptables rules and xtables-monitor).

For a namespace whose model has nf_tables tables (kube-proxy's nftables mode, flannel's
EnableNFTables), the lab traces with `nft monitor trace` (tracer.py, mode "nft"). nf_tables
reports, for every base chain a packet enters, each rule whose expressions all matched with
its verdict (a rule without one, such as `meta mark set`, reports `continue`; a jump or goto
names its chain; a NAT statement accepts; `reject` drops) and the policy when the walk runs off
the base chain. netsim's `nft_do_chain` leaves one decision per such event (nft_eval.py), with
an `NftRuleRef` naming table, hook, chain, handle, the rule's text and its verdict, so the two
lists are compared one for one, in order:

- "rule evaluations": table, hook, chain, the rule's place in its chain (nft prints the rule
  but not its handle: the kernel's place is found by the rule's text in `nft -a list ruleset`,
  the model's from its handle), the verdict with the chain it jumps to, and the rule's text;
- "netfilter mark": the mark a walk leaves its base chain with (nft prints it on the policy
  line) is the one netsim's `meta mark set` decisions left by then (0 before the first);
- "netfilter nat": the destinations and sources each walk saw follow netsim's rewrites
  (rules.py's comparison, shared).

Walks of tables the model does not hold in nf_tables (an iptables-nft table of a namespace that
has both) are left to nothing here: their rules are iptables rules, which this trace prints in
nft's words.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from ..decision import NftRuleRef
from ..trace import Hop
from .nftrace import TraceEvent, TraceWalk, _plain

if TYPE_CHECKING:
    from ..netfilter.nft import NftRuleset
    from .comparison import Comparison


def _position(ruleset: "NftRuleset", ref: NftRuleRef) -> int:
    """The rule's place (1-based) in its chain, from its handle; 0 for a policy."""
    if not ref.handle:
        return 0
    chain = ruleset.tables[(ref.family, ref.table)].chains[ref.chain]
    return next((i for i, rule in enumerate(chain.rules, 1) if rule.handle == ref.handle), -1)


def model_steps(hops: list[Hop], ruleset: "NftRuleset") -> list[tuple[str, NftRuleRef, tuple]]:
    """netsim's nft_do_chain decisions along `hops`: (the step as text, the rule, its changes)."""
    out = []
    for hop in hops:
        for d in hop.decisions:
            if d.function != "nft_do_chain":
                continue
            ref = d.consulted[0]
            assert isinstance(ref, NftRuleRef)
            kind, _, target = ref.verdict.partition(" ")
            step = _step(ref.table, ref.hook, ref.chain, _position(ruleset, ref),
                         f"{kind.upper()} {target}" if target else kind.upper(), ref.text if ref.handle else "")
            out.append((step, ref, d.changes))
    return out


def _step(table: str, hook: str, chain: str, rule: int, verdict: str, text: str) -> str:
    where = f"{table} {hook} {chain} " + ("policy" if rule == 0 else f"rule {rule}")
    return f"{where} {verdict}" + (f" [{_plain(text)}]" if text else "")


def _kernel_step(walk: TraceWalk, e: TraceEvent) -> str:
    verdict = f"{e.verdict} {e.target}" if e.target else e.verdict
    return _step(e.table, walk.hook, e.chain, e.rule if e.kind == "rule" else 0, verdict,
                 e.text if e.kind == "rule" else "")


def compare_walks(comparison: "Comparison", where: str, walks: list[Any], hops: list[Hop],
                  ruleset: "NftRuleset", Difference: type) -> None:
    """The kernel's walks (rules._Walk: the walk, its packet's role, whether it is the outer
    VXLAN header) of one packet role in one namespace against netsim's decisions there."""
    tables = {t.name for t in ruleset.tables.values()}
    ours = [w for w in walks if w.walk.table in tables]
    steps = model_steps(hops, ruleset)
    kernel = []
    for w in ours:
        for e in w.walk.events:
            comparison.compared["rule evaluations"] += 1
            if e.kind == "rule" and not e.rule:
                comparison.differences.append(Difference(None, where, "netfilter rule text",
                                                         f"no rule of {e.table} {e.chain} reads so", e.text))
            kernel.append(_kernel_step(w.walk, e))
    model = [s for s, _, _ in steps]
    if model != kernel:
        diff = [line for line in difflib.unified_diff(model, kernel, "model", "kernel", lineterm="", n=1)
                if not line.startswith(("---", "+++"))]
        comparison.differences.append(Difference(None, where, "netfilter rules", f"{len(model)} decisions",
                                                 f"{len(kernel)} traced:\n      " + "\n      ".join(diff)))
    _compare_marks(comparison, where, walks, hops, tables, Difference)


def _compare_marks(comparison: "Comparison", where: str, walks: list[Any], hops: list[Hop], tables: set[str],
                   Difference: type) -> None:
    """The mark a walk leaves its base chain with follows netsim's mark decisions: nftables'
    `meta mark set` and, in a namespace that has both, an iptables-nft rule's MARK (portmap's
    CNI-HOSTPORT-SETMARK sets 0x2000 in the nat table before kube-proxy's nftables chains see
    the packet; the trace prints that rule as `meta mark set mark or 0x00002000`). nft prints
    a packet's mark only on a policy line (`policy accept meta mark 0x00004000`; nothing when
    it is 0): walks of the model's nftables tables that end on a policy are compared, every
    walk's mark-setting rules advance."""
    pending = [int(c.new) for hop in hops for d in hop.decisions
               if d.function in ("nft_do_chain", "ipt_do_table")
               for c in d.changes if c.layer == "skb" and c.field == "mark"]
    running = 0
    for w in walks:
        if w.outer:
            continue
        for e in w.walk.events:
            if e.kind == "rule" and e.verdict == "CONTINUE" and " mark set " in f" {e.text} " and pending:
                running = pending.pop(0)
            elif e.kind == "policy" and w.walk.table in tables:
                comparison.compared["netfilter mark"] += 1
                seen = e.mark or 0
                if seen != running:
                    comparison.differences.append(Difference(None, where, "netfilter mark",
                                                             f"{running:#x} leaving {w.walk.table} {w.walk.chain}",
                                                             f"{seen:#x}"))
                    return
