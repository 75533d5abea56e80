"""The services one part of the kernel calls on another: the interface every protocol module
is written against.

In Linux a protocol never calls "the stack". It calls a function another subsystem exports
(`dev_queue_xmit`, `netif_rx`, `ip_local_out`, `icmp_send`, `NF_HOOK`) or an indirect one found
in a table: `ndo_start_xmit` by device, the packet handler by EtherType (`ptype_base`), the
transport handler by IP protocol (`inet_protos`), `dst->input` and `dst->output` by route,
`neigh->output` by neighbour entry. `Kernel` names those services, typed. The protocol modules
(arp, bridge, veth, vxlan, tun, ip_input, ip_forward, ip_output, ip_fragment, icmp, sockets,
flanneld's udp proxy in flannel.py, REJECT in netfilter/nf_reject_ipv4.py) import this module
and no other protocol module; `netsim.walk.Walk` implements it for one exchange, dispatching
through tables, and a test can hand a module a fake of it (tests/fake_kernel.py).

Per-walk state a module owns (the neighbour timers' pending resolutions, the fragment queues,
the sockets of the exchange) is an object of that module's own class, created on first use by
`state(cls)`: the module reaches its state through the interface, as a kernel module reaches
its per-namespace data through `net_generic()`.

The socket-facing part, for the socket layer (netsim/sockets.py, and the sans-IO programs of
netsim/programs/ it will drive):
- up: `ip_protocol_deliver(ns, ip, flow)` hands a whole packet addressed to `ns` to the
  transport layer (ip_local_deliver_finish -> inet_protos[proto]->handler). The socket layer
  decides which socket it is for; `udp_sock_lookup(ns, port)` finds a UDP port held by someone
  other than the socket layer's own sockets: a kernel encapsulation socket (VXLAN's) or a
  userspace program (flanneld's udp proxy), each a `UdpSocketOwner`.
- down: a socket sends with `ip_local_out(ns, ip, flow, rr)` on a flow from `new_flow(role)`
  (its skb's hash set to the socket's flow hash); a send the local stack refuses (no route, a
  blackhole or unreachable route, EMSGSIZE) comes back as `sock_send_error(ns, flow, errno)`,
  what the system call would return.
- time: `schedule(work)` runs `work` after everything already queued (the backlog);
  `now_us()` is the walk's clock (deterministic: it moves `HOP_US` per capture point a frame
  crosses, and jumps forward with `advance_clock(us)` when a timer fires while nothing is in
  flight: an ARP retry, a delayed ACK, a retransmission, a program's timer).
The socket layer (netsim/sockets/) keeps a table of sockets per namespace for the walk and runs
the programs of netsim/programs/ on them: their actions go down through `ip_local_out`, what
the transport layer receives comes back to them as events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

from .decision import IcmpReason

if TYPE_CHECKING:  # pragma: no cover
    from .device import Device
    from .netns import Namespace
    from .packet import IPv4
    from .route import RouteResult
    from .skb import Flow
    from .trace import Frame

S = TypeVar("S")


class UdpSocketOwner(Protocol):
    """Who holds a UDP port the socket layer does not: a kernel encapsulation socket (a VXLAN
    device's, encap_rcv = vxlan_rcv) or a userspace program (flanneld's udp proxy)."""

    def udp_rcv(self, k: Kernel, ns: Namespace, ip: IPv4, flow: Flow) -> None: ...


class Kernel(Protocol):
    """What a protocol module may ask of the rest of the kernel. Each call runs to completion
    (a queued receive runs on a later turn of the backlog); none returns a status except
    `nf_hook` (the packet, or None when the hook ended it), `ip_defrag` (the whole packet, or
    None while fragments are held) and the lookups."""

    # net/core/dev.c ------------------------------------------------------------------------
    def dev_queue_xmit(self, dev: Device, frame: Frame, flow: Flow) -> None:
        """Transmit on `dev`: a capture on it sees the frame leave, then the device's own
        ndo_start_xmit runs (looked up by its kind)."""

    def netif_rx(self, dev: Device, frame: Frame, flow: Flow) -> None:
        """Queue the frame for receive on `dev` on a later turn of the backlog (what a veth
        peer and the loopback device do)."""

    def netif_receive_skb(self, dev: Device, frame: Frame, flow: Flow) -> None:
        """Receive on `dev` now: a capture sees it arrive, then the device's rx handler (a
        bridge port's br_handle_frame) or the protocol handler takes it."""

    def netif_deliver(self, dev: Device, frame: Frame, flow: Flow, otherhost: bool = True) -> None:
        """__netif_receive_skb_core past the rx handler: the EtherType's protocol handler
        (ptype_base) takes the payload; with `otherhost` a frame for another MAC is dropped
        first (eth_type_trans)."""

    def record_hop(self, dev: Device, direction: str, frame: Frame, flow: Flow) -> None:
        """A capture point on `dev` sees the frame ("rx" or "tx"): a hop of the trace."""

    def do_softirq(self) -> None:
        """Run the backlog until it is empty: what a process's system call does when it
        re-enables softirqs (local_bh_enable at the end of dev_queue_xmit), so a datagram a
        program sends is walked to its end before the program's next call."""
        ...

    def schedule(self, work: Callable[[], None]) -> None:
        """Run `work` after everything already queued."""

    def new_flow(self, role: str) -> Flow:
        """A new packet of this exchange (alloc_skb), numbered, with empty skb metadata."""

    def state(self, kind: type[S]) -> S:
        """The per-walk state object of class `kind` (made with `kind()` on first use)."""

    def now_us(self) -> int:
        """The walk's clock, in microseconds."""

    def advance_clock(self, us: int) -> None:
        """Move the clock forward to `us` (a timer fired); never backward."""

    # netfilter ----------------------------------------------------------------------------
    def nf_hook(self, ns: Namespace, hook: str, ip: IPv4, flow: Flow, indev: str | None = None,
                outdev: str | None = None, nexthop: str | None = None) -> IPv4 | None:
        """NF_HOOK: run `hook` of `ns`'s netfilter; the packet as the hook left it, or None
        when a verdict (DROP, REJECT) ended it there."""

    # neighbours ---------------------------------------------------------------------------
    def neigh_output(self, ns: Namespace, dev: Device, nexthop: str, ip: IPv4, flow: Flow) -> None:
        """Put the link-layer header on for `nexthop` and transmit, resolving its MAC first (the
        packet waits in the neighbour's queue meanwhile)."""

    # IPv4 ---------------------------------------------------------------------------------
    def ip_forward(self, ns: Namespace, in_dev: Device, ip: IPv4, rr: RouteResult, flow: Flow) -> None:
        """dst_input of a forwarding route: forward the packet along `rr`."""

    def ip_output(self, ns: Namespace, ip: IPv4, rr: RouteResult, flow: Flow) -> None:
        """dst_output: POSTROUTING, fragmentation, the neighbour."""

    def ip_local_out(self, ns: Namespace, ip: IPv4, flow: Flow, rr: RouteResult | None = None) -> None:
        """Send a packet `ns` generates: the output route (`rr` when already chosen), OUTPUT,
        then ip_output."""

    def ip_do_fragment(self, ip: IPv4, mtu: int) -> list[IPv4]:
        """The fragments of `ip` that fit `mtu`."""

    def ip_defrag(self, scope: tuple, ip: IPv4, flow: Flow, function: str) -> IPv4 | None:
        """Hold a fragment until its packet is whole; the whole packet, or None meanwhile."""

    def icmp_send(self, ns: Namespace, offender: IPv4, itype: int, code: int, flow: Flow,
                  why: IcmpReason = IcmpReason.ERROR, rest: int = 0) -> None:
        """Send an ICMP error about `offender` back to its source."""

    # sockets ------------------------------------------------------------------------------
    def ip_protocol_deliver(self, ns: Namespace, ip: IPv4, flow: Flow) -> None:
        """Hand a whole packet addressed to `ns` to the transport layer."""

    def udp_sock_lookup(self, ns: Namespace, port: int) -> UdpSocketOwner | None:
        """The encapsulation socket or userspace program holding UDP `port` in `ns`, if any."""

    def sock_send_error(self, ns: Namespace, flow: Flow, errno: str) -> None:
        """The local stack refused a packet a socket of `ns` sent: its send fails with `errno`."""
