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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from .arp import neigh_output
from .decision import Decision, FdbRef, fdb_ref, field_change, neighbour_ref
from .device import Device
from .errors import ConfigError
from .ip_fragment import ip_fragment
from .packet import BROADCAST_MAC, ETH_P_IP, Ethernet, IPv4
from .route import route_ref
from .veth import VLAN_HLEN, l3_length

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .walk import Walk


@dataclass
class BridgePort:
    dev: Device
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
        port = BridgePort(dev, hairpin=hairpin, learning=learning)
        self.ports[dev.name] = port
        dev.master = self
        dev.rx_handler = br_handle_frame
        self.fdb[dev.mac] = FdbEntry(dev.mac, dev.name, self.name, local=True)
        if not self.fixed_mac and (len(self.ports) == 1 or _mac_key(dev.mac) < _mac_key(self.mac)):
            self.mac = dev.mac          # the lowest port MAC, kept as ports are added
        return port

    def detach(self, name: str) -> None:
        port = self.ports.pop(name)
        port.dev.master = None
        port.dev.rx_handler = None
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
    return int(mac[:2], 16) & 1 == 1


def _fdb_ref(br: Bridge, mac: str, entry: FdbEntry | None) -> FdbRef:
    return fdb_ref(br.name, mac, port=entry.port if entry is not None else "")


# br_input.c -------------------------------------------------------------------------------
def br_handle_frame(walk: Walk, port_dev: Device, frame: Ethernet, flow: Flow) -> None:
    """The rx handler of a bridge port: learn, run br_netfilter's PREROUTING, then pass the
    frame up, flood it or forward it."""
    br = port_dev.master
    assert br is not None and br.netns is not None
    port = br.ports[port_dev.name]
    ns = br.netns
    if port.learning and not is_multicast(frame.src) and br.learn(frame.src, port_dev.name):
        flow.note(Decision("bridge", "br_fdb_update", f"{br.name}: learned {frame.src} on port {port_dev.name}",
                           verdict="learn", consulted=(fdb_ref(br.name, frame.src, port=port_dev.name),)))
    dnat_route = None
    if frame.type == ETH_P_IP and ns.sysctl.bridge_nf_call_iptables and isinstance(frame.payload, IPv4):
        ip = frame.payload
        result = walk.hook(ns, "PREROUTING", ip, flow, indev=br.name)
        if result is None:
            return
        flow.skb.bridged = True
        if result.dst != ip.dst:
            rr = ns.route_get(result.dst)
            if rr is not None and rr.dev == br.name and not rr.is_local:
                dnat_route = rr
            elif not br.is_local_mac(frame.dst):
                old = frame.dst
                frame = replace(frame, dst=br.mac)
                flow.note(Decision(
                    "bridge", "br_nf_pre_routing_finish",
                    f"br_netfilter: the new destination {result.dst} is not on {br.name}: "
                    f"the frame goes up to the IP stack to be routed", verdict="up",
                    consulted=(route_ref(rr),) if rr is not None else (),
                    changes=(field_change("ethernet", "dst", old, br.mac),)))
        frame = replace(frame, payload=result)
    if dnat_route is not None:
        entry = ns.neighbours.get(br.name, dnat_route.nexthop)
        if entry is None or not entry.usable:
            # br_nf_pre_routing_finish_bridge: no hardware header cached, so the packet goes to
            # the neighbour's output on the bridge device (neigh_resolve_output: an ARP from
            # the bridge, the packet queued) with nf_bridge->bridged_dnat set; br_dev_xmit then
            # hands it back to the bridge as if received on its port
            # (br_nf_pre_routing_finish_bridge_slow), with its own Ethernet source again.
            assert isinstance(frame.payload, IPv4)
            flow.skb.bridged_dnat = (port_dev.name, frame.src)
            flow.note(Decision(
                "bridge", "br_nf_pre_routing_finish_bridge",
                f"br_netfilter: DNAT target {dnat_route.nexthop} is on {br.name} too and has no neighbour "
                f"entry: {br.name} resolves it, then bridges the packet", verdict="resolve",
                consulted=(route_ref(dnat_route),)))
            neigh_output(walk, ns, br, dnat_route.nexthop, frame.payload, flow)
            return
        old = frame.dst
        frame = replace(frame, dst=entry.lladdr or "")
        flow.note(Decision(
            "bridge", "br_nf_pre_routing_finish",
            f"br_netfilter: DNAT target {dnat_route.nexthop} is on {br.name} too: bridged to {entry.lladdr}, "
            f"not routed", verdict="bridge",
            consulted=(route_ref(dnat_route), neighbour_ref(br.name, entry.ip, entry.lladdr or "", entry.state)),
            changes=(field_change("ethernet", "dst", old, entry.lladdr or ""),)))
        br_forward(walk, br, port_dev, frame, flow)
        return
    if frame.dst == BROADCAST_MAC or is_multicast(frame.dst):
        flow.note(Decision("bridge", "br_flood",
                           f"{br.name}: broadcast, flooded to every port and passed up to {br.name}", verdict="flood"))
        br_flood(walk, br, port_dev, frame, flow, include_up=True)
        return
    if br.is_local_mac(frame.dst):
        flow.note(Decision("bridge", "br_pass_frame_up",
                           f"{br.name}: destination {frame.dst} is the bridge's own MAC: up to its IP stack",
                           verdict="up", consulted=(_fdb_ref(br, frame.dst, br.fdb.get(frame.dst)),)))
        br_pass_frame_up(walk, br, frame, flow.copy())
        return
    br_forward(walk, br, port_dev, frame, flow)


def br_pass_frame_up(walk: Walk, br: Bridge, frame: Ethernet, up: Flow) -> None:
    """The frame is received again, on the bridge device itself, and goes to its protocols."""
    walk.record(br, "rx", frame, up)
    walk.deliver(br, frame, up, otherhost=False)


# br_forward.c -----------------------------------------------------------------------------
def br_forward(walk: Walk, br: Bridge, in_dev: Device, frame: Ethernet, flow: Flow) -> None:
    """FDB lookup: out of the port the destination sits behind, or flooded if unknown."""
    entry = br.fdb.get(frame.dst)
    if entry is None:
        flow.note(Decision("bridge", "br_flood", f"{br.name}: {frame.dst} is not in the FDB: flooded as unknown unicast",
                           verdict="flood", consulted=(fdb_ref(br.name, frame.dst),)))
        br_flood(walk, br, in_dev, frame, flow, include_up=False)
        return
    port = br.ports[entry.port]
    if entry.port == in_dev.name and not port.hairpin:
        flow.end("dropped", Decision(
            "bridge", "br_forward", f"{br.name}: {frame.dst} is on the ingress port {in_dev.name} and hairpin is off",
            verdict="drop", consulted=(_fdb_ref(br, frame.dst, entry),)))
        return
    flow.note(Decision("bridge", "br_forward", f"{br.name}: FDB {frame.dst} -> port {entry.port}", verdict="forward",
                       consulted=(_fdb_ref(br, frame.dst, entry),)))
    br_nf_forward(walk, br, port.dev, frame, flow)


def br_nf_forward(walk: Walk, br: Bridge, out_dev: Device, frame: Ethernet, flow: Flow) -> None:
    """__br_forward with br_netfilter: FORWARD and POSTROUTING for a bridged IPv4 packet, and
    br_nf_dev_queue_xmit's refragmentation of a packet conntrack reassembled."""
    ns = br.netns
    assert ns is not None
    if (frame.type == ETH_P_IP and ns.sysctl.bridge_nf_call_iptables and isinstance(frame.payload, IPv4)
            and flow.skb.bridged):
        ip = walk.hook(ns, "FORWARD", frame.payload, flow, indev=br.name, outdev=br.name)
        if ip is None:
            return
        ip = walk.hook(ns, "POSTROUTING", ip, flow, outdev=br.name)
        if ip is None:
            return
        frame = replace(frame, payload=ip)
        frag_max = flow.skb.frag_max
        if frag_max and ip.length() > frag_max:
            fragments = ip_fragment(ip, frag_max)
            flow.note(Decision("bridge", "br_nf_dev_queue_xmit",
                               f"br_netfilter: reassembled by conntrack, cut back to its largest fragment "
                               f"({frag_max} bytes): {len(fragments)} fragments", verdict="fragment"))
            for frag in fragments:
                br_dev_queue_push_xmit(walk, out_dev, replace(frame, payload=frag), flow.copy())
            return
    br_dev_queue_push_xmit(walk, out_dev, frame, flow)


def br_dev_queue_push_xmit(walk: Walk, port_dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
    """Out of one port, if the frame fits its MTU (is_skb_forwardable)."""
    size = l3_length(frame)
    br = port_dev.master
    if port_dev.up and br is not None and size > port_dev.mtu + VLAN_HLEN:
        flow.end("dropped", Decision(
            "bridge", "is_skb_forwardable", f"{br.name}: a {size}-byte packet does not fit port {port_dev.name}'s MTU "
                                            f"{port_dev.mtu}: dropped (is_skb_forwardable)", verdict="drop"),
            port_dev.netns.name if port_dev.netns else "", port_dev.name)
        return
    walk.transmit(port_dev, frame, flow)


def br_flood(walk: Walk, br: Bridge, in_dev: Device | None, frame: Ethernet, flow: Flow, include_up: bool) -> None:
    """A copy to every port that floods (never back out of the ingress port unless it is in
    hairpin mode), and with `include_up` one up the bridge device too."""
    if br.flood_hook is not None:
        br.flood_hook(frame, flow)
    targets = [p for name, p in br.ports.items()
               if p.flood and p.dev.has_link and (in_dev is None or name != in_dev.name or p.hairpin)]
    for port in targets:
        copy = flow.copy()
        if in_dev is not None and port.dev is in_dev:
            copy.note(Decision("bridge", "br_flood",
                               f"{br.name}: hairpin on {port.dev.name}: the flood goes back out of the ingress port",
                               verdict="hairpin"))
        br_nf_forward(walk, br, port.dev, frame, copy)
    if include_up:
        br_pass_frame_up(walk, br, frame, flow.copy())
    elif not targets:
        flow.end("dropped", Decision("bridge", "br_flood", f"{br.name}: no port to flood to", verdict="drop"))


# br_device.c ------------------------------------------------------------------------------
def br_dev_xmit(walk: Walk, br: Bridge, frame: Ethernet, flow: Flow) -> None:
    """br_dev_xmit: the host sends through the bridge device: flooded, or out of the port
    the FDB names. A bridged DNAT that waited on ARP goes back into the bridge as received on
    its port, with its Ethernet source restored (br_nf_pre_routing_finish_bridge_slow)."""
    pending = flow.skb.bridged_dnat
    if pending is not None and pending[0] in br.ports:
        flow.skb.bridged_dnat = None
        port_name = pending[0]
        flow.note(Decision("bridge", "br_nf_pre_routing_finish_bridge_slow",
                           f"br_netfilter: the bridged DNAT packet's neighbour is resolved: it is bridged as "
                           f"received on {port_name}, with its own source MAC {frame.src}", verdict="bridge"))
        br_forward(walk, br, br.ports[port_name].dev, frame, flow)
        return
    if frame.dst == BROADCAST_MAC or is_multicast(frame.dst):
        flow.note(Decision("bridge", "br_dev_xmit", f"{br.name}: broadcast from the host, flooded to every port",
                           verdict="flood"))
        if br.flood_hook is not None:
            br.flood_hook(frame, flow)
        for port in [p for p in br.ports.values() if p.flood and forwarding(p)]:
            br_dev_queue_push_xmit(walk, port.dev, frame, flow.copy())
        return
    entry = br.fdb.get(frame.dst)
    if entry is None:
        flow.note(Decision("bridge", "br_dev_xmit", f"{br.name}: {frame.dst} is not in the FDB: flooded",
                           verdict="flood", consulted=(fdb_ref(br.name, frame.dst),)))
        if br.flood_hook is not None:
            br.flood_hook(frame, flow)
        for port in [p for p in br.ports.values() if p.flood and forwarding(p)]:
            br_dev_queue_push_xmit(walk, port.dev, frame, flow.copy())
        return
    flow.note(Decision("bridge", "br_dev_xmit", f"{br.name}: FDB {frame.dst} -> port {entry.port}", verdict="forward",
                       consulted=(_fdb_ref(br, frame.dst, entry),)))
    br_dev_queue_push_xmit(walk, br.ports[entry.port].dev, frame, flow)
