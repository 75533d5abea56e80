"""The exchange `Cluster.send()` runs: one request and its answer, as the book's traces show it.

One socket, one request: an ICMP echo request (ping's identifier, sequence 1, iputils' 56
bytes of data), one UDP datagram on a connected socket (the payload, b"REQ" by default), or
a TCP connect(), followed by the payload once connected when there is one. The first answer
ends it: the echo reply, the UDP reply, the SYN-ACK (or the first bytes of the response when
data was sent), an RST (connection refused) or an ICMP error about the request. Its sockets
set IP_RECVERR, so every ICMP error is reported, as the real-kernel lab's client does
(netsim/lab/traffic.py). Its `outcome` is the `netsim.decision.Outcome` the trace carries; a
local refusal of the send is kept in `local_errno` and the exchange waits for nothing more.

The socket layer runs it as a oneshot process (netsim/sockets/__init__.py): no retransmission,
and nothing more from its socket once it has its answer.
"""

from __future__ import annotations

from ..decision import Outcome, OutcomeKind, OutcomeReason
from ..endpoints import PING_DATA, PING_ID
from .events import (
    Action, Bind, Connect, Connected, ConnectionReset, DataReceived, DatagramReceived, Done, EchoReplyReceived,
    Event, Open, PeerClosed, Program, Send, SendEcho, SocketError, SocketOptions, Started,
)

REQUEST = b"REQ"
RECVERR = SocketOptions(recverr=True)


class Exchange(Program):
    """Socket "s"; see the module docstring."""

    name = "exchange"

    def __init__(self, proto: str, dst: str, dport: int | None = None, sport: int | None = None,
                 payload: bytes | None = None, src: str | None = None) -> None:
        super().__init__()
        self.proto, self.dst, self.dport, self.sport = proto, dst, dport, sport
        self.payload, self.src = payload, src
        self.outcome: Outcome | None = None
        self.local_errno = ""
        self.connected = False

    @property
    def peer(self) -> str:
        return f"{self.dst}:{self.dport}"

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return self.begin()
        if isinstance(event, Connected):
            if self.proto != "tcp":
                return []
            self.connected = True
            if self.payload is not None:
                return [Send("s", self.payload)]
            return self.end(Outcome(OutcomeKind.CONNECTED, OutcomeReason.CONNECTED, peer=self.peer))
        if isinstance(event, EchoReplyReceived) and event.ident == PING_ID:
            return self.end(Outcome(OutcomeKind.ANSWERED, OutcomeReason.ECHO_REPLY, peer=event.src))
        if isinstance(event, DatagramReceived):
            peer = f"{event.src}:{event.sport}"
            return self.end(Outcome(OutcomeKind.ANSWERED, OutcomeReason.UDP_REPLY, peer=peer))
        if isinstance(event, DataReceived):
            return self.end(Outcome(OutcomeKind.RECEIVED, OutcomeReason.RECEIVED, peer=self.peer,
                                     size=len(event.data)))
        if isinstance(event, SocketError):
            return self.error(event)
        if isinstance(event, (PeerClosed, ConnectionReset)):
            return self.end(None)
        return []

    def begin(self) -> list[Action]:
        if self.proto == "icmp":
            return [Open("s", "icmp", RECVERR), SendEcho("s", self.dst, PING_ID, 1, PING_DATA)]
        assert self.dport is not None
        out: list[Action] = [Open("s", self.proto, RECVERR)]
        if self.sport is not None or self.src is not None:
            out.append(Bind("s", self.sport or 0, self.src or "0.0.0.0"))
        out.append(Connect("s", self.dst, self.dport))
        if self.proto == "udp":
            out.append(Send("s", self.payload if self.payload is not None else REQUEST))
        return out

    def error(self, event: SocketError) -> list[Action]:
        if event.origin == "local":
            self.local_errno = self.local_errno or event.errno
            return self.end(None)
        if event.origin == "tcp" and event.errno == "ECONNREFUSED":
            return self.end(Outcome(OutcomeKind.REFUSED, OutcomeReason.RST, "ECONNREFUSED", self.peer))
        if event.origin == "tcp":
            return self.end(Outcome(OutcomeKind.TIMED_OUT, OutcomeReason.NO_ANSWER, event.errno))
        kind = OutcomeKind.REFUSED if event.errno == "ECONNREFUSED" else OutcomeKind.ICMP_ERROR
        return self.end(Outcome(kind, OutcomeReason.ICMP_ERROR, event.errno, event.offender,
                                 (event.icmp_type, event.icmp_code)))

    def end(self, outcome: Outcome | None) -> list[Action]:
        self.outcome = outcome
        return [Done(outcome)]
