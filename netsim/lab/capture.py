"""Capturing every frame on every device, as `tcpdump -i IF -e -nn -p --immediate-mode` sees it.

One AF_PACKET socket per device of a namespace (opened inside it), not promiscuous, reading
through a PACKET_MMAP receive ring (TPACKET_V2), as libpcap does in immediate mode: the kernel
copies each frame into the ring when it passes the tap (tpacket_rcv: skb_copy_bits into the
ring slot before it returns), so the capture holds the bytes the device sent or received then.
A plain packet socket read with recvmsg does not: packet_rcv queues a clone of the skb, which
shares the packet's data, and the bytes are copied out only at recvmsg (both in
net/packet/af_packet.c). Whatever writes into that data in place later shows in a capture
taken before it. Measured: node1/eth0 showed a forwarded second fragment with the TTL and
Ethernet header node2's forwarding gave it (second-fragment-ttl, book/appendix/conformance.md),
and cni0 tx showed a bridged DNAT with the pod's source MAC, which br_netfilter copies back
over cni0's only after the bridge device's taps (br_nf_pre_routing_finish_bridge_slow).

The frame header gives the kernel's timestamp (tp_sec, tp_nsec: the skb's own software stamp
when it has one, as SO_TIMESTAMPNS gave; the sockets set SO_TIMESTAMPNS, which turns the
kernel's stamping of sent and received skbs on) and the sockaddr_ll after it the packet type, hence the direction
(PACKET_OUTGOING for a frame the device sent). On `lo` every frame shows twice; like libpcap,
the received copy is kept.

Nothing is lost silently: a frame the ring truncated (tp_snaplen < tp_len) or a drop the kernel
counted (PACKET_STATISTICS tp_drops: the ring was full) raises CaptureIncomplete, a LabError,
instead of handing on a partial capture. The ring's size is in RING_FRAMES' comment.
"""

from __future__ import annotations

import mmap
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ._netns import in_netns
from .commands import LabError

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V2 = 1
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
TPACKET_ALIGNMENT = 16
# struct tpacket2_hdr: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_sec, tp_nsec,
# tp_vlan_tci, tp_vlan_tpid (then 4 bytes of padding); the sockaddr_ll follows at
# TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) = 32, its sll_pkttype at offset 10 in it
TPACKET2_HDR = struct.Struct("=IIIHHIIHH")
SLL_OFFSET = 32
SLL_PKTTYPE = SLL_OFFSET + 10
TPACKET_STATS = struct.Struct("=II")      # struct tpacket_stats: tp_packets, tp_drops

# Every frame whole: an IP packet's 65,535 bytes plus an Ethernet header and a VLAN tag (the
# bound libpcap uses on a device with offloads), after the frame header, the sockaddr_ll and
# the gap tpacket_rcv leaves before the link-layer header (macoff = TPACKET_ALIGN(52 + 16) - 14
# = 66 for Ethernet): 65,632 bytes a frame, aligned to 16.
MAX_FRAME = 65535 + 18
FRAME_SIZE = (52 + 16 + MAX_FRAME + TPACKET_ALIGNMENT - 1) // TPACKET_ALIGNMENT * TPACKET_ALIGNMENT
# 63 frames a block. The kernel allocates each block as one run of 2^order pages
# (alloc_pg_vec; vzalloc when that fails), so a power of two wastes nothing; 4 MiB blocks
# (order 10) were the quickest to set up here, 1 MiB ones took two to four times as long.
BLOCK_SIZE = 1 << 22
FRAMES_PER_BLOCK = BLOCK_SIZE // FRAME_SIZE
# The ring must hold every frame of an exchange until the lab drains it after the client is
# done. The largest exchange is a 100 kB TCP transfer (curl, tests/test_lab_sockets.py):
# measured, 106 frames on each device of its path (72 data segments, pod-a's ACKs, the
# handshake and teardown). 3 blocks give 189 frames, 1.8 times that, in 12 MiB a device
# (some 360 MiB for the reference cluster's 30 devices, while the lab is up).
RING_BLOCKS = 3
RING_FRAMES = RING_BLOCKS * FRAMES_PER_BLOCK


class CaptureIncomplete(LabError):
    """A capture ring lost or truncated a frame: the capture is not what the device saw."""


@dataclass(frozen=True)
class Capture:
    """One frame as a capture socket saw it."""

    time: float              # kernel timestamp, seconds
    netns: str               # the model's namespace name
    device: str
    direction: str           # "rx" or "tx"
    data: bytes


class Ring:
    """A packet socket bound to one device with its receive ring mapped (PACKET_MMAP)."""

    def __init__(self, device: str) -> None:
        self.device = device
        # protocol 0: no packet hook until bind, so neither the ring's setup nor bind has to
        # take a running socket's hook off first (each of those waits in synchronize_net)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            # the skb's software timestamp: SO_TIMESTAMPNS turns on the kernel's stamping
            # (net_enable_timestamp), and tpacket_rcv prefers that stamp to its own clock
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            # struct tpacket_req: tp_block_size, tp_block_nr, tp_frame_size, tp_frame_nr
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING,
                                 struct.pack("=IIII", BLOCK_SIZE, RING_BLOCKS, FRAME_SIZE, RING_FRAMES))
            self.ring = mmap.mmap(self.sock.fileno(), BLOCK_SIZE * RING_BLOCKS, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            self.sock.bind((device, ETH_P_ALL))
        except BaseException:
            self.sock.close()
            raise
        self.head = 0                   # the next frame the kernel fills, in ring order

    def _offset(self, index: int) -> int:
        block, slot = divmod(index, FRAMES_PER_BLOCK)
        return block * BLOCK_SIZE + slot * FRAME_SIZE

    def frames(self) -> tuple[list[tuple[float, int, bytes]], list[str]]:
        """Every frame the kernel has handed to user space, in the order it filled them, each
        (timestamp, packet type, bytes), its slot given back; and what was lost or cut."""
        out: list[tuple[float, int, bytes]] = []
        problems = []
        ring = self.ring
        while True:
            base = self._offset(self.head)
            status, length, snaplen, mac, _net, sec, nsec, tci, tpid = TPACKET2_HDR.unpack_from(ring, base)
            if not status & TP_STATUS_USER:
                break
            data = ring[base + mac:base + mac + snaplen]
            if snaplen < length:
                problems.append(f"a {length}-byte frame truncated to {snaplen} bytes")
            if status & TP_STATUS_VLAN_VALID:
                # the tag the device took off (skb->vlan_tci), put back as libpcap does
                tag = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tag, tci) + data[12:]
            out.append((sec + nsec / 1e9, ring[base + SLL_PKTTYPE], data))
            struct.pack_into("=I", ring, base, TP_STATUS_KERNEL)      # the slot back to the kernel
            self.head = (self.head + 1) % RING_FRAMES
        # clear on read: the frames the kernel could not put in the ring since the last call
        _packets, drops = TPACKET_STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS,
                                                                    TPACKET_STATS.size))
        if drops:
            problems.append(f"{drops} frame{'s' if drops > 1 else ''} dropped: the ring of {RING_FRAMES} "
                            f"frames was full")
        return out, problems

    def close(self) -> None:
        self.ring.close()
        self.sock.close()


def open_captures(lab_netns: str, devices: list[str]) -> dict[str, Ring]:
    """A capture ring on each of `devices`, opened in namespace `lab_netns`."""
    def open_all() -> dict[str, Ring]:
        out: dict[str, Ring] = {}
        try:
            for dev in devices:
                out[dev] = Ring(dev)
        except BaseException:
            for ring in out.values():
                ring.close()
            raise
        return out

    return in_netns(lab_netns, open_all)


def close_all(rings: list[Ring]) -> None:
    """Close `rings` side by side: each close waits for an RCU grace period or two
    (packet_release and the ring's teardown call synchronize_net), and waits that overlap
    share one. One by one, the 30 rings of the reference cluster took 0.2 to 0.9 s here;
    together, 0.03 to 0.08 s. An OSError on one does not keep the others open."""
    def close(ring: Ring) -> None:
        try:
            ring.close()
        except OSError:
            pass
    if rings:
        with ThreadPoolExecutor(max_workers=min(32, len(rings))) as pool:
            list(pool.map(close, rings))


def drain(rings: dict[tuple[str, str], Ring]) -> list[Capture]:
    """Every frame waiting in `rings` ((model netns, device) -> ring) now, unordered; it does not
    wait. Raises CaptureIncomplete if a ring truncated or dropped a frame since the last drain."""
    out = []
    lost = []
    for (ns, dev), ring in rings.items():
        frames, problems = ring.frames()
        lost += [f"{ns}/{dev}: {p}" for p in problems]
        for stamp, pkttype, data in frames:
            if dev == "lo" and pkttype == PACKET_OUTGOING:
                continue              # lo shows each frame twice; libpcap keeps the received copy
            out.append(Capture(stamp, ns, dev, "tx" if pkttype == PACKET_OUTGOING else "rx", data))
    if lost:
        raise CaptureIncomplete("the capture is incomplete, so it is not compared: " + "; ".join(lost))
    return out


def flush(rings: dict[tuple[str, str], Ring]) -> None:
    """Empty `rings` before an exchange: their frames, and any loss counted, are thrown away."""
    for ring in rings.values():
        ring.frames()
