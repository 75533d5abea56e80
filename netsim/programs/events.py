"""What passes between a program and its sockets: events in, actions out.

A program is userspace: it owns sockets by name (`sock`, a short string it chooses, like a file
descriptor), reacts to what the kernel reports on them and asks for system calls. The socket
layer (the kernel side, netsim/sockets.py once it drives programs) performs the actions and
turns what arrives into events. Nothing here does I/O or knows the walk.

Events are the kernel's reports, as a process sees them through the socket API:
- `Started`: the process runs (time 0 of its run);
- `Connected` (connect() returned 0: the SYN-ACK arrived), `Accepted` (accept() returned a
  new connection on a listening socket);
- `DataReceived` (recv() on a stream returned bytes), `DatagramReceived` (recvfrom() on a UDP
  socket), `EchoReplyReceived` (an ICMP echo reply on a raw ICMP socket), `SegmentReceived`
  (a TCP segment on a raw TCP socket: traceroute -T reads the RST or SYN-ACK its probe drew);
- `PeerClosed` (recv() returned 0: the peer's FIN), `ConnectionReset` (the peer's RST);
- `SocketError`: an error the kernel queued on the socket, with the errno Linux reports
  (`ip_icmp_error` and `ip_local_error` in net/ipv4/ip_sockglue.c: origin "icmp" with the
  ICMP type, code, the sender of the error and `info`, the next-hop MTU of fragmentation
  needed; origin "local" for EMSGSIZE raised by the sender's own stack, `info` the route MTU);
  `probe` says which packet it is about (the quoted header: `Probe`);
- `TimerFired`: a timer the program set ran out (the walk's clock, not the wall clock).

Every event carries `at`, the walk's clock in microseconds when the process saw it.

Actions are the system calls: `Open` (socket() with its options), `SetOptions`
(setsockopt() later), `Bind`, `Listen`,
`Connect`, `Send` (write() on a stream, send() on a connected datagram socket), `SendTo`,
`SendEcho` (ping's raw ICMP socket), `SendSegment` (a raw TCP segment, as traceroute -T
builds it), `Shutdown` (shutdown(SHUT_WR): FIN), `Close`, `SetTimer`, `CancelTimer`, and
`Done` with the program's result record.

All are frozen dataclasses compared by value (h11's events are the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..packet import TCP

# ------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class Started:
    at: int = 0


@dataclass(frozen=True)
class Connected:
    """connect() returned 0; `local` is the address the socket was bound to (getsockname)."""

    sock: str
    at: int = 0
    local: str = ""


@dataclass(frozen=True)
class Accepted:
    """accept() on `listener` returned connection `sock` from `peer`:`peer_port`."""

    listener: str
    sock: str
    peer: str
    peer_port: int
    at: int = 0


@dataclass(frozen=True)
class DataReceived:
    sock: str
    data: bytes
    at: int = 0


@dataclass(frozen=True)
class DatagramReceived:
    sock: str
    data: bytes
    src: str
    sport: int
    at: int = 0


@dataclass(frozen=True)
class EchoReplyReceived:
    """An ICMP echo reply read from a raw ICMP socket: `size` is the ICMP message length
    (header and data, what ping prints as "N bytes from"), `ttl` the reply's IP TTL."""

    sock: str
    src: str
    ident: int
    seq: int
    size: int
    ttl: int
    data: bytes = b""
    at: int = 0


@dataclass(frozen=True)
class SegmentReceived:
    """A TCP segment read from a raw TCP socket, with the IP source it came from."""

    sock: str
    src: str
    segment: TCP
    ttl: int = 64
    at: int = 0


@dataclass(frozen=True)
class PeerClosed:
    """The peer's FIN: recv() returns 0 from now on."""

    sock: str
    at: int = 0


@dataclass(frozen=True)
class ConnectionReset:
    """The peer's RST on an established connection (the next call fails with ECONNRESET)."""

    sock: str
    at: int = 0


@dataclass(frozen=True)
class Probe:
    """The packet an error is about, read from the header the ICMP error quotes (or, for a
    local error, the packet the sender refused): destination, ports or echo id and sequence,
    and the TTL it left with."""

    dst: str
    proto: str                 # "udp", "tcp", "icmp"
    sport: int = 0
    dport: int = 0
    ident: int = 0
    seq: int = 0
    ttl: int = 0


@dataclass(frozen=True)
class SocketError:
    """An error the kernel queued on a socket (IP_RECVERR). `origin` "icmp": an ICMP error
    from `offender` (type, code, `info` = next-hop MTU for fragmentation needed); "local": the
    sender's own stack refused (EMSGSIZE with `info` = the route's MTU, or EHOSTUNREACH when
    neighbour resolution failed, reported from the sender's own address)."""

    sock: str
    errno: str
    origin: str = "icmp"
    offender: str = ""
    icmp_type: int = 0
    icmp_code: int = 0
    info: int = 0
    probe: Probe | None = None
    at: int = 0


@dataclass(frozen=True)
class TimerFired:
    name: str
    at: int = 0


Event = Union[Started, Connected, Accepted, DataReceived, DatagramReceived, EchoReplyReceived, SegmentReceived,
              PeerClosed, ConnectionReset, SocketError, TimerFired]

# ------------------------------------------------------------------------------ actions

PMTUDISC = ("dont", "want", "do", "probe", "omit")  # IP_PMTUDISC_DONT, _WANT, _DO, _PROBE, _OMIT (include/uapi/linux/in.h)
SOCKET_KINDS = ("udp", "tcp", "icmp", "raw-tcp")


@dataclass(frozen=True)
class SocketOptions:
    """setsockopt() calls a program makes before it sends: IP_TTL (None: the namespace's
    net.ipv4.ip_default_ttl), IP_TOS, IP_MTU_DISCOVER (None: the socket's default, which is
    IP_PMTUDISC_WANT unless net.ipv4.ip_no_pmtu_disc is set), SO_BROADCAST, IP_RECVERR (every
    ICMP error is reported, not only the "hard" ones a connected socket gets without it),
    TCP_MAXSEG set before connect() (the user MSS: the SYN offers min(route's advmss, it), and
    the initial window is rounded to it; netsim clamps only what the SYN offers)."""

    ttl: int | None = None
    tos: int = 0
    pmtudisc: str | None = None
    broadcast: bool = False
    recverr: bool = False
    maxseg: int | None = None


@dataclass(frozen=True)
class Open:
    """socket(): `kind` "udp" (SOCK_DGRAM), "tcp" (SOCK_STREAM), "icmp" (SOCK_RAW,
    IPPROTO_ICMP, as ping and traceroute -I open it) or "raw-tcp" (SOCK_RAW, IPPROTO_TCP)."""

    sock: str
    kind: str
    options: SocketOptions = field(default_factory=SocketOptions)


@dataclass(frozen=True)
class SetOptions:
    """setsockopt() after socket(): the new options replace the socket's (traceroute sets
    IP_TTL on its one raw socket before each probe)."""

    sock: str
    options: SocketOptions


@dataclass(frozen=True)
class Bind:
    sock: str
    port: int
    addr: str = "0.0.0.0"


@dataclass(frozen=True)
class Listen:
    """bind() to `port` and listen() (TCP) or just bind() (UDP) on all addresses."""

    sock: str
    port: int


@dataclass(frozen=True)
class Connect:
    sock: str
    dst: str
    dport: int


@dataclass(frozen=True)
class Send:
    sock: str
    data: bytes


@dataclass(frozen=True)
class SendTo:
    sock: str
    data: bytes
    dst: str
    dport: int


@dataclass(frozen=True)
class SendEcho:
    """sendto() of an ICMP echo request on a raw ICMP socket: the program writes the ICMP
    header's id and sequence and the data; the kernel adds the IP header."""

    sock: str
    dst: str
    ident: int
    seq: int
    data: bytes


@dataclass(frozen=True)
class SendSegment:
    """sendto() of a TCP header and options the program built (a raw IPPROTO_TCP socket);
    the kernel adds the IP header and, with `src` known, the checksum."""

    sock: str
    dst: str
    segment: TCP


@dataclass(frozen=True)
class Shutdown:
    """shutdown(SHUT_WR): the stream sends FIN after its queued data."""

    sock: str


@dataclass(frozen=True)
class Close:
    sock: str


@dataclass(frozen=True)
class SetTimer:
    """Wake the program with TimerFired(`name`) after `after_us` microseconds of the walk's clock."""

    name: str
    after_us: int


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Done:
    """The program exits; `result` is its record (PingResult, DigResult, ...), `status` its
    exit status."""

    result: object
    status: int = 0


Action = Union[Open, SetOptions, Bind, Listen, Connect, Send, SendTo, SendEcho, SendSegment, Shutdown, Close, SetTimer,
               CancelTimer, Done]


class Program:
    """A process in a pod, as a state machine: `start()` and `handle(event)` return the
    system calls it makes in order. Subclasses keep their own state; `done` turns true with
    the `Done` action, and later events are ignored (a process that exited reads nothing)."""

    name = "program"

    def __init__(self) -> None:
        self.done = False
        self.result: object = None
        self.status = 0

    def start(self, at: int = 0) -> list[Action]:
        return self.handle(Started(at))

    def handle(self, event: Event) -> list[Action]:
        if self.done:
            return []
        actions = self.on_event(event)
        for action in actions:
            if isinstance(action, Done):
                self.done, self.result, self.status = True, action.result, action.status
        return actions

    def on_event(self, event: Event) -> list[Action]:        # pragma: no cover - overridden
        raise NotImplementedError
