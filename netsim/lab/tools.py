"""The real tools in the lab: ping, traceroute, dig, curl, nc run in a lab namespace, every frame
they cause captured, for comparison with `Cluster.ping()` and its kin.

`run_tool(lab, src, argv)` runs one command (an argument list: the tool is one of TOOLS, found
on the machine; every argument is a string without NUL, passed as it is, never through a
shell) in the lab namespace of model host `src`, after the cold start `Lab.exchange` does, and
returns a `ToolObservation`: the return code, stdout, stderr, and the frames every capture
socket saw, as a `Trace` in the order the kernel handled them (frames.to_trace).

traceroute given no -w gets `-w 5` (its default maximum) alone: traceroute 2.1 otherwise waits
for a probe only HERE (3) times as long as a reply already seen from the same hop took, a real-
time guess that, on a loaded machine, gives up on answers that do arrive and prints "*" (man
traceroute: "switch this algorithm off, by specifying -w with the desired timeout only"; under
two busy CPUs chapter 15's `traceroute -T` read "T ms * *" in 4 of 8 runs). The model has no
load and waits for every answer, as traceroute does with -w 5 alone.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..device import Veth
from ..errors import ConfigError
from ..trace import Trace
from ._netns import in_netns
from .capture import Capture, drain, flush
from .frames import order, to_trace
from .process import tool

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Lab

TOOLS = ("ping", "traceroute", "dig", "curl", "nc", "ip", "socat")
SETTLE = 0.1                  # seconds of quiet on every device that end the capture


@dataclass
class ToolObservation:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    trace: Trace
    captures: list[Capture]
    seconds: float


def _steady(argv: Sequence[str]) -> list[str]:
    """`argv`, with `-w 5` after the tool's name for a traceroute given no -w (module docstring)."""
    if argv and argv[0] == "traceroute" and not any(a.startswith(("-w", "--wait")) for a in argv[1:]):
        return [argv[0], "-w", "5", *argv[1:]]
    return list(argv)


def _checked(argv: Sequence[str]) -> list[str]:
    if not argv or argv[0] not in TOOLS:
        raise ConfigError(f"the lab runs only {', '.join(TOOLS)}, not {argv[:1]!r}")
    for arg in argv:
        if not isinstance(arg, str) or "\0" in arg:
            raise ConfigError(f"argument {arg!r} must be a string without NUL")
    path = tool(argv[0])
    if path is None:
        raise ConfigError(f"{argv[0]} is not installed on this machine")
    return [path, *argv]


def run_tool(lab: Lab, src: str, argv: Sequence[str], cold: bool = True, timeout: float = 120.0,
             stdin: str | None = None) -> ToolObservation:
    """Run `argv` in `src`'s lab namespace and capture what it causes (the module docstring)."""
    argv = _steady(argv)
    command = _checked(argv)
    source = lab.cluster.resolve(src, source=True)
    if source.netns is None:
        raise ConfigError(f"{src!r} is not a host")
    t0 = time.perf_counter()
    if cold:
        lab.cold_start()
        time.sleep(0.01)
    sockets = lab._sockets                    # the capture rings the lab opened on every device
    flush(sockets)
    netns = lab.netns(source.netns)
    # argv[0] stays the tool's name (it prints it in its messages); the path is the executable
    # bytes in and out (no newline translation: an HTTP response keeps its \r\n)
    data = stdin.encode("latin-1") if stdin is not None else None
    done = in_netns(netns, lambda: subprocess.run(command[1:], executable=command[0], capture_output=True,
                                                   timeout=timeout, input=data))
    trace, captures = _captured(lab, sockets, "kernel: " + " ".join(argv))
    return ToolObservation(tuple(argv), done.returncode, done.stdout.decode("latin-1"),
                           done.stderr.decode("latin-1"), trace, captures, time.perf_counter() - t0)


def inject_frame(lab: Lab, host: str, device: str, frame: bytes, cold: bool = True) -> ToolObservation:
    """Write `frame` to a packet socket bound to `device` in `host`'s lab namespace (what
    Cluster.inject models: packet_snd -> dev_queue_xmit) and capture what follows."""
    if not isinstance(frame, bytes) or not frame:
        raise ConfigError(f"frame {frame!r} must be non-empty bytes")
    ns = lab.cluster.netns(host)
    if not isinstance(device, str) or device not in ns.devices:
        raise ConfigError(f"no device {device!r} in {host}")
    t0 = time.perf_counter()
    if cold:
        lab.cold_start()
        time.sleep(0.01)
    sockets = lab._sockets
    flush(sockets)

    def send() -> int:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((device, 0))
            return s.send(frame)
    sent = in_netns(lab.netns(ns.name), send)
    trace, captures = _captured(lab, sockets, f"kernel: inject {len(frame)} bytes on {host}/{device}")
    return ToolObservation(("inject", host, device), 0 if sent == len(frame) else 1, "", "", trace, captures,
                           time.perf_counter() - t0)


def _captured(lab: Lab, sockets: dict, title: str) -> tuple[Trace, list[Capture]]:
    """Every frame the capture sockets see until the devices go quiet, as a trace."""
    captures: list[Capture] = []
    while True:
        time.sleep(SETTLE)
        batch = drain(sockets)
        captures += batch
        if not batch:
            break
    kinds = {(n, d.name): d.kind for n, ns in lab.cluster.network.namespaces.items() for d in ns.devices.values()}
    peers = {(n, d.name): (d.peer.netns.name, d.peer.name) for n, ns in lab.cluster.network.namespaces.items()
             for d in ns.devices.values() if isinstance(d, Veth) and d.peer is not None and d.peer.netns is not None}
    captures = order(captures, kinds, peers)
    return to_trace(captures, title=title, kinds=kinds, peers=peers), captures
