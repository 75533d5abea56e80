"""The lab's real sockets: the servers that answer and the client that starts an exchange.

Servers: every listener of the model (`ns.listeners`) gets a socket in its lab namespace. A
TCP listener only listens (the kernel answers the SYN); a UDP one answers each datagram with
b"RSP" from one thread, as netsim's servers do. The client does what `Cluster.send()`
models: one TCP connect (SYN, SYN-ACK, then closed with RST at once), one UDP datagram and its
answer, or one `ping -c1`; `client()` returns the outcome and the socket's own port.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import threading
from typing import TYPE_CHECKING, Callable, Sequence

from . import commands as tok
from ._netns import in_netns
from .process import COMMAND_TIMEOUT, tool

if TYPE_CHECKING:
    from ..cluster import Cluster

IP_RECVERR = 11
EXCHANGE_TIMEOUT = 3.0

Runner = Callable[..., subprocess.CompletedProcess]


def resolve(cluster: "Cluster", src: str, dst: str, proto: str | None,
            dport: int | None) -> tuple[str, str, str, int | None]:
    """The namespace, address, protocol and port `Cluster.send` would use."""
    source = cluster.resolve(src, source=True)
    target = cluster.resolve(dst, from_ns=source.netns)
    if proto is None:
        proto = "tcp" if (dport or target.port) else "icmp"
    if dport is None and proto != "icmp":
        dport = target.port if target.port is not None else (8080 if proto == "tcp" else 9090)
    assert source.netns is not None and target.ip is not None   # a source always has a namespace
    return source.netns, target.ip, proto, dport


class Servers:
    """The listening sockets of every lab namespace, and the thread that answers UDP."""

    def __init__(self) -> None:
        self.tcp: list[socket.socket] = []
        self.udp: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, lab_netns: str, listeners: Sequence[tuple[str, int]]) -> None:
        """A socket bound to 0.0.0.0 for each (protocol, port), in namespace `lab_netns`."""
        if not listeners:
            return

        def open_all() -> list[tuple[str, socket.socket]]:
            out = []
            for proto, port in listeners:
                kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
                s = socket.socket(socket.AF_INET, kind)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                if proto == "tcp":
                    s.listen(4096)        # the kernel answers SYNs; nothing needs to accept
                out.append((proto, s))
            return out

        for proto, s in in_netns(lab_netns, open_all):
            (self.tcp if proto == "tcp" else self.udp).append(s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve_udp, name="lab-udp-servers", daemon=True)
        self._thread.start()

    def _serve_udp(self) -> None:
        """Every UDP listener answers each datagram with b"RSP", as netsim's do."""
        while not self._stop.is_set():
            socks = [s for s in self.udp if s.fileno() >= 0]
            if not socks:
                return
            try:
                ready, _, _ = select.select(socks, [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data, addr = s.recvfrom(65535)
                    s.sendto(b"RSP", addr)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        for s in [*self.tcp, *self.udp]:
            try:
                s.close()
            except OSError:
                pass


def client(lab_ns: str, dst_ip: str, proto: str, dport: int | None, run: Runner, request: bytes = b"REQ",
           timeout: float = EXCHANGE_TIMEOUT) -> tuple[str, int | None]:
    """One exchange from namespace `lab_ns`: the outcome as a sentence, and the client socket's
    own port (TCP and UDP). `run` runs a command (ping) for the lab."""
    if proto == "icmp":
        ping = tool("ping") or "ping"
        wait = max(1, round(timeout))
        argv = [ping, "-c", "1", "-W", str(wait), "-n", tok.ipv4(dst_ip)]
        done = in_netns(lab_ns, lambda: run(argv, check=False, timeout=wait + COMMAND_TIMEOUT))
        outcome = f"echo reply from {dst_ip}" if done.returncode == 0 else f"no echo reply ({done.stdout.strip()[-80:]})"
        return outcome, None
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = in_netns(lab_ns, lambda: socket.socket(socket.AF_INET, kind))
    sock.settimeout(timeout)
    try:
        if proto == "udp":
            # report every ICMP error at once (a connected UDP socket otherwise waits out
            # "soft" ones such as net unreachable); nothing changes on the wire
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if proto == "tcp":
            try:
                sock.connect((dst_ip, dport))
            except ConnectionRefusedError:
                return f"connection refused by {dst_ip}:{dport} (RST)", None
            except socket.timeout:
                # a silent drop, in the model's words (within 1 s: TCP_TIMEOUT_INIT, before the SYN's
                # first retransmission, the wire holds one SYN as the model's trace does)
                return "no answer reached the sender", None
            except OSError as exc:
                return f"no answer: {exc}", None
            port = sock.getsockname()[1]
            peer = sock.getpeername()
            # close with RST at once, so the exchange is over before the next one starts
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return f"connected to {peer[0]}:{peer[1]} (SYN-ACK)", port
        sock.connect((dst_ip, dport))
        port = sock.getsockname()[1]
        try:
            sock.send(request)
        except OSError as exc:            # EMSGSIZE: DF and bigger than a known path MTU
            return f"send: {exc.strerror or exc}", port
        try:
            data, peer = sock.recvfrom(65535)
        except socket.timeout:
            return "no answer reached the sender", port     # what the model says of a silent drop
        except OSError as exc:
            return f"no answer: {exc}", port
        return f"udp reply from {peer[0]}:{peer[1]}", port
    finally:
        sock.close()
