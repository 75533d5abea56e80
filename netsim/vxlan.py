"""The kernel VXLAN device (`flannel.1`): static FDB, encapsulation, decapsulation.

Facts (flannel-kubernetes-facts.md sections A and B; drivers/net/vxlan/vxlan_core.c):
flanneld creates the device with `id 1 local <node IP> dev eth0 nolearning`, no port (the
kernel default 8472), ttl 0 ("auto"). Per remote node it installs a PERMANENT neighbour
entry (remote `.0` -> remote VTEP MAC) and an FDB entry (`<VTEP MAC> dst <node IP> self
permanent`). The kernel builds the outer packet: IPv4 from `local` to the FDB `dst`, TTL
`ip_default_ttl` (64), DF clear, TOS 0 plus the inner ECN bits, UDP to port 8472 from a
source port hashed from the inner flow into `ip_local_port_range`, checksum on (kernels
>= 4.6), VXLAN flags 0x08 and the 24-bit VNI. A kernel UDP socket on 8472 decapsulates.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import Device

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
            raise ValueError(f"VNI {vni} is out of range: a VXLAN VNI is 24 bits (0..16777215)")
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

    def fdb_delete(self, mac: str) -> None:
        if mac not in self.fdb:
            raise KeyError(f"no FDB entry for {mac} on {self.name}")
        del self.fdb[mac]

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
