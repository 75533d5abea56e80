"""A TUN device (`flannel0` of Flannel's udp backend): raw IP packets, no Ethernet header.

Kernel behaviour modelled (drivers/net/tun.c `tun_net_xmit`, `tun_get_user`).

What the kernel transmits on a TUN device is read by the userspace program holding it
(flanneld), and what that program writes is received on the device (`IFF_TUN|IFF_NO_PI`,
flannel pkg/ip/tun.go).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decision import Decision, Subsystem, TunReason, Verdict
from .device import Device
from .packet import Ethernet, IPv4

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .walk import Walk


class Tun(Device):
    kind = "tun"
    link_type = "none"
    flags = ("POINTOPOINT", "MULTICAST", "NOARP")

    def __init__(self, name: str, mtu: int = 1500):
        super().__init__(name, "00:00:00:00:00:00", mtu)
        self.program: Any = None   # reads what the kernel transmits: program.from_tun(walk, tun, packet, flow)


def tun_net_xmit(walk: Walk, dev: Tun, frame: IPv4, flow: Flow) -> None:
    """tun_net_xmit: the packet waits for the program holding the device to read it; with
    none, it is discarded."""
    if dev.program is None:
        flow.end("dropped", Decision(Subsystem.TUN, "tun_net_xmit", TunReason.NOT_OPEN, Verdict.DROP, dev=dev.name))
    else:
        dev.program.from_tun(walk, dev, frame, flow)
