"""A TUN device (`flannel0` of Flannel's udp backend): raw IP packets, no Ethernet header.

Kernel behaviour modelled (drivers/net/tun.c `tun_net_xmit`, `tun_get_user`).

What the kernel transmits on a TUN device is read by the userspace program holding it
(flanneld), and what that program writes is received on the device (`IFF_TUN|IFF_NO_PI`,
flannel pkg/ip/tun.go).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .decision import Decision, Subsystem, TunReason, Verdict
from .device import Device
from .packet import IPv4
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel


class TunReader(Protocol):
    """The userspace program holding a TUN device open: it reads what the kernel transmits."""

    def from_tun(self, k: Kernel, tun: Tun, ip: IPv4, flow: Flow) -> None: ...


class Tun(Device):
    kind = "tun"
    link_type = "none"
    flags = ("POINTOPOINT", "MULTICAST", "NOARP")

    def __init__(self, name: str, mtu: int = 1500):
        super().__init__(name, "00:00:00:00:00:00", mtu)
        self.program: TunReader | None = None   # reads what the kernel transmits


def tun_net_xmit(k: Kernel, dev: Tun, frame: IPv4, flow: Flow) -> None:
    """tun_net_xmit: the packet waits for the program holding the device to read it; with
    none, it is discarded."""
    if dev.program is None:
        flow.end("dropped", Decision(Subsystem.TUN, "tun_net_xmit", TunReason.NOT_OPEN, Verdict.DROP, dev=dev.name))
    else:
        dev.program.from_tun(k, dev, frame, flow)
