"""The five IPv4 netfilter hooks and, for each, the stages registered on it in the order the
kernel runs them.

Every netfilter user registers a callback on a hook with a priority
(include/uapi/linux/netfilter_ipv4.h, enum nf_ip_hook_priorities); nf_hook_slow
(net/netfilter/core.c) runs a hook's callbacks from the lowest priority to the highest and
stops at the first verdict other than ACCEPT. The iptables tables register at their table's
priority (iptable_raw.c, iptable_mangle.c, iptable_nat.c via nf_nat_ipv4_ops in
nf_nat_proto.c, iptable_filter.c); conntrack registers nf_conntrack_in at PREROUTING and OUTPUT
and its confirmation, which inserts a new entry into the table, last at INPUT and POSTROUTING
(nf_conntrack_proto.c ipv4_conntrack_ops). `HOOK_ORDER` is that registration, written out per
hook; netsim/netfilter/core.py runs it. Stages marked `conntrack` exist only once conntrack is
hooked into the namespace (a nat table, or a rule that needs it), as the kernel registers them
only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..decision import Decision
from ..packet import IPv4
from ..skb import Skb
from .xtables import PacketContext

# enum nf_inet_hooks, by the names iptables gives the built-in chains
HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
# enum nf_ip_hook_priorities (the ones netsim has a stage for)
NF_IP_PRI_CONNTRACK_DEFRAG = -400     # nf_defrag_ipv4: run by the walk (netsim/stack.py) itself
NF_IP_PRI_RAW = -300
NF_IP_PRI_CONNTRACK = -200
NF_IP_PRI_MANGLE = -150
NF_IP_PRI_NAT_DST = -100
NF_IP_PRI_FILTER = 0
NF_IP_PRI_NAT_SRC = 100
NF_IP_PRI_CONNTRACK_CONFIRM = INT_MAX


@dataclass(frozen=True)
class Stage:
    """One callback on a hook: what it runs, its priority, and the kernel function it models."""

    name: str            # raw, conntrack, mangle, nat-dst, filter, nat-src, confirm
    priority: int
    function: str
    table: str = ""      # the iptables table it walks ("" for conntrack's own stages; nft: "ip NAME")
    conntrack: bool = False   # registered only while conntrack is active in the namespace
    nft: Any = field(default=None, compare=False)   # an nft base chain: (its Table, the Chain)


RAW = Stage("raw", NF_IP_PRI_RAW, "iptable_raw_hook", table="raw")
CONNTRACK = Stage("conntrack", NF_IP_PRI_CONNTRACK, "nf_conntrack_in", conntrack=True)
MANGLE = Stage("mangle", NF_IP_PRI_MANGLE, "iptable_mangle_hook", table="mangle")
NAT_DST = Stage("nat-dst", NF_IP_PRI_NAT_DST, "nf_nat_ipv4_fn", table="nat", conntrack=True)
FILTER = Stage("filter", NF_IP_PRI_FILTER, "iptable_filter_hook", table="filter")
NAT_SRC = Stage("nat-src", NF_IP_PRI_NAT_SRC, "nf_nat_ipv4_fn", table="nat", conntrack=True)
CONFIRM = Stage("confirm", NF_IP_PRI_CONNTRACK_CONFIRM, "nf_conntrack_confirm", conntrack=True)

# hook -> its stages, lowest priority first
HOOK_ORDER: dict[str, tuple[Stage, ...]] = {
    "PREROUTING":  (RAW, CONNTRACK, MANGLE, NAT_DST),
    "INPUT":       (MANGLE, FILTER, NAT_SRC, CONFIRM),
    "FORWARD":     (MANGLE, FILTER),
    "OUTPUT":      (RAW, CONNTRACK, MANGLE, NAT_DST, FILTER),
    "POSTROUTING": (MANGLE, NAT_SRC, CONFIRM),
}


# the nat core's own callbacks (nf_nat_ipv4_ops): where iptables' nat table sits among the hook's
# nat chains
NAT_CORE_PRIORITY = {"PREROUTING": NF_IP_PRI_NAT_DST, "OUTPUT": NF_IP_PRI_NAT_DST,
                     "INPUT": NF_IP_PRI_NAT_SRC, "POSTROUTING": NF_IP_PRI_NAT_SRC}


def stages(hook: str, conntrack_active: bool) -> tuple[Stage, ...]:
    """The stages a packet meets at `hook`: all of them, or without conntrack's."""
    return _ACTIVE[hook] if conntrack_active else _INACTIVE[hook]


_ACTIVE = HOOK_ORDER
_INACTIVE = {hook: tuple(s for s in order if not s.conntrack) for hook, order in HOOK_ORDER.items()}


class HookResult(PacketContext):
    """What one hook decided about a packet. It is also the context the hook's callbacks see
    (a PacketContext: the packet as it is now, its skb, the devices, the namespace), one record
    per hook run: `packet` is the packet after any rewrite."""

    __slots__ = ("verdict", "decisions", "reject_with", "reject_name", "rule")
    verdict: str                     # ACCEPT, DROP or REJECT
    decisions: list[Decision]
    reject_with: tuple[int, int] | str | None     # REJECT: ICMP (type, code) or "tcp-reset"
    reject_name: str | None          # the --reject-with name, e.g. "icmp-port-unreachable"
    rule: str | None                 # the rule that decided, e.g. 'filter INPUT: INPUT rule 1'

    def __init__(self, verdict: str, packet: IPv4, skb: Skb | None = None, indev: str | None = None,
                 outdev: str | None = None, netns: Any = None) -> None:
        self.packet, self.skb, self.indev, self.outdev, self.netns, self.nft = (
            packet, skb if skb is not None else Skb(), indev, outdev, netns, None)
        self.verdict, self.decisions, self.reject_with, self.reject_name, self.rule = verdict, [], None, None, None
