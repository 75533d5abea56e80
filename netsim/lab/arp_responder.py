"""A stand-in, in the lab, for a userspace program that answers ARP for addresses no interface
holds (MetalLB's speaker in layer-2 mode, netsim.cluster.metallb): a packet socket bound to the
device for ETH_P_ARP that answers each request for one of its addresses with a reply from the
device's MAC to the asker, zero-padded to 60 bytes as mdlayher/arp (through mdlayher/ethernet)
writes it. It reads what the model's responder (a namespace's `arp_responders` entry with an
`announced(dev)` method) answers for when the lab is built, and runs in the thread that answers
the lab's UDP listeners (traffic.Servers).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from ._netns import in_netns

ETH_P_ARP = 0x0806
FRAME_MIN = 60           # mdlayher/ethernet pads the payload to 46 bytes
BROADCAST = b"\xff" * 6


@dataclass
class ArpResponder:
    sock: socket.socket
    mac: bytes
    addresses: frozenset[str]

    def handle(self) -> None:
        """Read one frame; answer it if it is a request for one of our addresses, broadcast or
        sent to our MAC (arpResponder.processRequest's checks)."""
        data, addr = self.sock.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING or len(data) < 42 or data[12:14] != b"\x08\x06":
            return
        _htype, _ptype, hlen, plen, op = struct.unpack("!HHBBH", data[14:22])
        if op != 1 or hlen != 6 or plen != 4 or data[0:6] not in (BROADCAST, self.mac):
            return
        sha, spa, tpa = data[22:28], data[28:32], data[38:42]
        if socket.inet_ntoa(tpa) not in self.addresses:
            return
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + self.mac + tpa + sha + spa
        frame = sha + self.mac + b"\x08\x06" + arp
        self.sock.send(frame + bytes(FRAME_MIN - len(frame)))


def open_responder(lab_netns: str, dev: str, addresses: tuple[str, ...]) -> ArpResponder:
    """The responder's socket, made in the lab namespace and bound to `dev` there."""

    def make() -> tuple[socket.socket, bytes]:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        s.bind((dev, ETH_P_ARP))
        return s, s.getsockname()[4]

    sock, mac = in_netns(lab_netns, make)
    return ArpResponder(sock, mac, frozenset(addresses))
