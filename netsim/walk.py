"""The walk of one exchange: the receive queue, hop recording and the netfilter hook calls,
the job net/core/dev.c does for the kernel, and the kernel interface (netsim/kernel.py) every
protocol module is written against, implemented by dispatching through tables.

Kernel behaviour modelled (net/core/dev.c, include/linux/netdevice.h, net/netfilter/core.c):
- `dev_queue_xmit`: a frame handed to a device is seen by a capture on it (`tx`), then the
  device's own transmit runs (`ndo_start_xmit`): a veth hands it to its peer, a bridge
  forwards it, a VXLAN device encapsulates it, a TUN device passes it to its reader. Which
  one runs is looked up by the device's kind in `NDO_START_XMIT`.
- `netif_receive_skb`: a frame arriving on a device is seen by a capture on it (`rx`); a
  device enslaved to a bridge hands it to its `rx_handler` (`br_handle_frame`); otherwise
  `eth_type_trans` drops what is addressed to another host (PACKET_OTHERHOST) and the
  EtherType picks the protocol handler (`PTYPE_HANDLERS`: ARP or IPv4).
- `NF_HOOK`: each netfilter hook runs the namespace's tables on the packet; DROP and REJECT
  end the packet there (REJECT's answer: netfilter/nf_reject_ipv4.py).
- the services the protocols export to each other (`neigh_output`, `ip_forward`, `ip_output`,
  `ip_local_out`, `icmp_send`, `ip_protocol_deliver`, ...) are the protocol modules' own
  functions, bound as `Walk` methods: a protocol calls another through the interface, and
  the call costs what a direct call costs.

Receive events wait in a FIFO (the backlog), so hops come out in time order. A `Flow` is one
packet (or one copy of it) on its way; every decision it meets is noted on the hop where the
kernel had it in hand. A copy that ends before it reaches a capture point of its own keeps its
verdict and reason in the trace as an `Ended` record, so a drop of one copy never marks a hop
another copy left alive.
"""

from __future__ import annotations

import gc
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from . import arp, bridge, icmp, ip_input, sockets, tun, veth, vxlan
from .clock import HOP_US, Clock
from . import ip_forward as _forward
from . import ip_fragment as _fragment
from . import ip_output as _output
from .decision import Decision, DevReason, NetfilterReason, Subsystem, Verdict
from .device import Device
from .errors import TraceError
from .netfilter.nf_reject_ipv4 import nf_reject
from .packet import BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, IPv4, Ethernet
from .skb import Flow, FlowLog, _Draft
from .trace import Ended, Hop

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel, UdpSocketOwner
    from .netns import Namespace

MAX_HOPS = 5000
_new_draft = object.__new__
S = TypeVar("S")


class CollectorPaused:
    """`with CollectorPaused():` pauses Python's cyclic garbage collector and resumes it as it
    was (a nested pause leaves it to the outer one): see Walk.run."""

    __slots__ = ("was_enabled",)

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()


class Walk(FlowLog):
    """The state of one trace: the hop drafts, the receive queue and each protocol module's
    per-walk state; it is the `Kernel` (netsim/kernel.py) the protocol modules call."""

    def __init__(self, udp_programs: Mapping[tuple[str, int], UdpSocketOwner], max_hops: int = MAX_HOPS,
                 clock: Clock | None = None):
        super().__init__()
        self.udp_programs = udp_programs        # userspace programs' UDP ports, by (namespace, port)
        self.max_hops = max_hops
        self.clock = clock if clock is not None else Clock()
        self.base_us = self.clock.us            # now_us() = base + HOP_US per hop recorded
        self.drafts: list[_Draft] = []
        # the backlog: (device, frame, flow) to receive, or (work, None, None) to run
        self.queue: deque[tuple[Any, Any, Any]] = deque()
        self.states: dict[type, Any] = {}
        self.finished: tuple[tuple[Hop, ...], tuple[Ended, ...]] | None = None

    def state(self, kind: type[S]) -> S:
        found = self.states.get(kind)
        if found is None:
            found = self.states[kind] = kind()
        return found  # type: ignore[no-any-return]

    def now_us(self) -> int:
        return self.base_us + len(self.drafts) * HOP_US

    def advance_clock(self, us: int) -> None:
        now = self.now_us()
        if us > now:
            self.base_us += us - now

    def new_flow(self, role: str) -> Flow:
        return Flow(self, role)

    def schedule(self, work: Callable[[], None]) -> None:
        self.queue.append((work, None, None))

    # recording ------------------------------------------------------------------------
    def record_hop(self, dev: Device, direction: str, frame: Ethernet | IPv4, flow: Flow) -> None:
        drafts = self.drafts
        index = len(drafts)
        if index >= self.max_hops:
            recent = "; ".join(f"{d.netns}/{d.device} {d.direction}" for d in drafts[-6:])
            raise TraceError(f"trace exceeded {self.max_hops} hops: a forwarding or bridging loop? "
                             f"last hops: {recent}")
        draft = _new_draft(_Draft)
        draft.index = index
        draft.netns = dev.netns.name
        draft.device = dev.name
        draft.direction = direction
        draft.frame = frame
        draft.packet_id = flow.packet_id
        draft.role = flow.role
        draft.device_kind = dev.kind
        draft.verdict = ""
        draft.reason = None
        early = flow.early
        if early:
            draft.decisions = early
            flow.early = []
        else:
            draft.decisions = []
        drafts.append(draft)
        last = flow.last
        if last is not None and not flow.own:
            continued = self.continued
            continued[last.index] = continued.get(last.index, 0) + 1
        flow.last = draft
        flow.own = True

    def run(self) -> None:
        """Drain the backlog; when the wire goes quiet, run the timers (IDLE_TIMERS, in that
        order: the first that sends anything goes first) until none has anything left to do.
        The network's clock then stands where the walk ended.

        Python's cyclic garbage collector is paused while the walk runs (and resumed as it
        was): a walk makes tens of thousands of records that stay alive (hops, decisions,
        packets), which every young-generation collection would traverse again (a tenth of a
        100 kB transfer's time), and it is bounded (max_hops). The few cycles it leaves are
        collected after it, as any other garbage."""
        with CollectorPaused():
            while True:
                self.do_softirq()
                if not any(timer(self) for timer in IDLE_TIMERS):
                    break
        self.clock.us = self.now_us()

    def run_and_finish(self) -> tuple[tuple[Hop, ...], tuple[Ended, ...]]:
        """run() then finish(), the collector paused across both: the walk's records are
        looked at by one young-generation collection after the hops are made, not by one
        before finish() and another during it (a second collection of a 100 kB transfer's
        records cost 0.3 ms of its 13)."""
        with CollectorPaused():
            self.run()
            return self.finish()

    def do_softirq(self) -> None:
        """Drain the backlog (net_rx_action) until it is empty."""
        queue, receive = self.queue, self.netif_receive_skb
        while queue:
            dev, frame, flow = queue.popleft()
            if frame is None:
                dev()
            else:
                receive(dev, frame, flow)

    def hops(self) -> tuple[Hop, ...]:
        """The finished hops. A hop no copy went on from takes the verdict of the first copy
        that ended there; every other copy that ended without a hop of its own becomes an
        `Ended` record (see `copies_ended`)."""
        return (self.finished or self.finish())[0]

    def copies_ended(self) -> tuple[Ended, ...]:
        """Every copy that ended before a capture point of its own, in the order they ended
        at their hops (then those that never reached any)."""
        return (self.finished or self.finish())[1]

    def finish(self) -> tuple[tuple[Hop, ...], tuple[Ended, ...]]:
        """The hops and the copies that ended, in one pass over the drafts; each draft becomes
        its Hop in place (a hop no copy went on from takes the verdict of the first copy that
        ended there)."""
        ended: list[Ended] = []
        all_pending, continued = self.pending, self.continued
        for d in self.drafts:
            pending = all_pending.get(d.index) if all_pending else None
            if pending:
                first_gives_verdict = not d.verdict and not continued.get(d.index)
                if first_gives_verdict:
                    d.verdict, d.reason = pending[0][0], pending[0][1]
                for i, (how, why, netns, device, packet_id) in enumerate(pending):
                    if i or not first_gives_verdict:
                        ended.append(Ended(packet_id, d.role, netns, device, how, why, d.index))
            d.decisions = tuple(d.decisions)        # type: ignore[assignment]
            d.__class__ = Hop        # type: ignore[assignment]
        hops: tuple[Hop, ...] = tuple(self.drafts)      # type: ignore[arg-type]
        self.drafts = []
        self.finished = (hops, (*ended, *self.ended))
        return self.finished

    # link layer: net/core/dev.c ---------------------------------------------------------
    def dev_queue_xmit(self, dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
        """dev_queue_xmit: a capture on `dev` sees the frame leave (lo records only its rx)."""
        if not dev.up:
            flow.end("dropped", Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.DOWN_TX, Verdict.DROP, dev=dev.name),
                     dev.netns.name if dev.netns else "", dev.name)
            return
        if dev.captured_tx:
            self.record_hop(dev, "tx", frame, flow)
        xmit = NDO_START_XMIT.get(dev.kind)
        if xmit is None:
            flow.end("dropped", Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.NO_CABLE, Verdict.DROP,
                                         dev=dev.name, kind=dev.kind), dev.netns.name if dev.netns else "", dev.name)
            return
        xmit(self, dev, frame, flow)

    def netif_rx(self, dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
        """netif_rx: the frame waits in the backlog, received on a later turn."""
        self.queue.append((dev, frame, flow))

    def netif_receive_skb(self, dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
        """netif_receive_skb: a capture on `dev` sees the frame arrive."""
        self.record_hop(dev, "rx", frame, flow)
        if not dev.up:
            flow.end("dropped", Decision(Subsystem.DEV, "netif_receive_skb", DevReason.DOWN_RX, Verdict.DROP, dev=dev.name))
            return
        handler = dev.rx_handler
        if handler is not None:
            handler(self, dev, frame, flow)
            return
        self.netif_deliver(dev, frame, flow)

    def netif_deliver(self, dev: Device, frame: Ethernet | IPv4, flow: Flow, otherhost: bool = True) -> None:
        """__netif_receive_skb_core after the rx handler: hand the payload to the protocol
        its EtherType names. `otherhost` drops frames for another MAC first (eth_type_trans
        marks them PACKET_OTHERHOST); a bridge passing a frame up has checked that already."""
        ns = dev.netns
        if isinstance(frame, IPv4):          # raw-IP device (TUN): no link-layer header
            ip_input.ip_rcv(self, ns, dev, frame, flow)
            return
        if otherhost and frame.dst != dev.mac and frame.dst != BROADCAST_MAC and not int(frame.dst[:2], 16) & 1:
            flow.end("dropped", Decision(Subsystem.DEV, "eth_type_trans", DevReason.OTHERHOST, Verdict.DROP,
                                         dst=frame.dst, dev=dev.name, mac=dev.mac))
            return
        if frame.type == ETH_P_IP:
            flow.skb.eth = (frame.src, frame.dst)
        handler = PTYPE_HANDLERS.get(frame.type)
        if handler is None:
            flow.end("dropped", Decision(Subsystem.DEV, "__netif_receive_skb_core", DevReason.NO_HANDLER, Verdict.DROP,
                                         ethertype=frame.type, here=otherhost))
            return
        handler(self, ns, dev, frame.payload, flow)

    # netfilter hooks: NF_HOOK --------------------------------------------------------------
    def nf_hook(self, ns: Namespace, hook: str, ip: IPv4, flow: Flow, indev: str | None = None,
                outdev: str | None = None, nexthop: str | None = None) -> IPv4 | None:
        nf = ns.netfilter
        if (ip.mf or ip.frag) and hook == "PREROUTING" and nf.conntrack_active:
            # nf_defrag_ipv4 (priority -400): conntrack needs whole packets, so fragments are
            # gathered first; the output path cuts the packet back to the largest fragment size
            gathered = self.ip_defrag(("defrag", ns.name), ip, flow, "nf_defrag_ipv4")
            if gathered is None:
                return None
            ip = gathered
        result = nf.run(hook, ip, flow.skb, indev, outdev, nexthop)
        if result is None:
            return ip                   # no callback with anything to do (a pod's namespace, an established flow)
        decisions = result.decisions
        if decisions:           # noted where the kernel has the packet in hand (Flow.note)
            last = flow.last
            (last.decisions if last is not None else flow.early).extend(decisions)
        if result.verdict == "ACCEPT":
            return result.packet
        where = outdev or indev or ""
        if result.verdict == "REJECT":
            flow.end("dropped", Decision(Subsystem.NETFILTER, "nf_hook_slow", NetfilterReason.HOOK_VERDICT, Verdict.REJECT,
                                         hook=hook), ns.name, where)
            nf_reject(self, ns, result.packet, result.reject_with, flow)
            return None
        flow.end("dropped", Decision(Subsystem.NETFILTER, "nf_hook_slow", NetfilterReason.HOOK_VERDICT, Verdict.DROP,
                                     hook=hook), ns.name, where)
        return None

    # sockets -------------------------------------------------------------------------------
    def udp_sock_lookup(self, ns: Namespace, port: int) -> UdpSocketOwner | None:
        """A VXLAN device's encapsulation socket, else a userspace program's."""
        vx = vxlan.vxlan_sock_lookup(ns, port)
        if vx is not None:
            return vx
        return self.udp_programs.get((ns.name, port))

    # what the protocols export to each other, bound as methods: the kernel interface
    neigh_output = arp.neigh_output                  # neigh->output
    ip_forward = _forward.ip_forward                 # dst_input of a forwarding route
    ip_output = _output.ip_output                    # dst_output
    ip_local_out = _output.ip_local_out
    ip_do_fragment = staticmethod(_fragment.ip_fragment)
    ip_defrag = _fragment.ip_defrag
    icmp_send = icmp.icmp_send
    ip_protocol_deliver = sockets.ip_protocol_deliver   # ip_local_deliver_finish -> inet_protos
    sock_send_error = sockets.sock_send_error


# ndo_start_xmit by device kind: what each device does with a frame it is asked to send.
NDO_START_XMIT: dict[str, Callable[..., None]] = {
    "veth": veth.veth_xmit,
    "nic": veth.veth_xmit,
    "loopback": veth.loopback_xmit,
    "bridge": bridge.br_dev_xmit,
    "vxlan": vxlan.vxlan_xmit,
    "tun": tun.tun_net_xmit,
}

# ptype_base: the protocol handler for each EtherType.
PTYPE_HANDLERS: dict[int, Callable] = {
    ETH_P_ARP: arp.arp_rcv,
    ETH_P_IP: ip_input.ip_rcv,
}

# timers that run when the backlog is empty; each returns whether it sent anything.
IDLE_TIMERS: tuple[Callable[[Walk], bool], ...] = (arp.neigh_timer, sockets.sock_timers)

if TYPE_CHECKING:  # pragma: no cover
    def _walk_is_a_kernel(walk: Walk) -> Kernel:
        return walk         # mypy checks that Walk implements every service of the interface


__all__ = ["Flow", "Walk", "MAX_HOPS", "NDO_START_XMIT", "PTYPE_HANDLERS", "IDLE_TIMERS"]
