"""What the transport layer does with a packet addressed to this namespace, and its timers.

Kernel behaviour modelled (net/ipv4/ip_input.c `ip_protocol_deliver_rcu`; net/ipv4/raw.c
`raw_local_deliver`, `raw_icmp_error`; net/ipv4/udp.c `udp_rcv`, `__udp4_lib_err`;
net/ipv4/tcp_ipv4.c `tcp_v4_rcv`, `tcp_v4_err`, `tcp_v4_send_reset`; net/ipv4/icmp.c
`icmp_rcv`, `icmp_echo`, `icmp_unreach`, `icmp_socket_deliver`, `icmp_err`;
net/ipv4/ip_sockglue.c `ip_icmp_error`):
- raw sockets get a copy first (a raw TCP socket every TCP segment, a raw ICMP socket the
  echo replies to its own identifiers);
- TCP: the connection of the 4-tuple, else a listener takes a SYN, else RST (a segment with
  ACK gets a bare RST at its ACK number; an RST gets nothing);
- UDP: the connected socket of the 4-tuple, else the socket bound to the port, else ICMP port
  unreachable;
- ICMP: an echo request is answered by the kernel itself (not when it was sent to a
  broadcast or multicast address, net.ipv4.icmp_echo_ignore_broadcasts); an error goes to
  the socket that sent the packet it quotes (found by the quoted header), as the errno
  `icmp_err_convert` gives: a socket with IP_RECVERR is told every error, a connected UDP
  socket without it only the "hard" ones, a TCP connection still opening fails with it, an
  established one keeps it as its soft error; "fragmentation needed" lowers the path MTU
  (pmtu.py) and a TCP connection's MSS;
- the programs read what arrived once nothing is in flight (the kernel's receive path and its
  own answers, an ACK, run before the woken process); then held ACKs go out; then the
  earliest timer fires (a program's, a retransmission).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Callable

from .. import endpoints as ep
from ..decision import Decision, RouteReason, SocketReason, Subsystem, Verdict
from ..packet import (
    ICMP, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP,
    IPv4, ip_str,
)
from ..programs.events import (
    DatagramReceived, EchoReplyReceived, Event, Probe, SegmentReceived, SocketError, TimerFired,
)
from ..programs.socket_errors import ICMP_DEST_UNREACH as _UNREACH, icmp_errno
from ..skb import Flow
from .actions import collect, resume, run
from .inet import is_multicast, output_route, probe_of, socket_decision
from .layer import Process, Sock, SocketLayer
from .servers import start_server
from .tcp_sock import delayed_acks, events_of, mtu_reduced, no_socket_reason, rto_fired, tcp_accept, tcp_receive, transmit

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..netns import Namespace

ICMP_FRAG_NEEDED = 4
ICMP_PARAMETERPROB = 12
# icmp_err_convert[].fatal: the "hard" destination-unreachable codes (net/ipv4/icmp.c)
HARD_UNREACH = frozenset({2, 3, 6, 7, 8, 9, 10, 13, 14, 15})
PROTO_NAME = {IPPROTO_UDP: "udp", IPPROTO_TCP: "tcp", IPPROTO_ICMP: "icmp"}


def ip_protocol_deliver(k: Kernel, ns: Namespace, ip: IPv4, flow: Flow) -> None:
    """ip_protocol_deliver_rcu: UDP encapsulation sockets and userspace programs holding a
    port outside the socket layer (VXLAN's, flanneld's) first, then the socket layer."""
    payload = ip.payload
    if ip.proto == IPPROTO_UDP and isinstance(payload, UDP):
        owner = k.udp_sock_lookup(ns, payload.dport)
        if owner is not None:
            owner.udp_rcv(k, ns, ip, flow)
            return
    transport_rcv(k, ns, ip, flow)


def transport_rcv(k: Kernel, ns: Namespace, ip: IPv4, flow: Flow) -> None:
    """tcp_v4_rcv, udp_rcv and icmp_rcv of the receiving namespace."""
    payload = ip.payload
    if isinstance(payload, TCP):
        tcp_v4_rcv(k, ns, ip, payload, flow)
    elif isinstance(payload, UDP):
        udp_rcv(k, ns, ip, payload, flow)
    elif isinstance(payload, ICMP):
        icmp_rcv(k, ns, ip, payload, flow)
    else:
        flow.end("dropped", socket_decision("ip_protocol_deliver_rcu", SocketReason.NO_PROTOCOL, Verdict.DROP,
                                            proto=ip.proto))


def kernel_respond(k: Kernel, ns: Namespace, ip: IPv4, role: str) -> None:
    """The kernel answers for no socket (an echo reply, an RST), as a packet of its own."""
    flow = k.new_flow(role)
    flow.note(socket_decision("sendmsg", SocketReason.ANSWER_SENT, Verdict.SEND, netns=ns.name, packet=ip))
    k.ip_local_out(ns, ip, flow)


def deliver(k: Kernel, proc: Process, events: list[Event], sock: Sock | None = None,
            finish: Callable[[bool], None] | None = None) -> None:
    """The program reads `events`. A program runs after the kernel's receive path, when nothing
    is in flight (the softirq runs before the woken process does), so its reaction follows
    what the kernel already sent; a oneshot exchange reads at once (Cluster.send's traces).
    `finish(answered)` ends the delivering packet once it is known whether the program sent
    anything on `sock` in reply."""
    if proc.oneshot:
        mark = sock.answered if sock is not None else 0
        if events:
            run(k, proc, collect(proc, events))
        if finish is not None:
            finish(sock is not None and sock.answered > mark)
    elif events:
        k.state(SocketLayer).ready.append((proc, events, sock, finish))
    elif finish is not None:
        finish(False)


def run_ready(k: Kernel) -> bool:
    """The programs woken by what arrived read it and react, in the order they were woken."""
    layer = k.state(SocketLayer)
    if not layer.ready:
        return False
    batch = list(layer.ready)              # what they queue now waits for the next quiet moment
    layer.ready.clear()
    for proc, events, sock, finish in batch:
        mark = sock.answered if sock is not None else 0
        run(k, proc, collect(proc, events))
        if finish is not None:
            finish(sock is not None and sock.answered > mark)
    return True


# ------------------------------------------------------------------------------ TCP

def tcp_v4_rcv(k: Kernel, ns: Namespace, ip: IPv4, seg: TCP, flow: Flow) -> None:
    layer = k.state(SocketLayer)
    raws = layer.raw.get(ns.name)
    if raws:
        for raw in [s for s in raws if s.kind == "raw-tcp" and not s.closed]:
            deliver(k, raw.proc, [SegmentReceived(raw.name, ip.src, seg, ip.ttl, k.now_us())])
    sock = layer.tcp_lookup(ns.name, ip.dst, seg.dport, ip.src, seg.sport)
    if sock is not None and sock.conn is not None:
        tcp_deliver(k, sock, ip, seg, flow)
        return
    listener = layer.tcp_listen.get((ns.name, seg.dport))
    if listener is None and start_server(k, ns, "tcp", seg.dport):
        listener = layer.tcp_listen.get((ns.name, seg.dport))
    if listener is not None and seg.flags == "S" and not listener.closed:
        flow.end("delivered", socket_decision("tcp_conn_request", SocketReason.SYN_ACCEPTED, Verdict.ACCEPT,
                                              port=seg.dport))
        tcp_accept(k, listener, ip, seg)
        return
    if "R" in seg.flags:
        flow.end("dropped", socket_decision("tcp_v4_rcv", SocketReason.RST_IGNORED, Verdict.DROP))
        return
    flow.end("delivered", socket_decision("tcp_v4_send_reset", no_socket_reason(seg), Verdict.RESET, port=seg.dport))
    kernel_respond(k, ns, ep.tcp_rst(ip, ns.sysctl.ip_default_ttl), "reply")


def tcp_deliver(k: Kernel, sock: Sock, ip: IPv4, seg: TCP, flow: Flow) -> None:
    """The connection takes the segment; the kernel's own answer (an ACK) goes out, then the
    program reacts to what it read. A oneshot exchange that has its answer sends nothing more."""
    was, out = tcp_receive(k, sock, seg)
    proc = sock.proc
    events = events_of(k, sock, was, out)
    if not proc.oneshot:
        if out.segments and not sock.muted:
            transmit(k, sock, out)
        if proc.blocked is sock:
            resume(k, sock)
        deliver(k, proc, events, sock,
                lambda answered: flow.end("delivered", tcp_decision(sock, was, seg, out, answered, False)))
        return
    actions = collect(proc, events)
    stopped = proc.program.done
    if stopped:
        for each in proc.socks.values():
            each.muted = True
    if out.segments and not sock.muted:
        transmit(k, sock, out)
    mark = sock.answered
    run(k, proc, actions)
    flow.end("delivered", tcp_decision(sock, was, seg, out, sock.answered > mark, stopped))


def tcp_decision(sock: Sock, was: str, seg: TCP, out, answered: bool, stopped: bool) -> Decision:
    port = sock.lport
    if was == "SYN_SENT":
        if out.error:
            return socket_decision("tcp_reset", SocketReason.REFUSED, Verdict.REFUSED)
        if out.connected:
            if stopped:
                return socket_decision("tcp_rcv_synsent_state_process", SocketReason.SYNACK, Verdict.CONNECTED)
            reason = SocketReason.SYNACK_SENDS_DATA if answered else SocketReason.SYNACK_ACKED
            return socket_decision("tcp_rcv_synsent_state_process", reason, Verdict.CONNECTED)
    if out.error:
        return socket_decision("tcp_reset", SocketReason.RESET, Verdict.DELIVER, port=port)
    if out.data:
        if sock.proc.oneshot and not sock.server:
            return socket_decision("tcp_rcv_established", SocketReason.READ, Verdict.READ, data=out.data)
        reason = SocketReason.DATA_ANSWERED if answered else SocketReason.STREAM_READ
        return socket_decision("tcp_rcv_established", reason, Verdict.ANSWER if answered else Verdict.READ,
                               port=port, size=len(out.data))
    if was == "SYN_RECV" and out.connected:
        return socket_decision("tcp_rcv_state_process", SocketReason.HANDSHAKE_DONE, Verdict.ESTABLISHED, port=port)
    if out.eof:
        return socket_decision("tcp_fin", SocketReason.FIN, Verdict.DELIVER, port=port)
    return socket_decision("tcp_rcv_established", SocketReason.DELIVERED)


# ------------------------------------------------------------------------------ UDP

def udp_rcv(k: Kernel, ns: Namespace, ip: IPv4, dgram: UDP, flow: Flow) -> None:
    layer = k.state(SocketLayer)
    data = dgram.payload_bytes()
    sock = layer.udp_lookup(ns.name, dgram.dport, ip.src, dgram.sport, ip.dst)
    if sock is None and start_server(k, ns, "udp", dgram.dport):
        sock = layer.udp_lookup(ns.name, dgram.dport, ip.src, dgram.sport, ip.dst)
    if sock is None:
        flow.end("delivered", socket_decision("udp_rcv", SocketReason.UDP_NO_SOCKET, Verdict.UNREACHABLE,
                                              port=dgram.dport))
        k.icmp_send(ns, ip, _UNREACH, 3, flow)
        return
    def finish(answered: bool) -> None:
        if sock.raddr is not None:
            flow.end("delivered", socket_decision("udp_rcv", SocketReason.UDP_REPLY))
        elif answered:
            flow.end("delivered", socket_decision("udp_rcv", SocketReason.UDP_ANSWER, Verdict.ANSWER,
                                                  port=dgram.dport, size=len(data)))
        else:
            flow.end("delivered", socket_decision("udp_rcv", SocketReason.UDP_DELIVERED, Verdict.DELIVER,
                                                  port=dgram.dport, size=len(data)))

    deliver(k, sock.proc, [DatagramReceived(sock.name, data, ip.src, dgram.sport, k.now_us())], sock, finish)


# ------------------------------------------------------------------------------ ICMP

def addressed_to_many(ns: Namespace, dst: str) -> bool:
    """A broadcast or multicast destination (the input route's RTCF_BROADCAST / MULTICAST)."""
    if dst == "255.255.255.255" or is_multicast(dst):
        return True
    rr = ns.route_get(dst)
    return rr is not None and rr.route.type == "broadcast"


def icmp_rcv(k: Kernel, ns: Namespace, ip: IPv4, icmp: ICMP, flow: Flow) -> None:
    layer = k.state(SocketLayer)
    if icmp.type == ICMP_ECHO_REQUEST:
        if ns.sysctl.icmp_echo_ignore_broadcasts and addressed_to_many(ns, ip.dst):
            flow.end("dropped", socket_decision("icmp_echo", SocketReason.ECHO_IGNORED, Verdict.DROP, dst=ip.dst))
            return
        reply = ep.echo_reply(ip, ns.sysctl.ip_default_ttl, ns.ip_id(ip.dst, ip.src, IPPROTO_ICMP))
        flow.end("delivered", socket_decision("icmp_echo", SocketReason.ECHO_ANSWER, Verdict.ANSWER, dst=ip.dst))
        kernel_respond(k, ns, reply, "reply")
        return
    if icmp.type == ICMP_ECHO_REPLY:
        socks = [s for s in layer.raw.get(ns.name, ()) if s.kind == "icmp" and not s.closed and icmp.id in s.idents]
        if not socks:
            flow.end("dropped", socket_decision("icmp_rcv", SocketReason.ICMP_NO_SOCKET, Verdict.DROP, icmp=icmp))
            return
        for sock in socks:
            deliver(k, sock.proc, [EchoReplyReceived(sock.name, ip.src, icmp.id, icmp.seq, icmp.length(), ip.ttl,
                                                     icmp.data, k.now_us())])
        flow.end("delivered", socket_decision("ping_rcv", SocketReason.ECHO_REPLY))
        return
    if icmp.type in (ICMP_DEST_UNREACH, 11, ICMP_PARAMETERPROB):
        icmp_error(k, ns, ip, icmp, flow)
        return
    flow.end("dropped", socket_decision("icmp_rcv", SocketReason.ICMP_NO_SOCKET, Verdict.DROP, icmp=icmp))


def quoted_probe(data: bytes) -> tuple[str, int, Probe] | None:
    """The header an ICMP error quotes: (its source, its protocol, the probe it describes)."""
    if len(data) < 20:
        return None
    ihl = (data[0] & 0x0F) * 4
    ttl, proto = data[8], data[9]
    src, dst = ip_str(data[12:16]), ip_str(data[16:20])
    offset = struct.unpack("!H", data[6:8])[0] & 0x1FFF
    body = data[ihl:ihl + 8] if not offset else b""
    name = PROTO_NAME.get(proto, str(proto))
    if proto in (IPPROTO_TCP, IPPROTO_UDP) and len(body) >= 4:
        sport, dport = struct.unpack("!HH", body[:4])
        return src, proto, Probe(dst, name, sport, dport, ttl=ttl)
    if proto == IPPROTO_ICMP and len(body) >= 8:
        _type, _code, _csum, ident, seq = struct.unpack("!BBHHH", body)
        return src, proto, Probe(dst, name, ident=ident, seq=seq, ttl=ttl)
    return src, proto, Probe(dst, name, ttl=ttl)


def error_targets(layer: SocketLayer, ns: Namespace, src: str, proto: int, probe: Probe) -> list[Sock]:
    """icmp_socket_deliver: the sockets that sent the quoted packet (its err handler's lookup)."""
    raws = [s for s in layer.raw.get(ns.name, ()) if not s.closed]
    if proto == IPPROTO_UDP:
        sock = layer.udp_lookup(ns.name, probe.sport, probe.dst, probe.dport, src)
        return [sock] if sock is not None else []
    if proto == IPPROTO_TCP:
        found = [s for s in raws if s.kind == "raw-tcp"]
        conn = layer.tcp_lookup(ns.name, src, probe.sport, probe.dst, probe.dport)
        return ([conn] if conn is not None else []) + found
    if proto == IPPROTO_ICMP:
        return [s for s in raws if s.kind == "icmp" and probe.ident in s.idents]
    return []


def icmp_error(k: Kernel, ns: Namespace, ip: IPv4, icmp: ICMP, flow: Flow) -> None:
    """icmp_unreach and the protocols' err handlers."""
    layer = k.state(SocketLayer)
    found = quoted_probe(icmp.data)
    if found is None:
        flow.end("dropped", socket_decision("icmp_rcv", SocketReason.ICMP_NO_SOCKET, Verdict.DROP, icmp=icmp))
        return
    src, proto, probe = found
    frag_needed = icmp.type == ICMP_DEST_UNREACH and icmp.code == ICMP_FRAG_NEEDED
    info = icmp.rest & 0xFFFF if frag_needed else (icmp.rest >> 24 if icmp.type == ICMP_PARAMETERPROB else 0)
    targets = error_targets(layer, ns, src, proto, probe)
    if frag_needed and (targets or proto == IPPROTO_ICMP):
        learn_pmtu(k, ns, probe.dst, info, flow)
    errno = icmp_errno(icmp.type, icmp.code)
    hard = icmp.type == ICMP_PARAMETERPROB or (icmp.type == ICMP_DEST_UNREACH and icmp.code in HARD_UNREACH)
    told = False
    for sock in targets:
        event = SocketError(sock.name, errno, "icmp", ip.src, icmp.type, icmp.code, info, probe, k.now_us())
        if sock.kind == "tcp" and sock.conn is not None:
            if frag_needed:
                mss = mtu_reduced(k, sock, info)
                flow.note(socket_decision("tcp_v4_mtu_reduced", SocketReason.MSS_REDUCED, Verdict.DELIVER,
                                          mtu=info, mss=mss, port=sock.lport))
                continue
            if sock.conn.state == "SYN_RECV":
                # tcp_req_err: a connection not yet accepted is dropped on a hard error, else
                # left alone; no program knows of it yet
                if hard:
                    sock.conn.state = "CLOSED"
                    layer.drop_tcp(sock)
                continue
            if sock.conn.state == "SYN_SENT":
                sock.conn.state = "CLOSED"
                layer.drop_tcp(sock)
                if not sock.closed and not sock.muted:
                    deliver(k, sock.proc, [event])
                    told = True
            elif sock.recverr and not sock.closed and not sock.muted:
                deliver(k, sock.proc, [event])
                told = True
            else:
                sock.soft_err = errno
            continue
        if sock.closed or sock.muted:
            continue
        if sock.kind == "udp" and frag_needed:
            if sock.options.pmtudisc in ("dont", "omit"):
                continue
            hard = True
        connected = sock.raddr is not None
        if sock.recverr or sock.kind == "icmp" or (hard and connected):
            deliver(k, sock.proc, [event])
            told = True
    if told:
        flow.end("delivered", socket_decision("icmp_unreach", SocketReason.ICMP_REPORTED, Verdict.REPORT,
                                              type=icmp.type, code=icmp.code, src=ip.src))
    elif targets:
        flow.end("delivered", socket_decision("icmp_unreach", SocketReason.ICMP_SOFT, Verdict.DELIVER,
                                              type=icmp.type, code=icmp.code, src=ip.src))
    else:
        flow.end("dropped", socket_decision("icmp_rcv", SocketReason.ICMP_NO_SOCKET, Verdict.DROP, icmp=icmp))


def learn_pmtu(k: Kernel, ns: Namespace, dst: str, mtu: int, flow: Flow) -> None:
    """__ip_rt_update_pmtu: a route exception for `dst` (pmtu.py)."""
    if ns.sysctl.ip_no_pmtu_disc or not mtu:
        return
    rr = output_route(ns, dst)
    if isinstance(rr, str):
        return
    sysctl = ns.sysctl
    current = ns.path_mtu(rr)
    made = ns.route_cache.update(rr.dst, mtu, current, k.now_us(), sysctl.mtu_expires, sysctl.min_pmtu)
    if made is not None:
        flow.note(Decision(Subsystem.ROUTE, "__ip_rt_update_pmtu", RouteReason.PMTU_LEARNED, Verdict.DELIVER,
                           dst=rr.dst, mtu=made.mtu, was=current, expires=sysctl.mtu_expires, locked=made.locked))


# ------------------------------------------------------------------------------ send errors and timers

def sock_send_error(k: Kernel, ns: Namespace, flow: Flow, errno: str) -> None:
    """The local stack refused a packet a socket sent, while its send call was still running
    (a packet that waited for ARP went out after the call returned: nobody is told). UDP and
    raw sockets ignore ENOBUFS without IP_RECVERR (udp_send_skb); TCP keeps the error as its
    soft error and retransmits."""
    layer = k.state(SocketLayer)
    found = layer.sent_by.get(flow.packet_id)
    if found is None:
        return
    sock, ip = found
    if sock.ns is not ns or layer.sending is not sock or sock.closed or sock.muted:
        return
    if sock.kind == "tcp" and not sock.proc.oneshot:
        sock.soft_err = errno
        return
    if errno == "ENOBUFS" and not sock.recverr:
        return
    info = ns.path_mtu(rr) if errno == "EMSGSIZE" and (rr := ns.route_get(ip.dst)) is not None else 0
    sock.proc.inbox.append(SocketError(sock.name, errno, "local", sock.laddr or "", info=info, probe=probe_of(ip),
                                       at=k.now_us()))
    if not sock.proc.running:
        run(k, sock.proc, [])


def sock_timers(k: Kernel) -> bool:
    """When nothing is in flight: held ACKs go out; else the earliest timer fires (the clock
    jumps to it). Whether anything happened. An exchange walk has none (SocketLayer.no_timers)."""
    if run_ready(k):
        return True
    layer = k.state(SocketLayer)
    if layer.no_timers:
        return False
    if delayed_acks(k):
        return True
    found = layer.next_timer()
    if found is None:
        return False
    due, kind, owner, name = found
    k.advance_clock(due)
    if kind == "program":
        assert isinstance(owner, Process)
        run(k, owner, collect(owner, [TimerFired(name, k.now_us())]))
    else:
        assert isinstance(owner, Sock)
        events = rto_fired(k, owner)
        if owner.proc.blocked is owner:
            resume(k, owner)
        if events:
            run(k, owner.proc, collect(owner.proc, events))
    return True
