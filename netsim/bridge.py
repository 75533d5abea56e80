"""The Linux bridge (`cni0`, and the underlay switch): ports, FDB, learning, flooding, hairpin.

Kernel behaviour modelled (net/bridge/br_input.c, br_forward.c, br_fdb.c):
- a frame received on a port teaches the FDB its source MAC on that port (if the port
  learns);
- frames for the bridge's own MAC, or for a port's own MAC (local FDB entries), go up the
  bridge device's host stack; broadcasts are flooded and also go up;
- a known unicast destination is forwarded to its port; an unknown one is flooded;
- a frame never goes back out of the port it came in on, unless that port has hairpin mode
  on (the CNI bridge plugin sets it for Flannel, so a pod's ARP broadcast comes back to it);
- without an explicit MAC the bridge takes the numerically lowest port MAC (the CNI plugin
  sets one, see kernel-observations.md "The real CNI bridge plugin").
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import Device


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
    flood_hook = None

    def __init__(self, name: str, mac: str | None = None, mtu: int = 1500):
        super().__init__(name, mac or "00:00:00:00:00:00", mtu)
        self.fixed_mac = mac is not None
        self.ports: dict[str, BridgePort] = {}
        self.fdb: dict[str, FdbEntry] = {}

    def attach(self, dev: Device, hairpin: bool = False, learning: bool = True) -> BridgePort:
        """`ip link set DEV master BRIDGE`."""
        if dev.master is not None:
            raise ValueError(f"{dev.name} is already a port of {dev.master.name}")
        if dev is self:
            raise ValueError(f"a bridge cannot be its own port ({self.name})")
        port = BridgePort(dev, hairpin=hairpin, learning=learning)
        self.ports[dev.name] = port
        dev.master = self
        self.fdb[dev.mac] = FdbEntry(dev.mac, dev.name, self.name, local=True)
        if not self.fixed_mac:
            self.mac = min((p.dev.mac for p in self.ports.values()), key=lambda m: bytes.fromhex(m.replace(":", "")))
        return port

    def detach(self, name: str) -> None:
        port = self.ports.pop(name)
        port.dev.master = None
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
        return True

    def is_local_mac(self, mac: str) -> bool:
        if mac == self.mac:
            return True
        entry = self.fdb.get(mac)
        return entry is not None and entry.local

    def flush_learned(self) -> None:
        for mac in [m for m, e in self.fdb.items() if not (e.local or e.static)]:
            del self.fdb[mac]
