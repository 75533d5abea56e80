"""What sockets and the kernel's own responders put on the wire.

- ICMP echo: requests carry 56 bytes of `ping` data with DF set and a rising IP ID; the kernel
  answers with an echo reply with DF clear (`icmp_reply` uses IP_PMTUDISC_DONT).
- TCP (Linux defaults): a SYN with MSS, SACK permitted, timestamps, NOP, window scale 10; a
  SYN-ACK from the listener with IP ID 0 and DF; when nothing listens, RST,ACK acknowledging
  what a segment without ACK occupied, or a bare RST at the ACK number of one with ACK.
- UDP: a connected client socket sends with DF and a rising IP ID; the server answers from an
  unconnected socket, whose DF packets take the hashed per-destination IP ID (`ip_select_ident`
  uses the socket's own counter only for a connected socket; seen non-zero on Linux 6.18 in the
  lab, tests/test_lab.py); a datagram to a closed port gets ICMP port unreachable.
- ICMP errors: TOS 0xc0, DF clear, the offending header and as much of its payload as fits
  in 576 bytes (`icmp_send`).
Ephemeral ports, initial sequence numbers and timestamps are derived from stable hashes.
"""

from __future__ import annotations

import struct
from dataclasses import replace

from .addresses import stable_hash
from .packet import (
    ICMP, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
    IPv4, TCP, UDP,
)

PING_DATA = bytes(16) + bytes(range(0x10, 0x38))    # struct timeval (zeroed) + iputils' pattern
PING_ID = 0x4E53                                     # "NS": a fixed stand-in for ping's pid
# tcp_select_initial_window: ilog2(max(tcp_rmem[2], rmem_max)) - 15. Since Linux 6.16
# tcp_rmem[2] defaults to 32 MiB, so 10 (the reference kernel, 6.18, offered 10; kernels
# with the older 6 MiB default offer 7).
WSCALE = 10


def tcp_options(mss: int, tsval: int, tsecr: int) -> bytes:
    """MSS, SACK permitted, timestamps, NOP, window scale: Linux's SYN option order."""
    return (struct.pack("!BBH", 2, 4, mss) + b"\x04\x02" + struct.pack("!BBII", 8, 10, tsval, tsecr)
            + b"\x01" + struct.pack("!BBB", 3, 3, WSCALE))


def ts_option(tsval: int, tsecr: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)


def parse_tsval(options: bytes) -> int:
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        length = options[i + 1]
        if kind == 8 and length == 10:
            return struct.unpack("!I", options[i + 2:i + 6])[0]
        i += max(length, 2)
    return 0


def initial_window(mss: int) -> int:
    """`tcp_select_initial_window`: the largest multiple of the MSS not above 65535."""
    return (65535 // mss) * mss


def echo_request(src: str, dst: str, ident: int, seq: int = 1, ttl: int = 64, ip_id: int = 0) -> IPv4:
    return IPv4(src, dst, IPPROTO_ICMP, ICMP(ICMP_ECHO_REQUEST, 0, (ident << 16) | seq, PING_DATA),
                ttl=ttl, id=ip_id, df=True)


def echo_reply(request: IPv4, ttl: int, ip_id: int) -> IPv4:
    icmp = request.payload
    assert isinstance(icmp, ICMP)
    return IPv4(request.dst, request.src, IPPROTO_ICMP, ICMP(ICMP_ECHO_REPLY, 0, icmp.rest, icmp.data),
                ttl=ttl, id=ip_id, df=False, tos=request.tos)


def icmp_error(offender: IPv4, src: str, itype: int, code: int, ttl: int, ip_id: int, rest: int = 0) -> IPv4:
    """`icmp_send`: quote the offending packet's header and up to 576 bytes in all."""
    quoted = offender.to_bytes()[: 576 - 28]
    return IPv4(src, offender.src, IPPROTO_ICMP, ICMP(itype, code, rest, quoted),
                ttl=ttl, id=ip_id, df=False, tos=(offender.tos & 0x1E) | 0xC0)


def frag_needed(offender: IPv4, src: str, mtu: int, ttl: int, ip_id: int) -> IPv4:
    return icmp_error(offender, src, ICMP_DEST_UNREACH, 4, ttl, ip_id, rest=mtu & 0xFFFF)


def tcp_syn(src: str, dst: str, sport: int, dport: int, mss: int, ttl: int, ip_id: int) -> IPv4:
    isn = stable_hash("isn", src, dst, sport, dport)
    tsval = stable_hash("ts", src, dst, sport, dport)
    seg = TCP(sport, dport, isn, 0, "S", initial_window(mss), tcp_options(mss, tsval, 0))
    return IPv4(src, dst, IPPROTO_TCP, seg, ttl=ttl, id=ip_id, df=True)


def tcp_synack(syn: IPv4, mss: int, ttl: int) -> IPv4:
    seg = syn.payload
    assert isinstance(seg, TCP)
    isn = stable_hash("isn", syn.dst, syn.src, seg.dport, seg.sport)
    tsval = stable_hash("ts", syn.dst, syn.src, seg.dport, seg.sport)
    options = tcp_options(mss, tsval, parse_tsval(seg.options))
    reply = TCP(seg.dport, seg.sport, isn, (seg.seq + 1) & 0xFFFFFFFF, "SA", initial_window(mss - 12), options)
    return IPv4(syn.dst, syn.src, IPPROTO_TCP, reply, ttl=ttl, id=0, df=True)


def tcp_rst(segment_ip: IPv4, ttl: int) -> IPv4:
    """`tcp_v4_send_reset` (net/ipv4/tcp_ipv4.c) for a segment no socket takes: a segment
    carrying ACK gets a bare RST whose sequence number is that ACK; any other gets RST,ACK
    with sequence 0, acknowledging everything the segment occupied: its payload plus one
    for SYN and one for FIN (`seq + syn + fin + skb->len - doff * 4`)."""
    seg = segment_ip.payload
    assert isinstance(seg, TCP)
    if "A" in seg.flags:
        rst = TCP(seg.dport, seg.sport, seg.ack, 0, "R", 0)
    else:
        occupied = len(seg.payload) + ("S" in seg.flags) + ("F" in seg.flags)
        rst = TCP(seg.dport, seg.sport, 0, (seg.seq + occupied) & 0xFFFFFFFF, "RA", 0)
    return IPv4(segment_ip.dst, segment_ip.src, IPPROTO_TCP, rst, ttl=ttl, id=0, df=True)


def tcp_next(received: IPv4, flags: str, payload: bytes, ttl: int, ip_id: int, window: int = 502) -> IPv4:
    """The next segment of an established connection, answering `received`."""
    seg = received.payload
    assert isinstance(seg, TCP)
    advance = len(seg.payload) + (1 if ("S" in seg.flags or "F" in seg.flags) else 0)
    tsval = (parse_tsval(seg.options) + 1) & 0xFFFFFFFF
    out = TCP(seg.dport, seg.sport, seg.ack, (seg.seq + advance) & 0xFFFFFFFF, flags, window,
              ts_option(stable_hash("ts", received.dst, received.src, seg.dport, seg.sport) + 1, tsval), payload)
    return IPv4(received.dst, received.src, IPPROTO_TCP, out, ttl=ttl, id=ip_id, df=True)


def udp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes, ttl: int, ip_id: int) -> IPv4:
    return IPv4(src, dst, IPPROTO_UDP, UDP(sport, dport, payload), ttl=ttl, id=ip_id, df=True)


def udp_reply(request: IPv4, payload: bytes, ttl: int, ip_id: int) -> IPv4:
    dgram = request.payload
    assert isinstance(dgram, UDP)
    return IPv4(request.dst, request.src, IPPROTO_UDP, UDP(dgram.dport, dgram.sport, payload), ttl=ttl, id=ip_id,
                df=True)


def flow_key(ip: IPv4) -> tuple:
    """The five-tuple that identifies a socket's flow (ICMP echo: the echo id)."""
    p = ip.payload
    if isinstance(p, (TCP, UDP)):
        return (ip.proto, ip.src, ip.dst, p.sport, p.dport)
    if isinstance(p, ICMP):
        return (ip.proto, ip.src, ip.dst, p.id, 0)
    return (ip.proto, ip.src, ip.dst, 0, 0)


def reversed_key(key: tuple) -> tuple:
    proto, src, dst, a, b = key
    if proto == IPPROTO_ICMP:
        return (proto, dst, src, a, 0)
    return (proto, dst, src, b, a)
