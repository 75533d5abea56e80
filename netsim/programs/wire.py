"""Programs joined by a wire with no network in between: the socket layer's contract, executable.

`DirectWire` performs the programs' actions and feeds them events the way the socket layer in
netsim/sockets.py will once it drives programs, except that a packet reaches its destination
at once (plus a fixed `hop_us` of the walk's clock) instead of walking devices: UDP datagrams
to a bound port or ICMP port unreachable (ECONNREFUSED on a connected socket); TCP through two
`TcpConnection`s, segment by segment, a SYN to a closed port answered with RST; ICMP echo
answered by the destination's kernel. Events are delivered in the order things happen; when
nothing is in flight the delayed ACKs go out, then the earliest timer fires.

It is what the programs' own tests run on, and the reference for the integration: replace
`deliver` with the walk (`local_out` of the packet, the receiving namespace's socket lookup)
and keep the rest.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..addresses import stable_hash
from .. import endpoints as ep
from ..packet import IPPROTO_TCP, TCP, IPv4
from .events import (
    Accepted, Action, Bind, CancelTimer, Close, Connect, Connected, ConnectionReset, DataReceived,
    DatagramReceived, Done, EchoReplyReceived, Event, Listen, Open, PeerClosed, Program, SegmentReceived, Send,
    SendEcho,
    SendSegment, SendTo, SetTimer, Shutdown, SocketError, SocketOptions, TimerFired,
)
from .tcp import TcpConfig, TcpConnection, TcpOutput

EPHEMERAL = (32768, 60999)            # net.ipv4.ip_local_port_range


@dataclass
class Socket:
    owner: Program
    name: str
    kind: str
    host: str
    options: SocketOptions = field(default_factory=SocketOptions)
    port: int = 0
    peer: tuple[str, int] | None = None
    listening: bool = False
    conn: TcpConnection | None = None


@dataclass(frozen=True)
class Delivery:
    """One packet on the wire, for the record: who sent what to whom."""

    at: int
    src: str
    dst: str
    proto: str
    sport: int
    dport: int
    payload: object


class DirectWire:
    """Hosts (addresses) running programs, joined directly. See the module docstring."""

    def __init__(self, hop_us: int = 50, mtu: int = 1450) -> None:
        self.hop_us, self.mtu = hop_us, mtu
        self.now = 0
        self.programs: list[tuple[str, Program]] = []
        self.sockets: dict[tuple[int, str], Socket] = {}
        self.queue: deque[Callable[[], None]] = deque()
        self.timers: list[tuple[int, int, int, str]] = []       # (due, order, program id, name)
        self.cancelled: set[tuple[int, str]] = set()
        self.order = 0
        self.log: list[Delivery] = []

    def add(self, host: str, program: Program) -> Program:
        self.programs.append((host, program))
        return program

    def host_of(self, program: Program) -> str:
        return next(h for h, p in self.programs if p is program)

    # ------------------------------------------------------------------ running

    def run(self, limit_us: int = 120_000_000) -> None:
        """Start every program, then deliver until nothing is pending (or the clock passes `limit_us`)."""
        for host, program in self.programs:
            self.perform(program, program.start(self.now))
        while True:
            while self.queue:
                self.queue.popleft()()
            if self.flush_delayed_acks():
                continue
            if not self.fire_timer(limit_us):
                return

    def flush_delayed_acks(self) -> bool:
        sent = False
        for sock in list(self.sockets.values()):
            if sock.conn is not None and sock.conn.ack_pending:
                self.tcp_out(sock, sock.conn.delack_timer(self.now // 1000))
                sent = True
        return sent

    def fire_timer(self, limit_us: int) -> bool:
        while self.timers:
            due, _order, pid, name = heapq.heappop(self.timers)
            if (pid, name) in self.cancelled:
                self.cancelled.discard((pid, name))
                continue
            if due > limit_us:
                return False
            self.now = max(self.now, due)
            program = next(p for _h, p in self.programs if id(p) == pid)
            self.event(program, TimerFired(name, self.now))
            return True
        return False

    def later(self, step: Callable[[], None]) -> None:
        self.queue.append(step)

    def event(self, program: Program, event: Event) -> None:
        if program.done:
            return
        self.perform(program, program.handle(event))

    # ------------------------------------------------------------------ actions

    def perform(self, program: Program, actions: list[Action]) -> None:
        host = self.host_of(program)
        for action in actions:
            key = (id(program), getattr(action, "sock", ""))
            if isinstance(action, Open):
                self.sockets[key] = Socket(program, action.sock, action.kind, host, action.options)
            elif isinstance(action, (Bind, Listen)):
                sock = self.sockets[key]
                sock.port = action.port
                sock.listening = isinstance(action, Listen)
            elif isinstance(action, Connect):
                self.connect(self.sockets[key], action.dst, action.dport)
            elif isinstance(action, Send):
                self.send(self.sockets[key], action.data)
            elif isinstance(action, SendTo):
                self.sendto(self.sockets[key], action.data, action.dst, action.dport)
            elif isinstance(action, SendEcho):
                self.echo(self.sockets[key], action)
            elif isinstance(action, SendSegment):
                self.raw_segment(self.sockets[key], action.dst, action.segment)
            elif isinstance(action, Shutdown):
                sock = self.sockets[key]
                if sock.conn is not None:
                    self.tcp_out(sock, sock.conn.shutdown(self.now // 1000))
            elif isinstance(action, Close):
                closed = self.sockets.pop(key, None)
                if closed is not None and closed.conn is not None and closed.conn.state in ("ESTABLISHED", "CLOSE_WAIT"):
                    self.tcp_out(closed, closed.conn.shutdown(self.now // 1000))
                    self.sockets[(id(program), "~" + action.sock)] = closed      # the kernel keeps it till closed
            elif isinstance(action, SetTimer):
                self.order += 1
                self.cancelled.discard((id(program), action.name))
                heapq.heappush(self.timers, (self.now + action.after_us, self.order, id(program), action.name))
            elif isinstance(action, CancelTimer):
                if any(pid == id(program) and name == action.name for _d, _o, pid, name in self.timers):
                    self.cancelled.add((id(program), action.name))
            elif isinstance(action, Done):
                pass

    def ephemeral(self, sock: Socket, dst: str, dport: int) -> int:
        low, high = EPHEMERAL
        used = {s.port for s in self.sockets.values() if s.host == sock.host}
        port = low + stable_hash("port", sock.host, dst, dport, sock.kind, len(self.log), sock.name) % (high - low + 1)
        while port in used:
            port = low if port >= high else port + 1
        return port

    def find(self, host: str, kind: str, port: int, listening: bool = True) -> Socket | None:
        for sock in self.sockets.values():
            if sock.host == host and sock.kind == kind and sock.port == port and (sock.listening or not listening):
                return sock
        return None

    # ------------------------------------------------------------------ UDP and ICMP

    def sendto(self, sock: Socket, data: bytes, dst: str, dport: int) -> None:
        if not sock.port:
            sock.port = self.ephemeral(sock, dst, dport)
        self.log.append(Delivery(self.now, sock.host, dst, "udp", sock.port, dport, data))
        src, sport = sock.host, sock.port

        def arrive() -> None:
            self.now += self.hop_us
            target = self.find(dst, "udp", dport, listening=False)
            if target is None:
                if sock.peer is not None and sock.owner is not None and self.sockets.get((id(sock.owner), sock.name)):
                    self.event(sock.owner, SocketError(sock.name, "ECONNREFUSED", "icmp", dst, 3, 3, at=self.now))
                return
            self.event(target.owner, DatagramReceived(target.name, data, src, sport, self.now))
        self.later(arrive)

    def echo(self, sock: Socket, action: SendEcho) -> None:
        self.log.append(Delivery(self.now, sock.host, action.dst, "icmp", action.ident, action.seq, action.data))

        def arrive() -> None:
            self.now += 2 * self.hop_us
            if not any(h == action.dst for h, _p in self.programs) and action.dst not in self.extra_hosts:
                return
            self.event(sock.owner, EchoReplyReceived(sock.name, action.dst, action.ident, action.seq,
                                                     8 + len(action.data), 64, action.data, self.now))
        self.later(arrive)

    extra_hosts: tuple[str, ...] = ()

    def raw_segment(self, sock: Socket, dst: str, seg: TCP) -> None:
        """A segment from a raw TCP socket: the destination's kernel answers a SYN with
        SYN-ACK (a listener) or RST,ACK; the answer reaches the raw socket."""
        self.log.append(Delivery(self.now, sock.host, dst, "tcp", seg.sport, seg.dport, seg))

        def arrive() -> None:
            self.now += 2 * self.hop_us
            if not any(h == dst for h, _p in self.programs):
                return
            if self.find(dst, "tcp", seg.dport) is not None and seg.flags == "S":
                answer = TCP(seg.dport, seg.sport, 1, (seg.seq + 1) & 0xFFFFFFFF, "SA", 64240)
            else:
                answer = rst_for(seg, sock.host, dst)
            self.log.append(Delivery(self.now, dst, sock.host, "tcp", answer.sport, answer.dport, answer))
            self.event(sock.owner, SegmentReceived(sock.name, dst, answer, 64, self.now))
        self.later(arrive)

    # ------------------------------------------------------------------ TCP

    def connect(self, sock: Socket, dst: str, dport: int) -> None:
        sock.peer = (dst, dport)
        if sock.kind == "udp":
            if not sock.port:
                sock.port = self.ephemeral(sock, dst, dport)
            self.later(lambda: self.event(sock.owner, Connected(sock.name, self.now)))
            return
        sock.port = sock.port or self.ephemeral(sock, dst, dport)
        sock.conn, out = TcpConnection.connect(sock.host, sock.port, dst, dport, TcpConfig.for_mtu(self.mtu),
                                               self.now // 1000)
        self.tcp_out(sock, out)

    def send(self, sock: Socket, data: bytes) -> None:
        if sock.kind == "udp":
            assert sock.peer is not None, f"send() on unconnected UDP socket {sock.name}"
            self.sendto(sock, data, *sock.peer)
        elif sock.conn is not None:
            self.tcp_out(sock, sock.conn.send(data, self.now // 1000))

    def tcp_out(self, sock: Socket, out: TcpOutput) -> None:
        assert sock.peer is not None
        dst, dport = sock.peer
        for seg in out.segments:
            self.log.append(Delivery(self.now, sock.host, dst, "tcp", seg.sport, seg.dport, seg))
            self.later(self.segment_arrives(sock.host, dst, seg))

    def segment_arrives(self, src: str, dst: str, seg: TCP) -> Callable[[], None]:
        def arrive() -> None:
            self.now += self.hop_us
            for sock in self.sockets.values():
                if (sock.conn is not None and sock.host == dst and sock.port == seg.dport
                        and sock.peer == (src, seg.sport)):
                    self.tcp_in(sock, seg)
                    return
            listener = self.find(dst, "tcp", seg.dport)
            if listener is not None and seg.flags == "S":
                self.accept(listener, src, seg)
            elif "R" not in seg.flags:
                rst = rst_for(seg, src, dst)
                self.log.append(Delivery(self.now, dst, src, "tcp", rst.sport, rst.dport, rst))
                self.later(self.segment_arrives(dst, src, rst))
        return arrive

    def accept(self, listener: Socket, src: str, syn: TCP) -> None:
        name = f"{listener.name}<{src}:{syn.sport}>"
        sock = Socket(listener.owner, name, "tcp", listener.host, listener.options, listener.port, (src, syn.sport))
        sock.conn, out = TcpConnection.accept(listener.host, listener.port, src, syn, TcpConfig.for_mtu(self.mtu),
                                              self.now // 1000)
        self.sockets[(id(listener.owner), name)] = sock
        sock.listening = False
        self.tcp_out(sock, out)

    def tcp_in(self, sock: Socket, seg: TCP) -> None:
        conn = sock.conn
        assert conn is not None
        was = conn.state
        out = conn.receive(seg, self.now // 1000)
        self.tcp_out(sock, out)
        owner, name = sock.owner, sock.name
        if not self.sockets.get((id(owner), name)) is sock:
            return                                          # closed by the program: the kernel finishes alone
        peer, peer_port = sock.peer or ("", 0)
        if out.connected and was == "SYN_RECV":
            self.event(owner, Accepted(name.split("<", 1)[0], name, peer, peer_port, self.now))
        elif out.connected:
            self.event(owner, Connected(name, self.now))
        if out.data:
            self.event(owner, DataReceived(name, out.data, self.now))
        if out.eof:
            self.event(owner, PeerClosed(name, self.now))
        if out.error == "ECONNREFUSED":
            self.event(owner, SocketError(name, "ECONNREFUSED", "tcp", peer, at=self.now))
        elif out.error:
            self.event(owner, ConnectionReset(name, self.now))


def rst_for(seg: TCP, src: str = "0.0.0.0", dst: str = "0.0.0.0") -> TCP:
    """tcp_v4_send_reset for a segment no socket takes (endpoints.tcp_rst)."""
    rst = ep.tcp_rst(IPv4(src, dst, IPPROTO_TCP, seg), 64).payload
    assert isinstance(rst, TCP)
    return rst
