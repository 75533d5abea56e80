"""Network devices (`struct net_device`): loopback, veth pairs and physical NICs.

A device has a name unique in its namespace, a MAC, an MTU, an up/down state and IPv4
addresses. A veth pair is a cable between two namespaces: what one end transmits, the other
receives, and crossing it scrubs the packet's mark and conntrack reference. A physical NIC is
modelled the same way, its cable ending on a port of the underlay switch. What each kind of
device does when it transmits is in the module named for it (veth.py, bridge.py, vxlan.py,
tun.py), looked up by `kind` in walk.py's `NDO_START_XMIT`. A device names its namespace and
its master (the bridge it is a port of) as plain references: what those are is theirs to say.
"""

from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Any, Callable

from .packet import Ethernet, IPv4

VLAN_HLEN = 4      # is_skb_forwardable lets a frame exceed the MTU by a VLAN tag


def l3_length(frame: Ethernet | IPv4) -> int:
    """The size a device's MTU applies to: the frame without its Ethernet header."""
    return frame.length() - 14 if isinstance(frame, Ethernet) else frame.length()


class Device:
    kind = "device"
    link_type = "ether"      # "ether" frames, or "none" for raw-IP devices (TUN)
    flags: tuple[str, ...] = ("BROADCAST", "MULTICAST")
    captured_tx = True       # a capture on the device sees what it transmits (lo: only its rx)

    def __init__(self, name: str, mac: str, mtu: int = 1500):
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.up = True
        self.addresses: list[IPv4Interface] = []
        self.master: Device | None = None       # the bridge this device is a port of
        self.netns: Any = None                  # the Namespace it is in (netns.py), once added
        self.ifindex = 0
        # dev->tx_queue_len: ether_setup() gives every Ethernet device DEFAULT_TX_QUEUE_LEN
        # (1000, include/linux/netdevice.h) unless the creator sends IFLA_TXQLEN. Go programs
        # using vishvananda/netlink send the LinkAttrs' TxQLen, 0 unless set to -1: flanneld's
        # flannel.1 and the CNI plugins' veth pairs get 0 (the bridge plugin asks -1 for cni0).
        # iproute2 prints `qlen N` only when N is not 0.
        self.qlen = 1000
        # dev->promiscuity and dev->allmulti: counts of who asked the device to receive every
        # frame / every multicast frame. Joining a bridge raises both (net/bridge/br_if.c:
        # br_add_if calls dev_set_allmulti(dev, 1), then nbp_update_port_count ->
        # br_manage_promisc -> br_port_set_promisc -> dev_set_promiscuity(dev, 1) for every port
        # while the bridge has no VLAN filtering); leaving it lowers both (nbp_delete_promisc).
        # Only `ip -d link` shows them; the IFF_PROMISC flag a count sets is not reported in
        # `<...>` (dev_get_flags shows only what a user asked for, dev->gflags).
        self.promiscuity = 0
        self.allmulti = 0
        # net.ipv4.conf.DEV.route_localnet (IN_DEV_ROUTE_LOCALNET): 127/8 may be routed to and
        # from this device; the CNI portmap plugin turns it on for cni0
        self.route_localnet = False
        # netdev_rx_handler_register: what takes a received frame before the protocols do
        # (br_handle_frame for a bridge port), called as rx_handler(kernel, dev, frame, flow),
        # and what it registered with it (rx_handler_data: the bridge port)
        self.rx_handler: Callable[..., Any] | None = None
        self.rx_handler_data: Any = None

    @property
    def has_link(self) -> bool:
        """Whether anything is at the other end (a veth without its peer, a NIC whose cable is
        not plugged in yet, has nothing)."""
        return True

    @property
    def where(self) -> str:
        return f"{self.netns.name if self.netns else '?'}/{self.name}"

    @property
    def primary(self) -> IPv4Interface | None:
        return self.addresses[0] if self.addresses else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where}>"


class Loopback(Device):
    """`lo`: what is sent on it is received on it, in the same namespace."""

    kind = "loopback"
    flags = ("LOOPBACK",)
    captured_tx = False

    def __init__(self) -> None:
        super().__init__("lo", "00:00:00:00:00:00", mtu=65536)


class Veth(Device):
    """One end of a veth pair; `peer` is the other end, possibly in another namespace."""

    kind = "veth"

    def __init__(self, name: str, mac: str, mtu: int = 1500):
        super().__init__(name, mac, mtu)
        self.peer: Veth | None = None

    @property
    def has_link(self) -> bool:
        return self.peer is not None


class Nic(Veth):
    """A physical NIC; its cable (`peer`) ends on a port of the underlay switch."""

    kind = "nic"
