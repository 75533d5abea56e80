"""nc (netcat-openbsd 1.219, Debian 12's nc): connect, send what it is given, print what comes back.

Checked on this machine:
- `nc [-v] [-N] HOST PORT`: connect; send the input; with -N shut the write side down when the
  input ends (FIN: nc goes back to poll() and reads the end of its input after the write, so
  the FIN follows what the kernel did meanwhile; netsim: a timer of 0 s); print every byte
  received; exit 0 when the peer closes.
- `-v`: "Connection to HOST PORT port [tcp/SERVICE] succeeded!" on stderr once connected
  (SERVICE from /etc/services; netsim knows a few, else "*"). Given a name, HOST is the name
  and its address in parentheses, "Connection to localhost (127.0.0.1) 5555 port ...", and so
  are the failures' "connect to localhost (127.0.0.1) port 9 (tcp) ..." (netcat.c prints the
  address when it differs from what was typed; measured with nc -v on a name and an address).
- `-z`: connect and close at once, sending nothing (a port check).
- `-u`: UDP: send the input as one datagram and print what comes back, until -w. An ICMP port
  unreachable (ECONNREFUSED on the socket) ends it quietly with status 0 (measured: nothing
  printed, exit 0).
- `-u -v` (or `-z`): before the input, udptest() checks the port by writing "X" datagrams one
  at a time, three in all (measured: three "X" frames, each answered by the lab's echo
  server, then the input); the first write that fails (ECONNREFUSED after a port unreachable
  came back: one "X" on the wire) ends nc with status 1 and nothing printed, the input never
  sent; otherwise "Connection to ... succeeded!" follows.
- A refused connection: "nc: connect to HOST port PORT (tcp) failed: Connection refused", exit
  status 1; with -w N and no answer: "nc: connect to HOST port PORT (tcp) timed out: Operation
  now in progress", exit status 1.
- `NcListen` is `nc -l PORT`: accept one connection, print what it receives, reply with the
  bytes it was given, and close when the peer does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..addresses import parse_address
from ..errors import UsageError
from .events import (
    Accepted, Action, CancelTimer, Close, Connect, Connected, ConnectionReset, DataReceived, DatagramReceived,
    Done, Event, Listen, Open, PeerClosed, Program, Send, SendTo, SetTimer, Shutdown, SocketError, Started,
    TimerFired,
)
from .socket_errors import strerror

UDPTEST_PROBES = 3            # the "X" datagrams udptest() writes (measured)
SERVICES = {("tcp", 53): "domain", ("udp", 53): "domain", ("tcp", 80): "http", ("tcp", 443): "https",
            ("tcp", 8080): "http-alt", ("tcp", 9153): "*", ("tcp", 22): "ssh"}


@dataclass(frozen=True)
class NcResult:
    host: str
    port: int
    proto: str
    received: bytes = b""
    stderr: str = ""
    status: int = 0


class Nc(Program):
    """nc as a client: socket "nc"; timer "wait" (-w)."""

    name = "nc"

    def __init__(self, host: str, port: int, data: bytes = b"", udp: bool = False, verbose: bool = False,
                 shutdown: bool = True, zero: bool = False, wait_s: int = 0, name: str = "") -> None:
        super().__init__()
        if not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"nc port {port!r} is out of range 1-65535")
        self.host = str(parse_address(host, "nc host"))
        # how nc names the peer in what it prints: the name typed, with the address if it differs
        self.shown = f"{name} ({self.host})" if name and name != self.host else self.host
        self.port, self.data, self.udp, self.verbose = port, data, udp, verbose
        self.shutdown, self.zero, self.wait_s = shutdown, zero, wait_s
        self.received = b""
        self.stderr = ""
        self.connected = False
        self.probes = 0                    # udptest's "X" datagrams written

    @property
    def proto(self) -> str:
        return "udp" if self.udp else "tcp"

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            out: list[Action] = [Open("nc", self.proto), Connect("nc", self.host, self.port)]
            if self.wait_s:
                out.append(SetTimer("wait", self.wait_s * 1_000_000))
            return out
        if isinstance(event, Connected) and event.sock == "nc":
            self.connected = True
            if self.udp and (self.verbose or self.zero):
                return self.udptest()
            return self.connected_out()
        if isinstance(event, TimerFired) and event.name == "udptest":
            return self.udptest()
        if isinstance(event, TimerFired) and event.name == "eof":
            return [Shutdown("nc")]
        if isinstance(event, (DataReceived, DatagramReceived)) and event.sock == "nc":
            self.received += event.data
            return []
        if isinstance(event, PeerClosed) and event.sock == "nc":
            return self.finish(0)
        if isinstance(event, ConnectionReset) and event.sock == "nc":
            return self.finish(1)
        if isinstance(event, SocketError) and event.sock == "nc":
            if self.udp:
                # udptest's next write fails: status 1; after the input: a quiet end, status 0
                return self.finish(1 if 0 < self.probes <= UDPTEST_PROBES else 0)
            self.stderr += f"nc: connect to {self.shown} port {self.port} ({self.proto}) failed: {strerror(event.errno)}\n"
            return self.finish(1)
        if isinstance(event, TimerFired) and event.name == "wait":
            if not self.udp and not self.connected:
                self.stderr += (f"nc: connect to {self.shown} port {self.port} ({self.proto}) timed out: "
                                f"Operation now in progress\n")
                return self.finish(1)
            return self.finish(0)
        return []

    def udptest(self) -> list[Action]:
        """One "X" at a time (each walked before the next write); after the last, the port is taken as open."""
        if self.probes < UDPTEST_PROBES:
            self.probes += 1
            return [Send("nc", b"X"), SetTimer("udptest", 0)]
        self.probes += 1
        return self.connected_out()

    def connected_out(self) -> list[Action]:
        """What nc does once connected: -v's line, then the input (or, with -z, nothing)."""
        if self.verbose:
            service = SERVICES.get((self.proto, self.port), "*")
            self.stderr += f"Connection to {self.shown} {self.port} port [{self.proto}/{service}] succeeded!\n"
        if self.zero:
            return self.finish(0)
        out: list[Action] = [Send("nc", self.data)] if self.data else []
        if self.shutdown and not self.udp:
            out.append(SetTimer("eof", 0))
        return out

    def finish(self, status: int) -> list[Action]:
        result = NcResult(self.host, self.port, self.proto, self.received, self.stderr, status)
        return [CancelTimer("wait"), CancelTimer("udptest"), Close("nc"), Done(result, status)]


class NcListen(Program):
    """nc -l PORT: one connection; `reply` is what it sends back after the first data."""

    name = "nc-listen"

    def __init__(self, port: int, reply: bytes = b"", udp: bool = False) -> None:
        super().__init__()
        self.port, self.reply, self.udp = port, reply, udp
        self.received = b""
        self.conn = ""

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("listen", "udp" if self.udp else "tcp"), Listen("listen", self.port)]
        if isinstance(event, Accepted) and not self.conn:
            self.conn = event.sock
            return [Close("listen")]
        if isinstance(event, DatagramReceived):
            self.received += event.data
            out: list[Action] = [SendTo("listen", self.reply, event.src, event.sport)] if self.reply else []
            return out
        if isinstance(event, DataReceived) and event.sock == self.conn:
            first = not self.received
            self.received += event.data
            return [Send(self.conn, self.reply)] if first and self.reply else []
        if isinstance(event, (PeerClosed, ConnectionReset)) and event.sock == self.conn:
            result = NcResult("", self.port, "tcp", self.received)
            return [Close(self.conn), Done(result, 0)]
        return []
