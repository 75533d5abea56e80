"""What the kernel decided about a packet, as facts: records, not sentences.

Every step of the walk that decides something (a bridge's FDB lookup, a route lookup, a
netfilter rule, a conntrack rewrite, an encapsulation, a drop) leaves one `Decision` on the hop
where the kernel had the frame in hand. A decision names

- the subsystem and the kernel function or hook it models (`br_forward`, `ip_forward`,
  `nf_nat_ipv4_fn`, `vxlan_xmit`, ...);
- the objects it consulted: a route, a neighbour entry, an FDB entry, a rule (table, chain,
  rule number, rule text) or a conntrack entry;
- its verdict;
- the header fields it changed, old -> new.

`str(decision)` is the sentence the walk has always printed, so `Hop.explanation` and the book
read as before; the views build their own sentences from the fields. An exchange ends in an
`Outcome`: what the socket that started it saw, with the error a real client would get.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Union


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
    `iptables -L --line-numbers` counts), 0 for the chain's policy."""

    table: str               # raw, mangle, nat, filter
    hook: str                # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
    chain: str               # the chain the rule is in
    rule: int
    text: str = ""           # the rule as iptables-save prints it ("-A CHAIN ..."), or the policy
    path: tuple[str, ...] = ()   # the chains jumped through from the built-in chain to `chain`
    comment: str = ""
    target: str = ""         # ACCEPT, DROP, REJECT, DNAT, SNAT, MASQUERADE, MARK, RETURN, ...


@dataclass(frozen=True)
class ConntrackRef:
    """A conntrack entry as `conntrack -L` shows its two tuples."""

    proto: str               # tcp, udp, icmp
    original: str            # "src:sport -> dst:dport" (icmp: "src -> dst id N")
    reply: str = ""
    state: str = ""          # NEW, ESTABLISHED, RELATED, ...
    direction: str = ""      # "original" or "reply": which way this packet travels


Consulted = Union[RouteRef, NeighbourRef, FdbRef, RuleRef, ConntrackRef]


@dataclass(frozen=True, eq=False, repr=False, init=False)
class Decision(str):
    """One thing the kernel decided at a hop. `str()` is its sentence.

    A decision is also the string of its sentence (a `str` subclass that compares, hashes and
    prints as its text), so code that reads `Hop.decisions` as sentences keeps working while
    the views read the fields."""

    subsystem: str           # bridge, neighbour, arp, route, ip, netfilter, conntrack, nat, vxlan, tun,
                             # veth, socket, flannel
    function: str            # the kernel function or hook modelled: br_forward, ip_forward, vxlan_xmit, ...
    text: str
    verdict: str = ""        # e.g. forward, flood, deliver, drop, accept, reject, queue, encapsulate
    consulted: tuple[Consulted, ...] = ()
    changes: tuple[FieldChange, ...] = ()

    def __new__(cls, subsystem: str, function: str = "", text: str = "", verdict: str = "",
                consulted: tuple[Consulted, ...] = (), changes: tuple[FieldChange, ...] = ()) -> "Decision":
        # one call instead of a generated __init__ with a setattr per field: the walk makes
        # a hundred of these per trace
        self = str.__new__(cls, text)
        self.__dict__.update(subsystem=subsystem, function=function, text=text, verdict=verdict,
                             consulted=consulted, changes=changes)
        return self

    def __str__(self) -> str:
        return self.text

    def __getnewargs__(self) -> tuple:  # type: ignore[override]
        return (self.subsystem, self.function, self.text, self.verdict, self.consulted, self.changes)

    def change(self, layer: str, name: str) -> FieldChange | None:
        """The change this decision made to `layer.name` (e.g. "ipv4", "ttl"), if any."""
        return next((c for c in self.changes if c.layer == layer and c.field == name), None)

    def consulted_of(self, kind: type) -> list:
        """The objects of one kind (RouteRef, FdbRef, ...) this decision consulted."""
        return [c for c in self.consulted if isinstance(c, kind)]


@dataclass(frozen=True, eq=False, repr=False)
class Outcome(str):
    """How an exchange ended for the socket that started it.

    `kind` is one of connected, answered (a UDP or ICMP reply arrived), received (TCP data
    came back), refused, icmp-error, timed-out, local-error (the send itself failed).
    `errno` is what a real client sees (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EMSGSIZE,
    ETIMEDOUT, EINVAL, ...), "" on success. `str()` is the one-line summary; like a decision,
    an outcome is also the string of that summary."""

    kind: str
    text: str
    errno: str = ""
    peer: str = ""           # the address (and port) that answered or reported the error
    icmp: tuple[int, int] | None = None   # (type, code) of an ICMP error

    def __new__(cls, kind: str, text: str = "", *args: object, **kwargs: object) -> "Outcome":
        return str.__new__(cls, text)

    def __str__(self) -> str:
        return self.text

    def __getnewargs__(self) -> tuple:  # type: ignore[override]
        return (self.kind, self.text, self.errno, self.peer, self.icmp)

    @property
    def ok(self) -> bool:
        return self.kind in ("connected", "answered", "received")


# Shared records: the walk makes the same few changes and consults the same few entries on
# every trace, and a frozen record costs more to build than to look up.
@lru_cache(maxsize=1 << 14, typed=True)
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
