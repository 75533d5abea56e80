"""A TUN device (`flannel0` of Flannel's udp backend): raw IP packets, no Ethernet header.

What the kernel transmits on a TUN device is read by the userspace program holding it
(flanneld), and what that program writes is received on the device (`IFF_TUN|IFF_NO_PI`,
flannel pkg/ip/tun.go).
"""

from __future__ import annotations

from typing import Any

from .device import Device


class Tun(Device):
    kind = "tun"
    link_type = "none"
    flags = ("POINTOPOINT", "MULTICAST", "NOARP")

    def __init__(self, name: str, mtu: int = 1500):
        super().__init__(name, "00:00:00:00:00:00", mtu)
        self.program: Any = None   # reads what the kernel transmits: program.from_tun(stack, netns, packet, flow)
