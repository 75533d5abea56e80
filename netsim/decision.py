"""What the kernel decided about a packet, as facts: records, not sentences.

Every step of the walk that decides something (a bridge's FDB lookup, a route lookup, a
netfilter rule, a conntrack rewrite, an encapsulation, a drop) leaves one `Decision` on the hop
where the kernel had the frame in hand. A decision names

- the subsystem (`Subsystem`) and the kernel function or hook it models (`br_forward`,
  `ip_forward`, `nf_nat_ipv4_fn`, `vxlan_xmit`, ...);
- why it decided what it did: a reason code (one `Reason` enum per subsystem, e.g.
  `BridgeReason.HAIRPIN_OFF`) and the named facts that go with it (addresses, device names,
  numbers: `decision.fact("dev")`);
- the objects it consulted: a route, a neighbour entry, an FDB entry, an iptables rule (table,
  hook, chain, rule number, matches, target and its options), an nftables rule (family, table,
  chain, handle, its expressions as nft prints them) or a conntrack entry;
- its verdict (`Verdict`);
- the header fields it changed, old -> new.

An exchange ends in an `Outcome`: what the socket that started it saw, with the error a real
client would get. Neither writes sentences: `netsim.views.sentences` turns a record into the
sentence the book, the CLI and the stepper print.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any, Union


class Subsystem(StrEnum):
    """The part of the kernel (or of the programs around it) that decided."""

    DEV = "dev"                  # net/core/dev.c: transmit, receive, protocol dispatch
    BRIDGE = "bridge"
    NEIGHBOUR = "neighbour"
    ARP = "arp"
    ROUTE = "route"
    IP = "ip"
    ICMP = "icmp"
    NETFILTER = "netfilter"
    CONNTRACK = "conntrack"
    NAT = "nat"
    VXLAN = "vxlan"
    TUN = "tun"
    VETH = "veth"
    SOCKET = "socket"
    FLANNEL = "flannel"          # flanneld's udp backend, a program in userspace
    METALLB = "metallb"          # MetalLB's speaker (layer 2 mode), a program in userspace
    LAB = "lab"                  # netsim.lab: a capture on a real kernel


class Verdict(StrEnum):
    """What a decision did with the packet (or the frame, or the entry)."""

    FORWARD = "forward"
    FLOOD = "flood"
    HAIRPIN = "hairpin"
    LEARN = "learn"
    UP = "up"                    # passed up to the host's IP stack
    BRIDGE = "bridge"            # bridged instead of routed
    RESOLVE = "resolve"
    DELIVER = "deliver"
    DROP = "drop"
    ACCEPT = "accept"
    REJECT = "reject"
    RETURN = "return"
    CONTINUE = "continue"        # a non-terminal rule (MARK): the next rule is tested
    JUMP = "jump"                # nftables: a rule jumped to another chain (nft monitor trace reports it)
    GOTO = "goto"
    QUEUE = "queue"
    SEND = "send"
    SOLICIT = "solicit"
    RESOLVED = "resolved"
    REPLY = "reply"
    IGNORE = "ignore"
    KEEP = "keep"
    REACHABLE = "reachable"
    OUTPUT = "output"
    HOLD = "hold"
    REASSEMBLE = "reassemble"
    FRAGMENT = "fragment"
    ENCAPSULATE = "encapsulate"
    DECAPSULATE = "decapsulate"
    DISCARD = "discard"
    REWRITE = "rewrite"
    DNAT = "dnat"
    SNAT = "snat"
    MASQUERADE = "masquerade"
    NEW = "new"                  # conntrack: the packet's ctstate, lower case
    ESTABLISHED = "established"
    RELATED = "related"
    INVALID = "invalid"
    REMOVE = "remove"
    ANSWER = "answer"
    REPORT = "report"
    RESET = "reset"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    CONNECTED = "connected"
    READ = "read"
    CAPTURE = "capture"


# A verdict by the upper-case name iptables and conntrack use for it (ACCEPT, DNAT, ESTABLISHED, ...).
VERDICT_OF: dict[str, Verdict] = {v.value.upper(): v for v in Verdict}


class OutcomeKind(StrEnum):
    """How an exchange ended for the socket that started it."""

    CONNECTED = "connected"
    ANSWERED = "answered"        # a UDP or ICMP reply arrived
    RECEIVED = "received"        # TCP data came back
    REFUSED = "refused"
    ICMP_ERROR = "icmp-error"
    TIMED_OUT = "timed-out"
    LOCAL_ERROR = "local-error"  # the send itself failed


class Reason(Enum):
    """Why a decision was taken: each subsystem has its own codes (a subclass)."""


class DevReason(Reason):
    DOWN_TX = "down-tx"                  # dev_queue_xmit: the device is down
    NO_CABLE = "no-cable"                # dev_queue_xmit: no transmit for this kind of device
    DOWN_RX = "down-rx"                  # netif_receive_skb: the device is down
    OTHERHOST = "otherhost"              # eth_type_trans: PACKET_OTHERHOST
    NO_HANDLER = "no-handler"            # no protocol handler for the EtherType


class BridgeReason(Reason):
    LEARNED = "learned"
    TO_IP_STACK = "to-ip-stack"          # br_netfilter: DNAT moved the destination off the bridge
    RESOLVE_DNAT_TARGET = "resolve-dnat-target"
    BRIDGE_DNAT = "bridge-dnat"
    BROADCAST = "broadcast"
    OWN_MAC = "own-mac"
    UNKNOWN_UNICAST = "unknown-unicast"
    HAIRPIN_OFF = "hairpin-off"
    FDB = "fdb"
    REFRAGMENT = "refragment"
    TOO_BIG = "too-big"
    HAIRPIN = "hairpin"
    NO_PORT = "no-port"
    DNAT_RESOLVED = "dnat-resolved"
    HOST_BROADCAST = "host-broadcast"
    HOST_UNKNOWN = "host-unknown"
    LAZY_NODES = "lazy-nodes"            # netsim's lazy cluster: nodes not built are left out
    LAZY_PODS = "lazy-pods"


class ArpReason(Reason):
    NOT_FOR_US = "not-for-us"
    MARTIAN_SENDER = "martian-sender"    # a request from 127/8 on a device without route_localnet
    REPLY = "reply"
    UNSOLICITED = "unsolicited"
    KEEP = "keep"
    SOLICIT = "solicit"


class NeighReason(Reason):
    REACHABLE = "reachable"              # an ARP reply updated the entry
    QUEUED_SENT = "queued-sent"
    FAILED = "failed"
    RESOLVED = "resolved"
    NEW_INCOMPLETE = "new-incomplete"
    INCOMPLETE = "incomplete"
    NOARP = "noarp"                      # arp_constructor: broadcast or multicast, no ARP


class RouteReason(Reason):
    FORWARD = "forward"
    MARTIAN = "martian"
    MARTIAN_DESTINATION = "martian-destination"   # 127/8 arriving from outside without route_localnet
    LOOPBACK_SOURCE = "loopback-source"  # a 127/8 source routed out of a device without route_localnet
    BROADCAST_LOCAL = "broadcast-local"  # a broadcast or a joined multicast group: delivered here
    NOT_MEMBER = "not-member"            # a multicast group this host has not joined
    NOT_FORWARDING = "not-forwarding"
    NO_ROUTE = "no-route"
    UNREACHABLE = "unreachable"
    BLACKHOLE = "blackhole"
    LOCAL_ERROR = "local-error"          # an output route that fails the send (blackhole, unreachable)
    OUTPUT = "output"
    REROUTED = "rerouted"
    PMTU_LEARNED = "pmtu-learned"        # __ip_rt_update_pmtu: a route exception with a lower path MTU


class IpReason(Reason):
    TTL_EXCEEDED = "ttl-exceeded"
    FRAG_NEEDED = "frag-needed"
    FORWARDED = "forwarded"
    EMSGSIZE = "emsgsize"                # a local packet with DF set too big for the device
    DF_TOO_BIG = "df-too-big"
    FRAGMENTED = "fragmented"
    REFRAGMENTED = "refragmented"        # cut back to the largest fragment conntrack reassembled
    HOLD = "hold"
    REASSEMBLED = "reassembled"
    REDIRECT_ON_NAT = "redirect-on-nat"  # the ICMP redirect ip_forward asks for, dropped by nf_nat


class IcmpReason(Reason):
    ERROR = "error"
    REJECTED = "rejected"                # the ICMP error REJECT asked for
    RATELIMITED = "ratelimited"          # icmpv4_xrlim_allow: no tokens left for this peer


class NetfilterReason(Reason):
    HOOK_VERDICT = "hook-verdict"        # nf_hook_slow: the hook's verdict ends the packet
    POLICY = "policy"
    MARK = "mark"
    REJECT = "reject"
    RULE = "rule"                        # ACCEPT, DROP, RETURN
    UNSEEN_FRAGMENT = "unseen-fragment"
    FOLLOWS_FIRST = "follows-first"


class ConntrackReason(Reason):
    DISCARD = "discard"
    NOT_MODELLED = "not-modelled"
    REOPEN = "reopen"
    INVALID_TCP = "invalid-tcp"
    INVALID_ICMP = "invalid-icmp"
    NEW = "new"
    TRACKED = "tracked"                  # an existing entry, no TCP state to tell
    TCP_INVALID = "tcp-invalid"
    TCP_IGNORED = "tcp-ignored"
    TCP_RST_REMOVED = "tcp-rst-removed"
    TCP_STATE = "tcp-state"
    SHORT_QUOTE = "short-quote"
    NOT_TRACKED = "not-tracked"
    RELATED = "related"


class NatReason(Reason):
    ICMP_ERROR = "icmp-error"
    REWRITE = "rewrite"
    NO_SOURCE = "no-source"
    NO_FREE_TUPLE = "no-free-tuple"
    BINDING = "binding"
    NULL_BINDING_CLASH = "null-binding-clash"


class VxlanReason(Reason):
    NO_FDB = "no-fdb"
    ENCAPSULATED = "encapsulated"
    NOT_VXLAN = "not-vxlan"
    WRONG_VNI = "wrong-vni"
    DECAPSULATED = "decapsulated"


class TunReason(Reason):
    NOT_OPEN = "not-open"


class VethReason(Reason):
    NO_PEER = "no-peer"
    TOO_BIG = "too-big"


class SocketReason(Reason):
    CONNECT = "connect"
    ECHO_ANSWER = "echo-answer"
    ICMP_REPORTED = "icmp-reported"
    ICMP_NO_SOCKET = "icmp-no-socket"
    RST_IGNORED = "rst-ignored"
    NO_LISTENER = "no-listener"
    UDP_ANSWER = "udp-answer"
    UDP_NO_SOCKET = "udp-no-socket"
    NO_PROTOCOL = "no-protocol"
    ANSWER_SENT = "answer-sent"
    SYN_ACCEPTED = "syn-accepted"
    DATA_ANSWERED = "data-answered"
    HANDSHAKE_DONE = "handshake-done"
    ECHO_REPLY = "echo-reply"
    UDP_REPLY = "udp-reply"
    REFUSED = "refused"
    SYNACK = "synack"                    # the trace stops at the reply
    SYNACK_SENDS_DATA = "synack-sends-data"
    READ = "read"
    DELIVERED = "delivered"
    SENT = "sent"                        # a socket sends (not an answer)
    UDP_DELIVERED = "udp-delivered"      # a datagram read by a socket that did not answer it
    SYNACK_ACKED = "synack-acked"        # connect() returns; the kernel ACKs the SYN-ACK
    STREAM_READ = "stream-read"          # bytes in order, read by the program
    FIN = "fin"                          # the peer closed its side
    RESET = "reset"                      # an RST on a connection: ECONNRESET
    ICMP_SOFT = "icmp-soft"              # an ICMP error the socket is not told of
    ECHO_IGNORED = "echo-ignored"        # an echo request to a broadcast or multicast address
    EMSGSIZE = "emsgsize"                # a datagram over the path MTU with DF asked for, or over 65535
    BROADCAST_REFUSED = "broadcast-refused"   # a broadcast destination without SO_BROADCAST: EACCES
    NOT_UNICAST = "not-unicast"          # TCP to a broadcast or multicast address: ENETUNREACH
    MSS_REDUCED = "mss-reduced"          # tcp_v4_mtu_reduced


class MetallbReason(Reason):
    ANNOUNCE = "announce"                # the elected node's speaker answers ARP for its VIP


class FlannelReason(Reason):
    NO_ROUTE = "no-route"
    ENCAPSULATED = "encapsulated"
    SEND = "send"
    NOT_IPV4 = "not-ipv4"
    DECAPSULATED = "decapsulated"
    TTL_ZERO = "ttl-zero"


class CaptureReason(Reason):
    CAPTURED = "captured"                # netsim.lab: the frame a capture saw on a real kernel


class OutcomeReason(Reason):
    NO_ROUTE = "no-route"                # connect() found no route
    ROUTE_ERROR = "route-error"          # connect() met a blackhole or unreachable route
    NO_ANSWER = "no-answer"
    ICMP_ERROR = "icmp-error"
    ECHO_REPLY = "echo-reply"
    UDP_REPLY = "udp-reply"
    RST = "rst"
    CONNECTED = "connected"
    RECEIVED = "received"


@dataclass(frozen=True)
class FieldChange:
    """One header field rewritten: `layer` and `field` are names from the header tables
    (`ipv4.dst`, `tcp.dport`, `ethernet.src`, `ipv4.ttl`, ...)."""

    layer: str
    field: str
    old: str | int
    new: str | int

    def __str__(self) -> str:
        return f"{self.layer}.{self.field} {self.old} -> {self.new}"


@dataclass(frozen=True)
class RouteRef:
    """A route `ip route` prints, in the table it came from."""

    table: str               # "main", "local"
    route: str               # as `ip route show table TABLE` prints it
    dev: str = ""
    via: str = ""            # the gateway, "" for a connected route
    src: str = ""            # the preferred source, if the lookup chose one
    type: str = "unicast"    # unicast, local, broadcast, blackhole, unreachable


@dataclass(frozen=True)
class NeighbourRef:
    """A neighbour table entry as `ip neigh` prints it."""

    dev: str
    ip: str
    lladdr: str = ""
    state: str = ""          # PERMANENT, REACHABLE, STALE, INCOMPLETE, FAILED, NOARP


@dataclass(frozen=True)
class FdbRef:
    """A forwarding database entry of a bridge (`port`) or of a VXLAN device (`dst`)."""

    device: str              # cni0, sw0, flannel.1
    mac: str
    port: str = ""           # bridge: the port the MAC sits behind
    dst: str = ""            # vxlan: the remote VTEP's underlay address


@dataclass(frozen=True)
class RuleRef:
    """An iptables rule as ipt_do_table met it: `rule` is its number in `chain` (1-based, as
    `iptables -L --line-numbers` counts), 0 for the chain's policy.

    The rule is kept as netfilter's grammar parsed it: `matches` are its tests in the order
    iptables-save prints them, one per entry (`-s 10.244.0.0/16`, `-p tcp`,
    `-m comment --comment "default/web"`, `-m tcp --dport 30080`); `target` is the target or
    the chain jumped to (for a policy, the policy), `target_options` the target's options as
    iptables-save prints them, token by token (`("--to-destination", "10.244.1.2:8080")`),
    `goto` says `-g` instead of `-j`. `text` is the rule as iptables-save prints it."""

    table: str               # raw, mangle, nat, filter
    hook: str                # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
    chain: str               # the chain the rule is in
    rule: int
    matches: tuple[str, ...] = ()
    target: str = ""         # ACCEPT, DROP, REJECT, DNAT, SNAT, MASQUERADE, MARK, RETURN, a chain, ...
    target_options: tuple[str, ...] = ()
    path: tuple[str, ...] = ()   # the chains jumped through from the built-in chain to `chain`
    comment: str = ""
    goto: bool = False

    @property
    def text(self) -> str:
        """The rule as iptables-save prints it (`-A CHAIN ... -j TARGET ...`), or the
        chain's policy (`-P CHAIN POLICY`)."""
        if self.rule == 0:
            return f"-P {self.chain} {self.target}"
        return " ".join(["-A", self.chain, *self.matches, *self.action])

    @property
    def action(self) -> tuple[str, ...]:
        """The target part as iptables-save prints it: `-j DNAT --to-destination ...`."""
        if not self.target:
            return ()
        return ("-g" if self.goto else "-j", self.target, *self.target_options)


@dataclass(frozen=True)
class NftRuleRef:
    """An nftables rule as nft_do_chain met it, or a base chain's policy (`handle` 0): what
    `nft monitor trace` reports for it.

    `matches` are the rule's leading match expressions and `statements` the rest (a lookup in
    a verdict map, `meta mark set`, `dnat to`, `masquerade`, a verdict), each as `nft list
    ruleset` prints it; `text` is the whole rule as nft prints it. `verdict` is nft's for this
    packet (`continue`, `accept`, `drop`, `jump C`, `goto C`, `return`; a policy's `accept` or
    `drop`); where a set or map element decided it, `set_name` names the set ("" for an
    anonymous one) and `element` is the element as the listing prints it."""

    family: str              # ip
    table: str               # kube-proxy, flannel-ipv4
    chain: str
    handle: int
    hook: str                # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
    verdict: str
    matches: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    path: tuple[str, ...] = ()   # the chains from the base chain to `chain`
    comment: str = ""
    set_name: str = ""
    element: str = ""

    @property
    def text(self) -> str:
        """The rule as `nft list ruleset` prints it, or the policy (`policy accept`)."""
        if not self.handle:
            return f"policy {self.verdict}"
        text = " ".join((*self.matches, *self.statements))
        return text + f' comment "{self.comment}"' if self.comment else text


@dataclass(frozen=True)
class ConntrackRef:
    """A conntrack entry as `conntrack -L` shows its two tuples."""

    proto: str               # tcp, udp, icmp
    original: str            # "src:sport -> dst:dport" (icmp: "src -> dst id N")
    reply: str = ""
    state: str = ""          # NEW, ESTABLISHED, RELATED, ...
    direction: str = ""      # "original" or "reply": which way this packet travels


Consulted = Union[RouteRef, NeighbourRef, FdbRef, RuleRef, NftRuleRef, ConntrackRef]
Facts = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True, init=False)
class Decision:
    """One thing the kernel decided at a hop: the subsystem and kernel function, the reason
    code and its named facts, what it consulted, its verdict and the fields it changed.
    `netsim.views.sentences.sentence(decision)` tells it in words.

        Decision(Subsystem.BRIDGE, "br_forward", BridgeReason.FDB, Verdict.FORWARD,
                 consulted=(fdb_ref("cni0", mac, port="veth1"),), bridge="cni0", dst=mac, port="veth1")
    """

    subsystem: Subsystem
    function: str            # the kernel function or hook modelled: br_forward, ip_forward, vxlan_xmit, ...
    reason: Reason
    verdict: Verdict
    facts: Facts             # (name, value) pairs, in the order given: addresses, devices, numbers
    consulted: tuple[Consulted, ...]
    changes: tuple[FieldChange, ...]

    def __init__(self, subsystem: Subsystem, function: str, reason: Reason, verdict: Verdict,
                 consulted: tuple[Consulted, ...] = (), changes: tuple[FieldChange, ...] = (),
                 facts: Facts = (), **named: Any) -> None:
        # straight into the slots, no validation: the walk makes a hundred of these per trace.
        # The facts come as keywords (dev="cni0"), or as pairs (what dataclasses.replace passes).
        _D_SUBSYSTEM(self, subsystem)
        _D_FUNCTION(self, function)
        _D_REASON(self, reason)
        _D_VERDICT(self, verdict)
        _D_FACTS(self, (*facts, *named.items()) if facts else tuple(named.items()))
        _D_CONSULTED(self, consulted)
        _D_CHANGES(self, changes)

    def fact(self, name: str, default: Any = None) -> Any:
        """One of the named facts the decision carries (an address, a device, a number)."""
        for key, value in self.facts:
            if key == name:
                return value
        return default

    def change(self, layer: str, name: str) -> FieldChange | None:
        """The change this decision made to `layer.name` (e.g. "ipv4", "ttl"), if any."""
        return next((c for c in self.changes if c.layer == layer and c.field == name), None)

    def consulted_of(self, kind: type) -> list:
        """The objects of one kind (RouteRef, FdbRef, ...) this decision consulted."""
        return [c for c in self.consulted if isinstance(c, kind)]


@dataclass(frozen=True, slots=True, init=False)
class Outcome:
    """How an exchange ended for the socket that started it.

    `kind` is an `OutcomeKind`: connected, answered (a UDP or ICMP reply arrived), received
    (TCP data came back), refused, icmp-error, timed-out, local-error (the send itself
    failed). `errno` is what a real client sees (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH,
    EMSGSIZE, ETIMEDOUT, EINVAL, ...), "" on success. `reason` and the facts say what
    `netsim.views.sentences.outcome_text` tells in one line."""

    kind: OutcomeKind
    reason: Reason
    errno: str
    peer: str                # the address (and port) that answered or reported the error
    icmp: tuple[int, int] | None   # (type, code) of an ICMP error
    facts: Facts

    def __init__(self, kind: OutcomeKind, reason: Reason, errno: str = "", peer: str = "",
                 icmp: tuple[int, int] | None = None, facts: Facts = (), **named: Any) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "kind", kind)
        setattr_(self, "reason", reason)
        setattr_(self, "errno", errno)
        setattr_(self, "peer", peer)
        setattr_(self, "icmp", icmp)
        setattr_(self, "facts", (*facts, *named.items()) if facts else tuple(named.items()))

    def fact(self, name: str, default: Any = None) -> Any:
        """One of the named facts the outcome carries."""
        for key, value in self.facts:
            if key == name:
                return value
        return default

    @property
    def ok(self) -> bool:
        return self.kind in (OutcomeKind.CONNECTED, OutcomeKind.ANSWERED, OutcomeKind.RECEIVED)


# The slots' own setters (member descriptors): a frozen dataclass refuses setattr, and these
# write each field in one C call.
(_D_SUBSYSTEM, _D_FUNCTION, _D_REASON, _D_VERDICT, _D_FACTS, _D_CONSULTED, _D_CHANGES) = (
    getattr(Decision, name).__set__
    for name in ("subsystem", "function", "reason", "verdict", "facts", "consulted", "changes"))


# Shared records: the walk makes the same few changes and consults the same few entries on
# every trace, and a frozen record costs more to build than to look up.
@lru_cache(maxsize=1024, typed=True)     # the same MACs and TTLs again, the ports of each flow once
def field_change(layer: str, name: str, old: str | int, new: str | int) -> FieldChange:
    return FieldChange(layer, name, old, new)


@lru_cache(maxsize=1 << 14)
def fdb_ref(device: str, mac: str, port: str = "", dst: str = "") -> FdbRef:
    return FdbRef(device, mac, port, dst)


@lru_cache(maxsize=1 << 14)
def neighbour_ref(dev: str, ip: str, lladdr: str = "", state: str = "") -> NeighbourRef:
    return NeighbourRef(dev, ip, lladdr, state)


# icmp_err_convert (net/ipv4/icmp.c): the errno a socket reports for each ICMP destination
# unreachable code; tcp_v4_err and __udp4_lib_err map time exceeded to EHOSTUNREACH.
ICMP_UNREACH_ERRNO: dict[int, str] = {
    0: "ENETUNREACH", 1: "EHOSTUNREACH", 2: "ENOPROTOOPT", 3: "ECONNREFUSED", 4: "EMSGSIZE",
    5: "EOPNOTSUPP", 6: "ENETUNREACH", 7: "EHOSTDOWN", 8: "ENONET", 9: "ENETUNREACH",
    10: "EHOSTUNREACH", 11: "ENETUNREACH", 12: "EHOSTUNREACH", 13: "EHOSTUNREACH",
    14: "EHOSTUNREACH", 15: "EHOSTUNREACH",
}


def icmp_errno(itype: int, code: int) -> str:
    """The errno a socket sees for an ICMP error of this type and code."""
    if itype == 3:
        return ICMP_UNREACH_ERRNO.get(code, "EHOSTUNREACH")
    if itype == 11:
        return "EHOSTUNREACH"
    if itype == 12:
        return "EPROTO"       # parameter problem
    return ""
