"""The walk of one exchange: the receive queue, hop recording and the netfilter hook calls,
the job net/core/dev.c does for the kernel.

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
  end the packet there.

Receive events wait in a FIFO (the backlog), so hops come out in time order. A `Flow` is one
packet (or one copy of it) on its way; every decision it meets is noted on the hop where the
kernel had it in hand. A copy that ends before it reaches a capture point of its own keeps its
verdict and reason in the trace as an `Ended` record, so a drop of one copy never marks a hop
another copy left alive.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

from . import arp, bridge, icmp, ip_input, ip_output, sockets, tun, veth, vxlan
from . import endpoints as ep
from .decision import Decision, DevReason, FieldChange, IcmpReason, NetfilterReason, Subsystem, Verdict
from .device import Device
from .errors import TraceError
from .ip_fragment import ip_defrag
from .packet import BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, ICMP_DEST_UNREACH, IPv4, TCP, Ethernet
from .skb import Flow, Skb, _Draft
from .trace import Ended, Hop

if TYPE_CHECKING:  # pragma: no cover
    from .netns import Namespace
    from .route import RouteResult
    from .stack import Network

MAX_HOPS = 5000


class Walk:
    """The state of one trace: the hop drafts, the receive queue and the client socket."""

    def __init__(self, network: "Network", max_hops: int = MAX_HOPS):
        self.network = network
        self.max_hops = max_hops
        self.drafts: list[_Draft] = []
        self.queue: deque[Callable[[], None]] = deque()
        self.packets = 0
        self.ended: list[Ended] = []
        self.client: sockets.Client | None = None
        self.pending_arp: dict[tuple[str, str, str], tuple[Namespace, Device, str]] = {}
        self.reassembly: dict[tuple, list[IPv4]] = {}
        self.client_errno = ""     # the error the client's own send failed with, if it did

    # recording ------------------------------------------------------------------------
    def record(self, dev: Device, direction: str, frame: Ethernet | IPv4, flow: Flow) -> _Draft:
        if len(self.drafts) >= self.max_hops:
            last = "; ".join(f"{d.netns}/{d.device} {d.direction}" for d in self.drafts[-6:])
            raise TraceError(f"trace exceeded {self.max_hops} hops: a forwarding or bridging loop? "
                             f"last hops: {last}")
        assert dev.netns is not None
        draft = _Draft(len(self.drafts), dev.netns.name, dev.name, direction, frame, flow.packet_id,
                       flow.role, dev.kind)
        if flow.early:
            draft.notes.extend(flow.early)
            flow.early = []
        self.drafts.append(draft)
        if flow.last is not None and not flow.own:
            flow.last.continued += 1
        flow.last = draft
        flow.own = True
        return draft

    def run(self) -> None:
        queue = self.queue
        while True:
            while queue:
                queue.popleft()()
            if not arp.neigh_timer(self):
                break

    def hops(self) -> tuple[Hop, ...]:
        """The finished hops. A hop no copy went on from takes the verdict of the first copy
        that ended there; every other copy that ended without a hop of its own becomes an
        `Ended` record (see `ended`)."""
        out = []
        make = Hop.make
        for d in self.drafts:
            verdict, reason = d.verdict, d.reason
            if d.pending and not verdict and not d.continued:
                verdict, reason = d.pending[0][0], d.pending[0][1]
            out.append(make(d.index, d.netns, d.device, d.direction, d.frame, tuple(d.notes), d.packet_id,
                            d.role, verdict, d.kind, reason))
        return tuple(out)

    def copies_ended(self) -> tuple[Ended, ...]:
        """Every copy that ended before a capture point of its own, in the order they ended
        at their hops (then those that never reached any)."""
        out: list[Ended] = []
        for d in self.drafts:
            for i, (verdict, reason, netns, device, packet_id) in enumerate(d.pending):
                if i == 0 and not d.verdict and not d.continued:
                    continue        # it gave the hop its verdict
                out.append(Ended(packet_id, d.role, netns, device, verdict, reason, d.index))
        return tuple(out) + tuple(self.ended)

    # link layer: net/core/dev.c ---------------------------------------------------------
    def transmit(self, dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
        """dev_queue_xmit: a capture on `dev` sees the frame leave (lo records only its rx)."""
        if not dev.up:
            flow.end("dropped", Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.DOWN_TX, Verdict.DROP, dev=dev.name),
                     dev.netns.name if dev.netns else "", dev.name)
            return
        if dev.captured_tx:
            self.record(dev, "tx", frame, flow)
        xmit = NDO_START_XMIT.get(dev.kind)
        if xmit is None:
            flow.end("dropped", Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.NO_CABLE, Verdict.DROP,
                                         dev=dev.name, kind=dev.kind), dev.netns.name if dev.netns else "", dev.name)
            return
        xmit(self, dev, frame, flow)

    def receive(self, dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
        """netif_receive_skb: a capture on `dev` sees the frame arrive."""
        self.record(dev, "rx", frame, flow)
        if not dev.up:
            flow.end("dropped", Decision(Subsystem.DEV, "netif_receive_skb", DevReason.DOWN_RX, Verdict.DROP, dev=dev.name))
            return
        handler = dev.rx_handler
        if handler is not None:
            handler(self, dev, frame, flow)
            return
        self.deliver(dev, frame, flow)

    def deliver(self, dev: Device, frame: Ethernet | IPv4, flow: Flow, otherhost: bool = True) -> None:
        """__netif_receive_skb_core after the rx handler: hand the payload to the protocol
        its EtherType names. `otherhost` drops frames for another MAC first (eth_type_trans
        marks them PACKET_OTHERHOST); a bridge passing a frame up has checked that already."""
        ns = dev.netns
        assert ns is not None
        if isinstance(frame, IPv4):          # raw-IP device (TUN): no link-layer header
            ip_input.ip_rcv(self, ns, dev, frame, flow)
            return
        if otherhost and frame.dst != dev.mac and frame.dst != BROADCAST_MAC:
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
    def hook(self, ns: Namespace, hook: str, ip: IPv4, flow: Flow, indev: str | None = None,
             outdev: str | None = None, nexthop: str | None = None) -> IPv4 | None:
        if hook == "PREROUTING" and ip.is_fragment and ns.netfilter.conntrack_active:
            # nf_defrag_ipv4 (priority -400): conntrack needs whole packets, so fragments are
            # gathered first; the output path cuts the packet back to the largest fragment size
            gathered = ip_defrag(self, ("defrag", ns.name), ip, flow, "nf_defrag_ipv4")
            if gathered is None:
                return None
            ip = gathered
        result = ns.netfilter.hook(hook, ip, flow.skb, indev, outdev, nexthop)
        for d in result.decisions:
            flow.note(d)
        if result.verdict == "ACCEPT":
            return result.packet
        where = outdev or indev or ""
        if result.verdict == "REJECT":
            flow.end("dropped", Decision(Subsystem.NETFILTER, "nf_hook_slow", NetfilterReason.HOOK_VERDICT, Verdict.REJECT,
                                         hook=hook), ns.name, where)
            self._reject(ns, result.packet, result.reject_with, flow)
            return None
        flow.end("dropped", Decision(Subsystem.NETFILTER, "nf_hook_slow", NetfilterReason.HOOK_VERDICT, Verdict.DROP,
                                     hook=hook), ns.name, where)
        return None

    def _reject(self, ns: Namespace, ip: IPv4, how: tuple[int, int] | str | None, flow: Flow) -> None:
        """What REJECT sends about the packet as the hook left it (netsim/netfilter/reject.py):
        nf_send_reset's RST goes out through ip_local_out, nf_send_unreach's error through
        icmp_send (send_icmp_error)."""
        from .netfilter.reject import nf_send_reset, nf_send_unreach
        if how == "tcp-reset":
            rst = nf_send_reset(ip, ns.sysctl.ip_default_ttl)
            if rst is not None:
                self.local_out(ns, rst, Flow(self, "reply"))
            return
        unreach = nf_send_unreach(ip, how if isinstance(how, tuple) else (ICMP_DEST_UNREACH, 3))
        if unreach is not None:
            self.send_icmp_error(ns, ip, unreach[0], unreach[1], flow, IcmpReason.REJECTED)

    # the two entry points the rest of the model (REJECT, flanneld) sends through
    def local_out(self, ns: Namespace, ip: IPv4, flow: Flow, rr: RouteResult | None = None) -> None:
        """ip_local_out for a packet this namespace generates (ip_output.py)."""
        ip_output.ip_local_out(self, ns, ip, flow, rr)

    def send_icmp_error(self, ns: Namespace, offender: IPv4, itype: int, code: int, flow: Flow,
                        why: IcmpReason = IcmpReason.ERROR, rest: int = 0) -> None:
        """icmp_send (icmp.py); `why` says whether REJECT asked for the error."""
        icmp.icmp_send(self, ns, offender, itype, code, flow, why, rest)

    def local_error(self, ns: Namespace, flow: Flow, errno: str) -> None:
        """The client's own packet was refused on its way out: its send fails with `errno`."""
        client = self.client
        if (client is not None and client.netns is ns and flow.last is None and not self.client_errno
                and flow.role in ("request", "ack", "data")):
            self.client_errno = errno


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

__all__ = ["Flow", "Walk", "MAX_HOPS", "NDO_START_XMIT", "PTYPE_HANDLERS", "FieldChange", "sockets"]
