"""Theory of operation: the walk of a packet through modelled kernels.

A `Network` holds namespaces joined by veth cables. `Network.send()` makes a socket in one
namespace emit a packet and then runs the kernel's receive and transmit paths, device by
device, until every frame copy has been delivered to a socket or dropped:

- transmit on a device records a `tx` hop; a veth hands the frame to its peer, whose `rx`
  hop is processed next (a FIFO of receive events, so hops come out in time order);
- receive on a bridge port runs the bridge (learning, br_netfilter hooks, FDB, flooding,
  hairpin); frames for the host go up the bridge device;
- the IP layer runs the netfilter hooks in the kernel's order (PREROUTING, routing, INPUT or
  FORWARD, OUTPUT, POSTROUTING), decrements the TTL only when forwarding, answers with ICMP
  errors, fragments or refuses what exceeds the MTU, and resolves next hops through the
  neighbour table, putting real ARP requests on the wire when an entry is missing;
- VXLAN and TUN devices encapsulate and hand off to userspace as the kernel does.

Each step notes its decision on the hop where the kernel had the frame in hand; the notes
become `Hop.decisions`. The walk is capped (MAX_HOPS) so that a loop raises a clear error
instead of hanging.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Callable

from . import endpoints as ep
from .addresses import derive_mac, parse_address, stable_hash
from .bridge import Bridge
from .device import Device, Loopback, Nic, Veth
from .errors import ConfigError, TraceError
from .neighbour import FAILED, INCOMPLETE, MCAST_SOLICIT, REACHABLE, STALE
from .netns import Namespace
from .packet import (
    ARP, ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, ICMP, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PROTO_NUMBERS, TCP, UDP, VXLAN,
    Ethernet, IPv4, _parse_transport,
)
from .params import check_send
from .skb import Skb
from .trace import Hop, Trace
from .tun import Tun
from .vxlan import VxlanDevice, flow_source_port

MAX_HOPS = 5000
VLAN_HLEN = 4      # is_skb_forwardable lets a frame exceed the MTU by a VLAN tag
# What a socket's connect()/sendmsg() gets for a route that cannot carry locally generated packets.
LOCAL_OUT_ERRORS = {"blackhole": "Invalid argument", "unreachable": "No route to host"}


@dataclass
class _Draft:
    index: int
    netns: str
    device: str
    direction: str
    frame: object
    packet_id: int
    role: str
    kind: str
    notes: list[str] = field(default_factory=list)
    verdict: str = ""


class Flow:
    """One packet (or one copy of it) on its way: its skb metadata and its latest hop."""

    __slots__ = ("walk", "packet_id", "role", "last", "early", "skb")

    def __init__(self, walk: "Walk", role: str, skb: Skb | None = None):
        self.walk = walk
        walk.packets += 1
        self.packet_id = walk.packets
        self.role = role
        self.last: _Draft | None = None
        self.early: list[str] = []
        self.skb = skb or Skb()

    def note(self, text: str) -> None:
        if self.last is not None:
            self.last.notes.append(text)
        else:
            self.early.append(text)

    def end(self, verdict: str, text: str) -> None:
        self.note(text)
        if self.last is not None:
            self.last.verdict = verdict
        else:
            self.walk.unrecorded.append(f"{verdict}: {text}")

    def copy(self, skb: Skb | None = None) -> "Flow":
        other = Flow.__new__(Flow)
        other.walk, other.packet_id, other.role = self.walk, self.packet_id, self.role
        other.last, other.early = self.last, []
        other.skb = skb if skb is not None else replace(self.skb, notes=[])
        return other


@dataclass
class Client:
    """The socket that started the exchange: where replies are delivered."""

    netns: Namespace
    key: tuple
    proto: str
    payload: bytes | None
    done: bool = False
    result: str = ""


class Walk:
    """The state of one trace: the hop drafts, the receive queue and the client socket."""

    def __init__(self, network: "Network", max_hops: int = MAX_HOPS):
        self.network = network
        self.max_hops = max_hops
        self.drafts: list[_Draft] = []
        self.queue: deque[Callable[[], None]] = deque()
        self.packets = 0
        self.unrecorded: list[str] = []
        self.client: Client | None = None
        self.pending_arp: dict[tuple[str, str, str], tuple[Namespace, Device, str]] = {}
        self.reassembly: dict[tuple, list[IPv4]] = {}

    # recording ------------------------------------------------------------------------
    def record(self, dev: Device, direction: str, frame, flow: Flow) -> _Draft:
        if len(self.drafts) >= self.max_hops:
            last = "; ".join(f"{d.netns}/{d.device} {d.direction}" for d in self.drafts[-6:])
            raise TraceError(f"trace exceeded {self.max_hops} hops: a forwarding or bridging loop? "
                             f"last hops: {last}")
        draft = _Draft(len(self.drafts), dev.netns.name, dev.name, direction, frame, flow.packet_id,
                       flow.role, dev.kind)
        if flow.early:
            draft.notes.extend(flow.early)
            flow.early = []
        self.drafts.append(draft)
        flow.last = draft
        return draft

    def run(self) -> None:
        queue = self.queue
        while True:
            while queue:
                queue.popleft()()
            if not self._retry_arp():
                break

    def hops(self) -> tuple[Hop, ...]:
        return tuple(Hop(d.index, d.netns, d.device, d.direction, d.frame, tuple(d.notes), d.packet_id,
                         d.role, d.verdict, d.kind) for d in self.drafts)

    # link layer -------------------------------------------------------------------------
    def transmit(self, dev: Device, frame, flow: Flow) -> None:
        """dev_queue_xmit: a capture on `dev` sees the frame leave (except on lo)."""
        if not dev.up:
            flow.end("dropped", f"{dev.name} is down: the frame is not sent")
            return
        if isinstance(dev, Loopback):
            self.queue.append(lambda: self.receive(dev, frame, flow))
            return
        size = _l3_length(frame)
        if dev.master is not None and size > dev.mtu + VLAN_HLEN:
            flow.end("dropped", f"{dev.master.name}: a {size}-byte packet does not fit port {dev.name}'s MTU "
                                f"{dev.mtu}: dropped (is_skb_forwardable)")
            return
        self.record(dev, "tx", frame, flow)
        if isinstance(dev, Veth):
            peer = dev.peer
            if peer is None or not peer.up:
                flow.end("dropped", f"the peer of {dev.name} is missing or down")
                return
            if size > peer.mtu + VLAN_HLEN:
                flow.end("dropped", f"the peer {peer.where} drops it: a {size}-byte packet exceeds its MTU "
                                    f"{peer.mtu} (is_skb_forwardable; counted in its rx_dropped, no ICMP)")
                return
            crossing = peer.netns is not dev.netns
            skb = Skb(hash=flow.skb.hash) if crossing else flow.skb
            nxt = flow.copy(skb)
            self.queue.append(lambda: self.receive(peer, frame, nxt))
        elif isinstance(dev, Bridge):
            self.bridge_xmit(dev, frame, flow)
        elif isinstance(dev, VxlanDevice):
            self.vxlan_xmit(dev, frame, flow)
        elif isinstance(dev, Tun):
            if dev.program is None:
                flow.end("dropped", f"nothing holds {dev.name} open: the packet is discarded")
            else:
                dev.program.from_tun(self, dev, frame, flow)
        else:
            flow.end("dropped", f"{dev.name} ({dev.kind}) has no cable")

    def receive(self, dev: Device, frame, flow: Flow) -> None:
        """netif_receive_skb: a capture on `dev` sees the frame arrive."""
        self.record(dev, "rx", frame, flow)
        if not dev.up:
            flow.end("dropped", f"{dev.name} is down")
            return
        if dev.master is not None and isinstance(dev.master, Bridge):
            self.bridge_input(dev.master, dev, frame, flow)
            return
        self.l2_deliver(dev, frame, flow)

    def l2_deliver(self, dev: Device, frame, flow: Flow) -> None:
        ns = dev.netns
        if isinstance(frame, IPv4):          # raw-IP device (TUN)
            self.ip_rcv(ns, dev, frame, flow)
            return
        if frame.dst != dev.mac and frame.dst != BROADCAST_MAC and not isinstance(dev, Loopback):
            flow.end("dropped", f"destination MAC {frame.dst} is not {dev.name}'s ({dev.mac}): "
                                f"not for this host (PACKET_OTHERHOST)")
            return
        if frame.type == ETH_P_ARP:
            self.arp_rcv(ns, dev, frame.payload, flow)
        elif frame.type == ETH_P_IP:
            self.ip_rcv(ns, dev, frame.payload, flow)
        else:
            flow.end("dropped", f"EtherType {frame.type:#06x} has no handler here")

    # bridge -----------------------------------------------------------------------------
    def bridge_input(self, br: Bridge, port_dev: Device, frame: Ethernet, flow: Flow) -> None:
        port = br.ports[port_dev.name]
        ns = br.netns
        if port.learning and not _is_multicast(frame.src) and br.learn(frame.src, port_dev.name):
            flow.note(f"{br.name}: learned {frame.src} on port {port_dev.name}")
        dnat_route = None
        if frame.type == ETH_P_IP and ns.sysctl.bridge_nf_call_iptables and isinstance(frame.payload, IPv4):
            ip = frame.payload
            result = self.hook(ns, "PREROUTING", ip, flow, indev=br.name)
            if result is None:
                return
            flow.skb.bridged = True
            if result.dst != ip.dst:
                rr = ns.route_get(result.dst)
                if rr is not None and rr.dev == br.name and not rr.is_local:
                    dnat_route = rr
                elif not br.is_local_mac(frame.dst):
                    frame = replace(frame, dst=br.mac)
                    flow.note(f"br_netfilter: the new destination {result.dst} is not on {br.name}: "
                              f"the frame goes up to the IP stack to be routed")
            frame = replace(frame, payload=result)
        if dnat_route is not None:
            entry = ns.neighbours.get(br.name, dnat_route.nexthop)
            if entry is None or not entry.usable:
                flow.end("dropped", f"br_netfilter: DNAT to {dnat_route.nexthop} on {br.name} needs a neighbour "
                                    f"entry, and none is resolved (the kernel would ARP and retry)")
                return
            frame = replace(frame, dst=entry.lladdr)
            flow.note(f"br_netfilter: DNAT target {dnat_route.nexthop} is on {br.name} too: "
                      f"bridged to {entry.lladdr}, not routed")
            self.bridge_forward(br, port_dev, frame, flow)
            return
        if frame.dst == BROADCAST_MAC or _is_multicast(frame.dst):
            flow.note(f"{br.name}: broadcast, flooded to every port and passed up to {br.name}")
            self.bridge_flood(br, port_dev, frame, flow, include_up=True)
            return
        if br.is_local_mac(frame.dst):
            flow.note(f"{br.name}: destination {frame.dst} is the bridge's own MAC: up to its IP stack")
            up = flow.copy()
            self.record(br, "rx", frame, up)
            self.l2_deliver_up(br, frame, up)
            return
        self.bridge_forward(br, port_dev, frame, flow)

    def l2_deliver_up(self, br: Bridge, frame: Ethernet, flow: Flow) -> None:
        if frame.type == ETH_P_ARP:
            self.arp_rcv(br.netns, br, frame.payload, flow)
        elif frame.type == ETH_P_IP:
            self.ip_rcv(br.netns, br, frame.payload, flow)
        else:
            flow.end("dropped", f"EtherType {frame.type:#06x} has no handler")

    def bridge_forward(self, br: Bridge, in_dev: Device, frame: Ethernet, flow: Flow) -> None:
        entry = br.fdb.get(frame.dst)
        if entry is None:
            flow.note(f"{br.name}: {frame.dst} is not in the FDB: flooded as unknown unicast")
            self.bridge_flood(br, in_dev, frame, flow, include_up=False)
            return
        port = br.ports[entry.port]
        if entry.port == in_dev.name and not port.hairpin:
            flow.end("dropped", f"{br.name}: {frame.dst} is on the ingress port {in_dev.name} and hairpin is off")
            return
        flow.note(f"{br.name}: FDB {frame.dst} -> port {entry.port}")
        self.bridge_out(br, port.dev, frame, flow)

    def bridge_out(self, br: Bridge, out_dev: Device, frame: Ethernet, flow: Flow) -> None:
        ns = br.netns
        if (frame.type == ETH_P_IP and ns.sysctl.bridge_nf_call_iptables and isinstance(frame.payload, IPv4)
                and flow.skb.bridged):
            ip = self.hook(ns, "FORWARD", frame.payload, flow, indev=br.name, outdev=br.name)
            if ip is None:
                return
            ip = self.hook(ns, "POSTROUTING", ip, flow, outdev=br.name)
            if ip is None:
                return
            frame = replace(frame, payload=ip)
            frag_max = flow.skb.frag_max
            if frag_max and ip.length() > frag_max:
                # br_nf_dev_queue_xmit: a packet conntrack reassembled leaves in its old fragments
                fragments = fragment(ip, frag_max)
                flow.note(f"br_netfilter: reassembled by conntrack, cut back to its largest fragment "
                          f"({frag_max} bytes): {len(fragments)} fragments")
                for frag in fragments:
                    self.transmit(out_dev, replace(frame, payload=frag), flow.copy())
                return
        self.transmit(out_dev, frame, flow)

    def bridge_flood(self, br: Bridge, in_dev: Device | None, frame: Ethernet, flow: Flow, include_up: bool) -> None:
        if br.flood_hook is not None:
            br.flood_hook(frame, flow)
        targets = [p for name, p in br.ports.items()
                   if p.flood and (in_dev is None or name != in_dev.name or p.hairpin)]
        for port in targets:
            copy = flow.copy()
            if in_dev is not None and port.dev is in_dev:
                copy.note(f"{br.name}: hairpin on {port.dev.name}: the flood goes back out of the ingress port")
            self.bridge_out(br, port.dev, frame, copy)
        if include_up:
            up = flow.copy()
            self.record(br, "rx", frame, up)
            self.l2_deliver_up(br, frame, up)
        elif not targets:
            flow.end("dropped", f"{br.name}: no port to flood to")

    def bridge_xmit(self, br: Bridge, frame: Ethernet, flow: Flow) -> None:
        """br_dev_xmit: the host sends through the bridge device."""
        if frame.dst == BROADCAST_MAC or _is_multicast(frame.dst):
            flow.note(f"{br.name}: broadcast from the host, flooded to every port")
            if br.flood_hook is not None:
                br.flood_hook(frame, flow)
            for port in [p for p in br.ports.values() if p.flood]:
                self.transmit(port.dev, frame, flow.copy())
            return
        entry = br.fdb.get(frame.dst)
        if entry is None:
            flow.note(f"{br.name}: {frame.dst} is not in the FDB: flooded")
            if br.flood_hook is not None:
                br.flood_hook(frame, flow)
            for port in [p for p in br.ports.values() if p.flood]:
                self.transmit(port.dev, frame, flow.copy())
            return
        flow.note(f"{br.name}: FDB {frame.dst} -> port {entry.port}")
        self.transmit(br.ports[entry.port].dev, frame, flow)

    # ARP --------------------------------------------------------------------------------
    def arp_rcv(self, ns: Namespace, dev: Device, arp: ARP, flow: Flow) -> None:
        if arp.op == ARP_REQUEST:
            if not ns.is_local_address(arp.pdst) or arp.pdst.startswith("127."):
                entry = ns.neighbours.get(dev.name, arp.psrc)
                if entry is not None and entry.state not in ("PERMANENT", "NOARP") and entry.lladdr != arp.hwsrc:
                    ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, STALE)
                flow.end("dropped", f"ARP request for {arp.pdst} is not for this host: ignored")
                return
            existing = ns.neighbours.get(dev.name, arp.psrc)
            if existing is None or existing.state not in ("PERMANENT", "NOARP"):
                ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, STALE)
                self._flush_neighbour(ns, dev, arp.psrc)
            flow.end("delivered", f"ARP: {arp.pdst} is an address of this host: replying is-at {dev.mac}; "
                                  f"neighbour {arp.psrc} lladdr {arp.hwsrc} STALE on {dev.name}")
            reply = Ethernet(arp.hwsrc, dev.mac, ETH_P_ARP, ARP(ARP_REPLY, dev.mac, arp.pdst, arp.hwsrc, arp.psrc))
            self.transmit(dev, reply, Flow(self, "arp"))
            return
        entry = ns.neighbours.get(dev.name, arp.psrc)
        if entry is None:
            flow.end("dropped", f"unsolicited ARP reply from {arp.psrc}: no entry to update (arp_accept=0)")
            return
        if entry.state in ("PERMANENT", "NOARP"):
            flow.end("delivered", f"ARP reply from {arp.psrc}: the entry is {entry.state} and stays")
            return
        ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, REACHABLE)
        self.pending_arp.pop((ns.name, dev.name, arp.psrc), None)
        flow.end("delivered", f"ARP reply: neighbour {arp.psrc} lladdr {arp.hwsrc} REACHABLE on {dev.name}")
        self._flush_neighbour(ns, dev, arp.psrc)

    def _flush_neighbour(self, ns: Namespace, dev: Device, ip: str) -> None:
        entry = ns.neighbours.get(dev.name, ip)
        if entry is None or not entry.queue:
            return
        queued, entry.queue = entry.queue, []
        for packet, qflow in queued:
            qflow.note(f"neighbour {ip} resolved to {entry.lladdr}: the queued packet is sent")
            self.transmit(dev, Ethernet(entry.lladdr, dev.mac, ETH_P_IP, packet), qflow)

    def arp_solicit(self, ns: Namespace, dev: Device, target: str, src_hint: str | None) -> None:
        if src_hint is not None and ns.is_local_address(src_hint):
            sip = src_hint
        else:
            sip = ns.masquerade_source(dev.name, target) if dev.addresses else None
        if sip is None:
            sip = next((str(i.ip) for n, i in ns.addresses() if n != "lo"), "0.0.0.0")
        request = Ethernet(BROADCAST_MAC, dev.mac, ETH_P_ARP, ARP(ARP_REQUEST, dev.mac, sip, "00:00:00:00:00:00", target))
        arp_flow = Flow(self, "arp")
        arp_flow.note(f"ARP: who-has {target} tell {sip} (no neighbour entry on {dev.name})")
        self.transmit(dev, request, arp_flow)

    def _retry_arp(self) -> bool:
        """After the wire went quiet: probe again, or give up (FAILED, ICMP host unreachable)."""
        progressed = False
        for key, (ns, dev, ip) in list(self.pending_arp.items()):
            entry = ns.neighbours.get(dev.name, ip)
            if entry is None or entry.state != INCOMPLETE:
                del self.pending_arp[key]
                continue
            if entry.probes < MCAST_SOLICIT:
                entry.probes += 1
                self.arp_solicit(ns, dev, ip, None)
                progressed = True
                continue
            entry.state = FAILED
            del self.pending_arp[key]
            queued, entry.queue = entry.queue, []
            for packet, qflow in queued:
                qflow.end("dropped", f"neighbour {ip} on {dev.name} FAILED: no ARP reply after "
                                     f"{MCAST_SOLICIT} requests")
                # arp_error_report -> ipv4_link_failure -> icmp_send, for forwarded and local
                # packets alike: ping shows "From <own address> ... Destination Host Unreachable".
                self.send_icmp_error(ns, packet, ICMP_DEST_UNREACH, 1, qflow, "host unreachable")
                progressed = True
        return progressed

    # IP ---------------------------------------------------------------------------------
    def hook(self, ns: Namespace, hook: str, ip: IPv4, flow: Flow, indev: str | None = None,
             outdev: str | None = None, nexthop: str | None = None) -> IPv4 | None:
        if hook == "PREROUTING" and ip.is_fragment and ns.netfilter.conntrack_active:
            # nf_defrag_ipv4 (priority -400): conntrack needs whole packets, so fragments are
            # gathered first; the output path cuts the packet back to the largest fragment size
            ip = self._gather(("defrag", ns.name), ip, flow, "conntrack's defragmentation (nf_defrag_ipv4)")
            if ip is None:
                return None
        result = ns.netfilter.hook(hook, ip, flow.skb, indev, outdev, nexthop)
        for line in result.explanation:
            flow.note(line)
        if result.verdict == "ACCEPT":
            return result.packet
        if result.verdict == "REJECT":
            flow.end("dropped", f"{hook}: REJECT")
            self._reject(ns, result.packet, result.reject_with, flow)
            return None
        flow.end("dropped", f"{hook}: DROP")
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
            self.send_icmp_error(ns, ip, unreach[0], unreach[1], flow, "rejected")

    def ip_rcv(self, ns: Namespace, dev: Device, ip: IPv4, flow: Flow) -> None:
        if not flow.skb.bridged:
            ip = self.hook(ns, "PREROUTING", ip, flow, indev=dev.name)
            if ip is None:
                return
        flow.skb.bridged = False
        if ns.is_local_address(ip.src) and not isinstance(dev, Loopback):
            # fib_validate_source: a packet arriving from outside with one of our own addresses
            # as source is a martian (accept_local=0), whether it is for us or to be forwarded.
            flow.end("dropped", f"martian source {ip.src} on {dev.name}: the source is an address of "
                                f"{ns.name} (accept_local=0)")
            return
        if ns.is_local_address(ip.dst) or ip.dst == "255.255.255.255":
            self.local_deliver(ns, dev, ip, flow)
            return
        rr = ns.route_get(ip.dst)
        if rr is not None and rr.route.type == "broadcast":
            flow.end("dropped", f"{ip.dst} is a broadcast address here: not forwarded")
            return
        if not ns.sysctl.ip_forward:
            flow.end("dropped", f"{ip.dst} is not an address of {ns.name} and net.ipv4.ip_forward is 0: "
                                f"the packet is not forwarded")
            return
        # ip_error: no route is ENETUNREACH (ICMP net unreachable), an `unreachable` route
        # EHOSTUNREACH (ICMP host unreachable); a `blackhole` route discards silently.
        if rr is None:
            flow.end("dropped", f"no route to {ip.dst}: network unreachable")
            self.send_icmp_error(ns, ip, ICMP_DEST_UNREACH, 0, flow, "network unreachable")
            return
        if rr.route.type == "unreachable":
            flow.end("dropped", f"route {rr.route}: host unreachable")
            self.send_icmp_error(ns, ip, ICMP_DEST_UNREACH, 1, flow, "host unreachable")
            return
        if rr.route.type == "blackhole":
            flow.end("dropped", f"route {rr.route}: discarded silently")
            return
        self.forward(ns, dev, ip, rr, flow)

    def forward(self, ns: Namespace, in_dev: Device, ip: IPv4, rr, flow: Flow) -> None:
        flow.note(f"route: {rr.route}")
        if ip.ttl <= 1:
            flow.end("dropped", f"TTL {ip.ttl} would reach 0 when forwarding: time exceeded")
            self.send_icmp_error(ns, ip, ICMP_TIME_EXCEEDED, 0, flow, "time exceeded")
            return
        out_dev = ns.devices[rr.dev]
        if ip.df and ip.length() > out_dev.mtu:
            flow.end("dropped", f"{ip.length()} bytes with DF set exceed {out_dev.name}'s MTU {out_dev.mtu}: "
                                f"ICMP fragmentation needed (mtu {out_dev.mtu})")
            self.send_icmp_error(ns, ip, ICMP_DEST_UNREACH, 4, flow, "fragmentation needed", rest=out_dev.mtu)
            return
        ip = replace(ip, ttl=ip.ttl - 1)
        flow.note(f"forwarded: TTL {ip.ttl + 1} -> {ip.ttl}")
        ip = self.hook(ns, "FORWARD", ip, flow, indev=in_dev.name, outdev=rr.dev)
        if ip is None:
            return
        self.ip_output(ns, ip, rr, flow)

    def local_out(self, ns: Namespace, ip: IPv4, flow: Flow, rr=None) -> None:
        """ip_local_out for a packet this namespace generates."""
        if rr is None:
            rr = ns.route_get(ip.dst, ip.src)
            if rr is None:
                flow.end("dropped", f"no route to {ip.dst} in {ns.name}: Network is unreachable")
                return
        if rr.route.type in LOCAL_OUT_ERRORS:
            flow.end("dropped", f"route {rr.route}: {LOCAL_OUT_ERRORS[rr.route.type]}")
            return
        flow.note(f"route: {rr}")
        original_dst = ip.dst
        ip = self.hook(ns, "OUTPUT", ip, flow, outdev=rr.dev, nexthop=rr.nexthop)
        if ip is None:
            return
        if ip.dst != original_dst:
            rr = ns.route_get(ip.dst, ip.src)
            if rr is None:
                flow.end("dropped", f"no route to {ip.dst} after NAT")
                return
            flow.note(f"rerouted after DNAT: {rr}")
        if rr.is_local:
            ip = self.hook(ns, "POSTROUTING", ip, flow, outdev="lo")
            if ip is None:
                return
            lo = ns.devices["lo"]
            self.transmit(lo, Ethernet("00:00:00:00:00:00", "00:00:00:00:00:00", ETH_P_IP, ip), flow)
            return
        out_dev = ns.devices[rr.dev]
        if ip.df and ip.length() > out_dev.mtu:
            flow.end("dropped", f"{ip.length()} bytes with DF set exceed {out_dev.name}'s MTU {out_dev.mtu}: "
                                f"the socket gets EMSGSIZE")
            return
        self.ip_output(ns, ip, rr, flow)

    def ip_output(self, ns: Namespace, ip: IPv4, rr, flow: Flow) -> None:
        ip = self.hook(ns, "POSTROUTING", ip, flow, outdev=rr.dev, nexthop=rr.nexthop)
        if ip is None:
            return
        out_dev = ns.devices[rr.dev]
        frag_max = flow.skb.frag_max
        if ip.length() > out_dev.mtu or (frag_max and ip.length() > frag_max):
            if ip.df:
                flow.end("dropped", f"{ip.length()} bytes exceed {out_dev.name}'s MTU {out_dev.mtu}")
                return
            size = min(out_dev.mtu, frag_max) if frag_max else out_dev.mtu
            fragments = fragment(ip, size)
            why = (f"reassembled by conntrack, cut back to its largest fragment ({frag_max} bytes)"
                   if frag_max and frag_max <= out_dev.mtu else f"{ip.length()} bytes exceed {out_dev.name}'s MTU "
                                                                f"{out_dev.mtu} and DF is clear")
            flow.note(f"{why}: {len(fragments)} fragments")
            for frag in fragments:
                self.neigh_output(ns, out_dev, rr.nexthop, frag, flow.copy())
            return
        self.neigh_output(ns, out_dev, rr.nexthop, ip, flow)

    def neigh_output(self, ns: Namespace, dev: Device, nexthop: str, ip: IPv4, flow: Flow) -> None:
        if isinstance(dev, Tun):
            self.transmit(dev, ip, flow)
            return
        if isinstance(dev, Loopback):
            self.transmit(dev, Ethernet("00:00:00:00:00:00", "00:00:00:00:00:00", ETH_P_IP, ip), flow)
            return
        entry = ns.neighbours.get(dev.name, nexthop)
        if entry is not None and entry.usable:
            flow.note(f"neighbour: {entry}")
            self.transmit(dev, Ethernet(entry.lladdr, dev.mac, ETH_P_IP, ip), flow)
            return
        if entry is None or entry.state == FAILED:
            entry = ns.neighbours.set(dev.name, nexthop, None, INCOMPLETE)
            entry.probes = 1
            entry.queue.append((ip, flow))
            flow.note(f"neighbour: no entry for {nexthop} on {dev.name}: INCOMPLETE, packet queued")
            self.pending_arp[(ns.name, dev.name, nexthop)] = (ns, dev, nexthop)
            self.arp_solicit(ns, dev, nexthop, ip.src)
            return
        entry.queue.append((ip, flow))
        flow.note(f"neighbour: {nexthop} on {dev.name} is INCOMPLETE: packet queued")

    def local_deliver(self, ns: Namespace, dev: Device, ip: IPv4, flow: Flow) -> None:
        ip = self.hook(ns, "INPUT", ip, flow, indev=dev.name)
        if ip is None:
            return
        if ip.is_fragment:
            ip = self._reassemble(ns, ip, flow)
            if ip is None:
                return
        payload = ip.payload
        if ip.proto == IPPROTO_UDP and isinstance(payload, UDP):
            vx = self._vxlan_for(ns, payload.dport)
            if vx is not None:
                self.vxlan_rcv(ns, vx, ip, flow)
                return
            program = self.network.udp_programs.get((ns.name, payload.dport))
            if program is not None:
                program.from_udp(self, ns, ip, flow)
                return
        self.network.endpoint_rcv(self, ns, ip, flow)

    def _reassemble(self, ns: Namespace, ip: IPv4, flow: Flow) -> IPv4 | None:
        """ip_local_deliver's ip_defrag: a socket only ever sees whole packets."""
        return self._gather(("local", ns.name), ip, flow, "reassembly")

    def _gather(self, scope: tuple, ip: IPv4, flow: Flow, what: str) -> IPv4 | None:
        """Hold fragments until they add up to the whole packet; then return it, with the
        largest fragment's size noted in the skb (IPCB frag_max_size)."""
        key = (*scope, ip.src, ip.dst, ip.id, ip.proto)
        parts = self.reassembly.setdefault(key, [])
        parts.append(ip)
        parts.sort(key=lambda p: p.frag)
        offset, data, complete = 0, b"", False
        for part in parts:
            if part.frag * 8 != offset:
                break
            chunk = part.payload if isinstance(part.payload, bytes) else part.payload_bytes()
            data += chunk
            offset += len(chunk)
            if not part.mf:
                complete = True
        if not complete:
            flow.end("delivered", f"fragment at offset {ip.frag * 8} held for {what}")
            return None
        del self.reassembly[key]
        flow.skb.frag_max = max(part.length() for part in parts)
        flow.note(f"{what}: {len(parts)} fragments make one packet of {20 + len(data)} bytes")
        return replace(parts[0], payload=_parse_transport(ip.proto, data, (8472, 4789)), mf=False, frag=0)

    def _vxlan_for(self, ns: Namespace, port: int) -> VxlanDevice | None:
        for dev in ns.devices.values():
            if isinstance(dev, VxlanDevice) and dev.dstport == port and dev.up:
                return dev
        return None

    def send_icmp_error(self, ns: Namespace, offender: IPv4, itype: int, code: int, flow: Flow, what: str,
                        rest: int = 0) -> None:
        if isinstance(offender.payload, ICMP) and offender.payload.is_error:
            return   # never answer an ICMP error with an ICMP error
        rr = ns.route_get(offender.src)
        if rr is None:
            return
        src = rr.src or offender.dst
        error = ep.icmp_error(offender, src, itype, code, ns.sysctl.ip_default_ttl,
                              ns.ip_id(src, offender.src, IPPROTO_ICMP), rest)
        err_flow = Flow(self, "error")
        err_flow.note(f"ICMP {what} from {src} to {offender.src}")
        self.local_out(ns, error, err_flow, rr)

    # VXLAN ------------------------------------------------------------------------------
    def vxlan_xmit(self, dev: VxlanDevice, frame: Ethernet, flow: Flow) -> None:
        ns = dev.netns
        entry = dev.fdb.get(frame.dst)
        if entry is None:
            flow.end("dropped", f"{dev.name}: no FDB entry for {frame.dst} and no default destination: "
                                f"the kernel drops the frame (learning is off)")
            return
        inner_ip = frame.ip
        low, high = dev.port_range or ns.sysctl.ip_local_port_range
        sport = flow_source_port(_flow_hash(frame, flow.skb), low, high)
        ecn = (inner_ip.tos & 0x03) if inner_ip is not None else 0
        tos = 0x02 if ecn == 0x03 else ecn      # INET_ECN_encapsulate: CE goes out as ECT(0)
        outer = IPv4(dev.local, entry.dst, IPPROTO_UDP,
                     UDP(sport, dev.dstport, VXLAN(dev.vni, frame), checksum=dev.udp_csum),
                     ttl=ns.sysctl.ip_default_ttl, id=ns.ip_id(dev.local, entry.dst, IPPROTO_UDP), df=False, tos=tos)
        flow.note(f"{dev.name}: FDB {frame.dst} dst {entry.dst}: encapsulated in UDP {sport} -> {dev.dstport}, "
                  f"VNI {dev.vni}, outer TTL {outer.ttl}, DF clear")
        outer_flow = flow.copy(Skb(hash=flow.skb.hash, mark=flow.skb.mark))
        self.local_out(ns, outer, outer_flow)

    def vxlan_rcv(self, ns: Namespace, dev: VxlanDevice, outer: IPv4, flow: Flow) -> None:
        vx = outer.payload.payload
        if not isinstance(vx, VXLAN) or not vx.flags & 0x08:
            flow.end("dropped", f"UDP {dev.dstport}: not a valid VXLAN header (I flag clear)")
            return
        if vx.vni != dev.vni:
            flow.end("dropped", f"VXLAN VNI {vx.vni} does not match {dev.name} (VNI {dev.vni})")
            return
        flow.end("delivered", f"UDP socket on port {dev.dstport}: VXLAN VNI {vx.vni}, decapsulated into {dev.name}")
        inner = flow.copy(Skb(hash=flow.skb.hash))
        self.receive(dev, vx.payload, inner)


class Network:
    """Namespaces joined by cables; `send()` walks one exchange through them."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Namespace] = {}
        self.udp_programs: dict[tuple[str, int], object] = {}
        self.max_hops = MAX_HOPS

    # building -----------------------------------------------------------------------------
    def add_netns(self, name: str) -> Namespace:
        if name in self.namespaces:
            raise ConfigError(f"a namespace named {name!r} exists already")
        ns = self.namespaces[name] = Namespace(name, self)
        return ns

    def netns(self, name: str) -> Namespace:
        try:
            return self.namespaces[name]
        except KeyError:
            raise ConfigError(f"no namespace {name!r}; there are {', '.join(self.namespaces) or 'none'}") from None

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int = 1500,
             mac_a: str | None = None, mac_b: str | None = None, nic: str | None = None) -> tuple[Veth, Veth]:
        """`ip link add NAME_A type veth peer name NAME_B netns NS_B`. With `nic` naming one
        side, that side is a physical NIC (`Nic`) and the other its switch port."""
        a_ns, b_ns = self.netns(ns_a), self.netns(ns_b)
        for ns, name in ((a_ns, name_a), (b_ns, name_b)):
            if name in ns.devices:
                raise ConfigError(f"namespace {ns.name} already has a device named {name!r}")
        a = (Nic if nic == "a" else Veth)(name_a, mac_a or derive_mac(ns_a, name_a), mtu)
        b = (Nic if nic == "b" else Veth)(name_b, mac_b or derive_mac(ns_b, name_b), mtu)
        a.peer, b.peer = b, a
        a_ns.add_device(a)
        b_ns.add_device(b)
        return a, b

    def bridge(self, ns: str, name: str, mac: str | None = None, mtu: int = 1500) -> Bridge:
        return self.netns(ns).add_device(Bridge(name, mac, mtu))

    # sending ------------------------------------------------------------------------------
    def send(self, src_ns: str, dst: str, proto: str = "icmp", dport: int | None = None,
             sport: int | None = None, payload: bytes | None = None, src: str | None = None,
             cold: bool = True, title: str = "") -> Trace:
        """A socket in `src_ns` sends one request to `dst`; returns the trace of the exchange.

        proto "icmp": echo request and reply. "udp": one datagram (payload, default b"REQ") and
        the answer. "tcp": SYN and SYN-ACK (or RST); with `payload`, also the handshake's ACK,
        the data and the server's answer. `cold` flushes learned neighbours, bridge FDB entries
        and conntrack first, as the reference captures did."""
        ns = self.netns(src_ns)
        dst = str(parse_address(dst, "destination"))
        check_send(proto, dport, sport, payload)
        if src is not None:
            src = str(parse_address(src, "source"))
            if not ns.is_local_address(src):
                raise ConfigError(f"source {src} is not an address of {src_ns} (bind: Cannot assign requested address)")
        if cold:
            self.flush_caches()
        walk = Walk(self, self.max_hops)
        rr = ns.route_get(dst, src)
        if rr is None:
            return Trace((), title, f"connect: Network is unreachable (no route to {dst} in {src_ns})")
        if rr.route.type in LOCAL_OUT_ERRORS:
            return Trace((), title, f"connect: {LOCAL_OUT_ERRORS[rr.route.type]} (route {rr.route} in {src_ns})")
        source = rr.src or src
        ttl = ns.sysctl.ip_default_ttl
        flow = Flow(walk, "request")
        if proto == "icmp":
            ip = ep.echo_request(source, dst, ep.PING_ID, 1, ttl, ns.ip_id(source, dst, IPPROTO_ICMP))
        else:
            port = sport or ns.ephemeral_port(source, dst, dport, proto)
            out_mtu = ns.devices[rr.dev].mtu if rr.dev in ns.devices else 1500
            if proto == "tcp":
                ip = ep.tcp_syn(source, dst, port, int(dport), min(out_mtu, 65535) - 40, ttl,
                                ns.ip_id(source, dst, IPPROTO_TCP))
            else:
                ip = ep.udp_datagram(source, dst, port, int(dport), payload if payload is not None else b"REQ",
                                     ttl, ns.ip_id(source, dst, IPPROTO_UDP))
                if ip.length() > out_mtu:
                    # __ip_make_skb with IP_PMTUDISC_WANT (the UDP default): DF only on a datagram
                    # that fits the route's MTU; a larger one leaves DF clear and is fragmented.
                    ip = replace(ip, df=False)
        flow.skb.hash = _socket_hash(ip)
        walk.client = Client(ns, ep.flow_key(ip), proto, payload)
        flow.note(f"{proto} socket in {src_ns}: {_describe(ip)} (source {source} from `ip route get {dst}`)")
        walk.local_out(ns, ip, flow, rr)
        walk.run()
        return Trace(walk.hops(), title or f"{src_ns} -> {dst} {proto}{'/' + str(dport) if dport else ''}",
                     walk.client.result or "; ".join(["no answer reached the sender"] + walk.unrecorded))

    def flush_caches(self) -> None:
        """`ip neigh flush`, forget learned FDB entries, `conntrack -F` in every namespace."""
        for ns in self.namespaces.values():
            ns.neighbours.flush_dynamic()
            ns.conntrack.flush()
            for dev in ns.devices.values():
                if isinstance(dev, Bridge):
                    dev.flush_learned()

    # endpoints ----------------------------------------------------------------------------
    def endpoint_rcv(self, walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
        """The transport layer of the receiving namespace: sockets and the kernel's responders."""
        client = walk.client
        key = ep.flow_key(ip)
        ttl = ns.sysctl.ip_default_ttl
        payload = ip.payload
        is_echo_request = isinstance(payload, ICMP) and payload.type == ICMP_ECHO_REQUEST
        if client is not None and client.netns is ns and key == ep.reversed_key(client.key) and not is_echo_request:
            self._client_rcv(walk, ns, ip, flow)
            return
        if isinstance(payload, ICMP):
            if payload.type == ICMP_ECHO_REQUEST:
                reply = ep.echo_reply(ip, ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_ICMP))
                flow.end("delivered", f"ICMP echo request for {ip.dst}: the kernel answers with an echo reply")
                self._respond(walk, ns, reply, "reply")
                return
            if payload.is_error and client is not None and client.netns is ns:
                client.result = f"error: {payload.summary()} from {ip.src}"
                flow.end("delivered", f"{payload.summary()} from {ip.src}: reported to the sending socket")
                return
            flow.end("dropped", f"{payload.summary()}: no socket waits for it")
            return
        if isinstance(payload, TCP):
            if ("tcp", payload.dport) in ns.listeners:
                self._tcp_server(walk, ns, ip, flow)
                return
            if "R" in payload.flags:
                flow.end("dropped", "RST for no connection: ignored")
                return
            flow.end("delivered", f"TCP port {payload.dport}: nothing listens; the kernel answers RST")
            self._respond(walk, ns, ep.tcp_rst(ip, ttl), "reply")
            return
        if isinstance(payload, UDP):
            if ("udp", payload.dport) in ns.listeners:
                flow.end("delivered", f"UDP socket on port {payload.dport} receives {len(payload.payload_bytes())} "
                                      f"bytes and answers")
                self._respond(walk, ns, ep.udp_reply(ip, b"RSP", ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_UDP)), "reply")
                return
            flow.end("delivered", f"UDP port {payload.dport}: no socket; the kernel answers ICMP port unreachable")
            walk.send_icmp_error(ns, ip, ICMP_DEST_UNREACH, 3, flow, "port unreachable")
            return
        flow.end("dropped", f"protocol {ip.proto}: no handler")

    def _respond(self, walk: Walk, ns: Namespace, ip: IPv4, role: str) -> None:
        flow = Flow(walk, role)
        flow.skb.hash = _socket_hash(ip) if ip.proto != IPPROTO_ICMP else None
        flow.note(f"{ns.name} answers: {_describe(ip)}")
        walk.local_out(ns, ip, flow)

    def _tcp_server(self, walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
        seg: TCP = ip.payload
        ttl = ns.sysctl.ip_default_ttl
        if seg.flags == "S":
            rr = ns.route_get(ip.src, ip.dst)
            mtu = ns.devices[rr.dev].mtu if rr is not None and rr.dev in ns.devices else 1500
            flow.end("delivered", f"TCP listener on port {seg.dport}: SYN accepted, answering SYN-ACK")
            self._respond(walk, ns, ep.tcp_synack(ip, min(mtu, 65535) - 40, ttl), "reply")
        elif seg.payload:
            flow.end("delivered", f"TCP connection on port {seg.dport} receives {len(seg.payload)} bytes and answers")
            response = ep.tcp_next(ip, "PA", b"RSP", ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_TCP) or 1)
            self._respond(walk, ns, response, "response")
        else:
            flow.end("delivered", f"TCP connection on port {seg.dport}: ACK completes the handshake")

    def _client_rcv(self, walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
        client = walk.client
        payload = ip.payload
        if isinstance(payload, ICMP):
            client.result = f"echo reply from {ip.src}"
            flow.end("delivered", f"echo reply delivered to the ping socket")
            return
        if isinstance(payload, UDP):
            client.result = f"udp reply from {ip.src}:{payload.sport}"
            flow.end("delivered", f"UDP reply delivered to the client socket")
            return
        seg: TCP = payload
        if "R" in seg.flags:
            client.result = f"connection refused by {ip.src}:{seg.sport} (RST)"
            flow.end("delivered", "RST: connect() fails with Connection refused")
            return
        if seg.flags == "SA":
            client.result = f"connected to {ip.src}:{seg.sport} (SYN-ACK)"
            if client.payload is None:
                flow.end("delivered", "SYN-ACK delivered to the connecting socket; the trace stops at the reply")
                return
            flow.end("delivered", "SYN-ACK: the connection is established; the client sends ACK and its data")
            ttl = ns.sysctl.ip_default_ttl
            ack = ep.tcp_next(ip, "A", b"", ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_TCP))
            data = ep.tcp_next(ip, "PA", client.payload, ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_TCP))
            self._respond(walk, ns, ack, "ack")
            self._respond(walk, ns, data, "data")
            return
        if seg.payload:
            client.result = f"received {len(seg.payload)} bytes from {ip.src}:{seg.sport}"
            flow.end("delivered", f"the client socket reads {len(seg.payload)} bytes: {seg.payload!r}")
            return
        flow.end("delivered", "delivered to the client socket")


def fragment(ip: IPv4, mtu: int) -> list[IPv4]:
    """ip_fragment: split the payload into 8-byte-aligned pieces that fit the MTU."""
    data = ip.payload_bytes() if not isinstance(ip.payload, bytes) else ip.payload
    step = (mtu - 20) // 8 * 8
    base = ip.frag * 8
    pieces = []
    for offset in range(0, len(data), step):
        chunk = data[offset:offset + step]
        last = offset + step >= len(data)
        pieces.append(replace(ip, payload=chunk, mf=(not last) or ip.mf, frag=(base + offset) // 8))
    return pieces


def _l3_length(frame) -> int:
    """The size the MTU applies to: the frame without its Ethernet header."""
    return frame.length() - 14 if isinstance(frame, Ethernet) else frame.length()


def _is_multicast(mac: str) -> bool:
    return int(mac[:2], 16) & 1 == 1


def _socket_hash(ip: IPv4) -> int | None:
    """sk_txhash stand-in: sockets hash their own flow, direction by direction; ICMP has none."""
    payload = ip.payload
    if isinstance(payload, (TCP, UDP)):
        return stable_hash("txhash", ip.src, ip.dst, payload.sport, payload.dport, ip.proto)
    return None


def _flow_hash(frame: Ethernet, skb: Skb) -> int:
    """skb_get_hash: the socket's hash when one came with the packet, else the flow
    dissector's direction-symmetric hash of the inner addresses (and ports)."""
    if skb.hash is not None:
        return skb.hash
    ip = frame.ip
    if ip is None:
        return stable_hash("mac", *sorted((frame.src, frame.dst)))
    payload = ip.payload
    ports: tuple = ()
    if isinstance(payload, (TCP, UDP)):
        ports = tuple(sorted((payload.sport, payload.dport)))
    return stable_hash("flow", *sorted((ip.src, ip.dst)), ip.proto, *ports)


def _describe(ip: IPv4) -> str:
    return f"{ip.src} > {ip.dst} {ip.payload.summary() if not isinstance(ip.payload, bytes) else ''}".rstrip()
