"""Hops and traces: what a capture on every device, plus the kernel's reasons, would show.

A `Hop` is a fact about the past: the frame seen on one device of one namespace in one
direction (`rx`/`tx`, as `tcpdump -Q in|out` sees it), and the decisions the kernel took there
(route, neighbour, FDB entry, NAT rule, conntrack entry). A `Trace` is the ordered hops of one
exchange (request, reply, and every ARP exchange they needed). Every frame copy ends either in
a hop whose `verdict` is "delivered" or "dropped" (`Hop.reason` is the decision that ended it)
or, when it ended before it reached a capture point of its own (a flooded copy dropped on its
way to one port, a packet refused before any device), in an `Ended` record of `Trace.ended`
naming the namespace and device where it ended; nothing vanishes. A trace can also name the
owner of every MAC and IPv4 address it carries (`Trace.owner`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterator, Mapping, Union

from .decision import Decision, Outcome
from .packet import ARP, Ethernet, IPv4, innermost_ip, vxlan_of

Frame = Union[Ethernet, IPv4]


@dataclass(frozen=True, slots=True)
class Hop:
    """One capture point's frame and the kernel's decisions there (the module docstring). It has
    slots, no __dict__ (a 100 kB transfer keeps 1,500 hops); the walk fills in a draft with the
    same slots (netsim/skb.py `_Draft`) that becomes its Hop in place."""

    index: int
    netns: str
    device: str
    direction: str           # "rx" or "tx"
    frame: Frame             # IPv4 on raw-IP devices (TUN), Ethernet elsewhere
    decisions: tuple[Decision, ...]
    packet_id: int           # the packet this hop belongs to (ARP probes and copies have their own)
    role: str                # "request", "reply", "arp", "icmp-error", "ack", ...
    verdict: str = ""        # "", "delivered" or "dropped"
    device_kind: str = ""    # veth, bridge, vxlan, nic, loopback, tun
    reason: Decision | None = None   # the decision that gave the hop its verdict

    @property
    def where(self) -> str:
        """The capture point, e.g. `node1/flannel.1`."""
        return f"{self.netns}/{self.device}"

    def decided(self, function: str) -> list[Decision]:
        """The decisions at this hop that model the kernel function `function`."""
        return [d for d in self.decisions if d.function == function]

    @property
    def data(self) -> bytes:
        """The bytes on the wire at this point."""
        return self.frame.to_bytes()

    @property
    def link_type(self) -> str:
        return "ether" if isinstance(self.frame, Ethernet) else "raw"

    @property
    def packet(self):
        """The frame as a scapy packet (dissected on demand; costs about 0.5 ms)."""
        from ._scapy import dissect
        return dissect(self.data, self.link_type)

    @property
    def ip(self) -> IPv4 | None:
        """The outermost IPv4 header."""
        return self.frame if isinstance(self.frame, IPv4) else self.frame.ip

    @property
    def inner_ip(self) -> IPv4 | None:
        """The IPv4 header of the carried packet (inside VXLAN or the udp backend, if any)."""
        if isinstance(self.frame, IPv4):
            return innermost_ip(Ethernet("00:00:00:00:00:00", "00:00:00:00:00:00", 0x0800, self.frame))
        return innermost_ip(self.frame)

    @property
    def encapsulated(self) -> bool:
        ip = self.ip
        return ip is not None and ip is not self.inner_ip

    @property
    def is_arp(self) -> bool:
        return isinstance(self.frame, Ethernet) and isinstance(self.frame.payload, ARP)

    def summary(self) -> str:
        return f"{self.index:3d} {self.where:<22} {self.direction} {self.frame.summary()}"


@dataclass(frozen=True)
class Ended:
    """A frame copy that ended before it reached a capture point of its own: where (the
    namespace and device it was in or on its way to), how, and why. `after` is the index of
    the hop it was copied from, None if it never reached any."""

    packet_id: int
    role: str
    netns: str
    device: str
    verdict: str             # "delivered" or "dropped"
    reason: Decision
    after: int | None = None

    @property
    def where(self) -> str:
        return f"{self.netns}/{self.device}" if self.device else self.netns


@dataclass(frozen=True)
class Trace:
    """The hops of one exchange, in the order the kernel produced them."""

    hops: tuple[Hop, ...]
    title: str = ""
    outcome: Outcome | str = ""       # how the exchange ended (an Outcome; the lab's kernel traces carry text)
    ended: tuple[Ended, ...] = ()     # copies that ended without a hop of their own
    owners_from: Callable[[], Mapping[str, str]] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def owners(self) -> Mapping[str, str]:
        """Who owns each MAC and IPv4 address the network holds: "pod-c's eth0", "node2's
        flannel.1 (VTEP)", "cni0 on node1", "service web's ClusterIP", ... (owners.py),
        as the network stood when first asked."""
        return self.owners_from() if self.owners_from is not None else {}

    def owner(self, value: str) -> str | None:
        """The owner of one MAC or IPv4 address, if the network knows it."""
        return self.owners.get(value)

    def __iter__(self) -> Iterator[Hop]:
        return iter(self.hops)

    def __len__(self) -> int:
        return len(self.hops)

    def __getitem__(self, index: int) -> Hop:
        return self.hops[index]

    def of_role(self, role: str) -> list[Hop]:
        return [h for h in self.hops if h.role == role]

    @property
    def request(self) -> list[Hop]:
        return self.of_role("request")

    @property
    def reply(self) -> list[Hop]:
        return self.of_role("reply")

    @property
    def arp(self) -> list[Hop]:
        return [h for h in self.hops if h.is_arp]

    def path(self, role: str = "request") -> list[str]:
        """Capture points of one role as `netns/dev rx|tx`, the shape of the observation tables."""
        return [f"{h.where} {h.direction}" for h in self.hops if h.role == role]

    @property
    def drops(self) -> list[Hop]:
        return [h for h in self.hops if h.verdict == "dropped"]

    @property
    def delivered(self) -> list[Hop]:
        return [h for h in self.hops if h.verdict == "delivered"]

    def where(self, where: str, direction: str | None = None, role: str | None = None) -> list[Hop]:
        return [h for h in self.hops if h.where == where and (direction is None or h.direction == direction)
                and (role is None or h.role == role)]

    def table(self) -> str:
        return "\n".join(h.summary() for h in self.hops)

    def __repr__(self) -> str:
        outcome = self.outcome
        ended = (f"{outcome.kind} {outcome.errno}".rstrip() if isinstance(outcome, Outcome) else outcome) or "-"
        return f"<Trace {self.title!r}: {len(self.hops)} hops; {ended}>"

    def to_pcap(self, path, explain: Callable[[Decision], str] | None = None) -> None:
        """Write the trace as pcapng, one interface block per capture point; each packet's
        comment lists the decisions at its hop, told by `explain` (pass
        `netsim.views.sentence` for sentences), else by their fields."""
        from .pcap import write
        write(self, path, explain=explain)
