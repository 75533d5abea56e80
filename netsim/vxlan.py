"""The kernel VXLAN device (`flannel.1`): static FDB, encapsulation, decapsulation.

Kernel behaviour modelled (drivers/net/vxlan/vxlan_core.c `vxlan_xmit`, `vxlan_xmit_one`,
`vxlan_rcv`; net/ipv4/udp_tunnel_core.c; include/net/udp.h `udp_flow_src_port`;
include/net/inet_ecn.h `INET_ECN_encapsulate`).
Facts (flannel-kubernetes-facts.md sections A and B):
flanneld creates the device with `id 1 local <node IP> dev eth0 nolearning`, no port (the
kernel default 8472), ttl 0 ("auto"). Per remote node it installs a PERMANENT neighbour
entry (remote `.0` -> remote VTEP MAC) and an FDB entry (`<VTEP MAC> dst <node IP> self
permanent`). The kernel builds the outer packet: IPv4 from `local` to the FDB `dst`, TTL
`ip_default_ttl` (64), DF clear, TOS 0 plus the inner ECN bits, UDP to port 8472 from a
source port hashed from the inner flow into `ip_local_port_range`, checksum on (kernels
>= 4.6), VXLAN flags 0x08 and the 24-bit VNI. With no FDB entry for the inner destination
(and learning off) the frame is dropped. A kernel UDP socket on 8472 decapsulates: the VXLAN
header must have its I flag set and the device's VNI, and the inner frame is received on the
device as a new packet (its conntrack state is not carried over).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable

from .addresses import FLOW_MEMO, stable_hash
from .decision import Decision, FieldChange, Subsystem, Verdict, VxlanReason, fdb_ref, field_change
from .device import Device
from .errors import ConfigError
from .packet import IPPROTO_UDP, TCP, UDP, VXLAN, Ethernet, IPv4
from .skb import Flow, Skb, fresh_skb

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace

VXLAN_DEFAULT_PORT = 8472
VXLAN_OVERHEAD = 50   # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14


@dataclass(frozen=True)
class VxlanFdbEntry:
    mac: str
    dst: str
    dev: str

    def __str__(self) -> str:
        return f"{self.mac} dev {self.dev} dst {self.dst} self permanent"


class VxlanDevice(Device):
    kind = "vxlan"

    def __init__(self, name: str, mac: str, vni: int, local: str, underlay: str,
                 dstport: int = VXLAN_DEFAULT_PORT, mtu: int = 1450, learning: bool = False,
                 udp_csum: bool = True, port_range: tuple[int, int] | None = None):
        super().__init__(name, mac, mtu)
        if not 0 <= vni < 1 << 24:
            raise ConfigError(f"VNI {vni} is out of range: a VXLAN VNI is 24 bits (0..16777215)")
        self.vni = vni
        self.local = local
        self.underlay = underlay
        self.dstport = dstport
        self.learning = learning
        self.udp_csum = udp_csum
        self.port_range = port_range   # None: use the namespace's ip_local_port_range
        self.fdb: dict[str, VxlanFdbEntry] = {}

    def fdb_append(self, mac: str, dst: str) -> VxlanFdbEntry:
        """`bridge fdb append MAC dev flannel.1 dst IP self permanent`."""
        entry = VxlanFdbEntry(mac, dst, self.name)
        self.fdb[mac] = entry
        return entry

    def fdb_load(self, entries: Iterable[VxlanFdbEntry]) -> None:
        """fdb_append for each entry, in order (flanneld's entry for every other lease). The
        entries are immutable records, so many devices may hold the same ones."""
        self.fdb.update((entry.mac, entry) for entry in entries)

    def fdb_delete(self, mac: str) -> None:
        if mac not in self.fdb:
            raise ConfigError(f"no FDB entry for {mac} on {self.name}")
        del self.fdb[mac]

    def udp_rcv(self, k: Kernel, ns: Namespace, outer: IPv4, flow: Flow) -> None:
        """The device's kernel UDP socket received a datagram (encap_rcv)."""
        vxlan_rcv(k, ns, self, outer, flow)

    def details(self) -> str:
        """The `ip -d link show` line for this device."""
        return (f"vxlan id {self.vni} local {self.local} dev {self.underlay} srcport 0 0 "
                f"dstport {self.dstport} {'learning' if self.learning else 'nolearning'} ttl auto ageing 300 "
                f"{'udpcsum' if self.udp_csum else 'noudpcsum'}")


def flow_source_port(flow_hash: int, port_min: int, port_max: int) -> int:
    """`udp_flow_src_port`: fold the flow hash and scale it into [min, max)."""
    h = flow_hash & 0xFFFFFFFF
    h ^= (h << 16) & 0xFFFFFFFF
    return ((h * (port_max - port_min)) >> 32) + port_min


def flow_hash(frame: Ethernet, skb: Skb) -> int:
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


@lru_cache(maxsize=FLOW_MEMO)
def _encapsulated(dev: str, mac: str, remote: str, local: str, ttl: int, sport: int, dport: int, vni: int) -> Decision:
    outer_ip, outer_rest = _outer_changes(local, remote, ttl, dport, vni)
    return Decision(
        Subsystem.VXLAN, "vxlan_xmit", VxlanReason.ENCAPSULATED, Verdict.ENCAPSULATE,
        consulted=(fdb_ref(dev, mac, dst=remote),), sport=sport, dport=dport, vni=vni, ttl=ttl,
        changes=(*outer_ip, field_change("outer-udp", "sport", "", sport), *outer_rest))


@lru_cache(maxsize=1 << 12)
def _outer_changes(local: str, remote: str, ttl: int, dport: int,
                   vni: int) -> tuple[tuple[FieldChange, ...], tuple[FieldChange, ...]]:
    """The outer headers' fields but the source port (it follows the flow), before and after it."""
    return ((field_change("outer-ipv4", "src", "", local), field_change("outer-ipv4", "dst", "", remote),
             field_change("outer-ipv4", "ttl", "", ttl)),
            (field_change("outer-udp", "dport", "", dport), field_change("vxlan", "vni", "", vni)))


@lru_cache(maxsize=1 << 12)
def _decapsulated(port: int, vni: int, dev: str) -> Decision:
    return Decision(Subsystem.VXLAN, "vxlan_rcv", VxlanReason.DECAPSULATED, Verdict.DECAPSULATE, port=port, vni=vni,
                    dev=dev)


def vxlan_xmit(k: Kernel, dev: VxlanDevice, frame: Ethernet, flow: Flow) -> None:
    """vxlan_xmit: look the inner destination MAC up in the device's FDB and send the frame
    inside UDP to the remote VTEP, through the underlay's routing."""
    ns: Namespace = dev.netns
    entry = dev.fdb.get(frame.dst)
    if entry is None:
        flow.end("dropped", Decision(Subsystem.VXLAN, "vxlan_xmit", VxlanReason.NO_FDB, Verdict.DROP,
                                     consulted=(fdb_ref(dev.name, frame.dst),)))
        return
    inner_ip = frame.ip
    low, high = dev.port_range or ns.sysctl.ip_local_port_range
    sport = flow_source_port(flow_hash(frame, flow.skb), low, high)
    ecn = (inner_ip.tos & 0x03) if inner_ip is not None else 0
    tos = 0x02 if ecn == 0x03 else ecn      # INET_ECN_encapsulate: CE goes out as ECT(0)
    outer = IPv4(dev.local, entry.dst, IPPROTO_UDP,
                 UDP(sport, dev.dstport, VXLAN(dev.vni, frame), checksum=dev.udp_csum),
                 ttl=ns.sysctl.ip_default_ttl, id=ns.ip_id(dev.local, entry.dst, IPPROTO_UDP), df=False, tos=tos)
    flow.note(_encapsulated(dev.name, frame.dst, entry.dst, dev.local, outer.ttl, sport, dev.dstport, dev.vni))
    outer_flow = flow.copy(fresh_skb(flow.skb.hash, flow.skb.mark))
    k.ip_local_out(ns, outer, outer_flow)


def vxlan_sock_lookup(ns: Namespace, port: int) -> VxlanDevice | None:
    """The VXLAN device whose kernel UDP socket listens on `port`, if one is up."""
    for dev in ns.devices.values():
        if isinstance(dev, VxlanDevice) and dev.dstport == port and dev.up:
            return dev
    return None


def vxlan_rcv(k: Kernel, ns: Namespace, dev: VxlanDevice, outer: IPv4, flow: Flow) -> None:
    """vxlan_rcv: check the VXLAN header and receive the inner frame on the device."""
    udp = outer.payload
    vx = udp.payload if isinstance(udp, UDP) else None
    if not isinstance(vx, VXLAN) or not vx.flags & 0x08:
        flow.end("dropped", Decision(Subsystem.VXLAN, "vxlan_rcv", VxlanReason.NOT_VXLAN, Verdict.DROP,
                                     port=dev.dstport))
        return
    if vx.vni != dev.vni:
        flow.end("dropped", Decision(Subsystem.VXLAN, "vxlan_rcv", VxlanReason.WRONG_VNI, Verdict.DROP,
                                     vni=vx.vni, dev=dev.name, dev_vni=dev.vni))
        return
    flow.end("delivered", _decapsulated(dev.dstport, vx.vni, dev.name))
    inner = flow.copy(fresh_skb(flow.skb.hash))
    k.netif_receive_skb(dev, vx.payload, inner)
