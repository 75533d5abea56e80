"""TCP as a stream (netsim.programs.tcp): segments, ACKs and teardown by the kernel's rules.

The wire below delivers segments in the order they were sent, each side's answers queued
behind what is already in flight, and fires the delayed-ACK timers only when nothing else
is pending: the order a burst from one system call takes on a veth (the kernel's capture of
the same transfers, /tmp-free: see the module docstring of netsim.programs.tcp).
"""

from __future__ import annotations

from collections import deque

from netsim import endpoints as ep
from netsim.packet import TCP
from netsim.programs.tcp import TcpConfig, TcpConnection, TcpOutput, scaled_window

CLIENT = ("10.244.0.2", 40000)
SERVER = ("10.244.1.2", 8080)
MSS = 1450 - 40 - 12          # the pod MTU less IP, TCP and the timestamp option


class Wire:
    """A client that connects, writes `request` bytes and closes (shutdown), and a server
    that reads to EOF, answers `response` bytes and closes: nc's and a one-shot server's
    pattern. `log` is every segment in wire order as (side, segment)."""

    def __init__(self, request: int, response: int = 0, client_mtu: int = 1450, server_mtu: int = 1450,
                 server_close_at_eof: bool = True) -> None:
        self.request, self.response = request, response
        self.server_config = TcpConfig.for_mtu(server_mtu)
        self.client, out = TcpConnection.connect(*CLIENT, *SERVER, TcpConfig.for_mtu(client_mtu))
        self.server: TcpConnection | None = None
        self.queue: deque[tuple[str, TCP]] = deque(("c", s) for s in out.segments)
        self.log: list[tuple[str, TCP]] = []
        self.server_got = bytearray()
        self.client_got = bytearray()
        self.events: list[tuple[str, str]] = []
        self.server_close_at_eof = server_close_at_eof

    def to_server(self, seg: TCP) -> TcpOutput:
        if self.server is None:
            self.server, out = TcpConnection.accept(*SERVER, CLIENT[0], seg, self.server_config)
            return out
        out = self.server.receive(seg)
        self.server_got += out.data
        if out.error:
            self.events.append(("s", out.error))
        if out.eof and self.server_close_at_eof:
            if self.response:
                out = out + self.server.send(b"r" * self.response)
            out = out + self.server.shutdown()
        return out

    def to_client(self, seg: TCP) -> TcpOutput:
        out = self.client.receive(seg)
        self.client_got += out.data
        if out.error:
            self.events.append(("c", out.error))
        if out.connected:
            out = out + self.client.send(b"q" * self.request) + self.client.shutdown()
        return out

    def run(self) -> Wire:
        while True:
            while self.queue:
                side, seg = self.queue.popleft()
                self.log.append((side, seg))
                if side == "c":
                    self.queue.extend(("s", s) for s in self.to_server(seg).segments)
                else:
                    self.queue.extend(("c", s) for s in self.to_client(seg).segments)
            late = [("c", s) for s in self.client.delack_timer().segments]
            if self.server is not None:
                late += [("s", s) for s in self.server.delack_timer().segments]
            if not late:
                return self
            self.queue.extend(late)

    def rel(self, side: str, seg: TCP) -> tuple[str, int, int | None, int, int]:
        """(flags, seq, ack, window, length) with seq and ack relative to the two ISNs."""
        me, peer = (self.client, self.server) if side == "c" else (self.server, self.client)
        assert me is not None and peer is not None
        ack = (seg.ack - peer.iss) % (1 << 32) if "A" in seg.flags else None
        return (seg.flags, (seg.seq - me.iss) % (1 << 32), ack, seg.window, len(seg.payload))

    def sent(self, side: str, data_only: bool = False) -> list[tuple[str, int, int | None, int, int]]:
        return [self.rel(s, seg) for s, seg in self.log if s == side and (seg.payload or not data_only)]


def test_syn_and_synack_are_the_bytes_endpoints_builds():
    conn, out = TcpConnection.connect(*CLIENT, *SERVER, TcpConfig.for_mtu(1450))
    syn_ip = ep.tcp_syn(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1], 1410, 64, 0)
    assert out.segments == (syn_ip.payload,)
    server, answer = TcpConnection.accept(*SERVER, CLIENT[0], out.segments[0], TcpConfig.for_mtu(1450))
    assert answer.segments == (ep.tcp_synack(syn_ip, 1410, 64).payload,)
    # the SYN's window is 46 segments of 1410; the SYN-ACK's 46 of 1398 (timestamps taken off)
    assert (out.segments[0].window, answer.segments[0].window) == (46 * 1410, 46 * 1398) == (64860, 64308)


def test_window_field_after_the_handshake_is_the_initial_window_scaled_by_1024():
    # tcp_select_window rounds the free space up to 1 << 10: 64860 -> 64, 64308 -> 63 (the
    # kernel's first ACK after a SYN-ACK carried 64 in the lab run of this transfer)
    assert (scaled_window(64860, 10), scaled_window(64308, 10), scaled_window(64240, 10)) == (64, 63, 63)


def test_6000_bytes_are_four_full_segments_and_a_pushed_rest():
    wire = Wire(6000).run()
    assert wire.sent("c")[:3] == [("S", 0, None, 64860, 0), ("A", 1, 1, 64, 0), ("A", 1, 1, 64, MSS)]
    assert wire.sent("c", data_only=True) == [
        ("A", 1, 1, 64, 1398), ("A", 1399, 1, 64, 1398), ("A", 2797, 1, 64, 1398), ("A", 4195, 1, 64, 1398),
        ("PA", 5593, 1, 64, 408)]
    assert bytes(wire.server_got) == b"q" * 6000


def test_receiver_quick_acks_every_one_of_the_first_segments():
    wire = Wire(6000).run()
    acks = [(flags, ack) for flags, _seq, ack, _win, length in wire.sent("s") if not length]
    # quick-ACK mode at the first data: each segment acknowledged at once; the FIN's ACK waits
    # (tcp_fin: CLOSE_WAIT, pingpong mode) and rides on the server's own FIN
    assert acks == [("SA", 1), ("A", 1399), ("A", 2797), ("A", 4195), ("A", 5593), ("A", 6001), ("FA", 6002)]


def test_6000_byte_teardown_after_the_data():
    wire = Wire(6000).run()
    # the client's FIN follows its data in the same burst; the server holds its ACK (pingpong),
    # reads EOF and closes: its FIN carries the ACK; the client acknowledges that FIN at once
    assert wire.sent("c")[-2:] == [("FA", 6001, 1, 64, 0), ("A", 6002, 2, 64, 0)]
    assert [wire.rel(s, seg)[:3] for s, seg in wire.log[-3:]] == [
        ("A", 1, 6001), ("FA", 1, 6002), ("A", 6002, 2)]
    assert (wire.client.state, wire.server.state) == ("TIME_WAIT", "CLOSED")


def test_100000_bytes_are_71_full_segments_and_742_with_fin():
    wire = Wire(100000).run()
    data = wire.sent("c", data_only=True)
    full, last = divmod(100000, MSS)
    assert (full, last) == (71, 742)
    # PSH: forced_push once more than half the peer's largest window (64308 / 2) is unpushed,
    # i.e. on the 24th and 48th segments, and on the write's last, which also carries the FIN
    # queued by close() while it was still unsent (tcp_send_fin)
    expected = [("PA" if i in (23, 47) else "A", 1 + MSS * i, 1, 64, MSS) for i in range(full)]
    expected.append(("FPA", 1 + MSS * full, 1, 64, last))
    assert data == expected
    assert bytes(wire.server_got) == b"q" * 100000


def test_100000_byte_receiver_acks_16_segments_then_every_second():
    wire = Wire(100000).run()
    acks = [ack for flags, _seq, ack, _win, length in wire.sent("s") if flags == "A" and not length]
    quick = [1 + MSS * k for k in range(1, 17)]
    paired = [1 + MSS * k for k in range(18, 71, 2)]
    # the odd last segment carries the FIN: more than a full segment is then unacknowledged, so
    # the ACK goes at once despite the FIN's pingpong mode (as the kernel does: test_lab_sockets)
    assert acks == quick + paired + [100002]
    assert [(f, ack) for f, _seq, ack, _w, _l in wire.sent("s")][-1] == ("FA", 100002)


def test_100000_byte_sender_grows_its_window_by_slow_start():
    wire = Wire(100000).run()
    # flights between the server's ACK bursts: 10 segments (TCP_INIT_CWND), then 20, ...
    flights, current = [], 0
    for side, seg in wire.log[3:]:
        if side == "c" and seg.payload:
            current += 1
        elif current:
            flights.append(current)
            current = 0
    assert flights[:2] == [10, 20]
    assert sum(flights) == 72


def test_peer_mss_option_smaller_than_own_path():
    # the server's route has MTU 1400: its SYN-ACK offers MSS 1360, so the client sends 1348
    wire = Wire(3000, client_mtu=1450, server_mtu=1400).run()
    assert [length for _f, _s, _a, _w, length in wire.sent("c", data_only=True)] == [1348, 1348, 304]


def test_request_and_response_of_a_chosen_size():
    wire = Wire(100, response=6000).run()
    # the 100 bytes go at once (nothing in flight); close() then sends FIN on its own
    assert wire.sent("c")[2:4] == [("PA", 1, 1, 64, 100), ("FA", 101, 1, 64, 0)]
    assert [(f, s, a, length) for f, s, a, _w, length in wire.sent("s", data_only=True)] == [
        ("A", 1, 102, 1398), ("A", 1399, 102, 1398), ("A", 2797, 102, 1398), ("A", 4195, 102, 1398),
        ("PA", 5593, 102, 408)]
    # all five fit the initial window, so the FIN finds no unsent segment to ride on
    assert wire.sent("s")[-1][:3] == ("FA", 6001, 102)
    assert bytes(wire.client_got) == b"r" * 6000


def test_path_mtu_drop_resends_unacknowledged_data_in_smaller_segments():
    conn, _ = TcpConnection.connect(*CLIENT, *SERVER, TcpConfig.for_mtu(1450))
    server, synack = TcpConnection.accept(*SERVER, CLIENT[0], conn.syn(), TcpConfig.for_mtu(1450))
    conn.receive(synack.segments[0])
    first = conn.send(b"x" * 3000)
    assert [len(s.payload) for s in first.segments] == [1398, 1398, 204]
    again = conn.path_mtu(1400)                     # frag needed, next-hop MTU 1400
    # the two 1398-byte segments were too long: their 2796 bytes go again cut at 1348 (the
    # first cut by tcp_fragment, the rest collapsed into one skb that GSO cuts), PSH on the
    # last piece; the 204-byte segment fitted and is not sent again (as the kernel does:
    # test_lab_sockets.test_a_connection_lowers_its_mss_on_frag_needed)
    assert [((s.seq - conn.iss) % (1 << 32), len(s.payload), s.flags) for s in again.segments] == [
        (1, 1348, "A"), (1349, 1348, "A"), (2697, 100, "PA")]


def test_reset_while_connecting_is_connection_refused():
    conn, out = TcpConnection.connect(*CLIENT, *SERVER)
    rst = ep.tcp_rst(ep.tcp_syn(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1], 1410, 64, 0), 64).payload
    assert isinstance(rst, TCP) and rst.flags == "RA"
    assert conn.receive(rst) == TcpOutput(error="ECONNREFUSED")
    assert conn.state == "CLOSED"


def test_reset_on_an_established_connection_is_connection_reset():
    conn, out = TcpConnection.connect(*CLIENT, *SERVER)
    server, synack = TcpConnection.accept(*SERVER, CLIENT[0], out.segments[0])
    conn.receive(synack.segments[0])
    rst = server.abort()
    assert [(s.flags, (s.seq - server.iss) % (1 << 32)) for s in rst.segments] == [("RA", 1)]
    assert conn.receive(rst.segments[0]).error == "ECONNRESET"


def test_nagle_holds_a_second_short_segment_until_the_first_is_acked():
    conn, out = TcpConnection.connect(*CLIENT, *SERVER)
    server, synack = TcpConnection.accept(*SERVER, CLIENT[0], out.segments[0])
    conn.receive(synack.segments[0])
    first = conn.send(b"a" * 10)
    held = conn.send(b"b" * 10)
    assert [len(s.payload) for s in first.segments] == [10]
    assert held.segments == ()                        # Minshall: a short segment is unacknowledged
    ack = server.receive(first.segments[0]).segments  # quick-ACK
    released = conn.receive(ack[0])
    assert [(s.payload, s.flags) for s in released.segments] == [(b"b" * 10, "PA")]


def test_unanswered_syn_gives_up_after_six_retries():
    conn, out = TcpConnection.connect(*CLIENT, *SERVER)
    resent = [conn.retransmit_timeout() for _ in range(7)]
    assert [len(r.segments) for r in resent] == [1, 1, 1, 1, 1, 1, 0]
    assert all(r.segments[0] == out.segments[0] for r in resent[:6])
    assert resent[-1].error == "ETIMEDOUT"
    assert conn.rto_us == 64_000_000                 # 1 s doubled six times
