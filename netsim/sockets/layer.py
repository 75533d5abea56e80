"""The sockets of one walk: who holds which port, the processes that own them, their timers.

A `Sock` is one socket as the kernel keeps it (struct sock): its kind, its options, the local
and remote address and port, a TCP socket's connection (programs.tcp.TcpConnection), and the
process that owns it. A `Process` is a running program (programs.events.Program) in one
namespace. `SocketLayer` is the per-walk state the transport layer reaches through
`Kernel.state`: the lookup tables the receive path uses (`__inet_lookup_established`,
`__inet_lookup_listener`, `__udp4_lib_lookup`, the raw sockets of `raw_v4_input`), the timers
(programs' own, TCP's retransmission timers), the namespaces whose server programs run, and
which socket sent which packet (a send error comes back to it).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Callable

from ..programs.events import Action, Event, Program, SocketOptions

if TYPE_CHECKING:  # pragma: no cover
    from ..netns import Namespace
    from ..packet import IPv4
    from ..programs.tcp import TcpConnection

KINDS = ("udp", "tcp", "icmp", "raw-tcp")


class Process:
    """A program running in a namespace: its sockets by name, the events waiting for it while
    it is busy performing its own actions, and whether netsim follows it only to its answer
    (`oneshot`: what `Cluster.send()` runs; see sockets/__init__.py)."""

    __slots__ = ("program", "ns", "pid", "socks", "inbox", "running", "oneshot", "layer", "blocked", "stash")

    def __init__(self, program: Program, ns: Namespace, pid: int, layer: SocketLayer, oneshot: bool = False) -> None:
        self.program, self.ns, self.pid, self.oneshot, self.layer = program, ns, pid, oneshot, layer
        self.socks: dict[str, Sock] = {}
        self.inbox: deque[Event] = deque()
        self.running = False
        self.blocked: Sock | None = None         # the stream its write waits on
        self.stash: list[Action] = []            # its actions after that write

    def __repr__(self) -> str:
        return f"<Process {self.program.name} in {self.ns.name}>"


class Sock:
    """One socket. `laddr`/`lport` once bound or connected, `raddr`/`rport` once connected;
    `listener` names the listening socket an accepted connection came from; `muted` stops a
    oneshot exchange's socket from sending once its program has its answer."""

    __slots__ = ("proc", "ns", "layer", "name", "kind", "options", "laddr", "lport", "raddr", "rport", "listening",
                 "conn", "listener", "closed", "muted", "idents", "soft_err", "sent", "rto_order", "answered")

    def __init__(self, proc: Process, name: str, kind: str, options: SocketOptions | None = None) -> None:
        self.proc, self.name, self.kind = proc, name, kind
        self.ns: Namespace = proc.ns
        self.layer: SocketLayer = proc.layer
        self.options = options if options is not None else SocketOptions()
        self.laddr: str | None = None
        self.lport = 0
        self.raddr: str | None = None
        self.rport = 0
        self.listening = False
        self.conn: TcpConnection | None = None
        self.listener = ""               # an accepted connection: its listening socket's name
        self.closed = False              # the program closed it (the kernel may still finish a TCP close)
        self.muted = False
        self.idents: set[int] = set()    # a raw ICMP socket: the echo identifiers it sent
        self.soft_err = ""               # sk_err_soft: reported when a TCP connection times out
        self.sent = 0                    # packets sent (the first is the connect)
        self.rto_order = 0               # the live retransmission timer's order (0: none)
        self.answered = 0                # packets the program sent on it (not the kernel's own ACKs)

    @property
    def recverr(self) -> bool:
        """IP_RECVERR: every ICMP error is queued for the program, not only the hard ones."""
        return self.options.recverr

    @property
    def server(self) -> bool:
        """An accepted connection or a socket that listens (its packets answer)."""
        return bool(self.listener) or self.listening

    def __repr__(self) -> str:
        return f"<Sock {self.kind} {self.name} {self.laddr}:{self.lport} -> {self.raddr}:{self.rport}>"


class SocketLayer:
    """The socket table of one walk (see the module docstring)."""

    def __init__(self) -> None:
        self.procs: list[Process] = []
        self.tcp: dict[tuple[str, str, int, str, int], Sock] = {}     # (netns, laddr, lport, raddr, rport)
        self.tcp_listen: dict[tuple[str, int], Sock] = {}              # (netns, port)
        self.udp: dict[tuple[str, int], list[Sock]] = {}               # (netns, port)
        self.raw: dict[str, list[Sock]] = {}                           # netns -> raw sockets
        self.started: set[tuple[str, object]] = set()                  # (netns, server) started
        self.sent_by: dict[int, tuple[Sock, IPv4]] = {}                # packet id -> the socket and its packet
        self.sending: Sock | None = None                               # the socket whose send is on the stack
        # timers: a heap of (due, order); `timer_ref[order]` says what fires, `timer_key` which
        # order is live for a (kind, owner, name), so a re-armed or cancelled timer's old entry
        # is skipped when it comes up
        self.timers: list[tuple[int, int]] = []
        self.timer_ref: dict[int, tuple[str, object, str]] = {}
        self.timer_key: dict[tuple[str, int, str], int] = {}
        self.order = 0
        # an exchange walk (Cluster.send) runs no socket timers: it follows one request to its
        # answer, not what happens after (a retransmission, a delayed ACK, a program's timer)
        self.no_timers = False
        # programs woken by what arrived, waiting to run when nothing is in flight:
        # (process, events, the socket it arrived on, what ends the delivering packet)
        self.ready: deque[tuple[Process, list[Event], Sock | None, Callable[[bool], None] | None]] = deque()
        self.performing = False          # a program's system call is running (its sends answer)

    # processes -------------------------------------------------------------------------
    def new_process(self, program: Program, ns: Namespace, oneshot: bool = False) -> Process:
        proc = Process(program, ns, len(self.procs) + 1, self, oneshot)
        self.procs.append(proc)
        return proc

    # the lookup tables -----------------------------------------------------------------
    def bind_udp(self, sock: Sock) -> None:
        socks = self.udp.setdefault((sock.ns.name, sock.lport), [])
        if sock not in socks:
            socks.append(sock)

    def udp_lookup(self, ns: str, dport: int, src: str, sport: int, dst: str) -> Sock | None:
        """__udp4_lib_lookup: the connected socket of this 4-tuple first, then one bound to
        the port (any address, or `dst`)."""
        socks = self.udp.get((ns, dport))
        if not socks:
            return None
        best = None
        for sock in socks:
            if sock.closed:
                continue
            if sock.raddr is not None:
                if sock.raddr == src and sock.rport == sport and sock.laddr in (None, dst):
                    return sock
                continue
            if best is None and sock.laddr in (None, "0.0.0.0", dst):
                best = sock
        return best

    def tcp_lookup(self, ns: str, laddr: str, lport: int, raddr: str, rport: int) -> Sock | None:
        return self.tcp.get((ns, laddr, lport, raddr, rport))

    def add_tcp(self, sock: Sock) -> None:
        assert sock.laddr is not None and sock.raddr is not None
        self.tcp[(sock.ns.name, sock.laddr, sock.lport, sock.raddr, sock.rport)] = sock

    def drop_tcp(self, sock: Sock) -> None:
        if sock.laddr is not None and sock.raddr is not None:
            key = (sock.ns.name, sock.laddr, sock.lport, sock.raddr, sock.rport)
            if self.tcp.get(key) is sock:
                del self.tcp[key]
        self.cancel("rto", id(sock), "")

    def add_raw(self, sock: Sock) -> None:
        self.raw.setdefault(sock.ns.name, []).append(sock)

    def unbind(self, sock: Sock) -> None:
        """Forget a socket that is closed for good."""
        if sock.kind == "udp":
            socks = self.udp.get((sock.ns.name, sock.lport))
            if socks and sock in socks:
                socks.remove(sock)
        elif sock.kind in ("icmp", "raw-tcp"):
            raws = self.raw.get(sock.ns.name)
            if raws and sock in raws:
                raws.remove(sock)
        elif sock.listening:
            if self.tcp_listen.get((sock.ns.name, sock.lport)) is sock:
                del self.tcp_listen[(sock.ns.name, sock.lport)]

    def ports_in_use(self, ns: str) -> set[int]:
        used = {port for (name, port) in self.udp if name == ns}
        used |= {key[2] for key in self.tcp if key[0] == ns}
        used |= {port for (name, port) in self.tcp_listen if name == ns}
        return used

    # timers ----------------------------------------------------------------------------
    def arm(self, kind: str, owner: object, name: str, due: int) -> int:
        """Set (or re-set) a timer: `kind` "program" (owner a Process) or "rto" (a Sock)."""
        self.order += 1
        self.timer_key[(kind, id(owner), name)] = self.order
        self.timer_ref[self.order] = (kind, owner, name)
        heapq.heappush(self.timers, (due, self.order))
        return self.order

    def cancel(self, kind: str, owner_id: int, name: str) -> None:
        order = self.timer_key.pop((kind, owner_id, name), None)
        if order is not None:
            self.timer_ref.pop(order, None)

    def next_timer(self) -> tuple[int, str, object, str] | None:
        """The earliest live timer, taken off the heap: (due, kind, owner, name)."""
        while self.timers:
            due, order = heapq.heappop(self.timers)
            ref = self.timer_ref.pop(order, None)
            if ref is None:
                continue
            kind, owner, name = ref
            if self.timer_key.get((kind, id(owner), name)) != order:
                continue
            del self.timer_key[(kind, id(owner), name)]
            return due, kind, owner, name
        return None
