"""A stand-in, in the lab, for a userspace program that answers ARP for addresses no interface
holds (MetalLB's speaker in layer-2 mode, netsim.cluster.metallb): a packet socket bound to the
device for ETH_P_ARP that answers each request for one of its addresses with a reply from the
device's MAC to the asker, zero-padded to 60 bytes as mdlayher/arp (through mdlayher/ethernet)
writes it. It reads what the model's responder (a namespace's `arp_responders` entry with an
`announced(dev)` method) answers for when the lab is built; one thread serves them all
(`Responders`).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Sequence

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


class Responders:
    """The lab's stand-in responders and the thread that serves them."""

    def __init__(self) -> None:
        self.responders: list[ArpResponder] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, lab_netns: str, wanted: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """A responder per (device, addresses) in `lab_netns`."""
        self.responders += [open_responder(lab_netns, dev, addresses) for dev, addresses in wanted]

    def start(self) -> None:
        if self.responders:
            self._thread = threading.Thread(target=self._serve, name="lab-arp-responders", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        by_socket = {r.sock: r for r in self.responders}
        while not self._stop.is_set():
            socks = [s for s in by_socket if s.fileno() >= 0]
            if not socks:
                return
            try:
                ready, _, _ = select.select(socks, [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    by_socket[s].handle()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        for r in self.responders:
            try:
                r.sock.close()
            except OSError:
                pass
