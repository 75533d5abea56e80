"""The transport layer of a namespace: its sockets and the kernel's own responders.

Kernel behaviour modelled (net/ipv4/ip_input.c `ip_protocol_deliver_rcu`; net/ipv4/udp.c
`udp_rcv`, `udp_queue_rcv_skb` (encapsulation sockets); net/ipv4/tcp_ipv4.c `tcp_v4_rcv`,
`tcp_v4_send_reset`; net/ipv4/tcp_input.c `tcp_rcv_state_process`; net/ipv4/icmp.c
`icmp_rcv`, `icmp_echo`, `icmp_unreach`; net/ipv4/ping.c; net/ipv4/af_inet.c):
- the socket that started the exchange (the client) gets the answers to its own flow: an
  echo reply, a UDP reply, a SYN-ACK (then it sends the handshake's ACK and its data, if it
  has any), an RST (connect() fails with ECONNREFUSED), data, or an ICMP error about its
  packets (the errno icmp_err_convert gives);
- the kernel answers an echo request itself; a UDP datagram to a port with an encapsulation
  socket (VXLAN on 8472) is decapsulated, one to a userspace program's socket (flanneld on
  8285) is handed to it, one to a listener is answered, one to a closed port gets ICMP port
  unreachable; a TCP SYN to a listener gets a SYN-ACK, one to a closed port an RST.
What the packets look like (options, IDs, sequence numbers) is in endpoints.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from . import endpoints as ep
from .addresses import stable_hash
from .decision import Decision, Outcome, OutcomeKind, OutcomeReason, SocketReason, Subsystem, Verdict, icmp_errno
from .packet import ICMP, ICMP_DEST_UNREACH, ICMP_ECHO_REQUEST, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TCP, UDP
from .vxlan import vxlan_rcv, vxlan_sock_lookup

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .netns import Namespace
    from .route import RouteResult
    from .walk import Walk


class UdpProgram(Protocol):
    """A userspace program reading a UDP socket of its own (flanneld's udp backend)."""

    def from_udp(self, walk: Walk, ns: Namespace, outer: IPv4, flow: Flow) -> None: ...


@dataclass
class Client:
    """The socket that started the exchange: where replies are delivered."""

    netns: Namespace
    key: tuple
    proto: str
    payload: bytes | None
    done: bool = False
    result: Outcome | None = None


def socket_hash(ip: IPv4) -> int | None:
    """sk_txhash stand-in: sockets hash their own flow, direction by direction; ICMP has none."""
    payload = ip.payload
    if isinstance(payload, (TCP, UDP)):
        return stable_hash("txhash", ip.src, ip.dst, payload.sport, payload.dport, ip.proto)
    return None


def _socket(function: str, reason: SocketReason, verdict: Verdict = Verdict.DELIVER, **facts: Any) -> Decision:
    return Decision(Subsystem.SOCKET, function, reason, verdict, **facts)


def connect(walk: Walk, ns: Namespace, rr: RouteResult, dst: str, proto: str, dport: int | None,
            sport: int | None, payload: bytes | None, src: str | None) -> None:
    """A socket in `ns` sends the exchange's first packet (ping's echo request, UDP's
    datagram, TCP's SYN) along the route `ip route get` chose; the walk takes it from there."""
    source = rr.src or src
    assert source is not None
    ttl = ns.sysctl.ip_default_ttl
    flow = Flow(walk, "request")
    if proto == "icmp":
        ip = ep.echo_request(source, dst, ep.PING_ID, 1, ttl, ns.ip_id(source, dst, IPPROTO_ICMP))
    else:
        assert dport is not None
        port = sport or ns.ephemeral_port(source, dst, dport, proto)
        out_mtu = ns.devices[rr.dev].mtu if rr.dev in ns.devices else 1500
        if proto == "tcp":
            ip = ep.tcp_syn(source, dst, port, int(dport), min(out_mtu, 65535) - 40, ttl,
                            ns.ip_id(source, dst, IPPROTO_TCP))
        else:
            ip = ep.udp_datagram(source, dst, port, int(dport), payload if payload is not None else b"REQ",
                                 ttl, ns.ip_id(source, dst, IPPROTO_UDP))
            if ip.length() > out_mtu:
                # __ip_make_skb with IP_PMTUDISC_WANT (the UDP default): DF only on a datagram
                # that fits the route's MTU; a larger one leaves DF clear and is fragmented.
                ip = replace(ip, df=False)
    flow.skb.hash = socket_hash(ip)
    walk.client = Client(ns, ep.flow_key(ip), proto, payload)
    flow.note(_socket("connect", SocketReason.CONNECT, Verdict.SEND, proto=proto, netns=ns.name, packet=ip,
                      source=source, dst=dst))
    walk.local_out(ns, ip, flow, rr)


def ip_protocol_deliver(walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
    """ip_protocol_deliver_rcu: UDP encapsulation sockets and userspace programs first, then
    the client socket, the listeners and the kernel's responders."""
    payload = ip.payload
    if ip.proto == IPPROTO_UDP and isinstance(payload, UDP):
        vx = vxlan_sock_lookup(ns, payload.dport)
        if vx is not None:
            vxlan_rcv(walk, ns, vx, ip, flow)
            return
        program = walk.network.udp_programs.get((ns.name, payload.dport))
        if program is not None:
            program.from_udp(walk, ns, ip, flow)
            return
    transport_rcv(walk, ns, ip, flow)


def transport_rcv(walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
    """tcp_v4_rcv, udp_rcv and icmp_rcv of the receiving namespace."""
    client = walk.client
    key = ep.flow_key(ip)
    ttl = ns.sysctl.ip_default_ttl
    payload = ip.payload
    is_echo_request = isinstance(payload, ICMP) and payload.type == ICMP_ECHO_REQUEST
    if client is not None and client.netns is ns and key == ep.reversed_key(client.key) and not is_echo_request:
        client_rcv(walk, ns, ip, flow)
        return
    if isinstance(payload, ICMP):
        if payload.type == ICMP_ECHO_REQUEST:
            reply = ep.echo_reply(ip, ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_ICMP))
            flow.end("delivered", _socket("icmp_echo", SocketReason.ECHO_ANSWER, Verdict.ANSWER, dst=ip.dst))
            respond(walk, ns, reply, "reply")
            return
        if payload.is_error and client is not None and client.netns is ns:
            errno = icmp_errno(payload.type, payload.code)
            kind = OutcomeKind.REFUSED if errno == "ECONNREFUSED" else OutcomeKind.ICMP_ERROR
            client.result = Outcome(kind, OutcomeReason.ICMP_ERROR, errno, ip.src, (payload.type, payload.code))
            flow.end("delivered", _socket("icmp_unreach", SocketReason.ICMP_REPORTED, Verdict.REPORT,
                                          type=payload.type, code=payload.code, src=ip.src))
            return
        flow.end("dropped", _socket("icmp_rcv", SocketReason.ICMP_NO_SOCKET, Verdict.DROP, icmp=payload))
        return
    if isinstance(payload, TCP):
        if ("tcp", payload.dport) in ns.listeners:
            tcp_server(walk, ns, ip, flow)
            return
        if "R" in payload.flags:
            flow.end("dropped", _socket("tcp_v4_rcv", SocketReason.RST_IGNORED, Verdict.DROP))
            return
        flow.end("delivered", _socket("tcp_v4_send_reset", SocketReason.NO_LISTENER, Verdict.RESET, port=payload.dport))
        respond(walk, ns, ep.tcp_rst(ip, ttl), "reply")
        return
    if isinstance(payload, UDP):
        if ("udp", payload.dport) in ns.listeners:
            flow.end("delivered", _socket("udp_rcv", SocketReason.UDP_ANSWER, Verdict.ANSWER, port=payload.dport,
                                          size=len(payload.payload_bytes())))
            respond(walk, ns, ep.udp_reply(ip, b"RSP", ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_UDP)), "reply")
            return
        flow.end("delivered", _socket("udp_rcv", SocketReason.UDP_NO_SOCKET, Verdict.UNREACHABLE, port=payload.dport))
        walk.send_icmp_error(ns, ip, ICMP_DEST_UNREACH, 3, flow)
        return
    flow.end("dropped", _socket("ip_protocol_deliver_rcu", SocketReason.NO_PROTOCOL, Verdict.DROP, proto=ip.proto))


def respond(walk: Walk, ns: Namespace, ip: IPv4, role: str) -> None:
    """A socket (or the kernel for it) sends an answer, as a packet of its own."""
    flow = Flow(walk, role)
    flow.skb.hash = socket_hash(ip) if ip.proto != IPPROTO_ICMP else None
    flow.note(_socket("sendmsg", SocketReason.ANSWER_SENT, Verdict.SEND, netns=ns.name, packet=ip))
    walk.local_out(ns, ip, flow)


def tcp_server(walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
    """A listener: SYN -> SYN-ACK; the handshake's ACK; data -> an answer."""
    seg = ip.payload
    assert isinstance(seg, TCP)
    ttl = ns.sysctl.ip_default_ttl
    if seg.flags == "S":
        rr = ns.route_get(ip.src, ip.dst)
        mtu = ns.devices[rr.dev].mtu if rr is not None and rr.dev in ns.devices else 1500
        flow.end("delivered", _socket("tcp_conn_request", SocketReason.SYN_ACCEPTED, Verdict.ACCEPT, port=seg.dport))
        respond(walk, ns, ep.tcp_synack(ip, min(mtu, 65535) - 40, ttl), "reply")
    elif seg.payload:
        flow.end("delivered", _socket("tcp_rcv_established", SocketReason.DATA_ANSWERED, Verdict.ANSWER,
                                      port=seg.dport, size=len(seg.payload)))
        response = ep.tcp_next(ip, "PA", b"RSP", ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_TCP) or 1)
        respond(walk, ns, response, "response")
    else:
        flow.end("delivered", _socket("tcp_rcv_state_process", SocketReason.HANDSHAKE_DONE, Verdict.ESTABLISHED,
                                      port=seg.dport))


def client_rcv(walk: Walk, ns: Namespace, ip: IPv4, flow: Flow) -> None:
    """What comes back to the socket that started the exchange."""
    client = walk.client
    assert client is not None
    payload = ip.payload
    if isinstance(payload, ICMP):
        client.result = Outcome(OutcomeKind.ANSWERED, OutcomeReason.ECHO_REPLY, peer=ip.src)
        flow.end("delivered", _socket("ping_rcv", SocketReason.ECHO_REPLY))
        return
    if isinstance(payload, UDP):
        peer = f"{ip.src}:{payload.sport}"
        client.result = Outcome(OutcomeKind.ANSWERED, OutcomeReason.UDP_REPLY, peer=peer)
        flow.end("delivered", _socket("udp_rcv", SocketReason.UDP_REPLY))
        return
    seg = payload
    assert isinstance(seg, TCP)
    peer = f"{ip.src}:{seg.sport}"
    if "R" in seg.flags:
        client.result = Outcome(OutcomeKind.REFUSED, OutcomeReason.RST, "ECONNREFUSED", peer)
        flow.end("delivered", _socket("tcp_reset", SocketReason.REFUSED, Verdict.REFUSED))
        return
    if seg.flags == "SA":
        client.result = Outcome(OutcomeKind.CONNECTED, OutcomeReason.CONNECTED, peer=peer)
        if client.payload is None:
            flow.end("delivered", _socket("tcp_rcv_synsent_state_process", SocketReason.SYNACK, Verdict.CONNECTED))
            return
        flow.end("delivered", _socket("tcp_rcv_synsent_state_process", SocketReason.SYNACK_SENDS_DATA,
                                      Verdict.CONNECTED))
        ttl = ns.sysctl.ip_default_ttl
        ack = ep.tcp_next(ip, "A", b"", ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_TCP))
        data = ep.tcp_next(ip, "PA", client.payload, ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_TCP))
        respond(walk, ns, ack, "ack")
        respond(walk, ns, data, "data")
        return
    if seg.payload:
        client.result = Outcome(OutcomeKind.RECEIVED, OutcomeReason.RECEIVED, peer=peer, size=len(seg.payload))
        flow.end("delivered", _socket("tcp_rcv_established", SocketReason.READ, Verdict.READ, data=seg.payload))
        return
    flow.end("delivered", _socket("tcp_rcv_established", SocketReason.DELIVERED))
