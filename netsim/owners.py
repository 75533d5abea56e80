"""Who owns an address: the device (and namespace) each MAC and IPv4 address belongs to.

The kernel knows an address only as a field of a device (`ip link`, `ip addr`); a reader
following a trace wants to know whose it is: "pod-c's eth0", "node2's flannel.1 (VTEP)",
"cni0 on node1". This module names them from the network's state: every device's MAC and
addresses, in every namespace. A cluster adds what only it knows (services' ClusterIPs), passed
in as `extra` (netsim.cluster.owners): this module knows nothing of Kubernetes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .device import Device
    from .netns import Namespace

# How a device is named: a pod's or host's own interface reads "pod-c's eth0", a bridge "cni0
# on node1"; the MAC of a VTEP or TUN device says what the device is.
_SUFFIX = {"vxlan": " (VTEP)", "tun": " (TUN)"}


def device_owner(ns_name: str, dev: Device) -> str:
    """The phrase naming `dev` of namespace `ns_name`."""
    if dev.kind == "bridge":
        return f"{dev.name} on {ns_name}"
    return f"{ns_name}'s {dev.name}"


def network_owners(namespaces: Mapping[str, Namespace], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Map every MAC and IPv4 address of the network's namespaces to its owner. A /32 address reads as
    such ("node1's flannel.1 /32"), the form flanneld gives its VTEP address. `extra` entries
    (from a cluster) win, since they say more than a device name."""
    owners: dict[str, str] = {}
    for ns_name, ns in namespaces.items():
        for dev in ns.devices.values():
            if dev.kind == "loopback":
                continue
            name = device_owner(ns_name, dev)
            if dev.mac != "00:00:00:00:00:00":
                owners.setdefault(dev.mac, name + _SUFFIX.get(dev.kind, ""))
            for iface in dev.addresses:
                addr = str(iface.ip)
                owners.setdefault(addr, f"{name} /32" if iface.network.prefixlen == 32 else name)
    if extra:
        owners.update(extra)
    return owners

