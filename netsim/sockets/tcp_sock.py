"""TCP sockets in the walk: a `TcpConnection` (programs/tcp.py) per socket, its segments put
in IPv4 and sent, the segments it receives turned into the events its program reads.

Kernel behaviour modelled (net/ipv4/tcp_ipv4.c `tcp_v4_connect`, `tcp_v4_rcv`,
`tcp_v4_mtu_reduced`; net/ipv4/tcp_output.c `tcp_transmit_skb`; net/ipv4/tcp_timer.c
`tcp_retransmit_timer`, `tcp_delack_timer`; net/ipv4/inet_connection_sock.c `inet_csk_accept`):
- connect(): the route and source, an ephemeral port, the SYN with the MSS the route allows
  (`ipv4_default_advmss`: the path MTU - 40); broadcast and multicast are ENETUNREACH;
- a listener answers a SYN with a SYN-ACK and the connection waits in the accept queue;
  accept() returns it once the handshake's ACK arrives;
- every segment leaves with DF (`ip_queue_xmit`), IP ID 0 for the SYN-ACK (what
  `ip_build_and_send_pkt` gives it), the namespace's hashed counter otherwise;
- received bytes are read at once; ACKs go out as the connection's rules say, a held one when
  the walk goes quiet (the delayed-ACK timer);
- the retransmission timer resends the oldest unacknowledged segment, doubling each time up
  to TCP_RTO_MAX (120 s); after tcp_syn_retries (6) SYNs or tcp_retries2 (15) tries the
  connection fails with the soft error an ICMP message left (sk_err_soft) or ETIMEDOUT;
- an ICMP fragmentation-needed lowers the connection's MSS and resends what no longer fits.
"""

from __future__ import annotations

from dataclasses import replace

from functools import lru_cache
from typing import TYPE_CHECKING

from ..decision import SocketReason
from ..packet import IPPROTO_TCP, TCP, IPv4
from ..programs.events import Accepted, Connected, ConnectionReset, DataReceived, Event, PeerClosed, SocketError
from ..programs.tcp import TcpConfig, TcpConnection, TcpOutput
from .inet import emit, is_multicast, local_port, output_route, refused, route_refused
from .layer import Sock, SocketLayer

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

TCP_RTO_MAX_US = 120_000_000
MIN_ADVMSS = 256                       # net.ipv4.route.min_adv_mss


@lru_cache(maxsize=256)
def config_for(mtu: int) -> TcpConfig:
    """ipv4_default_advmss and the path MTU the segments must fit (a frozen record, shared)."""
    return TcpConfig(advmss=max(min(mtu, 65535) - 40, MIN_ADVMSS), path_mtu=mtu)


def segment_role(sock: Sock, seg: TCP) -> str:
    """A TCP packet's role in the trace: the SYN is the request, the SYN-ACK the reply, then
    data (the client's), the response (the server's), and pure ACKs, FINs and RSTs."""
    flags = seg.flags
    if flags == "S":
        return "request"
    if flags == "SA":
        return "reply"
    if seg.payload:
        return "response" if sock.server else "data"
    if "R" in flags:
        return "rst"
    if "F" in flags:
        return "fin"
    return "ack"


def now_ms(k: Kernel) -> int:
    return k.now_us() // 1000


# ------------------------------------------------------------------------------ sending

def transmit(k: Kernel, sock: Sock, out: TcpOutput) -> None:
    """tcp_transmit_skb for each segment the connection put out, then the retransmission timer."""
    conn = sock.conn
    assert conn is not None and sock.laddr is not None and sock.raddr is not None
    ns = sock.ns
    locked = False
    if ns.route_cache.by_dst:
        exception = ns.route_cache.get(sock.raddr, k.now_us())
        locked = exception is not None and exception.locked
    options = sock.options
    ttl = options.ttl if options.ttl is not None else ns.sysctl.ip_default_ttl    # TCP is never multicast
    for seg in out.segments:
        ip_id = 0 if seg.flags == "SA" else ns.ip_id(sock.laddr, sock.raddr, IPPROTO_TCP)
        ip = IPv4(sock.laddr, sock.raddr, IPPROTO_TCP, seg, ttl=ttl, id=ip_id, df=not locked, tos=options.tos)
        emit(k, sock, ip, segment_role(sock, seg))
    arm_rto(k, sock)


def arm_rto(k: Kernel, sock: Sock, restart: bool = False) -> None:
    """tcp_rearm_rto: the timer runs while something sent waits for its ACK. A oneshot
    exchange (Cluster.send) sends its request once: no retransmission."""
    if sock.proc.oneshot:
        return
    conn = sock.conn
    layer = sock.layer
    if conn is None or not conn.unacked or conn.state == "CLOSED":
        if sock.rto_order:
            layer.cancel("rto", id(sock), "")
            sock.rto_order = 0
        return
    if sock.rto_order and not restart:
        return
    sock.rto_order = layer.arm("rto", sock, "", k.now_us() + min(conn.rto_us, TCP_RTO_MAX_US))


def tcp_connect(k: Kernel, sock: Sock, dst: str, dport: int) -> list[Event]:
    """connect() on a stream socket: SYN_SENT and the SYN."""
    rr = output_route(sock.ns, dst, sock.laddr)
    if isinstance(rr, str):
        return route_refused(k, sock, dst, rr, "request")
    if rr.route.type == "broadcast" or is_multicast(rr.dst):
        return refused(k, sock, "tcp_v4_connect", SocketReason.NOT_UNICAST, "ENETUNREACH", "request", dst=rr.dst)
    src = sock.laddr or rr.src
    assert src is not None
    sport = local_port(sock, src, rr.dst, dport)
    sock.laddr, sock.raddr, sock.rport = src, rr.dst, dport
    config = config_for(sock.ns.path_mtu(rr))
    maxseg = sock.options.maxseg
    if maxseg is not None and maxseg < config.advmss:          # TCP_MAXSEG: tcp_mss_clamp in tcp_connect_init
        config = replace(config, advmss=maxseg)
    conn, out = TcpConnection.connect(src, sport, rr.dst, dport, config, now_ms(k))
    sock.conn = conn
    sock.layer.add_tcp(sock)
    transmit(k, sock, out)
    return []


def tcp_accept(k: Kernel, listener: Sock, ip: IPv4, syn: TCP) -> Sock:
    """tcp_conn_request: a new connection in SYN_RECV on behalf of the listener, and its SYN-ACK."""
    name = f"{listener.name}<{ip.src}:{syn.sport}>"
    child = Sock(listener.proc, name, "tcp", listener.options)
    child.listener = listener.name
    child.laddr, child.lport, child.raddr, child.rport = ip.dst, syn.dport, ip.src, syn.sport
    rr = output_route(listener.ns, ip.src, ip.dst)
    mtu = listener.ns.path_mtu(rr) if not isinstance(rr, str) else 1500
    conn, out = TcpConnection.accept(ip.dst, syn.dport, ip.src, syn, config_for(mtu), now_ms(k))
    child.conn = conn
    listener.proc.socks[name] = child
    child.layer.add_tcp(child)
    transmit(k, child, out)
    return child


def tcp_send(k: Kernel, sock: Sock, data: bytes) -> list[Event]:
    """write() on a stream: queued, cut into segments, sent as the windows allow."""
    if sock.conn is None or sock.conn.state not in ("ESTABLISHED", "CLOSE_WAIT"):
        return [SocketError(sock.name, "EPIPE" if sock.conn is not None else "ENOTCONN", "local", at=k.now_us())]
    transmit(k, sock, sock.conn.send(data, now_ms(k)))
    return []


def tcp_shutdown(k: Kernel, sock: Sock) -> None:
    if sock.conn is not None:
        transmit(k, sock, sock.conn.shutdown(now_ms(k)))


def tcp_close(k: Kernel, sock: Sock) -> None:
    """close(): a listener stops listening; a connection sends FIN after its data (the kernel
    finishes the close on its own); a connection still opening is dropped."""
    layer = sock.layer
    sock.closed = True
    if sock.listening:
        layer.unbind(sock)
        return
    conn = sock.conn
    if conn is None:
        return
    if conn.state in ("ESTABLISHED", "CLOSE_WAIT"):
        transmit(k, sock, conn.shutdown(now_ms(k)))
    elif conn.state in ("SYN_SENT", "SYN_RECV"):
        conn.state = "CLOSED"
    if conn.state == "CLOSED":
        layer.drop_tcp(sock)


# ------------------------------------------------------------------------------ receiving

def events_of(k: Kernel, sock: Sock, was: str, out: TcpOutput) -> list[Event]:
    """What the program reads after the connection took a segment."""
    if sock.closed or sock.muted:
        return []
    at = k.now_us()
    events: list[Event] = []
    if out.connected and was == "SYN_RECV":
        events.append(Accepted(sock.listener, sock.name, sock.raddr or "", sock.rport, at))
    elif out.connected:
        events.append(Connected(sock.name, at))
    if out.data:
        events.append(DataReceived(sock.name, out.data, at))
    if out.eof:
        events.append(PeerClosed(sock.name, at))
    if out.error == "ECONNREFUSED":
        events.append(SocketError(sock.name, "ECONNREFUSED", "tcp", sock.raddr or "", at=at))
    elif out.error:
        events.append(ConnectionReset(sock.name, at))
    return events


def tcp_receive(k: Kernel, sock: Sock, seg: TCP) -> tuple[str, TcpOutput]:
    """tcp_rcv_state_process / tcp_rcv_established for the socket's connection: the state it
    was in and what it put out (sent by the caller, after the program read its events)."""
    conn = sock.conn
    assert conn is not None
    was, una = conn.state, conn.snd_una
    out = conn.receive(seg, now_ms(k))
    if conn.state == "CLOSED":
        sock.layer.drop_tcp(sock)
    elif conn.snd_una != una:
        arm_rto(k, sock, restart=True)
    return was, out


def mtu_reduced(k: Kernel, sock: Sock, mtu: int) -> int:
    """tcp_v4_mtu_reduced: the connection's MSS follows the path MTU; what was sent too long is
    sent again, cut to size. Returns the MSS now in use."""
    conn = sock.conn
    assert conn is not None
    if not sock.muted:
        transmit(k, sock, conn.path_mtu(mtu, now_ms(k)))
    return conn.mss_now


def rto_fired(k: Kernel, sock: Sock) -> list[Event]:
    """tcp_retransmit_timer."""
    conn = sock.conn
    sock.rto_order = 0
    if conn is None or not conn.unacked or sock.muted:
        return []
    out = conn.retransmit_timeout(now_ms(k))
    if out.error:
        sock.layer.drop_tcp(sock)
        if sock.closed:
            return []
        return [SocketError(sock.name, sock.soft_err or out.error, "tcp", sock.raddr or "", at=k.now_us())]
    transmit(k, sock, out)
    arm_rto(k, sock, restart=True)
    return []


def delayed_acks(k: Kernel) -> bool:
    """tcp_delack_timer for every connection holding an ACK back. Whether any was sent."""
    sent = False
    for sock in list(k.state(SocketLayer).tcp.values()):
        conn = sock.conn
        if conn is not None and conn.ack_pending and not sock.muted:
            out = conn.delack_timer(now_ms(k))
            if out.segments:
                transmit(k, sock, out)
                sent = True
    return sent


def no_socket_reason(seg: TCP) -> SocketReason:
    return SocketReason.RST_IGNORED if "R" in seg.flags else SocketReason.NO_LISTENER
