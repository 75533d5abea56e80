"""What a socket's send does before the packet meets the IP layer: the route, the source, the
IP header's TTL, TOS, ID and DF, and the refusals a system call returns at once.

Kernel behaviour modelled (net/ipv4/route.c `ip_route_output_key_hash_rcu`; net/ipv4/datagram.c
`__ip4_datagram_connect`; net/ipv4/udp.c `udp_sendmsg`; net/ipv4/raw.c `raw_sendmsg`;
net/ipv4/ip_output.c `__ip_append_data`, `__ip_make_skb`, `ip_dont_fragment`):
- the output route of the destination; 0.0.0.0 means this host (the route lookup turns it into
  127.0.0.1 on lo); no route is ENETUNREACH, a `blackhole` route EINVAL, an `unreachable` one
  EHOSTUNREACH;
- a broadcast destination (a broadcast route, or 255.255.255.255) without SO_BROADCAST is
  EACCES, for connect() and sendmsg() alike; TCP refuses broadcast and multicast with
  ENETUNREACH (tcp_v4_connect);
- the source is the route's preferred source, or the address the socket is bound to; the
  port, when none is bound, an ephemeral one (`__inet_hash_connect`);
- DF (IP_MTU_DISCOVER): "do" always; "want" (the default) only when the packet fits the path
  MTU, so a bigger datagram leaves in fragments; "dont" never; TCP always (unless the path MTU
  is locked at min_pmtu). With "do", a datagram over the path MTU is refused with EMSGSIZE
  (`__ip_append_data`, reported with the MTU, `ip_local_error`); any datagram over 65,535
  bytes in all is EMSGSIZE;
- TTL: IP_TTL, else net.ipv4.ip_default_ttl; to a multicast group the multicast TTL (1).
The IP ID comes from the namespace's hashed counters (`ip_select_ident`), as netsim's
endpoints.py uses them. A packet a socket sends is a flow of its own, noted with the socket's
decision: `connect` for its first packet, `sendmsg` for the rest.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..addresses import FLOW_MEMO, stable_hash
from ..decision import Decision, RouteReason, SocketReason, Subsystem, Verdict
from ..packet import ICMP, ICMP_ECHO_REQUEST, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP, IPv4
from ..programs.events import Connected, Event, Probe, SocketError
from ..route import RouteResult, address_int, route_ref
from .layer import Sock, SocketLayer

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..netns import Namespace

LOCAL_OUT_ERRNO = {"blackhole": "EINVAL", "unreachable": "EHOSTUNREACH"}
IPV4_MAX = 65535
LIMITED_BROADCAST = "255.255.255.255"
MULTICAST_TTL = 1                     # IP_MULTICAST_TTL's default
PROTO_OF = {"udp": IPPROTO_UDP, "tcp": IPPROTO_TCP, "icmp": IPPROTO_ICMP, "raw-tcp": IPPROTO_TCP}
KIND_NAME = {"udp": "udp", "tcp": "tcp", "icmp": "icmp", "raw-tcp": "tcp"}


def socket_decision(function: str, reason: SocketReason, verdict: Verdict = Verdict.DELIVER, **facts: Any) -> Decision:
    return Decision(Subsystem.SOCKET, function, reason, verdict, **facts)


def is_multicast(addr: str) -> bool:
    return 0xE0000000 <= address_int(addr) <= 0xEFFFFFFF


def probe_of(ip: IPv4) -> Probe:
    """The record of a packet a socket sent, as an error about it names it."""
    p = ip.payload
    if isinstance(p, (TCP, UDP)):
        return Probe(ip.dst, KIND_NAME["tcp" if isinstance(p, TCP) else "udp"], p.sport, p.dport, ttl=ip.ttl)
    if isinstance(p, ICMP):
        return Probe(ip.dst, "icmp", ident=p.id, seq=p.seq, ttl=ip.ttl)
    return Probe(ip.dst, str(ip.proto), ttl=ip.ttl)


def socket_hash(ip: IPv4) -> int | None:
    """sk_txhash stand-in: sockets hash their own flow, direction by direction; ICMP has none."""
    payload = ip.payload
    if isinstance(payload, (TCP, UDP)):
        return _txhash(ip.src, ip.dst, payload.sport, payload.dport, ip.proto)
    return None


@lru_cache(maxsize=FLOW_MEMO)
def _txhash(src: str, dst: str, sport: int, dport: int, proto: int) -> int:
    return stable_hash("txhash", src, dst, sport, dport, proto)


# ------------------------------------------------------------------------------ the route

def output_route(ns: Namespace, dst: str, src: str | None = None) -> RouteResult | str:
    """ip_route_output_key for a socket (Namespace.route_output): the route, or the errno the
    call fails with."""
    rr = ns.route_output(dst, src)
    if rr is None:
        return "ENETUNREACH"
    if rr.route.type in LOCAL_OUT_ERRNO:
        return LOCAL_OUT_ERRNO[rr.route.type]
    return rr


def is_broadcast(rr: RouteResult) -> bool:
    return rr.route.type == "broadcast"


def route_refused(k: Kernel, sock: Sock, dst: str, errno: str, role: str, probe: Probe | None = None) -> list[Event]:
    """The route lookup failed the call: an `Ended` record for the packet that never was, and
    the error the program gets."""
    ns = sock.ns
    flow = k.new_flow(role)
    rr = ns.route_get(dst)
    if rr is not None and rr.route.type in LOCAL_OUT_ERRNO:
        decision = Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.LOCAL_ERROR, Verdict.DROP,
                            consulted=(route_ref(rr),), errno=errno)
    else:
        decision = Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.NO_ROUTE, Verdict.DROP,
                            dst=dst, netns=ns.name)
    flow.end("dropped", decision, ns.name)
    return [SocketError(sock.name, errno, "local", sock.laddr or "", probe=probe, at=k.now_us())]


def refused(k: Kernel, sock: Sock, function: str, reason: SocketReason, errno: str, role: str,
            probe: Probe | None = None, info: int = 0, **facts: Any) -> list[Event]:
    """The system call refused the send: an `Ended` record with the decision, and the error."""
    flow = k.new_flow(role)
    flow.end("dropped", socket_decision(function, reason, Verdict.DROP, errno=errno, netns=sock.ns.name, **facts),
             sock.ns.name)
    return [SocketError(sock.name, errno, "local", sock.laddr or "", info=info, probe=probe, at=k.now_us())]


# ------------------------------------------------------------------------------ the header

def pmtudisc(sock: Sock) -> str:
    if sock.options.pmtudisc is not None:
        return sock.options.pmtudisc
    return "dont" if sock.ns.sysctl.ip_no_pmtu_disc else "want"


def ttl_for(sock: Sock, dst: str) -> int:
    if is_multicast(dst):
        return sock.options.ttl if sock.options.ttl is not None else MULTICAST_TTL
    return sock.options.ttl if sock.options.ttl is not None else sock.ns.sysctl.ip_default_ttl


def datagram_df(sock: Sock, length: int, mtu: int) -> bool:
    """__ip_make_skb: DF for "do", for "want" when the packet fits the path MTU."""
    mode = pmtudisc(sock)
    return mode in ("do", "probe") or (mode == "want" and length <= mtu)


def too_big(sock: Sock, length: int, mtu: int) -> bool:
    """__ip_append_data: with "do" a datagram must fit the path MTU; none may pass 65,535."""
    return length > IPV4_MAX or (pmtudisc(sock) in ("do", "probe") and length > mtu)


def emit(k: Kernel, sock: Sock, ip: IPv4, role: str, rr: RouteResult | None = None) -> None:
    """Hand a packet the socket made to ip_local_out, as a flow of its own; an error the local
    stack returns (sock_send_error) finds the socket by the flow."""
    layer = sock.layer
    flow = k.new_flow(role)
    flow.skb.hash = socket_hash(ip)
    ns = sock.ns
    if sock.sent == 0 and not sock.server:
        flow.note(socket_decision("connect", SocketReason.CONNECT, Verdict.SEND, proto=KIND_NAME[sock.kind],
                                  netns=ns.name, packet=ip, source=ip.src, dst=ip.dst))
    else:
        reason = SocketReason.ANSWER_SENT if sock.server else SocketReason.SENT
        flow.note(Decision(Subsystem.SOCKET, "sendmsg", reason, Verdict.SEND, netns=ns.name, packet=ip))
    sock.sent += 1
    if layer.performing:
        sock.answered += 1
    layer.sent_by[flow.packet_id] = (sock, ip)
    previous, layer.sending = layer.sending, sock
    try:
        k.ip_local_out(ns, ip, flow, rr)
    finally:
        layer.sending = previous


# ------------------------------------------------------------------------------ binding

def bind(k: Kernel, sock: Sock, port: int, addr: str = "0.0.0.0") -> list[Event]:
    """bind(): a port of this namespace (EADDRINUSE if a socket of the same kind holds it)."""
    layer = sock.layer
    ns = sock.ns
    if addr not in ("0.0.0.0", "") and not ns.is_local_address(addr):
        return [SocketError(sock.name, "EADDRNOTAVAIL", "local", at=k.now_us())]
    taken = ((sock.kind == "udp" and any(not s.closed for s in layer.udp.get((ns.name, port), ())))
             or (sock.kind == "tcp" and (ns.name, port) in layer.tcp_listen))
    if port and taken:
        return [SocketError(sock.name, "EADDRINUSE", "local", at=k.now_us())]
    sock.lport = port
    if addr not in ("0.0.0.0", ""):
        sock.laddr = addr
    if sock.kind == "udp" and port:
        layer.bind_udp(sock)
    return []


def local_port(sock: Sock, src: str, dst: str, dport: int) -> int:
    """The socket's port: the bound one, else an ephemeral one (__inet_hash_connect)."""
    if not sock.lport:
        sock.lport = sock.ns.ephemeral_port(src, dst, dport, KIND_NAME[sock.kind])
    return sock.lport


# ------------------------------------------------------------------------------ UDP

def udp_connect(k: Kernel, sock: Sock, dst: str, dport: int) -> list[Event]:
    """__ip4_datagram_connect: route, source and port; no packet is sent."""
    target = sock.laddr if dst == "0.0.0.0" else dst
    rr = output_route(sock.ns, dst, sock.laddr)
    if isinstance(rr, str):
        return [SocketError(sock.name, rr, "local", at=k.now_us())]
    if is_broadcast(rr) and not sock.options.broadcast:
        return [SocketError(sock.name, "EACCES", "local", at=k.now_us())]
    sock.laddr = sock.laddr or rr.src
    assert sock.laddr is not None
    local_port(sock, sock.laddr, rr.dst, dport)
    sock.raddr, sock.rport = target or rr.dst, dport
    sock.layer.bind_udp(sock)
    return [Connected(sock.name, k.now_us(), sock.laddr)]


def udp_sendmsg(k: Kernel, sock: Sock, data: bytes, dst: str | None = None, dport: int | None = None,
                role: str = "request") -> list[Event]:
    """udp_sendmsg: one datagram to the connected peer or to `dst`:`dport`."""
    if dst is None:
        if sock.raddr is None:
            return [SocketError(sock.name, "EDESTADDRREQ", "local", at=k.now_us())]
        dst, dport = sock.raddr, sock.rport
    assert dport is not None
    rr = output_route(sock.ns, dst, sock.laddr)
    if isinstance(rr, str):
        return route_refused(k, sock, dst, rr, role)
    if is_broadcast(rr) and not sock.options.broadcast:
        return refused(k, sock, "udp_sendmsg", SocketReason.BROADCAST_REFUSED, "EACCES", role, dst=rr.dst)
    src = sock.laddr or rr.src
    assert src is not None
    sport = local_port(sock, src, rr.dst, dport)
    sock.layer.bind_udp(sock)
    mtu = sock.ns.path_mtu(rr)
    length = 28 + len(data)
    probe = Probe(rr.dst, "udp", sport, dport, ttl=ttl_for(sock, rr.dst))
    if too_big(sock, length, mtu):
        return refused(k, sock, "__ip_append_data", SocketReason.EMSGSIZE, "EMSGSIZE", role, probe, mtu,
                       size=length, mtu=mtu)
    ip = IPv4(src, rr.dst, IPPROTO_UDP, UDP(sport, dport, data), ttl=probe.ttl,
              id=sock.ns.ip_id(src, rr.dst, IPPROTO_UDP), df=datagram_df(sock, length, mtu), tos=sock.options.tos)
    emit(k, sock, ip, role, rr)
    return []


# ------------------------------------------------------------------------------ raw sockets

def raw_send_echo(k: Kernel, sock: Sock, dst: str, ident: int, seq: int, data: bytes,
                  role: str = "request") -> list[Event]:
    """raw_sendmsg of an ICMP echo request (ping, traceroute -I)."""
    probe = Probe(dst, "icmp", ident=ident, seq=seq, ttl=ttl_for(sock, dst))
    rr = output_route(sock.ns, dst, sock.laddr)
    if isinstance(rr, str):
        return route_refused(k, sock, dst, rr, role, probe)
    if is_broadcast(rr) and not sock.options.broadcast:
        return refused(k, sock, "raw_sendmsg", SocketReason.BROADCAST_REFUSED, "EACCES", role, probe, dst=rr.dst)
    src = sock.laddr or rr.src
    assert src is not None
    mtu = sock.ns.path_mtu(rr)
    length = 28 + len(data)
    probe = Probe(rr.dst, "icmp", ident=ident, seq=seq, ttl=ttl_for(sock, rr.dst))
    if too_big(sock, length, mtu):
        return refused(k, sock, "__ip_append_data", SocketReason.EMSGSIZE, "EMSGSIZE", role, probe, mtu,
                       size=length, mtu=mtu)
    sock.idents.add(ident)
    icmp = ICMP(ICMP_ECHO_REQUEST, 0, (ident << 16) | seq, data)
    ip = IPv4(src, rr.dst, IPPROTO_ICMP, icmp, ttl=probe.ttl, id=sock.ns.ip_id(src, rr.dst, IPPROTO_ICMP),
              df=datagram_df(sock, length, mtu), tos=sock.options.tos)
    emit(k, sock, ip, role, rr)
    return []


def raw_send_segment(k: Kernel, sock: Sock, dst: str, seg: TCP, role: str = "request") -> list[Event]:
    """raw_sendmsg of a TCP header the program wrote (traceroute -T): the kernel adds IP."""
    probe = Probe(dst, "tcp", seg.sport, seg.dport, ttl=ttl_for(sock, dst))
    rr = output_route(sock.ns, dst, sock.laddr)
    if isinstance(rr, str):
        return route_refused(k, sock, dst, rr, role, probe)
    src = sock.laddr or rr.src
    assert src is not None
    mtu = sock.ns.path_mtu(rr)
    length = 20 + seg.length()
    if too_big(sock, length, mtu):
        return refused(k, sock, "__ip_append_data", SocketReason.EMSGSIZE, "EMSGSIZE", role, probe, mtu,
                       size=length, mtu=mtu)
    ip = IPv4(src, rr.dst, IPPROTO_TCP, seg, ttl=probe.ttl, id=sock.ns.ip_id(src, rr.dst, IPPROTO_TCP),
              df=datagram_df(sock, length, mtu), tos=sock.options.tos)
    emit(k, sock, ip, role, rr)
    return []
