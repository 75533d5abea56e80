"""The sentence writer: every decision, outcome and hop of a trace told in words.

The core records what the kernel decided as `netsim.decision.Decision` records (a kernel
function, a reason code, the named facts, what was consulted and changed) and how the exchange
ended as an `Outcome`; nothing in the core writes a sentence. This module is the one place that
does, for the CLI, the stepper, the book and the explanation layer alike:

    from netsim.views import sentence, outcome_text, explanation
    sentence(trace[3].decisions[0])   # "cni0: FDB 3e:5c:... -> port veth..."
    outcome_text(trace.outcome)       # "connected to 10.244.1.2:8080 (SYN-ACK)"
    explanation(trace[3])             # the hop's decisions, one sentence each, joined by "; "

A sentence is found by dispatch through `SENTENCES`, a table keyed on the kernel function and
the reason code; each entry reads the record's facts (`f.dev`, `f.size`, ...), the objects it
consulted and the fields it changed.
"""

from __future__ import annotations

from typing import Any, Callable

from ..decision import (BridgeReason as B, ArpReason as A, CaptureReason, ConntrackReason as CT, ConntrackRef,
                        Decision, DevReason as DEV, FdbRef, FieldChange, FlannelReason as FL, IcmpReason,
                        MetallbReason, IpReason as IP, NatReason as NAT, NeighbourRef, NeighReason as N, NetfilterReason as NF, NftRuleRef,
                        Outcome, OutcomeReason as O, Reason, RouteReason as R, RouteRef, RuleRef,
                        SocketReason as S, TunReason, VethReason, VxlanReason as VX)
from ..packet import ICMP, IPv4
from ..trace import Ended, Hop, Trace


class Facts:
    """A decision's facts by name: `f.dev` is `decision.fact("dev")`."""

    def __init__(self, facts: tuple[tuple[str, Any], ...]):
        self.__dict__.update(facts)

    def __getattr__(self, name: str) -> Any:     # only for the type checker: every fact is set in __init__
        raise AttributeError(name)


Writer = Callable[[Any, Facts], str]


# ------------------------------------------------------------------------- what records name
def rule_where(ref: RuleRef) -> str:
    """Where ipt_do_table met a rule: `nat PREROUTING: KUBE-SERVICES -> KUBE-SVC-X rule 2 "comment"`
    (the chains jumped through, or the rule's own chain)."""
    chains = " -> ".join(ref.path[1:]) if len(ref.path) > 1 else ref.chain
    where = f"{ref.table} {ref.hook}: {chains} rule {ref.rule}"
    return where + f' "{ref.comment}"' if ref.comment else where


def target_text(ref: RuleRef) -> str:
    """A rule's target and the options that change what it does (`REJECT --reject-with
    icmp-port-unreachable`, `MASQUERADE --random-fully`); the NAT address itself is told as the
    change it made, old -> new."""
    options = ref.target_options
    if ref.target in ("DNAT", "SNAT") and options[:1] in (("--to-destination",), ("--to-source",)):
        options = options[2:]
    return " ".join((ref.target, *options))


def nft_where(ref: NftRuleRef) -> str:
    """Where nft_do_chain met a rule: `ip kube-proxy PREROUTING: nat-prerouting -> services handle
    54` (the chains jumped through from the base chain, or the rule's own chain, and the rule's
    handle as `nft -a list ruleset` prints it)."""
    chains = " -> ".join(ref.path) if len(ref.path) > 1 else ref.chain
    return f"{ref.family} {ref.table} {ref.hook}: {chains} handle {ref.handle}"


def nft_rule_text(ref: NftRuleRef) -> str:
    """`ip kube-proxy ... handle 54 [RULE]: VERDICT`, and the set element that decided, if any."""
    text = f"{nft_where(ref)} [{ref.text}]: {ref.verdict}"
    if ref.element:
        text += f" (element {ref.element}" + (f" of @{ref.set_name})" if ref.set_name else ")")
    return text


def nat_rule(d: Any) -> tuple[str, str]:
    """(where, action) of the rule behind a NAT binding, iptables' or nftables': the target or
    NAT statement and the options that change what it does (the address itself is told as the
    change it made)."""
    nft = d.consulted_of(NftRuleRef)
    if nft:
        ref = nft[0]
        stmt = next((s for s in ref.statements if s.split()[0] in ("dnat", "snat", "masquerade")), "")
        words = stmt.split()
        return nft_where(ref), (words[0] if words[:1] in (["dnat"], ["snat"]) else stmt)
    rule = _one(d, RuleRef)
    return rule_where(rule), target_text(rule)


def mark_text(ref: RuleRef) -> str:
    """MARK's (value, mask) as the operation iptables was asked for (libxt_MARK.c keeps them as
    --set-xmark value/mask)."""
    value_text, _, mask_text = ref.target_options[-1].partition("/")
    value, mask = int(value_text, 0), int(mask_text or "0xffffffff", 0)
    if mask == 0xFFFFFFFF:
        return f"MARK set {value:#x}"
    if value == mask:
        return f"MARK or {value:#x}"
    if mask == 0:
        return f"MARK xor {value:#x}"
    if value == 0:
        return f"MARK and {~mask & 0xFFFFFFFF:#x}"
    return f"MARK --set-xmark {value:#x}/{mask:#x}"


def neighbour_line(n: NeighbourRef) -> str:
    """A neighbour entry as `ip neigh` prints it."""
    if n.lladdr and n.state not in ("FAILED", "INCOMPLETE"):
        return f"{n.ip} dev {n.dev} lladdr {n.lladdr} {n.state}"
    return f"{n.ip} dev {n.dev} {n.state}"


def route_get_line(dst: str, ref: RouteRef) -> str:
    """What `ip route get DST` answers with the route `ref`."""
    if ref.type == "local":
        return f"local {dst} dev lo src {ref.src}"
    via = f" via {ref.via}" if ref.via else ""
    src = f" src {ref.src}" if ref.src else ""
    return f"{dst}{via} dev {ref.dev}{src}"


def packet_line(ip: IPv4) -> str:
    """`src > dst` and the transport header's summary."""
    return f"{ip.src} > {ip.dst} {ip.payload.summary() if not isinstance(ip.payload, bytes) else ''}".rstrip()


def icmp_line(itype: int, code: int) -> str:
    """An ICMP error as the trace tables print it: `ICMP destination unreachable code 3`."""
    return ICMP(itype, code).summary()


# what icmp_send's error is, by (type, code), as the walk's callers name them
_ICMP_ERRORS = {(3, 0): "network unreachable", (3, 1): "host unreachable", (3, 3): "port unreachable",
                (3, 4): "fragmentation needed", (11, 0): "time exceeded"}

# strerror(3) of the errors a send can fail with
STRERROR = {"EINVAL": "Invalid argument", "EHOSTUNREACH": "No route to host",
            "ENETUNREACH": "Network is unreachable"}

# who reassembles, by the function that holds the fragments
_REASSEMBLER = {"ip_defrag": "reassembly", "nf_defrag_ipv4": "conntrack's defragmentation (nf_defrag_ipv4)"}


def _one(d: Any, kind: type) -> Any:
    return d.consulted_of(kind)[0]


def _change(d: Any, layer: str, name: str) -> FieldChange:
    change = d.change(layer, name)
    assert change is not None, (d, layer, name)
    return change


def _ct(d: Any) -> ConntrackRef:
    return _one(d, ConntrackRef)


def _conn(ref: ConntrackRef) -> str:
    """`tcp 10.244.0.2:1000 -> 10.244.1.2:8080`: a connection by its original tuple."""
    return f"{ref.proto} {ref.original}"


# ------------------------------------------------------------------------- conntrack details
def _tcp_state(d: Any, f: Facts) -> str:
    notes = [f.old if f.new == f.old else f"{f.old} -> {f.new}"]
    if f.assured:
        notes.append("now ASSURED")
    return f" ({', '.join(notes)})"


def _ct_head(d: Any) -> str:
    ref = _ct(d)
    return f"conntrack: {'reply of ' if ref.direction == 'reply' else ''}{_conn(ref)}"


def _nat_rewrite(d: Any, f: Facts) -> str:
    ref = _ct(d)
    reply = ref.direction == "reply"
    if f.manip == "SRC":
        what = ("un-DNAT source to " if reply else "SNAT source to ") + f.to
    else:
        what = ("un-SNAT destination to " if reply else "DNAT destination to ") + f.to
    return f"{_ct_head(d)}, {what}"


def _nat_icmp(d: Any, f: Facts) -> str:
    ref = _ct(d)
    reply = ref.direction == "reply"
    if f.manip == "SRC":
        prefix = "un-DNAT" if reply else "SNAT"
        what = f"source to {f.to}, and the quoted packet's destination to {f.quoted}"
    else:
        prefix = "un-SNAT" if reply else "DNAT"
        what = f"destination to {f.to}, and the quoted packet's source to {f.quoted}"
    return f"conntrack: icmp error related to {_conn(ref)}, {prefix} {what}"


def _nat_binding(d: Any, f: Facts) -> str:
    where, action = nat_rule(d)
    side = "source" if f.manip == "SRC" else "destination"
    change = f"{f.old} -> {f.new}" if f.old != f.new else f"{f.old} unchanged"
    return f"{where}: {action}, {side} {change}"


def _no_source(d: Any, f: Facts) -> str:
    where, action = nat_rule(d)
    return f"{where}: {action.split()[0]} finds no source address ({f.error}): packet dropped"


def _nft_mark(d: Any, f: Facts) -> str:
    r, c = _one(d, NftRuleRef), _change(d, "skb", "mark")
    then = "" if r.verdict == "continue" else f", {r.verdict}"
    return f"{nft_where(r)} [{r.text}]: mark {c.old:#x} -> {c.new:#x}{then}"


def _defrag_follows(d: Any, f: Facts) -> str:
    text = f"netfilter {f.hook}: fragment at offset {f.offset} follows its first fragment: {d.verdict.upper()}"
    return text + (f", now {f.src} -> {f.dst}" if f.rewritten else "")


def _fragmented(d: Any, f: Facts) -> str:
    return f"{f.size} bytes exceed {f.dev}'s MTU {f.mtu} and DF is clear: {f.count} fragments"


def _sockets_connect(d: Any, f: Facts) -> str:
    return f"{f.proto} socket in {f.netns}: {packet_line(f.packet)} (source {f.source} from `ip route get {f.dst}`)"


# ------------------------------------------------------------------------- the table
SENTENCES: dict[tuple[str, Reason], Writer] = {
    # net/core/dev.c (walk.py)
    ("dev_queue_xmit", DEV.DOWN_TX): lambda d, f: f"{f.dev} is down: the frame is not sent",
    ("dev_queue_xmit", DEV.NO_CABLE): lambda d, f: f"{f.dev} ({f.kind}) has no cable",
    ("netif_receive_skb", DEV.DOWN_RX): lambda d, f: f"{f.dev} is down",
    ("eth_type_trans", DEV.OTHERHOST): lambda d, f: (
        f"destination MAC {f.dst} is not {f.dev}'s ({f.mac}): not for this host (PACKET_OTHERHOST)"),
    ("__netif_receive_skb_core", DEV.NO_HANDLER): lambda d, f: (
        f"EtherType {f.ethertype:#06x} has no handler" + (" here" if f.here else "")),

    # bridge.py
    ("br_fdb_update", B.LEARNED): lambda d, f: (
        lambda e: f"{e.device}: learned {e.mac} on port {e.port}")(_one(d, FdbRef)),
    ("br_nf_pre_routing_finish", B.TO_IP_STACK): lambda d, f: (
        f"br_netfilter: the new destination {f.dst} is not on {f.bridge}: the frame goes up to the IP stack "
        f"to be routed"),
    ("br_nf_pre_routing_finish_bridge", B.RESOLVE_DNAT_TARGET): lambda d, f: (
        f"br_netfilter: DNAT target {f.target} is on {f.bridge} too and has no neighbour entry: {f.bridge} "
        f"resolves it, then bridges the packet"),
    ("br_nf_pre_routing_finish", B.BRIDGE_DNAT): lambda d, f: (
        f"br_netfilter: DNAT target {f.target} is on {f.bridge} too: bridged to {f.lladdr}, not routed"),
    ("br_flood", B.BROADCAST): lambda d, f: f"{f.bridge}: broadcast, flooded to every port and passed up to {f.bridge}",
    ("br_pass_frame_up", B.OWN_MAC): lambda d, f: (
        f"{f.bridge}: destination {f.dst} is the bridge's own MAC: up to its IP stack"),
    ("br_flood", B.UNKNOWN_UNICAST): lambda d, f: f"{f.bridge}: {f.dst} is not in the FDB: flooded as unknown unicast",
    ("br_forward", B.HAIRPIN_OFF): lambda d, f: (
        f"{f.bridge}: {f.dst} is on the ingress port {f.port} and hairpin is off"),
    ("br_forward", B.FDB): lambda d, f: f"{f.bridge}: FDB {f.dst} -> port {f.port}",
    ("br_nf_dev_queue_xmit", B.REFRAGMENT): lambda d, f: (
        f"br_netfilter: reassembled by conntrack, cut back to its largest fragment ({f.frag_max} bytes): "
        f"{f.count} fragments"),
    ("is_skb_forwardable", B.TOO_BIG): lambda d, f: (
        f"{f.bridge}: a {f.size}-byte packet does not fit port {f.port}'s MTU {f.mtu}: dropped (is_skb_forwardable)"),
    ("br_flood", B.HAIRPIN): lambda d, f: (
        f"{f.bridge}: hairpin on {f.port}: the flood goes back out of the ingress port"),
    ("br_flood", B.NO_PORT): lambda d, f: f"{f.bridge}: no port to flood to",
    ("br_nf_pre_routing_finish_bridge_slow", B.DNAT_RESOLVED): lambda d, f: (
        f"br_netfilter: the bridged DNAT packet's neighbour is resolved: it is bridged as received on {f.port}, "
        f"with its own source MAC {f.src}"),
    ("br_dev_xmit", B.HOST_BROADCAST): lambda d, f: f"{f.bridge}: broadcast from the host, flooded to every port",
    ("br_dev_xmit", B.HOST_UNKNOWN): lambda d, f: f"{f.bridge}: {f.dst} is not in the FDB: flooded",
    ("br_dev_xmit", B.FDB): lambda d, f: f"{f.bridge}: FDB {f.dst} -> port {f.port}",
    ("br_flood", B.LAZY_NODES): lambda d, f: (
        f"{f.bridge}: {f.missing} of {f.nodes} nodes are not built (lazy cluster) and are left out of the "
        f"flood; their NICs would ignore it"),
    ("br_flood", B.LAZY_PODS): lambda d, f: (
        f"{f.bridge}: {f.missing} of the {f.pods} pods on {f.node} are not built (lazy cluster) and are left "
        f"out of the flood; each would ignore it"),

    # arp.py: arp_process, arp_solicit and the neighbour states
    ("arp_process", A.NOT_FOR_US): lambda d, f: f"ARP request for {f.target} is not for this host: ignored",
    ("arp_process", A.REPLY): lambda d, f: (
        f"ARP: {f.target} is an address of this host: replying is-at {f.mac}; "
        f"neighbour {f.sender} lladdr {f.sender_mac} STALE on {f.dev}"),
    ("arp_process", A.UNSOLICITED): lambda d, f: (
        f"unsolicited ARP reply from {f.sender}: no entry to update (arp_accept=0)"),
    ("arp_process", A.KEEP): lambda d, f: (
        lambda n: f"ARP reply from {n.ip}: the entry is {n.state} and stays")(_one(d, NeighbourRef)),
    ("arp_process", A.MARTIAN_SENDER): lambda d, f: (
        f"ARP request from {f.sender} on {f.dev}: a 127/8 sender is a martian here (route_localnet 0): no reply"),
    ("arp_solicit", A.SOLICIT): lambda d, f: (
        f"ARP: who-has {f.target} tell {f.sender} (no neighbour entry on {f.dev})"),
    ("neigh_update", N.REACHABLE): lambda d, f: (
        lambda n: f"ARP reply: neighbour {n.ip} lladdr {n.lladdr} REACHABLE on {n.dev}")(_one(d, NeighbourRef)),
    ("neigh_update", N.QUEUED_SENT): lambda d, f: (
        lambda n: f"neighbour {n.ip} resolved to {n.lladdr}: the queued packet is sent")(_one(d, NeighbourRef)),
    ("neigh_invalidate", N.FAILED): lambda d, f: (
        lambda n: f"neighbour {n.ip} on {n.dev} FAILED: no ARP reply after {f.probes} requests")(
            _one(d, NeighbourRef)),
    ("neigh_resolve_output", N.RESOLVED): lambda d, f: f"neighbour: {neighbour_line(_one(d, NeighbourRef))}",
    ("arp_constructor", N.NOARP): lambda d, f: (
        f"{f.dst} is a {f.kind} address: no ARP, destination MAC {f.mac} (arp_constructor)"),
    ("__neigh_event_send", N.NEW_INCOMPLETE): lambda d, f: (
        lambda n: f"neighbour: no entry for {n.ip} on {n.dev}: INCOMPLETE, packet queued")(_one(d, NeighbourRef)),
    ("__neigh_event_send", N.INCOMPLETE): lambda d, f: (
        lambda n: f"neighbour: {n.ip} on {n.dev} is INCOMPLETE: packet queued")(_one(d, NeighbourRef)),

    # ip_input.py, ip_forward.py, ip_output.py: routing decisions
    ("ip_route_input", R.FORWARD): lambda d, f: f"route: {_one(d, RouteRef).route}",
    ("fib_validate_source", R.MARTIAN): lambda d, f: (
        f"martian source {f.src} on {f.dev}: the source is an address of {f.netns} (accept_local=0)"),
    ("ip_route_input_slow", R.MARTIAN_DESTINATION): lambda d, f: (
        f"martian destination {f.dst} from {f.src} on {f.dev}: 127/8 from outside, and route_localnet is 0"),
    ("ip_route_input_slow", R.MARTIAN): lambda d, f: (
        f"martian source {f.src} (to {f.dst}) on {f.dev}: 127/8 from outside, and route_localnet is 0"),
    ("ip_route_input_slow", R.BROADCAST_LOCAL): lambda d, f: (
        f"{f.dst} is a broadcast address here: delivered locally, never forwarded"),
    ("ip_route_input_mc", R.BROADCAST_LOCAL): lambda d, f: (
        f"{f.dst} is the all-hosts group every IPv4 device joins: delivered locally"),
    ("ip_route_input_mc", R.NOT_MEMBER): lambda d, f: (
        f"{f.dst} is a multicast group {f.dev} has not joined: dropped (no multicast routing)"),
    ("ip_route_input_slow", R.NOT_FORWARDING): lambda d, f: (
        f"{f.dst} is not an address of {f.netns} and net.ipv4.ip_forward is 0: the packet is not forwarded"),
    ("ip_error", R.NO_ROUTE): lambda d, f: f"no route to {f.dst}: network unreachable",
    ("ip_error", R.UNREACHABLE): lambda d, f: f"route {_one(d, RouteRef).route}: host unreachable",
    ("ip_error", R.BLACKHOLE): lambda d, f: f"route {_one(d, RouteRef).route}: discarded silently",
    ("ip_route_output_key", R.NO_ROUTE): lambda d, f: f"no route to {f.dst} in {f.netns}: Network is unreachable",
    ("ip_route_output_key", R.LOCAL_ERROR): lambda d, f: (
        f"route {_one(d, RouteRef).route}: {STRERROR[f.errno]}"),
    ("ip_route_output_key", R.OUTPUT): lambda d, f: f"route: {route_get_line(f.dst, _one(d, RouteRef))}",
    ("__ip_rt_update_pmtu", R.PMTU_LEARNED): lambda d, f: (
        f"route exception: the path MTU to {f.dst} drops {f.was} -> {f.mtu} for {f.expires} s "
        f"(net.ipv4.route.mtu_expires){'; locked at min_pmtu, DF no longer set' if f.locked else ''}"),
    ("ip_route_output_key", R.LOOPBACK_SOURCE): lambda d, f: (
        f"{f.src} -> {f.dst}: a 127/8 source may not leave by {f.dev} (route_localnet 0): {STRERROR[f.errno]}"),
    ("ip_route_me_harder", R.LOOPBACK_SOURCE): lambda d, f: (
        f"after NAT, {f.src} -> {f.dst}: a 127/8 source may not leave by {f.dev} (route_localnet 0): "
        f"{STRERROR[f.errno]}"),
    ("ip_route_me_harder", R.NO_ROUTE): lambda d, f: f"no route to {f.dst} after NAT",
    ("ip_route_me_harder", R.REROUTED): lambda d, f: (
        f"rerouted after DNAT: {route_get_line(f.dst, _one(d, RouteRef))}"),

    # ip_forward.py, ip_output.py, ip_fragment.py
    ("ip_forward", IP.TTL_EXCEEDED): lambda d, f: f"TTL {f.ttl} would reach 0 when forwarding: time exceeded",
    ("ip_forward", IP.FRAG_NEEDED): lambda d, f: (
        f"{f.size} bytes with DF set exceed {f.dev}'s MTU {f.mtu}: ICMP fragmentation needed (mtu {f.mtu})"),
    ("ip_forward", IP.FORWARDED): lambda d, f: (
        lambda c: f"forwarded: TTL {c.old} -> {c.new}")(_change(d, "ipv4", "ttl")),
    ("nf_nat_icmp_reply_translation", IP.REDIRECT_ON_NAT): lambda d, f: (
        f"it leaves by {f.dev}, the device it came in on, from {f.src} on {f.dev}'s subnet: ip_forward asks for "
        f"an ICMP redirect, which nf_nat drops at OUTPUT (a NATed connection): IpOutDiscards +1, nothing sent"),
    ("ip_fragment", IP.EMSGSIZE): lambda d, f: (
        f"{f.size} bytes with DF set exceed {f.dev}'s MTU {f.mtu}: the socket gets EMSGSIZE"),
    ("ip_fragment", IP.DF_TOO_BIG): lambda d, f: f"{f.size} bytes exceed {f.dev}'s MTU {f.mtu}",
    ("ip_do_fragment", IP.FRAGMENTED): _fragmented,
    ("ip_do_fragment", IP.REFRAGMENTED): lambda d, f: (
        f"reassembled by conntrack, cut back to its largest fragment ({f.frag_max} bytes): {f.count} fragments"),
    **{(function, IP.HOLD): (lambda d, f: f"fragment at offset {f.offset} held for {_REASSEMBLER[d.function]}")
       for function in _REASSEMBLER},
    **{(function, IP.REASSEMBLED): (lambda d, f: (
        f"{_REASSEMBLER[d.function]}: {f.count} fragments make one packet of {f.size} bytes"))
       for function in _REASSEMBLER},

    # icmp.py
    ("icmp_send", IcmpReason.ERROR): lambda d, f: (
        f"ICMP {_ICMP_ERRORS[f.type, f.code]} from {f.src} to {f.dst}"),
    ("icmp_send", IcmpReason.REJECTED): lambda d, f: f"ICMP rejected from {f.src} to {f.dst}",
    ("icmp_send", IcmpReason.RATELIMITED): lambda d, f: (
        f"no {icmp_line(f.type, f.code)} to {f.dst}: the rate limit for it is spent "
        f"(net.ipv4.icmp_ratelimit = {f.ratelimit} ms)"),

    # walk.py (NF_HOOK), netfilter/ip_tables.py, netfilter/core.py, netfilter/nft_eval.py
    ("nf_hook_slow", NF.HOOK_VERDICT): lambda d, f: f"{f.hook}: {d.verdict.upper()}",
    ("ipt_do_table", NF.POLICY): lambda d, f: (
        lambda r: f"{r.table} {r.hook}: no rule decided, policy {r.target}")(_one(d, RuleRef)),
    ("ipt_do_table", NF.MARK): lambda d, f: (
        lambda r, c: f"{rule_where(r)}: {mark_text(r)}, mark {c.old:#x} -> {c.new:#x}")(
            _one(d, RuleRef), _change(d, "skb", "mark")),
    ("ipt_do_table", NF.REJECT): lambda d, f: (
        lambda r: f"{rule_where(r)}: {target_text(r)}")(_one(d, RuleRef)),
    ("ipt_do_table", NF.RULE): lambda d, f: (lambda r: f"{rule_where(r)}: {r.target}" if r.target else
                                             f"{rule_where(r)}: matches, has no target: the next rule is tested")(
                                                 _one(d, RuleRef)),
    ("nft_do_chain", NF.RULE): lambda d, f: nft_rule_text(_one(d, NftRuleRef)),
    ("nft_do_chain", NF.MARK): _nft_mark,
    ("nft_do_chain", NF.REJECT): lambda d, f: (
        lambda r: f"{nft_where(r)} [{r.text}]: rejected, the packet is dropped")(_one(d, NftRuleRef)),
    ("nft_do_chain", NF.POLICY): lambda d, f: (
        lambda r: f"{r.family} {r.table} {r.hook}: base chain {r.chain}: no rule decided, policy {r.verdict}")(
            _one(d, NftRuleRef)),
    ("ipv4_conntrack_defrag", NF.UNSEEN_FRAGMENT): lambda d, f: (
        f"netfilter {f.hook}: fragment at offset {f.offset} of an unseen datagram, passed untouched"),
    ("ipv4_conntrack_defrag", NF.FOLLOWS_FIRST): _defrag_follows,

    # conntrack.py
    ("nf_conntrack_destroy", CT.DISCARD): lambda d, f: (
        f"conntrack: packet {'dropped' if f.hook_verdict == 'DROP' else 'rejected'}, unconfirmed "
        f"{_ct(d).proto} entry {_ct(d).original} discarded"),
    ("nf_conntrack_in", CT.NOT_MODELLED): lambda d, f: (
        f"conntrack: {f.proto} is not modelled by netsim's conntrack: packet not tracked (ctstate INVALID)"),
    ("nf_conntrack_tcp_packet", CT.REOPEN): lambda d, f: (
        lambda c: f"conntrack: SYN reopens {_conn(c)} ({c.state}), old entry removed")(_ct(d)),
    ("nf_conntrack_in", CT.INVALID_TCP): lambda d, f: (
        f"conntrack: {_conn(_ct(d))} [{f.flags}] belongs to no connection and cannot start one: INVALID, "
        f"not tracked"),
    ("nf_conntrack_in", CT.INVALID_ICMP): lambda d, f: (
        f"conntrack: icmp type {f.type} from {f.src} to {f.dst} answers no tracked request: INVALID, not tracked"),
    ("nf_conntrack_in", CT.NEW): lambda d, f: (
        f"conntrack: new {_ct(d).proto} entry {_ct(d).original}" + (f" ({f.tcp_state})" if f.tcp_state else "")),
    ("nf_conntrack_in", CT.TRACKED): lambda d, f: _ct_head(d),
    ("nf_conntrack_in", CT.TCP_INVALID): lambda d, f: (
        f"{_ct_head(d)}: [{f.flags}] is invalid in state {f.old}: INVALID, the packet loses its conntrack entry"),
    ("nf_conntrack_in", CT.TCP_IGNORED): lambda d, f: (
        f"{_ct_head(d)} ({f.old}, [{f.flags}] ignored by the state machine)"),
    ("nf_conntrack_in", CT.TCP_RST_REMOVED): lambda d, f: f"{_ct_head(d)} ([{f.flags}] before any reply: entry removed)",
    ("nf_conntrack_in", CT.TCP_STATE): lambda d, f: _ct_head(d) + _tcp_state(d, f),
    ("nf_conntrack_icmpv4_error", CT.SHORT_QUOTE): lambda d, f: (
        f"conntrack: icmp error from {f.src} quotes too little of a packet: INVALID"),
    ("nf_conntrack_icmpv4_error", CT.NOT_TRACKED): lambda d, f: (
        f"conntrack: icmp error from {f.src} is about {_conn(_ct(d))}, which is not tracked: INVALID"),
    ("nf_conntrack_icmpv4_error", CT.RELATED): lambda d, f: (
        lambda c: f"conntrack: icmp error from {f.src} is RELATED to {_conn(c)} ({c.direction} direction)")(_ct(d)),
    ("nf_ct_attach", CT.RELATED): lambda d, f: (
        lambda c: f"conntrack: the icmp error from {f.src} carries the connection of the packet it quotes, RELATED "
                  f"to {_conn(c)} ({c.direction} direction; the entry is not in the table yet)")(_ct(d)),

    # netfilter/nat.py
    ("nf_nat_icmp_reply_translation", NAT.ICMP_ERROR): _nat_icmp,
    ("nf_nat_packet", NAT.REWRITE): _nat_rewrite,
    ("nf_nat_masquerade_ipv4", NAT.NO_SOURCE): _no_source,
    ("nf_nat_setup_info", NAT.NO_FREE_TUPLE): lambda d, f: (
        f"nat {f.hook}: no free {'id' if _ct(d).proto == 'icmp' else 'port'} for {_ct(d).original}: packet dropped"),
    ("nf_nat_inet_fn", NAT.BINDING): _nat_binding,
    ("nf_nat_masquerade_ipv4", NAT.BINDING): _nat_binding,
    ("nft_nat_eval", NAT.BINDING): _nat_binding,
    ("nf_nat_alloc_null_binding", NAT.NULL_BINDING_CLASH): lambda d, f: (
        f"nat {f.hook}: {_ct(d).original} would clash with another connection, source port remapped: "
        f"{f.old} -> {f.new}"),

    # vxlan.py
    ("vxlan_xmit", VX.NO_FDB): lambda d, f: (
        lambda e: f"{e.device}: no FDB entry for {e.mac} and no default destination: the kernel drops the frame "
                  f"(learning is off)")(_one(d, FdbRef)),
    ("vxlan_xmit", VX.ENCAPSULATED): lambda d, f: (
        lambda e: f"{e.device}: FDB {e.mac} dst {e.dst}: encapsulated in UDP {f.sport} -> {f.dport}, VNI {f.vni}, "
                  f"outer TTL {f.ttl}, DF clear")(_one(d, FdbRef)),
    ("vxlan_rcv", VX.NOT_VXLAN): lambda d, f: f"UDP {f.port}: not a valid VXLAN header (I flag clear)",
    ("vxlan_rcv", VX.WRONG_VNI): lambda d, f: f"VXLAN VNI {f.vni} does not match {f.dev} (VNI {f.dev_vni})",
    ("vxlan_rcv", VX.DECAPSULATED): lambda d, f: (
        f"UDP socket on port {f.port}: VXLAN VNI {f.vni}, decapsulated into {f.dev}"),

    # tun.py, veth.py
    ("tun_net_xmit", TunReason.NOT_OPEN): lambda d, f: f"nothing holds {f.dev} open: the packet is discarded",
    ("veth_xmit", VethReason.NO_PEER): lambda d, f: f"the peer of {f.dev} is missing or down",
    ("is_skb_forwardable", VethReason.TOO_BIG): lambda d, f: (
        f"the peer {f.peer} drops it: a {f.size}-byte packet exceeds its MTU {f.mtu} (is_skb_forwardable; "
        f"counted in its rx_dropped, no ICMP)"),

    # sockets.py
    ("connect", S.CONNECT): _sockets_connect,
    ("icmp_echo", S.ECHO_ANSWER): lambda d, f: (
        f"ICMP echo request for {f.dst}: the kernel answers with an echo reply"),
    ("icmp_unreach", S.ICMP_REPORTED): lambda d, f: (
        f"{icmp_line(f.type, f.code)} from {f.src}: reported to the sending socket"),
    ("icmp_rcv", S.ICMP_NO_SOCKET): lambda d, f: f"{f.icmp.summary()}: no socket waits for it",
    ("tcp_v4_rcv", S.RST_IGNORED): lambda d, f: "RST for no connection: ignored",
    ("tcp_v4_send_reset", S.NO_LISTENER): lambda d, f: f"TCP port {f.port}: nothing listens; the kernel answers RST",
    ("udp_rcv", S.UDP_ANSWER): lambda d, f: f"UDP socket on port {f.port} receives {f.size} bytes and answers",
    ("udp_rcv", S.UDP_NO_SOCKET): lambda d, f: (
        f"UDP port {f.port}: no socket; the kernel answers ICMP port unreachable"),
    ("ip_protocol_deliver_rcu", S.NO_PROTOCOL): lambda d, f: f"protocol {f.proto}: no handler",
    ("sendmsg", S.ANSWER_SENT): lambda d, f: f"{f.netns} answers: {packet_line(f.packet)}",
    ("tcp_conn_request", S.SYN_ACCEPTED): lambda d, f: (
        f"TCP listener on port {f.port}: SYN accepted, answering SYN-ACK"),
    ("tcp_rcv_established", S.DATA_ANSWERED): lambda d, f: (
        f"TCP connection on port {f.port} receives {f.size} bytes and answers"),
    ("tcp_rcv_state_process", S.HANDSHAKE_DONE): lambda d, f: (
        f"TCP connection on port {f.port}: ACK completes the handshake"),
    ("ping_rcv", S.ECHO_REPLY): lambda d, f: "echo reply delivered to the ping socket",
    ("udp_rcv", S.UDP_REPLY): lambda d, f: "UDP reply delivered to the client socket",
    ("tcp_reset", S.REFUSED): lambda d, f: "RST: connect() fails with Connection refused",
    ("tcp_rcv_synsent_state_process", S.SYNACK): lambda d, f: (
        "SYN-ACK delivered to the connecting socket; the trace stops at the reply"),
    ("tcp_rcv_synsent_state_process", S.SYNACK_SENDS_DATA): lambda d, f: (
        "SYN-ACK: the connection is established; the client sends ACK and its data"),
    ("tcp_rcv_established", S.READ): lambda d, f: f"the client socket reads {len(f.data)} bytes: {f.data!r}",
    ("tcp_rcv_established", S.DELIVERED): lambda d, f: "taken by its connection: nothing to read",
    ("sendmsg", S.SENT): lambda d, f: f"{f.netns} sends: {packet_line(f.packet)}",
    ("udp_rcv", S.UDP_DELIVERED): lambda d, f: f"UDP socket on port {f.port} receives {f.size} bytes",
    ("tcp_rcv_synsent_state_process", S.SYNACK_ACKED): lambda d, f: (
        "SYN-ACK: the connection is established (connect() returns) and the kernel acknowledges it"),
    ("tcp_rcv_established", S.STREAM_READ): lambda d, f: (
        f"TCP connection on port {f.port}: {f.size} bytes in order, read by the program"),
    ("tcp_fin", S.FIN): lambda d, f: (
        f"TCP connection on port {f.port}: FIN, the peer closed its side (read() returns 0)"),
    ("tcp_reset", S.RESET): lambda d, f: (
        f"RST: the connection on port {f.port} is reset (Connection reset by peer)"),
    ("icmp_unreach", S.ICMP_SOFT): lambda d, f: (
        f"{icmp_line(f.type, f.code)} from {f.src}: taken by the socket that sent the packet, which is not told "
        f"(a soft error, or a connection not yet accepted)"),
    ("icmp_echo", S.ECHO_IGNORED): lambda d, f: (
        f"ICMP echo request for {f.dst}, a broadcast or multicast address: ignored "
        f"(net.ipv4.icmp_echo_ignore_broadcasts = 1)"),
    ("__ip_append_data", S.EMSGSIZE): lambda d, f: (
        f"a {f.size}-byte packet with DF asked for does not fit the path MTU {f.mtu} (or 65535): "
        f"the send fails with EMSGSIZE (Message too long)"),
    ("udp_sendmsg", S.BROADCAST_REFUSED): lambda d, f: (
        f"{f.dst} is a broadcast address and the socket has no SO_BROADCAST: the send fails with EACCES"),
    ("raw_sendmsg", S.BROADCAST_REFUSED): lambda d, f: (
        f"{f.dst} is a broadcast address and the socket has no SO_BROADCAST: the send fails with EACCES"),
    ("tcp_v4_connect", S.NOT_UNICAST): lambda d, f: (
        f"TCP cannot connect to {f.dst}, a broadcast or multicast address: connect() fails with ENETUNREACH"),
    ("tcp_v4_mtu_reduced", S.MSS_REDUCED): lambda d, f: (
        f"TCP connection on port {f.port}: path MTU {f.mtu}, the MSS drops to {f.mss}; what was sent too long "
        f"goes again, cut to size"),

    # flannel.py (flanneld's udp backend)
    ("arpResponder", MetallbReason.ANNOUNCE): lambda d, f: (
        f"MetalLB's speaker on {f.node} (userspace, a packet socket on {f.dev}): {f.vip} is service "
        f"{f.namespace}/{f.service}'s load-balancer IP and {f.node} won its election: replying is-at {f.mac} to {f.sender}"),
    ("tun_to_udp", FL.NO_ROUTE): lambda d, f: f"flanneld: no route for {f.dst} in its table: ICMP net unreachable",
    ("tun_to_udp", FL.ENCAPSULATED): lambda d, f: (
        lambda c: f"flanneld reads the packet from {f.tun}, decrements TTL {c.old} -> {c.new}, sends it in UDP to "
                  f"{f.peer}:{f.port}")(_change(d, "ipv4", "ttl")),
    ("sendto", FL.SEND): lambda d, f: f"flanneld's UDP socket {f.src}:{f.port} sends to {f.peer}:{f.port}",
    ("udp_to_tun", FL.NOT_IPV4): lambda d, f: "flanneld: UDP payload is not an IPv4 packet",
    ("udp_to_tun", FL.DECAPSULATED): lambda d, f: (
        lambda c: f"flanneld receives on port {f.port}, decrements TTL {c.old} -> {c.new}, writes the packet to "
                  f"{f.tun}")(_change(d, "ipv4", "ttl")),
    ("decrement_ttl", FL.TTL_ZERO): lambda d, f: f"flanneld: TTL {f.ttl} reaches 0: discarded",

    # netsim.lab: a frame captured on a real kernel
    ("packet_rcv", CaptureReason.CAPTURED): lambda d, f: f"captured at {f.time:.9f}",
}


def sentence(d: Decision) -> str:
    """The sentence that tells one decision."""
    return SENTENCES[d.function, d.reason](d, Facts(d.facts))


# ------------------------------------------------------------------------- outcomes
def _no_answer(o: Any, f: Facts) -> str:
    return "; ".join(["no answer reached the sender"]
                     + [f"{verdict}: {sentence(reason)}" for verdict, reason in f.ended])


OUTCOMES: dict[Reason, Writer] = {
    O.NO_ROUTE: lambda o, f: f"connect: Network is unreachable (no route to {f.dst} in {f.netns})",
    O.ROUTE_ERROR: lambda o, f: f"connect: {STRERROR[o.errno]} (route {f.route} in {f.netns})",
    O.NO_ANSWER: _no_answer,
    O.ICMP_ERROR: lambda o, f: f"error: {icmp_line(*o.icmp)} from {o.peer}",
    O.ECHO_REPLY: lambda o, f: f"echo reply from {o.peer}",
    O.UDP_REPLY: lambda o, f: f"udp reply from {o.peer}",
    O.RST: lambda o, f: f"connection refused by {o.peer} (RST)",
    O.CONNECTED: lambda o, f: f"connected to {o.peer} (SYN-ACK)",
    O.RECEIVED: lambda o, f: f"received {f.size} bytes from {o.peer}",
}


def outcome_text(o: Outcome | str | None) -> str:
    """How the exchange ended, in one line (a trace that carries text instead of an Outcome,
    as the lab's kernel traces do, keeps its text)."""
    if not isinstance(o, Outcome):
        return o or ""
    return OUTCOMES[o.reason](o, Facts(o.facts))


# ------------------------------------------------------------------------- hops and traces
def explanation(hop: Hop) -> str:
    """The hop's decisions, one sentence each, joined by "; "."""
    return "; ".join(sentence(d) for d in hop.decisions)


def ended_text(e: Ended) -> str:
    """A copy that ended without a hop of its own: `dropped at node1/veth1: ...`."""
    return f"{e.verdict} at {e.where}: {sentence(e.reason)}"


def heading(trace: Trace) -> str:
    """The trace in one line: `<Trace 'title': 12 hops; connected to ...>`."""
    return f"<Trace {trace.title!r}: {len(trace.hops)} hops; {outcome_text(trace.outcome)}>"


__all__ = ["SENTENCES", "OUTCOMES", "Facts", "sentence", "outcome_text", "explanation", "ended_text", "heading",
           "rule_where", "target_text", "nft_where", "nft_rule_text", "nat_rule", "mark_text", "neighbour_line", "route_get_line", "packet_line", "icmp_line"]
