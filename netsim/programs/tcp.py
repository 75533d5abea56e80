"""TCP as a byte stream, sans-IO: one connection's state machine, as net/ipv4/tcp*.c runs it.

`TcpConnection` is the kernel side of one TCP socket. It is fed segments (`receive`) and the
application's calls (`send`, `shutdown`, `abort`) and timer expiries, and returns `TcpOutput`:
the segments to transmit (netsim.packet.TCP records; the socket layer wraps them in IPv4 with
DF set, as TCP always sends) and what the application sees (connected, bytes, EOF, an errno).

What it keeps from Linux (6.18, the lab's kernel):
- SYN and SYN-ACK exactly as endpoints.py builds them (the same ISN and timestamp hashes of
  the 4-tuple, options MSS, SACK permitted, timestamps, NOP, window scale 10; the SYN's window
  `tcp_select_initial_window` rounds to the MSS, the SYN-ACK's to the MSS less 12 bytes of
  timestamps, `tcp_openreq_init_rwin`), so the handshake's bytes stay what netsim puts out today.
- Segmentation (`tcp_sendmsg_locked`): a write is cut into segments of the effective MSS,
  `tcp_sync_mss`: min(path MTU - 40, the peer's MSS option) - 12 (the timestamp option),
  at most half the largest window the peer offered (`tcp_bound_to_half_wnd`); the last,
  shorter segment of a write may be extended by the next write while it is unsent.
- PSH (`tcp_push`, `forced_push`, `tcp_mark_push`): on the last segment of each write, and on
  the segment that takes the unpushed data past half the peer's largest window.
- Sending (`tcp_write_xmit`): up to the congestion window (TCP_INIT_CWND = 10 segments, slow
  start adds one per segment acknowledged, only while the flow is cwnd-limited:
  `tcp_is_cwnd_limited`, cwnd < 2 * the most segments in flight) and the peer's window
  (`tcp_snd_wnd_test`); Nagle as Linux has it (Minshall's variant, `tcp_nagle_check`: a short
  segment waits only while an earlier short segment is unacknowledged).
- Receiving: in-order data is delivered at once (the application reads immediately). ACKs
  (`__tcp_ack_snd_check`): every segment is acknowledged at once in quick-ACK mode, entered
  with the first data (`tcp_incr_quickack`: min(rcv_wnd / (2 * rcv_mss), TCP_MAX_QUICKACKS =
  16) ACKs); then one ACK per two full-sized segments ("more than one full frame received"),
  and a remaining odd segment is acknowledged by the delayed-ACK timer (`delack_timer()`, which
  the driver fires once nothing else is pending). A FIN that closes the peer's side while ours
  is open (ESTABLISHED -> CLOSE_WAIT) enters pingpong mode (`tcp_fin`,
  `inet_csk_enter_pingpong_mode`): its ACK waits, unless more than one full segment is
  unacknowledged with it (a program closing meanwhile sends it with its own FIN, as curl does;
  measured in tests/test_lab_sockets.py); a FIN after our own (FIN_WAIT1, FIN_WAIT2) is
  acknowledged at once. Any segment
  sent carries the ACK and counts as one (`tcp_event_ack_sent`).
- The window field: the receive window shifted by the scale (`tcp_select_window`), the
  initial window rounded up to 1 << 10 (64 for an MSS of 1410, 63 for 1398).
- Teardown: `shutdown()` queues FIN after the data (on the last data segment if it is still
  unsent, `tcp_send_fin`); the states FIN_WAIT1/2, CLOSING, TIME_WAIT, CLOSE_WAIT, LAST_ACK.
  An RST in SYN_SENT is ECONNREFUSED, later ECONNRESET; `abort()` sends RST,ACK.
- `path_mtu(mtu)`: an ICMP fragmentation-needed for this flow (`tcp_v4_mtu_reduced`): the MSS
  drops; the sent segments now too long are lost and their bytes sent again cut at the new
  MSS (`SendQueue.retransmit_lost`).

Simplified, and so what the lab may compare exactly (see tests/test_programs_tcp.py):
- The receive window does not grow: Linux raises rcv_ssthresh per segment by an amount that
  depends on the skb's truesize (`tcp_grow_window`) and keeps quick-ACK mode on while it grows,
  and lowers the window while data waits unread. So: windows are exact in the SYN, the SYN-ACK
  and every segment a side sends before it has received data; later windows, the number and
  timing of pure ACKs, and PSH on segments other than a write's last are not compared.
- Linux also pushes (PSH) when a write waits for send-buffer memory (`sk_stream_wait_memory`),
  which depends on send-buffer autotuning; not modelled.
- Exact and compared: the handshake, every data segment's length, flags (ACK; FIN; PSH on a
  write's last segment), sequence and acknowledgement numbers relative to the ISNs, the
  order of data, the final acknowledgement numbers and the teardown's flags.
- No loss recovery beyond `retransmit_timeout()` (RTO: resend the oldest unacknowledged
  segment, give up with ETIMEDOUT after tcp_syn_retries = 6 SYNs or tcp_retries2 = 15).
- Timestamps: tsval is the connection's hashed offset plus the caller's millisecond clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice

from ..addresses import FLOW_MEMO, stable_hash
from ..endpoints import WSCALE, initial_window, tcp_options, ts_option
from ..packet import TCP, TCPOPT_MSS, TCPOPT_TIMESTAMP, TCPOPT_WINDOW

SEQ_MOD = 1 << 32
TCPOLEN_TSTAMP_ALIGNED = 12          # NOP, NOP, kind 8, length 10, two 32-bit clocks
TCP_INIT_CWND = 10                   # include/net/tcp.h
TCP_MAX_QUICKACKS = 16               # include/net/tcp.h
TCP_MSS_DEFAULT = 536                # the rcv_mss guess before data arrives (tcp_initialize_rcv_mss)
TCP_MIN_SND_MSS = 48                 # net.ipv4.tcp_min_snd_mss
TCP_SYN_RETRIES = 6                  # net.ipv4.tcp_syn_retries
TCP_RETRIES2 = 15                    # net.ipv4.tcp_retries2
TCP_TIMEOUT_INIT_US = 1_000_000      # the first RTO (RFC 6298), doubled on each retry

STATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSING",
          "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK")


def isn(src: str, dst: str, sport: int, dport: int) -> int:
    """The initial sequence number netsim gives a connection (Linux: secure_tcp_seq, a keyed
    hash of the 4-tuple plus a clock; netsim: a stable hash), as endpoints.tcp_syn uses it."""
    return stable_hash("isn", src, dst, sport, dport)


def ts_offset(src: str, dst: str, sport: int, dport: int) -> int:
    """The connection's timestamp offset (Linux: secure_tcp_ts_off), as endpoints.py uses it."""
    return stable_hash("ts", src, dst, sport, dport)


def option_values(segment: TCP, kind: int) -> tuple[int, ...]:
    """The values of the option `kind` (MSS, window scale or timestamps) in `segment`."""
    found: dict[int, tuple[int, ...]] | None = segment.__dict__.get("_read")
    if found is None:
        found = segment.__dict__["_read"] = read_options(segment.options)
    return found.get(kind, ())


@lru_cache(maxsize=FLOW_MEMO)
def read_options(raw: bytes) -> dict[int, tuple[int, ...]]:
    """tcp_parse_options for what a connection reads (MSS, window scale, timestamps), in one
    pass over the bytes: kind -> values (shared between equal option bytes: read, never
    changed)."""
    out: dict[int, tuple[int, ...]] = {}
    i, end = 0, len(raw)
    while i < end:
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end or raw[i + 1] < 2:
            break
        length = raw[i + 1]
        if kind == TCPOPT_MSS and length == 4:
            out[kind] = (int.from_bytes(raw[i + 2:i + 4], "big"),)
        elif kind == TCPOPT_WINDOW and length == 3:
            out[kind] = (raw[i + 2],)
        elif kind == TCPOPT_TIMESTAMP and length == 10:
            out[kind] = (int.from_bytes(raw[i + 2:i + 6], "big"), int.from_bytes(raw[i + 6:i + 10], "big"))
        i += length
    return out


def scaled_window(rcv_wnd: int, wscale: int) -> int:
    """tcp_select_window with window scaling: the free space rounded up to 1 << wscale, shifted."""
    unit = 1 << wscale
    return min(((rcv_wnd + unit - 1) // unit * unit) >> wscale, 0xFFFF)


@dataclass(frozen=True)
class TcpConfig:
    """What the route and the sysctls give a socket: `advmss` is the MSS it offers
    (dst_metric_advmss: the route's MTU - 40), `path_mtu` the MTU its segments must fit."""

    advmss: int = 1410
    path_mtu: int = 1450
    wscale: int = WSCALE
    init_cwnd: int = TCP_INIT_CWND

    @classmethod
    def for_mtu(cls, mtu: int) -> TcpConfig:
        return cls(advmss=min(mtu, 65535) - 40, path_mtu=mtu)


@dataclass(frozen=True)
class TcpOutput:
    """One call's result: segments to transmit, in order, and what the application learns."""

    segments: tuple[TCP, ...] = ()
    connected: bool = False
    data: bytes = b""
    eof: bool = False
    error: str = ""

    def __add__(self, other: TcpOutput) -> TcpOutput:
        return TcpOutput(self.segments + other.segments, self.connected or other.connected, self.data + other.data,
                         self.eof or other.eof, self.error or other.error)


_NOTHING_SENT = TcpOutput()      # write_xmit with nothing it may send (a frozen record: shared)


@dataclass
class Skb:
    """One queued segment of the send queue (sk_write_queue): its first sequence number
    (relative to the ISN), data, PSH and FIN marks, and whether it has been sent."""

    seq: int
    data: bytearray = field(default_factory=bytearray)
    psh: bool = False
    fin: bool = False
    sent: bool = False

    @property
    def end(self) -> int:
        return self.seq + len(self.data) + self.fin


class SendQueue:
    """sk_write_queue: the unacknowledged and unsent segments, cut at write time."""

    def __init__(self) -> None:
        self.skbs: list[Skb] = []
        self.write_seq = 1             # relative: the SYN took sequence 0
        self.pushed_seq = 1

    def write(self, data: bytes, size_goal: int, max_window: int) -> None:
        """tcp_sendmsg_locked: fill the unsent tail, then new segments of `size_goal` bytes;
        PSH where forced_push says so and on the write's last segment (tcp_push)."""
        view = memoryview(data)
        while view:
            tail = self.skbs[-1] if self.skbs else None
            if tail is None or tail.sent or tail.fin or len(tail.data) >= size_goal:
                tail = Skb(self.write_seq)
                self.skbs.append(tail)
            copy = min(size_goal - len(tail.data), len(view))
            tail.data += view[:copy]
            view = view[copy:]
            self.write_seq += copy
            if view and len(tail.data) >= size_goal and self.write_seq - self.pushed_seq > max_window // 2:
                self.mark_push(tail)
        if data and self.skbs:
            self.mark_push(self.skbs[-1])

    def in_flight(self) -> int:
        """The segments sent and not yet acknowledged: the queue's head, as segments leave in
        order (write_xmit) and are acknowledged in order (acked)."""
        count = 0
        for skb in self.skbs:
            if not skb.sent:
                break
            count += 1
        return count

    def mark_push(self, skb: Skb) -> None:
        skb.psh = True
        self.pushed_seq = self.write_seq

    def fin(self) -> None:
        """tcp_send_fin: FIN rides on the unsent tail segment, else on a segment of its own."""
        tail = self.skbs[-1] if self.skbs else None
        if tail is not None and not tail.sent and not tail.fin:
            tail.fin = True
        else:
            self.skbs.append(Skb(self.write_seq, fin=True))
        self.write_seq += 1

    def acked(self, ack: int) -> int:
        """Drop what `ack` covers (a partly acknowledged segment is trimmed); how many segments
        it acknowledged in full."""
        done = 0
        while self.skbs and self.skbs[0].sent and self.skbs[0].end <= ack:
            self.skbs.pop(0)
            done += 1
        if self.skbs and self.skbs[0].sent and self.skbs[0].seq < ack:
            head = self.skbs[0]
            cut = ack - head.seq
            del head.data[:cut]
            head.seq = ack
        return done

    def retransmit_lost(self, mss: int) -> list[Skb]:
        """tcp_simple_retransmit then tcp_xmit_retransmit_queue: the sent segments longer than
        `mss` are lost. The first of a run of them is cut at `mss` (tcp_fragment); its remainder
        takes the rest of the run in (tcp_retrans_try_collapse, whose room is the peer's window,
        not the MSS) and leaves as one skb that software GSO cuts at `mss` on its way out (the
        lab's devices have no TSO with checksum offload off): on the wire the run's bytes are
        sent again cut at `mss`, PSH on the last piece (measured on Linux 6.18:
        tests/test_lab_sockets.py). Returns the segments to send, in order."""
        out: list[Skb] = []
        i = 0
        while i < len(self.skbs):
            if not (self.skbs[i].sent and len(self.skbs[i].data) > mss):
                i += 1
                continue
            j = i
            while j < len(self.skbs) and self.skbs[j].sent and len(self.skbs[j].data) > mss:
                j += 1
            run = self.skbs[i:j]
            data = bytearray().join(skb.data for skb in run)
            pieces = [Skb(run[0].seq + k, data[k:k + mss], False, False, True) for k in range(0, len(data), mss)]
            pieces[-1].psh, pieces[-1].fin = True, run[-1].fin
            self.skbs[i:j] = pieces
            out += pieces
            i += len(pieces)
        return out


def fill_gap(ofo: dict[int, tuple[bytes, bool]], seq: int, data: bytes, fin: bool) -> tuple[bytes, bool, bool]:
    """tcp_ofo_queue: the in-order segment at `seq` takes in what the out-of-order queue holds
    right after it, while it is contiguous. (data, FIN, whether anything was taken in)."""
    filled = False
    while ofo and not fin:
        end = seq + len(data)
        for stale in [s for s in ofo if s < end]:
            del ofo[stale]
        if end not in ofo:
            break
        more, fin = ofo.pop(end)
        data += more
        filled = True
    return data, fin, filled


class SequenceSpace:
    """A connection's numbers: sequence and acknowledgement numbers kept relative to the two
    ISNs (the SYN is 0) and written absolute, timestamps, the MSS and window it sends with."""

    iss: int
    irs: int
    rcv_nxt: int
    ts_base: int
    ts_recent: int
    config: TcpConfig
    peer_mss: int
    max_window: int
    rcv_wnd: int
    state: str
    queue: SendQueue
    peer_wscale: int

    @property
    def unsent(self) -> bool:
        """Queued data (or FIN) not yet sent (the sent segments are the queue's head)."""
        skbs = self.queue.skbs
        return bool(skbs) and not skbs[-1].sent

    @property
    def unacked(self) -> bool:
        """Something sent waits for its ACK (the retransmission timer runs)."""
        skbs = self.queue.skbs
        return self.state in ("SYN_SENT", "SYN_RECV") or (bool(skbs) and skbs[0].sent)

    def tsval(self, now_ms: int) -> int:
        return (self.ts_base + now_ms) % SEQ_MOD

    def abs_seq(self, rel: int) -> int:
        return (self.iss + rel) % SEQ_MOD

    def abs_ack(self) -> int:
        return (self.irs + self.rcv_nxt) % SEQ_MOD

    def rel_ack(self, ack: int) -> int:
        return (ack - self.iss) % SEQ_MOD

    def rel_seq(self, seq: int) -> int:
        return (seq - self.irs) % SEQ_MOD

    def learn_syn_options(self, seg: TCP) -> None:
        mss = option_values(seg, TCPOPT_MSS)
        self.peer_mss = mss[0] if mss else TCP_MSS_DEFAULT
        scale = option_values(seg, TCPOPT_WINDOW)
        self.peer_wscale = min(scale[0], 14) if scale else 0
        self.take_timestamp(seg)

    def take_timestamp(self, seg: TCP) -> None:
        values = option_values(seg, TCPOPT_TIMESTAMP)
        if values:
            self.ts_recent = values[0]

    @property
    def mss_now(self) -> int:
        """tcp_sync_mss and tcp_current_mss: the payload a segment may carry."""
        mss = min(self.config.path_mtu - 40, self.peer_mss)
        mss = max(mss, TCP_MIN_SND_MSS) - TCPOLEN_TSTAMP_ALIGNED
        if self.max_window > TCP_MSS_DEFAULT:
            mss = min(mss, max(self.max_window >> 1, 68 - 20 - TCPOLEN_TSTAMP_ALIGNED))
        return mss

    @property
    def window_field(self) -> int:
        return scaled_window(self.rcv_wnd, self.config.wscale)



class TcpConnection(SequenceSpace):
    """One TCP socket's connection: see the module docstring for the rules it keeps."""

    def __init__(self, local: str, lport: int, remote: str, rport: int, config: TcpConfig | None = None) -> None:
        self.local, self.lport, self.remote, self.rport = local, lport, remote, rport
        self.config = config or TcpConfig()
        self.state = "CLOSED"
        self.iss = isn(local, remote, lport, rport)
        self.ts_base = ts_offset(local, remote, lport, rport)
        self.irs = 0
        self.rcv_nxt = 0             # relative to irs
        self.rcv_wup = 0             # rcv_nxt when the last ACK went out
        self.snd_una = 0             # relative to iss
        self.snd_nxt = 0
        self.queue = SendQueue()
        self.peer_mss = TCP_MSS_DEFAULT
        self.peer_wscale = 0
        self.snd_wnd = 0
        self.max_window = 0
        self.rcv_wnd = initial_window(self.config.advmss)
        self.ts_recent = 0
        self.cwnd = self.config.init_cwnd
        self.max_packets_out = 0
        self.quick = 0
        self.pingpong = False        # inet_csk_in_pingpong_mode: no quick ACKs (entered at the peer's FIN)
        self.rcv_mss = TCP_MSS_DEFAULT
        self.ack_pending = False
        self.snd_sml = 0             # end of the last short segment sent (tcp_minshall_update)
        self.retries = 0
        self.rto_us = TCP_TIMEOUT_INIT_US
        self.received = bytearray()
        self.ofo: dict[int, tuple[bytes, bool]] = {}    # out_of_order_queue: relative seq -> (data, FIN)

    # -------------------------------------------------------------- opening

    @classmethod
    def connect(cls, local: str, lport: int, remote: str, rport: int, config: TcpConfig | None = None,
                now_ms: int = 0) -> tuple[TcpConnection, TcpOutput]:
        """connect(): SYN_SENT and the SYN (tcp_connect)."""
        conn = cls(local, lport, remote, rport, config)
        conn.state = "SYN_SENT"
        conn.snd_nxt = 1
        return conn, TcpOutput((conn.syn(now_ms),))

    def syn(self, now_ms: int = 0) -> TCP:
        return TCP(self.lport, self.rport, self.iss, 0, "S", initial_window(self.config.advmss),
                   tcp_options(self.config.advmss, self.tsval(now_ms), 0))

    @classmethod
    def accept(cls, local: str, lport: int, remote: str, syn: TCP, config: TcpConfig | None = None,
               now_ms: int = 0) -> tuple[TcpConnection, TcpOutput]:
        """A listener takes a SYN (tcp_conn_request): SYN_RECV and the SYN-ACK."""
        conn = cls(local, lport, remote, syn.sport, config)
        conn.state = "SYN_RECV"
        conn.irs = syn.seq
        conn.rcv_nxt = conn.rcv_wup = 1
        conn.learn_syn_options(syn)
        conn.snd_wnd = conn.max_window = syn.window
        conn.rcv_wnd = initial_window(conn.config.advmss - TCPOLEN_TSTAMP_ALIGNED)
        conn.snd_nxt = 1
        return conn, TcpOutput((conn.synack(now_ms),))

    def synack(self, now_ms: int = 0) -> TCP:
        return TCP(self.lport, self.rport, self.iss, self.abs_ack(), "SA", self.rcv_wnd,
                   tcp_options(self.config.advmss, self.tsval(now_ms), self.ts_recent))

    @property
    def packets_out(self) -> int:
        return self.queue.in_flight()

    def segment(self, flags: str, seq: int, payload: bytes = b"", now_ms: int = 0) -> TCP:
        """A segment of the established connection: ACK set, the window, the timestamps."""
        return TCP(self.lport, self.rport, self.abs_seq(seq), self.abs_ack(), flags, self.window_field,
                   ts_option(self.tsval(now_ms), self.ts_recent), payload)

    def ack_sent(self) -> None:
        """tcp_event_ack_sent: a pending ACK went out (on its own or with data)."""
        if self.ack_pending and self.quick:
            self.quick -= 1
        self.ack_pending = False
        self.rcv_wup = self.rcv_nxt

    # -------------------------------------------------------------- the application's calls

    def send(self, data: bytes, now_ms: int = 0) -> TcpOutput:
        """write(): queue the bytes as segments and send what the windows allow."""
        if self.state not in ("ESTABLISHED", "CLOSE_WAIT") or not data:
            return TcpOutput()
        self.queue.write(data, self.mss_now, self.max_window)
        return self.write_xmit(now_ms)

    def shutdown(self, now_ms: int = 0) -> TcpOutput:
        """shutdown(SHUT_WR) or close(): FIN after the queued data (tcp_send_fin)."""
        if self.state == "ESTABLISHED":
            self.state = "FIN_WAIT1"
        elif self.state == "CLOSE_WAIT":
            self.state = "LAST_ACK"
        else:
            return TcpOutput()
        self.queue.fin()
        return self.write_xmit(now_ms)

    def abort(self, now_ms: int = 0) -> TcpOutput:
        """close() with SO_LINGER 0, or unread data at close (tcp_send_active_reset): RST,ACK."""
        if self.state in ("CLOSED", "TIME_WAIT", "SYN_SENT"):
            self.state = "CLOSED"
            return TcpOutput()
        rst = TCP(self.lport, self.rport, self.abs_seq(self.snd_nxt), self.abs_ack(), "RA", 0)
        self.state = "CLOSED"
        return TcpOutput((rst,))

    # -------------------------------------------------------------- sending

    def write_xmit(self, now_ms: int = 0) -> TcpOutput:
        """tcp_write_xmit: send queued segments the congestion and peer windows allow."""
        out: list[TCP] = []
        skbs = self.queue.skbs
        packets_out = self.packets_out
        if packets_out >= len(skbs) or packets_out >= self.cwnd:
            return _NOTHING_SENT                          # nothing unsent, or the congestion window is full
        mss = self.mss_now
        for skb in islice(skbs, packets_out, None):       # the sent ones are the queue's head
            if packets_out >= self.cwnd:
                break
            if skb.seq + len(skb.data) > self.snd_una + self.snd_wnd:
                break                                     # tcp_snd_wnd_test
            short = len(skb.data) < mss and not skb.fin
            if short and packets_out and self.snd_una < self.snd_sml <= self.snd_nxt:
                break                                     # tcp_nagle_check (Minshall)
            out.append(self.skb_segment(skb, now_ms))
            skb.sent = True
            packets_out += 1
            self.snd_nxt = max(self.snd_nxt, skb.end)
            if short:
                self.snd_sml = skb.end
            self.max_packets_out = max(self.max_packets_out, packets_out)
            self.ack_sent()
        return TcpOutput(tuple(out))

    # -------------------------------------------------------------- receiving

    def receive(self, seg: TCP, now_ms: int = 0) -> TcpOutput:
        """tcp_v4_rcv for this connection: the state machine (tcp_rcv_state_process)."""
        if self.state == "SYN_SENT":
            return self.rcv_synsent(seg, now_ms)
        if "R" in seg.flags:
            return self.rcv_reset()
        if self.state in ("CLOSED", "LISTEN"):
            return TcpOutput()
        if "S" in seg.flags:
            # a retransmitted SYN (we are SYN_RECV) or SYN-ACK: answer again
            if self.state == "SYN_RECV":
                return TcpOutput((self.synack(now_ms),))
            return TcpOutput((self.segment("A", self.snd_nxt, now_ms=now_ms),))
        acked = self.rcv_ack(seg, now_ms) if "A" in seg.flags else None
        out = self.rcv_data(seg, now_ms)
        if acked is not None and (acked.segments or acked.connected):
            return acked + out
        return out

    def rcv_synsent(self, seg: TCP, now_ms: int) -> TcpOutput:
        """tcp_rcv_synsent_state_process: RST (refused) or SYN-ACK (established, ACK it)."""
        if "A" in seg.flags and self.rel_ack(seg.ack) != 1:
            return TcpOutput()                           # not for our SYN
        if "R" in seg.flags:
            self.state = "CLOSED"
            return TcpOutput(error="ECONNREFUSED")
        if "S" not in seg.flags or "A" not in seg.flags:
            return TcpOutput()
        self.irs = seg.seq
        self.rcv_nxt = self.rcv_wup = 1
        self.snd_una = 1
        self.learn_syn_options(seg)
        self.snd_wnd = self.max_window = seg.window      # a SYN's window is never scaled
        self.state = "ESTABLISHED"
        self.retries, self.rto_us = 0, TCP_TIMEOUT_INIT_US
        ack = self.segment("A", self.snd_nxt, now_ms=now_ms)
        return TcpOutput((ack,), connected=True)

    def rcv_reset(self) -> TcpOutput:
        was = self.state
        self.state = "CLOSED"
        if was == "SYN_RECV":
            return TcpOutput()
        if was in ("LAST_ACK", "CLOSING", "TIME_WAIT"):
            return TcpOutput()
        return TcpOutput(error="ECONNRESET")

    def rcv_ack(self, seg: TCP, now_ms: int) -> TcpOutput:
        """tcp_ack: advance snd_una, open the windows, send what now fits."""
        ack = self.rel_ack(seg.ack)
        connected = False
        if self.state == "SYN_RECV":
            if ack != 1:
                return TcpOutput()
            self.snd_una = 1
            self.state = "ESTABLISHED"
            connected = True
        self.take_timestamp(seg)
        window = seg.window << self.peer_wscale
        if self.snd_una < ack <= self.snd_nxt:
            acked = self.queue.acked(ack)
            self.snd_una = ack
            self.retries, self.rto_us = 0, TCP_TIMEOUT_INIT_US
            if acked and self.cwnd < 2 * self.max_packets_out:      # tcp_is_cwnd_limited, slow start
                self.cwnd += acked
            if self.snd_una == self.queue.write_seq and self.queue.write_seq == self.snd_nxt:
                self.fin_acked()
        if self.snd_una <= ack <= self.snd_nxt:
            self.snd_wnd = window
            self.max_window = max(self.max_window, window)
        out = self.write_xmit(now_ms)
        return TcpOutput(out.segments, connected=True) if connected else out

    def fin_acked(self) -> None:
        if not any(skb.fin for skb in self.queue.skbs) and self.state in ("FIN_WAIT1", "CLOSING", "LAST_ACK"):
            self.state = {"FIN_WAIT1": "FIN_WAIT2", "CLOSING": "TIME_WAIT", "LAST_ACK": "CLOSED"}[self.state]

    def rcv_data(self, seg: TCP, now_ms: int) -> TcpOutput:
        """tcp_data_queue and tcp_fin, then __tcp_ack_snd_check. A segment beyond rcv_nxt waits
        in the out-of-order queue (tcp_data_queue_ofo) and is answered at once with a duplicate
        ACK (netsim sends no SACK blocks); the segment that fills the gap takes it in and is
        acknowledged at once (ICSK_ACK_NOW)."""
        if not seg.payload and "F" not in seg.flags:
            return TcpOutput()
        seq = self.rel_seq(seg.seq)
        if self.state in ("CLOSE_WAIT", "LAST_ACK", "CLOSING", "TIME_WAIT", "CLOSED") or seq < self.rcv_nxt:
            # a duplicate: Linux answers with an immediate (dup) ACK
            return TcpOutput((self.segment("A", self.snd_nxt, now_ms=now_ms),))
        if seq > self.rcv_nxt:
            if seq - self.rcv_nxt < max(self.rcv_wnd, 1 << 16):
                self.ofo.setdefault(seq, (bytes(seg.payload), "F" in seg.flags))
            return TcpOutput((self.segment("A", self.snd_nxt, now_ms=now_ms),))
        data, fin, filled = fill_gap(self.ofo, seq, bytes(seg.payload), "F" in seg.flags)
        if data:
            first = len(seg.payload)
            if self.quick == 0 and not self.received:
                self.rcv_mss = max(self.rcv_mss, first)                  # tcp_measure_rcv_mss
                self.quick = min(max(self.rcv_wnd // (2 * self.rcv_mss), 2), TCP_MAX_QUICKACKS)
            elif first > self.rcv_mss:
                self.rcv_mss = first
            self.received += data
            self.rcv_nxt += len(data)
            self.ack_pending = True
        held = False
        if fin:
            self.rcv_nxt += 1
            self.ack_pending = True
            held = self.state == "ESTABLISHED"          # tcp_fin: CLOSE_WAIT and pingpong mode
            self.state = {"ESTABLISHED": "CLOSE_WAIT", "FIN_WAIT1": "CLOSING", "FIN_WAIT2": "TIME_WAIT"}.get(
                self.state, self.state)
        if held:
            self.pingpong = True
        if (filled or (fin and not held) or (self.quick and not self.pingpong)
                or self.rcv_nxt - self.rcv_wup > self.rcv_mss):
            ack = self.segment("A", self.snd_nxt, now_ms=now_ms)
            self.ack_sent()
            return TcpOutput((ack,), data=data, eof=fin)
        return TcpOutput(data=data, eof=fin)

    # -------------------------------------------------------------- timers

    def delack_timer(self, now_ms: int = 0) -> TcpOutput:
        """tcp_delack_timer_handler: send the ACK that was held back."""
        if not self.ack_pending or self.state == "CLOSED":
            return TcpOutput()
        ack = self.segment("A", self.snd_nxt, now_ms=now_ms)
        self.ack_sent()
        return TcpOutput((ack,))

    def path_mtu(self, mtu: int, now_ms: int = 0) -> TcpOutput:
        """tcp_v4_mtu_reduced: a smaller path MTU (ICMP fragmentation needed for this flow):
        the MSS drops and the segments now too long are sent again, cut to the new size."""
        if mtu >= self.config.path_mtu:
            return TcpOutput()
        self.config = TcpConfig(self.config.advmss, mtu, self.config.wscale, self.config.init_cwnd)
        resend = self.queue.retransmit_lost(self.mss_now)
        return TcpOutput(tuple(self.skb_segment(skb, now_ms) for skb in resend))

    def skb_segment(self, skb: Skb, now_ms: int = 0) -> TCP:
        flags = ("F" if skb.fin else "") + ("P" if skb.psh and skb.data else "") + "A"
        return self.segment(flags, skb.seq, bytes(skb.data), now_ms)

    def retransmit_timeout(self, now_ms: int = 0) -> TcpOutput:
        """tcp_retransmit_timer: resend the oldest unacknowledged segment (or the SYN); after
        tcp_syn_retries (SYN) or tcp_retries2 tries the connection fails with ETIMEDOUT."""
        limit = TCP_SYN_RETRIES if self.state in ("SYN_SENT", "SYN_RECV") else TCP_RETRIES2
        if self.retries >= limit:
            self.state = "CLOSED"
            return TcpOutput(error="ETIMEDOUT")
        self.retries += 1
        self.rto_us *= 2
        if self.state == "SYN_SENT":
            return TcpOutput((self.syn(now_ms),))
        if self.state == "SYN_RECV":
            return TcpOutput((self.synack(now_ms),))
        for skb in self.queue.skbs:
            if skb.sent:
                return TcpOutput((self.skb_segment(skb, now_ms),))
        return TcpOutput()

