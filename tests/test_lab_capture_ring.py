"""The lab's capture rings (netsim/lab/capture.py), on `lo` of a namespace made for the test
(cap-<pid>-ring): a frame as large as an IP packet can be comes back whole; a ring that filled
up, or a frame cut to a smaller ring slot, raises CaptureIncomplete instead of handing on a
partial capture; flush() throws both away. Root on Linux only, like the other lab files."""

from __future__ import annotations

import socket

import pytest

from netsim.lab import LabError, capture
from netsim.lab._netns import in_netns
from tests import labkit

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab
NAMESPACES = labkit.Namespaces("cap")
PORT = 9999


@pytest.fixture
def ns():
    NAMESPACES.reclaim_stale()
    name = NAMESPACES.prefix + "ring"
    labkit.run("ip", "netns", "add", name)
    try:
        labkit.run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        labkit.run("ip", "netns", "del", name, check=False)


def _rings(ns: str) -> dict[tuple[str, str], capture.Ring]:
    return {("host", dev): ring for dev, ring in capture.open_captures(ns, ["lo"]).items()}


def _send(ns: str, sizes: list[int]) -> None:
    """UDP datagrams of `sizes` bytes to 127.0.0.1, to a socket that takes them (no ICMP)."""
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
            rx.bind(("127.0.0.1", PORT))
            for i, n in enumerate(sizes):
                tx.sendto(bytes([i % 256]) * n, ("127.0.0.1", PORT))
    in_netns(ns, send)


def _close(rings: dict[tuple[str, str], capture.Ring]) -> None:
    for ring in rings.values():
        ring.close()


@needs_lab
def test_the_largest_ip_packet_comes_back_whole(ns):
    rings = _rings(ns)
    try:
        _send(ns, [65507, 10])
        got = capture.drain(rings)
    finally:
        _close(rings)
    # lo shows each frame twice (sent and received); the received copy is kept, as libpcap does
    assert [(c.netns, c.device, c.direction, len(c.data)) for c in got] == [
        ("host", "lo", "rx", 14 + 20 + 8 + 65507), ("host", "lo", "rx", 14 + 20 + 8 + 10)]
    assert got[0].data[14 + 28:] == bytes(65507) and got[1].data[14 + 28:] == b"\x01" * 10
    assert got[0].time <= got[1].time and got[0].time > 1.6e9       # the kernel's wall-clock stamps


@needs_lab
def test_a_full_ring_raises_and_the_next_drain_starts_clean(ns):
    rings = _rings(ns)
    try:
        _send(ns, [100] * capture.RING_FRAMES)      # two frames each on lo: twice the ring
        with pytest.raises(capture.CaptureIncomplete, match=r"host/lo: \d+ frames dropped: the ring of "
                                                             rf"{capture.RING_FRAMES} frames was full"):
            capture.drain(rings)
        assert capture.drain(rings) == []           # the drops were counted once, the ring is empty
        _send(ns, [100] * capture.RING_FRAMES)
        capture.flush(rings)                        # before an exchange: thrown away, not raised
        _send(ns, [100])
        assert len(capture.drain(rings)) == 1
    finally:
        _close(rings)
    assert issubclass(capture.CaptureIncomplete, LabError)


@needs_lab
def test_a_frame_cut_to_the_ring_slot_raises(ns, monkeypatch):
    frame = 2048                                    # a ring with slots smaller than the frame
    monkeypatch.setattr(capture, "FRAME_SIZE", frame)
    monkeypatch.setattr(capture, "FRAMES_PER_BLOCK", capture.BLOCK_SIZE // frame)
    monkeypatch.setattr(capture, "RING_FRAMES", capture.RING_BLOCKS * (capture.BLOCK_SIZE // frame))
    rings = _rings(ns)
    try:
        _send(ns, [3000])
        with pytest.raises(capture.CaptureIncomplete, match="host/lo: a 3042-byte frame truncated to 1982 bytes"):
            capture.drain(rings)
    finally:
        _close(rings)
