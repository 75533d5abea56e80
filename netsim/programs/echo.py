"""A UDP server answering every datagram: the pods' server on port 9090, and an echo server.

Each datagram is answered from the socket it arrived on (bound to the port, not connected) to
the address and port it came from: with a fixed `reply` (netsim's pods answer b"RSP", as the
real-kernel lab's server does, netsim/lab/traffic.py), or with the datagram itself when `reply`
is None (an echo server, RFC 862's service over UDP).
"""

from __future__ import annotations

from .events import Action, DatagramReceived, Event, Listen, Open, Program, SendTo, Started

DEFAULT_REPLY = b"RSP"


class UdpAnswerServer(Program):
    """Socket "udp" on `port`; `received` counts the datagrams it answered."""

    name = "udp-server"

    def __init__(self, port: int = 9090, reply: bytes | None = DEFAULT_REPLY) -> None:
        super().__init__()
        self.port, self.reply = port, reply
        self.received = 0

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("udp", "udp"), Listen("udp", self.port)]
        if isinstance(event, DatagramReceived) and event.sock == "udp":
            self.received += 1
            answer = event.data if self.reply is None else self.reply
            return [SendTo("udp", answer, event.src, event.sport)]
        return []
