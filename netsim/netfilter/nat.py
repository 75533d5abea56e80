"""NAT: the DNAT, SNAT and MASQUERADE targets and the nat hooks that apply them, as
net/netfilter/nf_nat_core.c, nf_nat_proto.c, xt_nat.c and nf_nat_masquerade.c do.

The nat table is walked only for a connection's first packet (nf_nat_inet_fn: "if
(!nf_nat_initialized(ct, maniptype))"). Every nat-type chain of the hook hangs off the nat core
(nf_nat_register_fn): iptables' nat table and nftables' nat base chains alike, called in the
order of their priorities (at equal priority the one registered last first) until one of them
binds the connection (`Netfilter.nat_lookups`). A rule's target or NAT statement binds it
(nf_nat_setup_info, which picks a unique tuple, netsim/conntrack.py); where none does, a null
binding is made (nf_nat_alloc_null_binding), which may still remap a clashing source port. Every packet of the
connection, the first included, is then rewritten from the binding (nf_nat_packet ->
nf_nat_manip_pkt): DNAT at PREROUTING/OUTPUT (NF_IP_PRI_NAT_DST), SNAT and MASQUERADE at
POSTROUTING/INPUT (NF_IP_PRI_NAT_SRC), and the reverse rewrite ("un-NAT") on the replies.
MASQUERADE is SNAT to the address the output device would choose toward the next hop
(nf_nat_masquerade_ipv4: inet_select_addr); a device without an address drops the packet.
ICMP errors RELATED to a connection get their outer and quoted headers rewritten
(nf_nat_icmp_reply_translation).

Each step leaves a `Decision` (subsystem "nat") naming the rule (RuleRef), the connection
(ConntrackRef) and the header fields changed, old -> new.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Callable, Iterable, Protocol, Sequence

from ..conntrack import DST, ORIGINAL, REPLY, SRC, Conntrack, ConntrackEntry, conntrack_ref, endpoint, parse_quoted
from ..decision import VERDICT_OF, Decision, FieldChange, NatReason, NftRuleRef, RuleRef, Subsystem, Verdict
from ..errors import NetsimError
from ..packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PROTO_NAMES, IPv4, TCP, UDP
from .xtables import PacketContext, RuleHeader, Target, error, parse_port_range, port_range_text

# The hooks each NAT target may run at (the .hooks of its struct xt_target: xt_nat.c for DNAT
# and SNAT, xt_MASQUERADE.c for MASQUERADE). The kernel refuses a rule set in which a target
# can be reached from another hook, through a jump as well as in the built-in chain itself.
NAT_HOOKS: dict[str, tuple[str, ...]] = {
    "DNAT": ("PREROUTING", "OUTPUT"),
    "SNAT": ("POSTROUTING", "INPUT"),
    "MASQUERADE": ("POSTROUTING",),
}
_NAT_BUILTIN = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
_NAT_HOOKS_TEXT = ", ".join(f"{name} belongs to {'/'.join(hooks)}" for name, hooks in NAT_HOOKS.items())


class NatTarget(Target):
    """DNAT --to-destination, SNAT --to-source, MASQUERADE [--to-ports]; --random, --random-fully."""

    def __init__(self, rule: RuleHeader, name: str):
        super().__init__(rule)
        self.name = name
        self.manip = DST if name == "DNAT" else SRC
        self.to_option = {"DNAT": "--to-destination", "SNAT": "--to-source"}.get(name, "--to-ports")
        self.options = {self.to_option: 1, "--random": 0, "--random-fully": 0, "--persistent": 0}
        self.addr: str | None = None
        self.ports: tuple[int, int] | None = None
        self.random = self.random_fully = self.persistent = False

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if option == "--random":
            self.random = True
        elif option == "--random-fully":
            self.random_fully = True
        elif option == "--persistent":
            if self.name == "MASQUERADE":
                raise error("-j MASQUERADE has no --persistent option")
            self.persistent = True
        elif self.name == "MASQUERADE":
            self.ports = parse_port_range(args[0], option, "-")
        else:
            if self.addr is not None:
                raise error(f"{option}: netsim models one {option} per rule")
            text = args[0]
            addr, _, ports = text.partition(":")
            if "-" in addr:
                raise error(f"{option} {text}: address ranges are not modelled by netsim; "
                             f"give one address")
            try:
                IPv4Address(addr)
            except ValueError:
                raise error(f"{option}: {addr!r} is not an IPv4 address") from None
            self.addr = addr
            if ports:
                self.ports = parse_port_range(ports, option, "-")

    def finish(self) -> None:
        if self.name != "MASQUERADE" and self.addr is None:
            raise error(f"-j {self.name} needs {self.to_option}")
        if self.ports is not None and self.rule.proto not in (IPPROTO_TCP, IPPROTO_UDP):
            raise error(f"-j {self.name}: a port needs -p tcp or -p udp")
        if self.rule.table != "nat":
            raise error(f"-j {self.name} is valid only in the nat table")
        chain = self.rule.chain
        if chain in _NAT_BUILTIN and chain not in NAT_HOOKS[self.name]:
            raise error(f"-j {self.name} is valid only in {'/'.join(NAT_HOOKS[self.name])}, not in {chain} "
                        f"(the kernel refuses the rule)")

    def to_text(self) -> str:
        if self.name == "MASQUERADE":
            return port_range_text(self.ports, "-") if self.ports else ""
        text = self.addr or ""
        if self.ports:
            text += ":" + port_range_text(self.ports, "-")
        return text

    def save(self) -> str:
        text = f"-j {self.name}"
        if self.name != "MASQUERADE" or self.ports:
            text += f" {self.to_option} {self.to_text()}"
        for flag, name in ((self.random, "--random"), (self.random_fully, "--random-fully"),
                           (self.persistent, "--persistent")):
            if flag:
                text += f" {name}"
        return text


@dataclass(frozen=True)
class NatChoice:
    """What the rule a nat chain reached asks the nat core for: DNAT, SNAT or MASQUERADE, the
    address (MASQUERADE: None, the output device's) and port range, the random flags, the rule
    (an iptables RuleRef or an NftRuleRef), the function that binds (nf_nat_inet_fn for
    iptables' DNAT and SNAT, nft_nat_eval for nft's dnat, nf_nat_masquerade_ipv4) and the rule
    named for an error message."""

    name: str
    addr: str | None
    ports: tuple[int, int] | None
    random: bool
    random_fully: bool
    ref: RuleRef | NftRuleRef
    function: str
    where: str


class NatHookResult(Protocol):
    """What a nat stage sets on its hook's result (core.HookResult)."""

    verdict: str
    decisions: list[Decision]
    rule: str | None


class NatTableWalk(Protocol):
    """What a nat stage reads of the nat chain's walk (ip_tables.WalkOutcome)."""

    nat: NatTarget | None
    ref: RuleRef | None

    @property
    def where(self) -> str: ...


# A nat chain's lookup as the nat core calls it: (hook, ctx, result) -> (verdict, choice).
NatLookup = Callable[[str, PacketContext, Any], "tuple[str, NatChoice | None]"]


class NatNetfilter(Protocol):
    """What a nat stage asks of its namespace's netfilter (core.Netfilter)."""

    netns: Any

    @property
    def conntrack(self) -> Conntrack: ...

    def do_table(self, table: str, hook: str, ctx: PacketContext, result: Any) -> NatTableWalk: ...

    def nat_lookups(self, hook: str) -> Iterable[NatLookup]: ...


def iptables_nat_lookup(nf: NatNetfilter, hook: str, ctx: PacketContext,
                        result: NatHookResult) -> tuple[str, NatChoice | None]:
    """iptables' nat table as the nat core calls it (iptable_nat_do_chains): the rule that
    matched, if it has a NAT target."""
    walk = nf.do_table("nat", hook, ctx, result)
    target = walk.nat
    if target is None or walk.ref is None:
        return "ACCEPT", None
    if hook not in NAT_HOOKS[target.name]:
        # the kernel refuses such a rule set when it is loaded; netsim finds out here
        raise error(f"{walk.where}: -j {target.name} reached in {hook}; iptables "
                    f"refuses this: {_NAT_HOOKS_TEXT}")
    function = "nf_nat_masquerade_ipv4" if target.name == "MASQUERADE" else "nf_nat_inet_fn"
    return "ACCEPT", NatChoice(target.name, target.addr, target.ports, target.random, target.random_fully,
                               walk.ref, function, walk.where)


def field_changes(before: IPv4, after: IPv4) -> tuple[FieldChange, ...]:
    """The header fields NAT changed between two versions of a packet: ipv4 src/dst, the TCP or
    UDP ports, the ICMP echo id, and for an ICMP error the quoted packet's addresses and ports
    (layers `quoted.ipv4`, `quoted.tcp`, ...)."""
    changes: list[FieldChange] = []
    for name in ("src", "dst"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.append(FieldChange("ipv4", name, old, new))
    a, b = before.payload, after.payload
    if isinstance(a, (TCP, UDP)) and isinstance(b, (TCP, UDP)):
        layer = PROTO_NAMES[before.proto]
        for name in ("sport", "dport"):
            if getattr(a, name) != getattr(b, name):
                changes.append(FieldChange(layer, name, getattr(a, name), getattr(b, name)))
    elif isinstance(a, ICMP) and isinstance(b, ICMP):
        if a.is_error:
            qa, qb = parse_quoted(a.data), parse_quoted(b.data)
            if qa is not None and qb is not None:
                ta, tb = qa.tuple, qb.tuple
                for name in ("src", "dst"):
                    if getattr(ta, name) != getattr(tb, name):
                        changes.append(FieldChange("quoted.ipv4", name, getattr(ta, name), getattr(tb, name)))
                layer = "quoted." + ta.proto_name
                ports = ("sport",) if ta.proto == IPPROTO_ICMP else ("sport", "dport")
                for name in ports:
                    if getattr(ta, name) != getattr(tb, name):
                        changes.append(FieldChange(layer, "id" if ta.proto == IPPROTO_ICMP else name,
                                                   getattr(ta, name), getattr(tb, name)))
        elif a.id != b.id:
            changes.append(FieldChange("icmp", "id", a.id, b.id))
    return tuple(changes)


def _side(packet: IPv4, manip: str) -> tuple[str, int]:
    payload = packet.payload
    if isinstance(payload, ICMP):
        return (packet.src if manip == SRC else packet.dst), payload.id
    if isinstance(payload, (TCP, UDP)):
        return (packet.src, payload.sport) if manip == SRC else (packet.dst, payload.dport)
    return (packet.src if manip == SRC else packet.dst), 0


def nf_nat_inet_fn(nf: NatNetfilter, hook: str, manip: str, ctx: PacketContext, result: NatHookResult,
                   nexthop: str | None) -> None:
    """One nat stage of a hook (NF_IP_PRI_NAT_DST or NF_IP_PRI_NAT_SRC): for a connection's
    first packet walk the nat chain (or make a null binding), then rewrite the packet from the
    connection's binding."""
    skb = ctx.skb
    entry = skb.ct
    if entry is None:
        return
    state = skb.ct_state
    if state == "ESTABLISHED" and not (entry.snat or entry.dnat):
        return          # no binding changes anything: nf_nat_packet leaves the packet as it is
    ct = nf.conntrack
    direction = REPLY if skb.ct_reply else ORIGINAL
    if state == "RELATED":
        before = ctx.packet
        packet, rewritten = ct.nat_icmp_error(entry, direction, manip, before)
        if rewritten is not None:
            ctx.packet = packet
            result.decisions.append(Decision(
                Subsystem.NAT, "nf_nat_icmp_reply_translation", NatReason.ICMP_ERROR, Verdict.REWRITE,
                consulted=(conntrack_ref(entry, direction, "RELATED"),), changes=field_changes(before, packet),
                manip=manip, to=rewritten[0], quoted=rewritten[1]))
        return
    if skb.ct_state == "NEW" and not ct.nat_done(entry, manip):
        _first_packet(nf, hook, manip, ctx, result, nexthop, entry, direction)
        return
    if not (entry.snat or entry.dnat):
        return          # no binding changes anything: nf_nat_packet leaves the packet as it is
    before = ctx.packet
    packet, to = ct.nat_packet(entry, direction, manip, before)
    if to is not None:
        ctx.packet = packet
        result.decisions.append(Decision(
            Subsystem.NAT, "nf_nat_packet", NatReason.REWRITE, Verdict.REWRITE,
            consulted=(conntrack_ref(entry, direction, skb.ct_state),), changes=field_changes(before, packet),
            manip=manip, to=to))


def _first_packet(nf: NatNetfilter, hook: str, manip: str, ctx: PacketContext, result: NatHookResult,
                  nexthop: str | None, entry: ConntrackEntry, direction: int) -> None:
    """nf_nat_inet_fn() for a connection's first packet: the hook's nat chains, in order, until
    one binds the connection (else a null binding), and the packet rewritten from the binding."""
    ct = nf.conntrack
    choice = None
    for lookup in nf.nat_lookups(hook):
        verdict, choice = lookup(hook, ctx, result)
        if verdict != "ACCEPT":
            result.verdict = verdict
            return
        if choice is not None:
            break
    before = ctx.packet
    if choice is not None:
        addr = choice.addr
        if choice.name == "MASQUERADE":
            addr, why = masquerade_source(nf, ctx.outdev, nexthop)
            if addr is None:
                result.verdict = "DROP"
                result.decisions.append(Decision(Subsystem.NAT, choice.function, NatReason.NO_SOURCE, Verdict.DROP,
                                                 consulted=(choice.ref,), error=why))
                return
        ok = ct.setup_nat(entry, manip, addr, choice.ports, choice.random, choice.random_fully)
    else:
        ok = ct.setup_nat(entry, manip, None)
    if not ok:
        result.verdict = "DROP"
        refs = (choice.ref,) if choice is not None else ()
        result.decisions.append(Decision(
            Subsystem.NAT, "nf_nat_setup_info", NatReason.NO_FREE_TUPLE, Verdict.DROP,
            consulted=(*refs, conntrack_ref(entry, direction, "NEW")), hook=hook))
        return
    packet, _ = ct.nat_packet(entry, direction, manip, before)
    ctx.packet = packet
    if choice is not None:
        after_tuple = entry.reply.invert()
        old = endpoint(entry.proto, *_side(before, manip))
        new = endpoint(entry.proto, after_tuple.src if manip == SRC else after_tuple.dst,
                       after_tuple.sport if manip == SRC or entry.proto == IPPROTO_ICMP else after_tuple.dport)
        result.decisions.append(Decision(
            Subsystem.NAT, choice.function, NatReason.BINDING, VERDICT_OF[choice.name],
            consulted=(choice.ref, conntrack_ref(entry, direction, "NEW")),
            changes=field_changes(before, packet), manip=manip, old=old, new=new))
        result.rule = choice.where
    elif packet is not before and packet != before:
        result.decisions.append(Decision(
            Subsystem.NAT, "nf_nat_alloc_null_binding", NatReason.NULL_BINDING_CLASH, Verdict.SNAT,
            consulted=(conntrack_ref(entry, direction, "NEW"),), hook=hook,
            old=endpoint(entry.proto, *_side(before, SRC)), new=endpoint(entry.proto, *_side(packet, SRC)),
            changes=field_changes(before, packet)))


def masquerade_source(nf: NatNetfilter, outdev: str | None, nexthop: str | None) -> tuple[str | None, str]:
    """nf_nat_masquerade_ipv4(): the source address MASQUERADE maps to, the one the output
    device would pick toward the next hop (inet_select_addr), or None and why there is none
    (the kernel then returns NF_DROP)."""
    try:
        addr = nf.netns.masquerade_source(outdev, nexthop)
    except NetsimError as exc:          # the namespace says why it has no address
        return None, str(exc)
    if addr is None:
        return None, f"{outdev} has no IPv4 address"
    return addr, ""
