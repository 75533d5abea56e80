"""The Linux bridge (`cni0`, and the underlay switch): ports, FDB, learning, flooding, hairpin,
and the bridge's rx handler and transmit.

Kernel behaviour modelled (net/bridge/br_input.c `br_handle_frame`, `br_handle_frame_finish`,
`br_pass_frame_up`; br_forward.c `br_forward`, `br_flood`, `br_dev_queue_push_xmit`;
br_device.c `br_dev_xmit`; br_fdb.c; br_netfilter_hooks.c `br_nf_pre_routing`,
`br_nf_forward_ip`, `br_nf_post_routing`, `br_nf_dev_queue_xmit`):
- a frame received on a port teaches the FDB its source MAC on that port (if the port
  learns);
- frames for the bridge's own MAC, or for a port's own MAC (local FDB entries), go up the
  bridge device's host stack; broadcasts are flooded and also go up;
- a known unicast destination is forwarded to its port; an unknown one is flooded;
- a frame never goes back out of the port it came in on, unless that port has hairpin mode
  on (the CNI bridge plugin sets it for Flannel, so a pod's ARP broadcast comes back to it);
- without an explicit MAC the bridge takes the numerically lowest port MAC (the CNI plugin
  sets one, see kernel-observations.md "The real CNI bridge plugin");
- with br_netfilter loaded (`net.bridge.bridge-nf-call-iptables=1`) a bridged IPv4 packet
  runs PREROUTING on arrival and FORWARD and POSTROUTING on its way out, as if routed; a
  DNAT in PREROUTING to an address behind another port keeps it bridged, one to an address
  elsewhere sends it up to be routed (with no neighbour entry for the bridged target the
  bridge device ARPs for it first, br_nf_pre_routing_finish_bridge); a packet conntrack reassembled leaves in fragments
  no larger than the largest it arrived in;
- a port sends only what fits its MTU (`is_skb_forwardable`, plus a VLAN tag).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from .decision import BridgeReason, Decision, FdbRef, Subsystem, Verdict, fdb_ref, field_change, neighbour_ref
from .device import VLAN_HLEN, Device, l3_length
from .errors import ConfigError
from .packet import BROADCAST_MAC, ETH_P_IP, Ethernet, IPv4, evolve
from .route import route_ref
from .skb import Flow

CONNECTED = ("PERMANENT", "NOARP", "REACHABLE")     # NUD_CONNECTED (include/net/neighbour.h)

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace


@dataclass
class BridgePort:
    """A device enslaved to a bridge (struct net_bridge_port): its rx_handler_data."""

    dev: Device
    br: Bridge
    hairpin: bool = False
    learning: bool = True
    flood: bool = True


@dataclass
class FdbEntry:
    """One forwarding database entry, as `bridge fdb show` prints it."""

    mac: str
    port: str          # the port device's name
    bridge: str
    local: bool = False     # the port's own MAC ("permanent"): frames to it go up the stack
    static: bool = False

    def __str__(self) -> str:
        suffix = " permanent" if self.local else (" static" if self.static else "")
        return f"{self.mac} dev {self.port} master {self.bridge}{suffix}"


class Bridge(Device):
    kind = "bridge"
    # Called as flood_hook(frame, flow) before the bridge floods a frame; a lazily built
    # cluster uses it to build the node an ARP request on the underlay asks for.
    flood_hook: Callable[[Ethernet, Flow], None] | None = None

    def __init__(self, name: str, mac: str | None = None, mtu: int = 1500):
        super().__init__(name, mac or "00:00:00:00:00:00", mtu)
        self.fixed_mac = mac is not None
        self.ports: dict[str, BridgePort] = {}
        self.fdb: dict[str, FdbEntry] = {}
        self._learned: set[str] = set()      # MACs learned since the last flush (flush_learned)

    def attach(self, dev: Device, hairpin: bool = False, learning: bool = True) -> BridgePort:
        """`ip link set DEV master BRIDGE`."""
        if dev.master is not None:
            raise ConfigError(f"{dev.name} is already a port of {dev.master.name}")
        if dev is self:
            raise ConfigError(f"a bridge cannot be its own port ({self.name})")
        port = BridgePort(dev, self, hairpin=hairpin, learning=learning)
        self.ports[dev.name] = port
        dev.master = self
        dev.rx_handler = br_handle_frame
        dev.rx_handler_data = port
        dev.allmulti += 1           # br_add_if: dev_set_allmulti(dev, 1)
        dev.promiscuity += 1        # br_manage_promisc: no VLAN filtering, every port promiscuous
        self.fdb[dev.mac] = FdbEntry(dev.mac, dev.name, self.name, local=True)
        if not self.fixed_mac and (len(self.ports) == 1 or _mac_key(dev.mac) < _mac_key(self.mac)):
            self.mac = dev.mac          # the lowest port MAC, kept as ports are added
        return port

    def detach(self, name: str) -> None:
        port = self.ports.pop(name)
        port.dev.master = None
        port.dev.rx_handler = None
        port.dev.rx_handler_data = None
        port.dev.allmulti -= 1      # nbp_delete_promisc
        port.dev.promiscuity -= 1
        for mac in [m for m, e in self.fdb.items() if e.port == name]:
            del self.fdb[mac]
        if not self.fixed_mac and self.ports:
            self.mac = min((p.dev.mac for p in self.ports.values()), key=lambda m: bytes.fromhex(m.replace(":", "")))

    def learn(self, mac: str, port: str) -> bool:
        """Teach the FDB; returns True when the entry is new or moved."""
        entry = self.fdb.get(mac)
        if entry is not None and (entry.local or entry.static):
            return False
        if entry is not None and entry.port == port:
            return False
        self.fdb[mac] = FdbEntry(mac, port, self.name)
        self._learned.add(mac)
        return True

    def is_local_mac(self, mac: str) -> bool:
        if mac == self.mac:
            return True
        entry = self.fdb.get(mac)
        return entry is not None and entry.local

    def flush_learned(self) -> None:
        """Forget the learned entries (a switch with a port per node holds thousands of
        local ones, which stay)."""
        fdb = self.fdb
        for mac in self._learned:
            entry = fdb.get(mac)
            if entry is not None and not (entry.local or entry.static):
                del fdb[mac]
        self._learned.clear()


def _mac_key(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def forwarding(port: BridgePort) -> bool:
    """Whether the port is in the forwarding state as far as a flood is concerned: a port
    whose device has no link partner (a switch port with no cable plugged in) has no carrier,
    and br_port_carrier_check (net/bridge/br_if.c) disables it; should_deliver
    (br_forward.c) sends only to forwarding ports."""
    return port.dev.has_link     # (br_flood tests port.dev.has_link inline: a switch has thousands)


def is_multicast(mac: str) -> bool:
    """The group bit: the lowest bit of the first octet (its second hex digit is odd)."""
    return mac[1] in _ODD_HEX


_ODD_HEX = frozenset("13579bdfBDF")


def _fdb_ref(br: Bridge, mac: str, entry: FdbEntry | None) -> FdbRef:
    return fdb_ref(br.name, mac, port=entry.port if entry is not None else "")


# The decisions every trace makes again, by the names they carry: the same decision on the
# same bridge, MAC and port is the same record, found rather than built.
@lru_cache(maxsize=1 << 12)
def _learned(bridge: str, mac: str, port: str) -> Decision:
    return Decision(Subsystem.BRIDGE, "br_fdb_update", BridgeReason.LEARNED, Verdict.LEARN,
                    consulted=(fdb_ref(bridge, mac, port=port),))


@lru_cache(maxsize=1 << 12)
def _flooded(bridge: str) -> Decision:
    return Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.BROADCAST, Verdict.FLOOD, bridge=bridge)


@lru_cache(maxsize=1 << 12)
def _passed_up(bridge: str, dst: str, port: str) -> Decision:
    return Decision(Subsystem.BRIDGE, "br_pass_frame_up", BridgeReason.OWN_MAC, Verdict.UP,
                    consulted=(fdb_ref(bridge, dst, port=port),), bridge=bridge, dst=dst)


@lru_cache(maxsize=1 << 12)
def _forwarded(bridge: str, dst: str, port: str) -> Decision:
    return Decision(Subsystem.BRIDGE, "br_forward", BridgeReason.FDB, Verdict.FORWARD,
                    consulted=(fdb_ref(bridge, dst, port=port),), bridge=bridge, dst=dst, port=port)


@lru_cache(maxsize=1 << 12)
def _host_flooded(bridge: str) -> Decision:
    return Decision(Subsystem.BRIDGE, "br_dev_xmit", BridgeReason.HOST_BROADCAST, Verdict.FLOOD, bridge=bridge)


@lru_cache(maxsize=1 << 12)
def _host_forwarded(bridge: str, dst: str, port: str) -> Decision:
    return Decision(Subsystem.BRIDGE, "br_dev_xmit", BridgeReason.FDB, Verdict.FORWARD,
                    consulted=(fdb_ref(bridge, dst, port=port),), bridge=bridge, dst=dst, port=port)


# br_input.c -------------------------------------------------------------------------------
def br_handle_frame(k: Kernel, port_dev: Device, frame: Ethernet, flow: Flow) -> None:
    """The rx handler of a bridge port: learn, run br_netfilter's PREROUTING, then pass the
    frame up, flood it or forward it."""
    port: BridgePort = port_dev.rx_handler_data
    br = port.br
    ns: Namespace = br.netns
    if port.learning and not is_multicast(frame.src) and br.learn(frame.src, port_dev.name):
        flow.note(_learned(br.name, frame.src, port_dev.name))
    dnat_route = None
    if frame.type == ETH_P_IP and ns.sysctl.bridge_nf_call_iptables and isinstance(frame.payload, IPv4):
        ip = frame.payload
        result = k.nf_hook(ns, "PREROUTING", ip, flow, indev=br.name)
        if result is None:
            return
        flow.skb.bridged = True
        if result.dst != ip.dst:
            rr = ns.route_get(result.dst)
            if rr is not None and rr.dev == br.name and not rr.is_local:
                dnat_route = rr
            elif not br.is_local_mac(frame.dst):
                old = frame.dst
                frame = evolve(frame, dst=br.mac)
                flow.note(Decision(
                    Subsystem.BRIDGE, "br_nf_pre_routing_finish", BridgeReason.TO_IP_STACK, Verdict.UP,
                    consulted=(route_ref(rr),) if rr is not None else (),
                    changes=(field_change("ethernet", "dst", old, br.mac),), dst=result.dst, bridge=br.name))
        if result is not ip:
            frame = evolve(frame, payload=result)
    if dnat_route is not None:
        entry = ns.neighbours.get(br.name, dnat_route.nexthop)
        if entry is None or entry.state not in CONNECTED or not entry.lladdr or not entry.hh:
            # br_nf_pre_routing_finish_bridge: unless the entry is NUD_CONNECTED (PERMANENT,
            # NOARP, REACHABLE) with a hardware header cached (no entry; or a STALE one, like the
            # one an ARP request taught; or one no packet has left through yet), the
            # packet goes to the neighbour's output on the bridge device (neigh_resolve_output:
            # with no entry an ARP from the bridge and the packet queued, else out at once) with
            # nf_bridge->bridged_dnat set; br_dev_xmit then hands it back to the bridge as if
            # received on its port (br_nf_pre_routing_finish_bridge_slow), with its own
            # Ethernet source again.
            assert isinstance(frame.payload, IPv4)
            flow.skb.bridged_dnat = (port_dev.name, frame.src)
            flow.note(Decision(
                Subsystem.BRIDGE, "br_nf_pre_routing_finish_bridge", BridgeReason.RESOLVE_DNAT_TARGET, Verdict.RESOLVE,
                consulted=(route_ref(dnat_route),), target=dnat_route.nexthop, bridge=br.name))
            k.neigh_output(ns, br, dnat_route.nexthop, frame.payload, flow)
            return
        old = frame.dst
        frame = evolve(frame, dst=entry.lladdr or "")
        flow.note(Decision(
            Subsystem.BRIDGE, "br_nf_pre_routing_finish", BridgeReason.BRIDGE_DNAT, Verdict.BRIDGE,
            consulted=(route_ref(dnat_route), neighbour_ref(br.name, entry.ip, entry.lladdr or "", entry.state)),
            changes=(field_change("ethernet", "dst", old, entry.lladdr or ""),),
            target=dnat_route.nexthop, bridge=br.name, lladdr=entry.lladdr))
        br_forward(k, br, port_dev, frame, flow)
        return
    if frame.dst == BROADCAST_MAC or is_multicast(frame.dst):
        flow.note(_flooded(br.name))
        br_flood(k, br, port_dev, frame, flow, include_up=True)
        return
    if br.is_local_mac(frame.dst):
        own = br.fdb.get(frame.dst)
        flow.note(_passed_up(br.name, frame.dst, own.port if own is not None else ""))
        br_pass_frame_up(k, br, frame, flow.copy())
        return
    br_forward(k, br, port_dev, frame, flow)


def br_pass_frame_up(k: Kernel, br: Bridge, frame: Ethernet, up: Flow) -> None:
    """The frame is received again, on the bridge device itself, and goes to its protocols."""
    k.record_hop(br, "rx", frame, up)
    k.netif_deliver(br, frame, up, otherhost=False)


# br_forward.c -----------------------------------------------------------------------------
def br_forward(k: Kernel, br: Bridge, in_dev: Device, frame: Ethernet, flow: Flow) -> None:
    """FDB lookup: out of the port the destination sits behind, or flooded if unknown."""
    entry = br.fdb.get(frame.dst)
    if entry is None:
        flow.note(Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.UNKNOWN_UNICAST, Verdict.FLOOD,
                           consulted=(fdb_ref(br.name, frame.dst),), bridge=br.name, dst=frame.dst))
        br_flood(k, br, in_dev, frame, flow, include_up=False)
        return
    port = br.ports[entry.port]
    if entry.port == in_dev.name and not port.hairpin:
        flow.end("dropped", Decision(Subsystem.BRIDGE, "br_forward", BridgeReason.HAIRPIN_OFF, Verdict.DROP,
                                     consulted=(_fdb_ref(br, frame.dst, entry),), bridge=br.name, dst=frame.dst,
                                     port=in_dev.name))
        return
    flow.note(_forwarded(br.name, frame.dst, entry.port))
    br_nf_forward(k, br, port.dev, frame, flow)


def br_nf_forward(k: Kernel, br: Bridge, out_dev: Device, frame: Ethernet, flow: Flow) -> None:
    """__br_forward with br_netfilter: FORWARD and POSTROUTING for a bridged IPv4 packet, and
    br_nf_dev_queue_xmit's refragmentation of a packet conntrack reassembled."""
    ns = br.netns
    assert ns is not None
    if (frame.type == ETH_P_IP and ns.sysctl.bridge_nf_call_iptables and isinstance(frame.payload, IPv4)
            and flow.skb.bridged):
        ip = k.nf_hook(ns, "FORWARD", frame.payload, flow, indev=br.name, outdev=br.name)
        if ip is None:
            return
        ip = k.nf_hook(ns, "POSTROUTING", ip, flow, outdev=br.name)
        if ip is None:
            return
        frame = evolve(frame, payload=ip)
        frag_max = flow.skb.frag_max
        if frag_max and ip.length() > frag_max:
            fragments = k.ip_do_fragment(ip, frag_max)
            flow.note(Decision(Subsystem.BRIDGE, "br_nf_dev_queue_xmit", BridgeReason.REFRAGMENT, Verdict.FRAGMENT,
                               frag_max=frag_max, count=len(fragments)))
            for frag in fragments:
                br_dev_queue_push_xmit(k, out_dev, evolve(frame, payload=frag), flow.copy())
            return
    br_dev_queue_push_xmit(k, out_dev, frame, flow)


def br_dev_queue_push_xmit(k: Kernel, port_dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
    """Out of one port, if the frame fits its MTU (is_skb_forwardable)."""
    size = l3_length(frame)
    br = port_dev.master
    if port_dev.up and br is not None and size > port_dev.mtu + VLAN_HLEN:
        flow.end("dropped", Decision(Subsystem.BRIDGE, "is_skb_forwardable", BridgeReason.TOO_BIG, Verdict.DROP,
                                     bridge=br.name, size=size, port=port_dev.name, mtu=port_dev.mtu),
                 port_dev.netns.name if port_dev.netns else "", port_dev.name)
        return
    k.dev_queue_xmit(port_dev, frame, flow)


def br_flood(k: Kernel, br: Bridge, in_dev: Device | None, frame: Ethernet, flow: Flow, include_up: bool) -> None:
    """A copy to every port that floods (never back out of the ingress port unless it is in
    hairpin mode), and with `include_up` one up the bridge device too."""
    if br.flood_hook is not None:
        br.flood_hook(frame, flow)
    targets = [p for name, p in br.ports.items()
               if p.flood and p.dev.has_link and (in_dev is None or name != in_dev.name or p.hairpin)]
    for port in targets:
        copy = flow.copy()
        if in_dev is not None and port.dev is in_dev:
            copy.note(Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.HAIRPIN, Verdict.HAIRPIN,
                               bridge=br.name, port=port.dev.name))
        br_nf_forward(k, br, port.dev, frame, copy)
    if include_up:
        br_pass_frame_up(k, br, frame, flow.copy())
    elif not targets:
        flow.end("dropped", Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.NO_PORT, Verdict.DROP, bridge=br.name))


# br_device.c ------------------------------------------------------------------------------
def br_dev_xmit(k: Kernel, br: Bridge, frame: Ethernet, flow: Flow) -> None:
    """br_dev_xmit: the host sends through the bridge device: flooded, or out of the port
    the FDB names. A bridged DNAT that waited on ARP goes back into the bridge as received on
    its port, with its Ethernet source restored (br_nf_pre_routing_finish_bridge_slow)."""
    pending = flow.skb.bridged_dnat
    if pending is not None and pending[0] in br.ports:
        # neigh_resolve_output gave the frame the bridge's MAC as source, and the bridge
        # device's taps saw that; the source it arrived with is copied back over it
        # (nf_bridge->neigh_header), in place, before it is bridged
        flow.skb.bridged_dnat = None
        port_name, src = pending
        flow.note(Decision(Subsystem.BRIDGE, "br_nf_pre_routing_finish_bridge_slow", BridgeReason.DNAT_RESOLVED,
                           Verdict.BRIDGE, changes=(field_change("ethernet", "src", frame.src, src),),
                           port=port_name, src=src))
        br_forward(k, br, br.ports[port_name].dev, evolve(frame, src=src), flow)
        return
    if frame.dst == BROADCAST_MAC or is_multicast(frame.dst):
        flow.note(_host_flooded(br.name))
        if br.flood_hook is not None:
            br.flood_hook(frame, flow)
        for port in [p for p in br.ports.values() if p.flood and forwarding(p)]:
            br_dev_queue_push_xmit(k, port.dev, frame, flow.copy())
        return
    entry = br.fdb.get(frame.dst)
    if entry is None:
        flow.note(Decision(Subsystem.BRIDGE, "br_dev_xmit", BridgeReason.HOST_UNKNOWN, Verdict.FLOOD,
                           consulted=(fdb_ref(br.name, frame.dst),), bridge=br.name, dst=frame.dst))
        if br.flood_hook is not None:
            br.flood_hook(frame, flow)
        for port in [p for p in br.ports.values() if p.flood and forwarding(p)]:
            br_dev_queue_push_xmit(k, port.dev, frame, flow.copy())
        return
    flow.note(_host_forwarded(br.name, frame.dst, entry.port))
    br_dev_queue_push_xmit(k, br.ports[entry.port].dev, frame, flow)
