"""Capturing every frame on every device, as `tcpdump -i IF -e -nn -p --immediate-mode` sees it.

One AF_PACKET socket per device of a namespace (opened inside it), not promiscuous, with the
kernel's receive timestamp (SO_TIMESTAMPNS) and the direction the packet type gives
(PACKET_OUTGOING for a frame the device sent). On `lo` every frame shows twice; like libpcap,
the received copy is kept.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from ._netns import in_netns

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
CAPTURE_BUFFER = 1 << 20


@dataclass(frozen=True)
class Capture:
    """One frame as a capture socket saw it."""

    time: float              # kernel timestamp, seconds
    netns: str               # the model's namespace name
    device: str
    direction: str           # "rx" or "tx"
    data: bytes


def open_captures(lab_netns: str, devices: list[str]) -> dict[str, socket.socket]:
    """A non-blocking capture socket on each of `devices`, opened in namespace `lab_netns`."""
    def open_all() -> dict[str, socket.socket]:
        out = {}
        for dev in devices:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CAPTURE_BUFFER)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind((dev, ETH_P_ALL))
            s.setblocking(False)
            out[dev] = s
        return out

    return in_netns(lab_netns, open_all)


def drain(sockets: dict[tuple[str, str], socket.socket]) -> list[Capture]:
    """Every frame waiting on `sockets` ((model netns, device) -> socket), unordered."""
    out = []
    for (ns, dev), s in sockets.items():
        while True:
            try:
                data, anc, _flags, addr = s.recvmsg(65600, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                break
            pkttype = addr[2]
            if dev == "lo" and pkttype == PACKET_OUTGOING:
                continue              # lo shows each frame twice; libpcap keeps the received copy
            stamp = time.time()
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    stamp = sec + nsec / 1e9
            out.append(Capture(stamp, ns, dev, "tx" if pkttype == PACKET_OUTGOING else "rx", data))
    return out
