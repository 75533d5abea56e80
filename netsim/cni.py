"""The CNI bridge plugin as Flannel's CNI plugin drives it (one ADD per pod sandbox).

Facts (flannel-kubernetes-facts.md section G, kernel-observations.md "The real CNI bridge
plugin"): the bridge `cni0` gets the subnet's .1 as gateway address and Flannel's MTU and a
fixed MAC of its own; `isGateway` turns on `net.ipv4.ip_forward`; host-local IPAM hands out
addresses from .2 upward in creation order; each pod gets one veth pair, `eth0` inside and
`veth` + 8 hex characters on the host, with hairpin mode on; inside the pod the routes are
`default via .1`, `<cluster CIDR> via .1` and the connected subnet.
"""

from __future__ import annotations

import hashlib
from socket import inet_ntoa
from ipaddress import IPv4Network

from .addresses import derive_mac
from .bridge import Bridge
from .errors import ConfigError

BRIDGE_NAME = "cni0"


def host_veth_name(pod: str) -> str:
    """`veth` + 8 hex characters; the plugin uses 4 random bytes, netsim a hash of the pod name."""
    return "veth" + hashlib.sha256(pod.encode()).hexdigest()[:8]


class HostLocalIpam:
    """host-local IPAM over one node subnet: .1 is the gateway, pods get .2 upward."""

    def __init__(self, subnet: IPv4Network):
        self.subnet = subnet
        self.gateway = subnet.network_address + 1
        self._base = int(subnet.network_address)
        self._next = 2
        self.last = subnet.num_addresses - 2     # the broadcast address is never handed out
        # a /24 or longer: every address shares its first three octets (a 5,000-node build
        # allocates 550,000 addresses, and the dotted quad is most of the cost)
        octets = str(subnet.network_address).split(".")
        self._prefix = ".".join(octets[:3]) + "." if subnet.prefixlen >= 24 else ""
        self._low = int(octets[3])

    @property
    def capacity(self) -> int:
        return max(self.last - 1, 0)

    def allocate(self, owner: str) -> str:
        if self._next > self.last:
            raise ConfigError(f"subnet {self.subnet} is full: host-local has {self.capacity} pod addresses "
                              f"(.2 to .{self.last}); cannot place {owner}")
        if self._prefix:
            addr = self._prefix + str(self._low + self._next)
        else:
            addr = inet_ntoa((self._base + self._next).to_bytes(4, "big"))
        self._next += 1
        return addr


def ensure_bridge(network, node: str, subnet: IPv4Network, mtu: int) -> Bridge:
    """Create `cni0` on the node's first pod, as the plugin does."""
    ns = network.netns(node)
    if BRIDGE_NAME in ns.devices:
        return ns.devices[BRIDGE_NAME]
    br = network.bridge(node, BRIDGE_NAME, mac=derive_mac(node, BRIDGE_NAME), mtu=mtu)
    ns.addr_add(BRIDGE_NAME, f"{subnet.network_address + 1}/{subnet.prefixlen}")
    ns.set_sysctl("net.ipv4.ip_forward", 1)
    return br


def add_pod(network, node: str, pod: str, ip: str, subnet: IPv4Network, cluster_cidr: IPv4Network,
            mtu: int) -> str:
    """CNI ADD for one pod sandbox: veth pair, address, routes. Returns the host veth name."""
    br = ensure_bridge(network, node, subnet, mtu)
    host_name = host_veth_name(pod)
    pod_end, host_end = network.veth(pod, "eth0", node, host_name, mtu=mtu)
    # ip.SetupVeth builds netlink.Veth{LinkAttrs{Name, MTU}}: TxQLen 0 is sent for both ends
    pod_end.qlen = host_end.qlen = 0
    br.attach(host_end, hairpin=True)
    pod_ns = network.netns(pod)
    gateway = str(subnet.network_address + 1)
    pod_ns.addr_add("eth0", f"{ip}/{subnet.prefixlen}")
    pod_ns.route_add("default", via=gateway, dev="eth0")
    pod_ns.route_add(str(cluster_cidr), via=gateway, dev="eth0")
    return host_name
