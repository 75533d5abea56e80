"""netsim's netfilter decisions against the kernel's own trace, rule by rule.

`compare_rules(model, observed, cluster, comparison)` takes the kernel's walks (tracer.py: one
per base chain a packet entered, with every rule that matched) and netsim's decisions for the
same exchange, namespace by namespace and packet by packet (the request, the reply, an ICMP
error), and adds to `comparison` what differs. netsim's side is read from `hop.decisions`
only through the records: each decision's `consulted` `RuleRef`s (table, hook, chain, rule
number, target, text) and its `changes` (`FieldChange`s of skb.mark, ipv4.src/dst and the
ports), never its sentence. A namespace whose model has nftables tables is traced with `nft
monitor trace` and its rules compared by nft_rules.py (`NftRuleRef`s); the NAT comparison
below serves both.

What is checked (each counted in `comparison.compared`):
- "rule evaluations": every event the kernel traced for a packet of the exchange. The ones
  netsim records (a rule that decided: ACCEPT, DROP, REJECT, a NAT target, RETURN, a MARK
  that went on; a policy outside the nat table) must be netsim's, in the same order, with
  the same table, hook, chain, rule number, verdict and rule text. A jump or goto, which
  netsim follows without recording it, must be the model's rule of that number and text, and
  jump where the kernel jumped. A nat chain's policy (no NAT rule matched) must meet no NAT
  rule of netsim's at that hook.
- "netfilter mark": the mark each kernel walk starts with is the one netsim's MARK decisions
  left (0 before the first).
- "netfilter nat": the destination (address and port) each walk of a packet sees goes through
  the same values as netsim's rewrites of it, and the source addresses the kernel saw are
  netsim's, in order (the source is rewritten last, at POSTROUTING, where no later walk sees it).

One thing the kernel does not report: a REJECT. Its xt target sends the ICMP error or RST
and returns NF_DROP, and on this kernel (6.18) no trace event follows: the walk simply ends
after the jump into the rule's chain. Such a walk is matched with netsim's REJECT when that is
netsim's next decision, in the same table, hook and chain ("rule evaluations unreported by
the kernel"); its rule number is then checked by nothing but the model's own record.

The kernel's verdict for netsim's targets: ACCEPT, DROP, RETURN as such; a NAT target
(DNAT, SNAT, MASQUERADE, REDIRECT) returns NF_ACCEPT from its xt target and REJECT NF_DROP
(net/ipv4/netfilter/ipt_REJECT.c, reject_tg; net/netfilter/xt_nat.c), and MARK continues
(xt_MARK.c's mark_tg returns XT_CONTINUE; iptables-nft writes it as `meta mark set`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..decision import FieldChange, RuleRef
from ..packet import TCP, UDP, VXLAN, IPv4
from ..trace import Hop, Trace
from . import nft_rules
from .comparison import Comparison, Difference
from .nftrace import TraceEvent, TraceWalk

if TYPE_CHECKING:
    from ..cluster import Cluster

KERNEL_VERDICT = {"ACCEPT": "ACCEPT", "DROP": "DROP", "REJECT": "DROP", "DNAT": "ACCEPT", "SNAT": "ACCEPT",
                  "MASQUERADE": "ACCEPT", "REDIRECT": "ACCEPT", "MARK": "CONTINUE", "RETURN": "RETURN",
                  "": "CONTINUE"}            # a rule with no target (kube-proxy's KUBE-FW- ends with one)
NAT_TARGETS = ("DNAT", "SNAT", "MASQUERADE", "REDIRECT")
ROLES = ("request", "reply", "error")
VXLAN_PORTS = ("8472", "4789")


@dataclass(frozen=True)
class Step:
    """One rule evaluation, as both sides can say it."""

    table: str
    hook: str
    chain: str
    rule: int
    verdict: str
    text: str = ""

    def __str__(self) -> str:
        where = f"{self.table} {self.hook} {self.chain} " + (
            "policy" if self.rule == 0 else "a rule the trace did not report" if self.rule < 0 else f"rule {self.rule}")
        return f"{where} {self.verdict}" + (f" [{self.text}]" if self.text and self.rule else "")


@dataclass
class _Walk:
    """A kernel walk with the packet it belongs to."""

    walk: TraceWalk
    role: str
    outer: bool


def _saved_rules(cluster: "Cluster", netns: str) -> dict[tuple[str, str], list[str]]:
    """The model's rules per (table, chain), as iptables-save prints them, in order."""
    out: dict[tuple[str, str], list[str]] = {}
    table = ""
    for line in cluster.netns(netns).netfilter.save().splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            out.setdefault((table, line.split()[1]), []).append(line)
        elif line.startswith(":"):
            out.setdefault((table, line[1:].split()[0]), [])
    return out


def _layers(frame: Any) -> list[tuple[bool, IPv4]]:
    """(is the outer VXLAN header, the IP header) of a captured frame, outermost first."""
    ip = frame if isinstance(frame, IPv4) else getattr(frame, "ip", None)
    out: list[tuple[bool, IPv4]] = []
    while ip is not None:
        udp = ip.payload
        inner = None
        if isinstance(udp, UDP) and isinstance(udp.payload, VXLAN):
            inner = udp.payload.payload.ip
        out.append((inner is not None, ip))
        ip = inner
    return out


def _packets(kernel: Trace) -> dict[tuple[int, int], list[tuple[str, str, str, bool]]]:
    """(IP ID, total length) -> [(source, destination, role, outer)] of every captured packet; a
    fragment also under (IP ID, -1), since a hook sees the whole packet (netfilter's hooks run
    before ip_fragment and after nf_defrag_ipv4)."""
    out: dict[tuple[int, int], list[tuple[str, str, str, bool]]] = {}
    for hop in kernel.hops:
        for outer, ip in _layers(hop.frame):
            entry = (ip.src, ip.dst, hop.role, outer)
            for key in ((ip.id, ip.length()), *(((ip.id, -1),) if ip.is_fragment else ())):
                bucket = out.setdefault(key, [])
                if entry not in bucket:
                    bucket.append(entry)
    return out


def _assign(walks: list[TraceWalk], packets: dict) -> list[_Walk]:
    """The walks of the exchange's packets, each with its role (NAT rewrites one address per
    hook, so a walk's packet shares its IP ID, length and one address with a captured one)."""
    out = []
    for w in walks:
        src, dst, ident = w.key()
        length = int(w.packet.get("LEN", "-1"))
        match = next((e for e in packets.get((ident, length), []) if e[0] == src or e[1] == dst), None)
        if match is None:
            match = next((e for e in packets.get((ident, -1), []) if e[0] == src and e[1] == dst), None)
        if match is None and (src.startswith("127.") or dst.startswith("127.")) \
                and len(packets.get((ident, length), [])) == 1:
            # a localhost packet DNATed in OUTPUT and masqueraded in POSTROUTING (portmap's
            # localhost hostPort) is captured with both addresses rewritten: its IP ID and length
            # name it when one captured packet has them
            match = packets[(ident, length)][0]
        if match is not None and match[2] in ROLES:
            outer = match[3] or w.packet.get("DPORT") in VXLAN_PORTS
            out.append(_Walk(w, match[2], outer))
    return out


def _model_steps(hops: list[Hop]) -> list[tuple[Step, Any, tuple[FieldChange, ...]]]:
    """netsim's rule decisions along `hops`: (step, the RuleRef, the decision's changes)."""
    out = []
    for hop in hops:
        for d in hop.decisions:
            for ref in d.consulted:
                if isinstance(ref, RuleRef):
                    verdict = KERNEL_VERDICT.get(ref.target, ref.target)
                    text = ref.text if ref.rule else ""
                    out.append((Step(ref.table, ref.hook, ref.chain, ref.rule, verdict, text), ref, d.changes))
    return out


def _kernel_step(walk: TraceWalk, e: TraceEvent) -> Step:
    return Step(e.table, walk.hook, e.chain, e.rule, e.verdict, e.text if e.kind == "rule" else "")


def compare_rules(model: Trace, observed: Any, cluster: "Cluster", comparison: Comparison) -> None:
    """Add the rule-by-rule differences between netsim's decisions and the kernel's trace."""
    walks_by_ns: dict[str, list[TraceWalk]] | None = getattr(observed, "rule_walks", None)
    if walks_by_ns is None:
        return
    kernel: Trace = observed.trace
    packets = _packets(kernel)
    texts: dict[str, str] = getattr(observed, "rule_texts", None) or {}
    for netns in sorted(walks_by_ns):
        before = len(comparison.differences)
        _compare_netns(model, netns, walks_by_ns[netns], packets, cluster, comparison)
        if len(comparison.differences) > before and texts.get(netns):
            # what the monitor printed, so that a difference seen once (a loaded CI machine) can
            # be read afterwards
            comparison.notes.append(f"{netns}: the netfilter trace as printed:\n      "
                                    + texts[netns].replace("\n", "\n      "))


def _compare_netns(model: Trace, netns: str, walks: list[TraceWalk], packets: dict, cluster: "Cluster",
                   comparison: Comparison) -> None:
    """One namespace's walks against netsim's decisions there."""
    ruleset = cluster.netns(netns).netfilter.nftables
    if ruleset.tables:          # traced with nft monitor trace: nft_rules.py
        mine = _assign(walks, packets)
        for role in ROLES:
            seen = [w for w in mine if w.role == role]
            hops = [h for h in model.hops if h.netns == netns and h.role == role]
            if seen or hops:
                nft_rules.compare_walks(comparison, f"{netns} {role}", seen, hops, ruleset, Difference)
                _compare_nat(comparison, f"{netns} {role}", seen, hops, role, Difference)
        return
    saved = _saved_rules(cluster, netns)
    tables = {t for t, _ in saved}
    # every walk shows the packet as its hook saw it (the lab's own raw walks too); the
    # rules compared are those of the model's tables
    mine = _assign(walks, packets)
    for role in ROLES:
        seen = [w for w in mine if w.role == role]
        hops = [h for h in model.hops if h.netns == netns and h.role == role]
        if not seen and not hops:
            continue
        where = f"{netns} {role}"
        steps = _model_steps(hops)
        _compare_steps(comparison, where, [w for w in seen if w.walk.table in tables], steps, saved, Difference)
        _compare_marks(comparison, where, seen, steps, Difference)
        _compare_nat(comparison, where, seen, hops, role, Difference)


def _compare_steps(comparison, where, ours: list[_Walk], model_steps, saved, Difference) -> None:
    recorded: list[Step] = []
    for w in ours:
        walk = w.walk
        for e in walk.events:
            comparison.compared["rule evaluations"] += 1
            step = _kernel_step(walk, e)
            if e.kind == "rule" and e.rule:
                rules = saved.get((e.table, e.chain), [])
                text = rules[e.rule - 1] if e.rule <= len(rules) else None
                if text != e.text:
                    comparison.differences.append(Difference(None, where, "netfilter rule text",
                                                             f"{e.table} {e.chain} rule {e.rule}: {text}", e.text))
            if e.verdict in ("JUMP", "GOTO"):
                target = e.text.split(" -j " if e.verdict == "JUMP" else " -g ")[-1].split()[0] if e.text else ""
                if target != e.target:
                    comparison.differences.append(Difference(None, where, "netfilter jump", f"-> {target}",
                                                             f"-> {e.target}"))
                continue
            if e.kind == "policy" and e.table == "nat":
                # no NAT rule matched in this walk: netsim records no binding either, and a NAT
                # decision of netsim's would have met the kernel's ACCEPT of that rule instead
                continue
            recorded.append(step)
        last = walk.events[-1] if walk.events else None
        if last is not None and last.verdict in ("JUMP", "GOTO"):
            # the walk ended inside `last.target` with no event: a rule there ended it with a
            # verdict the trace did not report (REJECT: reject_tg sends its answer and returns
            # NF_DROP, and no trace event follows on this kernel). Which rule, the trace cannot say.
            recorded.append(Step(walk.table, walk.hook, last.target, -1, "DROP"))
    model = [s for s, _, _ in model_steps]
    for i, step in enumerate(recorded):
        if step.rule == -1:
            m = model[i] if i < len(model) else None
            if m is not None and (m.table, m.hook, m.chain, m.verdict) == (step.table, step.hook, step.chain, "DROP"):
                recorded[i] = m
                comparison.compared["rule evaluations unreported by the kernel"] += 1
    if model != recorded:
        diff = [line for line in difflib.unified_diff([str(s) for s in model], [str(s) for s in recorded],
                                                      "model", "kernel", lineterm="", n=1)
                if not line.startswith(("---", "+++"))]
        comparison.differences.append(Difference(None, where, "netfilter rules", f"{len(model)} decisions",
                                                 f"{len(recorded)} traced:\n      " + "\n      ".join(diff)))


def _compare_marks(comparison, where, ours: list[_Walk], model_steps, Difference) -> None:
    """The mark each inner walk starts with follows netsim's MARK decisions."""
    changes = [c for _, ref, cs in model_steps if ref.target == "MARK" for c in cs
               if c.layer == "skb" and c.field == "mark"]
    running = 0
    pending = list(changes)
    for w in ours:
        if w.outer:
            continue
        comparison.compared["netfilter mark"] += 1
        if w.walk.mark != running:
            comparison.differences.append(Difference(None, where, "netfilter mark",
                                                     f"{running:#x} at {w.walk.table} {w.walk.hook}",
                                                     f"{w.walk.mark:#x}"))
            return
        marks = sum(1 for e in w.walk.events if e.verdict == "CONTINUE")
        for _ in range(marks):
            if pending:
                running = int(pending.pop(0).new)


def _compare_nat(comparison, where, ours: list[_Walk], hops: list[Hop], role: str, Difference) -> None:
    """The destinations (and sources) the kernel's walks saw are netsim's, in order. The
    request's destination port is the server's and compared too; a reply's ports are the
    client's, random, and left to the frame comparison's rules."""
    inner = [w.walk for w in ours if not w.outer]
    first = _first_ip(hops)
    if not inner or first is None:
        return

    def dedup(values: list) -> list:
        return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]

    ports = role == "request" and isinstance(first.payload, (TCP, UDP))
    dst: tuple[str, int | None] = (first.dst, first.payload.dport if ports else None)   # type: ignore[union-attr]
    dsts: list[tuple[str, int | None]] = []
    srcs = [first.src]
    last_rewrite: Hop | None = None
    for h in hops:
        for d in h.decisions:
            new_dst = next((str(c.new) for c in d.changes if c.layer == "ipv4" and c.field == "dst"), None)
            new_port = next((int(c.new) for c in d.changes if c.layer in ("tcp", "udp") and c.field == "dport"), None)
            old_dst = next((str(c.old) for c in d.changes if c.layer == "ipv4" and c.field == "dst"), None)
            old_port = next((int(c.old) for c in d.changes if c.layer in ("tcp", "udp") and c.field == "dport"), None)
            if new_dst is None and new_port is None:
                continue
            if not dsts:          # the packet before netsim's first rewrite of its destination
                dsts.append((old_dst or dst[0], old_port if ports and old_port is not None else dst[1]))
            dst = (new_dst or dsts[-1][0], new_port if ports and new_port is not None else dsts[-1][1])
            dsts.append(dst)
            last_rewrite = h
            new_src = next((str(c.new) for c in d.changes if c.layer == "ipv4" and c.field == "src"), None)
            if new_src is not None:
                srcs.append(new_src)
        for d in h.decisions:
            old_src = next((str(c.old) for c in d.changes if c.layer == "ipv4" and c.field == "src"), None)
            new_src = next((str(c.new) for c in d.changes if c.layer == "ipv4" and c.field == "src"), None)
            if new_src is not None and old_src is not None and not any(c.layer == "ipv4" and c.field == "dst"
                                                                        for c in d.changes):
                if len(srcs) == 1:
                    srcs[0] = old_src
                srcs.append(new_src)
    model_dsts = dedup(dsts or [dst])
    kernel_dsts = dedup([(w.packet.get("DST", ""), int(w.packet["DPORT"]) if ports and "DPORT" in w.packet else None)
                         for w in inner])
    comparison.compared["netfilter nat"] += len(kernel_dsts)
    # NAT rewrites a destination at its PREROUTING or OUTPUT hook, after the raw and mangle
    # tables there: when those are the only walks the kernel reported for the packet (a host
    # whose other tables have no base chain, chapter 1's router), its walks saw the packet only
    # before any rewrite, and the model's first destination is all they can confirm
    early = all(w.table in ("raw", "mangle") and w.hook in ("PREROUTING", "OUTPUT") for w in inner)
    # a packet dropped after its last rewrite before any other hook (a bridged DNAT the bridge
    # cannot send on) leaves no kernel walk that shows the new destination
    after = hops[hops.index(last_rewrite):] if last_rewrite is not None else []
    unseen = bool(after) and any(h.reason is not None and h.reason.verdict == "drop" for h in after) \
        and not any(d.function in ("ipt_do_table", "nft_do_chain") for h in after[1:] for d in h.decisions) \
        and len(model_dsts) == len(kernel_dsts) + 1 and model_dsts[:-1] == kernel_dsts
    if early and kernel_dsts == model_dsts[:len(kernel_dsts)]:
        pass
    elif model_dsts != kernel_dsts and not unseen:
        comparison.differences.append(Difference(None, where, "netfilter nat destination",
                                                 " -> ".join(f"{a}:{p}" if p else a for a, p in model_dsts),
                                                 " -> ".join(f"{a}:{p}" if p else a for a, p in kernel_dsts)))
    kernel_srcs = dedup([w.packet.get("SRC", "") for w in inner])
    model_srcs = dedup(srcs)
    comparison.compared["netfilter nat"] += len(kernel_srcs)
    if model_srcs[:len(kernel_srcs)] != kernel_srcs:
        comparison.differences.append(Difference(None, where, "netfilter nat source", " -> ".join(model_srcs),
                                                 " -> ".join(kernel_srcs)))


def _first_ip(hops: list[Hop]) -> IPv4 | None:
    """The packet (its innermost IP header) at the first hop given."""
    return next((h.inner_ip for h in hops if h.inner_ip is not None and not h.inner_ip.is_fragment), None)
