"""Write a trace as a pcapng file that Wireshark and tshark open like a real capture.

One Interface Description Block per capture point, named `netns/device` (e.g.
`node1/flannel.1`), with LINKTYPE_ETHERNET, or LINKTYPE_RAW for raw-IP (TUN) devices. Each hop
is an Enhanced Packet Block on its interface, with the direction (`epb_flags` inbound/outbound,
as `tcpdump -Q` sees it) and the kernel's decisions as the packet comment, each told by the
function the caller passes (`netsim.views.sentence` writes sentences), else as its subsystem,
kernel function, reason and verdict. Timestamps are
deterministic: a fixed epoch plus the hop index in microseconds, so files are byte-identical
between runs. Block layout from the pcapng specification (IETF draft-ietf-opsawg-pcapng).

The writer takes a trace (`write(trace, path)`, `pcapng_bytes(trace)`) and reads only the
fields a capture holds (`Captured` below), so it imports nothing of the model: the model
never writes files, and `Trace.to_pcap` is a convenience that calls `write` at call time.
"""

from __future__ import annotations

import struct
from os import PathLike
from typing import Any, Callable, Iterable, Protocol, Sequence

Explain = Callable[[Any], str]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
EPOCH_US = 1_767_225_600 * 1_000_000      # 2026-01-01T00:00:00Z: a fixed, obviously synthetic date
SNAPLEN = 262_144

_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_OPT_END, _OPT_COMMENT = 0, 1
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9
_SHB_USERAPPL = 4
_EPB_FLAGS = 2
_DIRECTION = {"rx": 1, "tx": 2}          # epb_flags bits 0-1: 01 inbound, 10 outbound


class CapturedHop(Protocol):
    """What the writer reads of a hop (netsim.trace.Hop has it all)."""

    @property
    def index(self) -> int: ...
    @property
    def netns(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def device_kind(self) -> str: ...
    @property
    def decisions(self) -> Sequence[object]: ...
    @property
    def where(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def link_type(self) -> str: ...


class Captured(Protocol):
    """What the writer reads of a trace: its hops, in order."""

    @property
    def hops(self) -> Iterable[CapturedHop]: ...


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(*opts: bytes) -> bytes:
    return b"".join(opts) + struct.pack("<HH", _OPT_END, 0) if opts else b""


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _record(d: Any) -> str:
    """A decision as its fields: `bridge br_forward fdb: forward`."""
    return f"{d.subsystem} {d.function} {d.reason.value}: {d.verdict}"


def pcapng_bytes(trace: Captured, comments: bool = True, explain: Explain | None = None) -> bytes:
    """The pcapng file for a trace, as bytes; `explain` tells each decision in the comments."""
    tell = explain or _record
    out = [_block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                  + _options(_option(_SHB_USERAPPL, b"netsim")))]
    interfaces: dict[str, int] = {}
    for hop in trace.hops:
        if hop.where not in interfaces:
            interfaces[hop.where] = len(interfaces)
            linktype = LINKTYPE_ETHERNET if hop.link_type == "ether" else LINKTYPE_RAW
            desc = f"{hop.device_kind or 'device'} {hop.device} in netns {hop.netns}"
            out.append(_block(_IDB, struct.pack("<HHI", linktype, 0, SNAPLEN) + _options(
                _option(_IF_NAME, hop.where.encode()),
                _option(_IF_DESCRIPTION, desc.encode()),
                _option(_IF_TSRESOL, b"\x06"))))
        ts = EPOCH_US + hop.index
        data = hop.data
        opts = [_option(_EPB_FLAGS, struct.pack("<I", _DIRECTION.get(hop.direction, 0)))]
        if comments:
            text = f"hop {hop.index} {hop.where} {hop.direction} ({hop.role}"
            text += f", {hop.verdict})" if hop.verdict else ")"
            text += "".join(f"\n{tell(d)}" for d in hop.decisions)
            opts.append(_option(_OPT_COMMENT, text.encode()))
        body = struct.pack("<IIIII", interfaces[hop.where], ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
        out.append(_block(_EPB, body + _pad(data) + _options(*opts)))
    return b"".join(out)


def write(trace: Captured, path: str | PathLike, comments: bool = True, explain: Explain | None = None) -> None:
    """Write `trace` to `path` as pcapng (see the module docstring)."""
    with open(path, "wb") as f:
        f.write(pcapng_bytes(trace, comments, explain))
