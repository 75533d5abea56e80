"""The lab's client that starts an exchange (the servers are the model's own programs on real
sockets: programs.py).

The client does what `Cluster.send()` models: one TCP connect (SYN, SYN-ACK, then closed with
RST at once), one UDP datagram and its answer, or one `ping -c1`; `client()` returns the
outcome and the socket's own port.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from typing import TYPE_CHECKING, Callable

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


def client(lab_ns: str, dst_ip: str, proto: str, dport: int | None, run: Runner, request: bytes = b"REQ",
           timeout: float = EXCHANGE_TIMEOUT) -> tuple[str, int | None]:
    """One exchange from namespace `lab_ns`: the outcome as a sentence, and the client socket's
    own port (TCP and UDP). `run` runs a command (ping) for the lab."""
    if proto == "icmp":
        ping = tool("ping") or "ping"
        wait = max(1, round(timeout))
        argv = [ping, "-c", "1", "-W", str(wait), "-n", tok.ipv4(dst_ip)]
        done = in_netns(lab_ns, lambda: run(argv, check=False, timeout=wait + COMMAND_TIMEOUT))
        # no reply: what the model says of a silent drop (an ICMP error that reached the client
        # replaces it, Lab.exchange)
        outcome = f"echo reply from {dst_ip}" if done.returncode == 0 else "no answer reached the sender"
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
