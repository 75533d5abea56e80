"""Comparing a DNS exchange with the kernel's, field by field, but for what a client's clock
and random number generator decide (tests/test_lab_dns.py, the `dns` lab family).

- A DNS message is compared whole but for its id and its EDNS cookie's bytes (their length is
  kept); the ids are compared by rule instead: `id_pattern` numbers each message's query in the
  order its id first appeared, so "A and AAAA on one socket, two ids, answers echo them" is
  the same pattern on both sides.
- A client's ephemeral port is compared by order of appearance: one port per socket, the same
  at every hop.
- TCP sequence numbers and the timestamp option are left out (random); an ICMP error's quoted
  IP id and checksum likewise.
- IGMPv3 membership reports (224.0.0.22), sent on the kernel's own timer by any interface that
  joined a group, are left out: netsim models no IGMP.
- ARP is compared as a set per capture point: a flood's copies leave in the bridge's port order.
"""

from __future__ import annotations

import re
from typing import Any

from ..packet import ARP, ICMP, TCP, UDP, Ethernet, tcp_options
from ..programs.dns import EDNS0_COOKIE, DnsFormatError, Message, tcp_unframe

TCPOPT_TIMESTAMP = 8
IPPROTO_IGMP = 2
DNS_PORT = 53
VXLAN_PORT = 8472


def dns_messages(hops: Any) -> list[Message]:
    """Every DNS message in the hops' UDP datagrams and TCP streams (each message once per
    capture point), in hop order."""
    out = []
    for h in hops:
        ip = h.ip
        if ip is None or not isinstance(ip.payload, (UDP, TCP)) or DNS_PORT not in (ip.payload.sport, ip.payload.dport):
            continue
        data = ip.payload.payload
        if not isinstance(data, bytes) or not data:
            continue
        raw = [data] if isinstance(ip.payload, UDP) else tcp_unframe(data)[0]
        out += [Message.from_bytes(r) for r in raw]
    return out


def at(trace: Any, where: str, direction: str) -> list[Any]:
    """The trace's hops at one capture point, in one direction."""
    return [h for h in trace.hops if h.where == where and h.direction == direction]


def cookie(m: Message) -> bytes | None:
    """The EDNS cookie option's bytes, if the message has one."""
    edns = m.edns
    if edns is None:
        return None
    found = [o.data for o in edns.options if o.code == EDNS0_COOKIE]
    return found[0] if found else None


def dns_shape(m: Message) -> tuple:
    """A DNS message but its id and its cookie's bytes (their length kept)."""
    edns = m.edns
    ed = None if edns is None else (edns.udp_size, edns.do, edns.version,
                                     tuple((o.code, len(o.data) if o.code == EDNS0_COOKIE else o.data)
                                           for o in edns.options))
    return (m.qr, m.opcode, m.aa, m.tc, m.rd, m.ra, m.ad, m.cd, m.rcode, m.questions, m.answers, m.authority,
            tuple(rr for rr in m.additional if rr.type != 41), ed)


def frame_row(h: Any, ports: dict[int, str]) -> tuple:
    """One IP frame at a capture point, the client's ephemeral port as its order of appearance."""
    eth = h.frame if isinstance(h.frame, Ethernet) else None
    ip = h.ip
    head = ((eth.src, eth.dst) if eth is not None else None, ip.src, ip.dst, ip.ttl, ip.df, ip.proto, ip.length())
    l4 = ip.payload
    if isinstance(l4, (UDP, TCP)):
        def port(p: int) -> object:
            return p if p in (DNS_PORT, VXLAN_PORT) else ports.setdefault(p, f"eph{len(ports)}")
        body: tuple = (port(l4.sport), port(l4.dport))
        if isinstance(l4, TCP):
            body += (l4.flags, l4.window, tuple((o.kind, o.values) for o in tcp_options(l4.options)
                                                if o.kind != TCPOPT_TIMESTAMP))
        data = l4.payload
        if isinstance(data, bytes) and data:
            try:
                msgs = [data] if isinstance(l4, UDP) else tcp_unframe(data)[0]
                body += tuple(dns_shape(Message.from_bytes(r)) for r in msgs)
            except DnsFormatError:
                body += (len(data),)
        elif data is not None and not isinstance(data, bytes):
            body += (repr(type(data).__name__),)
        return head + body
    if isinstance(l4, ICMP):
        data = l4.data
        if l4.type in (3, 11) and len(data) >= 20:      # an error quotes a packet: its IP id (random) and checksum
            data = data[:4] + b"ID" + data[6:10] + b"CK" + data[12:]
        return head + (l4.type, l4.code, l4.rest, data)
    return head


def by_capture_point(trace: Any) -> dict[tuple[str, str], list[tuple]]:
    """Each capture point's IP frames as frame_row()s, in order; a VXLAN datagram as its outer
    addresses, TTL and length and its inner addresses (the inner frame is compared at the
    flannel.1 capture points)."""
    ports: dict[int, str] = {}
    out: dict[tuple[str, str], list[tuple]] = {}
    for h in trace.hops:
        if h.ip is None or h.ip.proto == IPPROTO_IGMP:
            continue
        if isinstance(h.ip.payload, UDP) and h.ip.payload.dport == VXLAN_PORT:
            inner = h.inner_ip
            out.setdefault((h.where, h.direction), []).append(
                ("vxlan", h.ip.src, h.ip.dst, h.ip.ttl, h.ip.length(),
                 inner.src if inner else None, inner.dst if inner else None))
            continue
        out.setdefault((h.where, h.direction), []).append(frame_row(h, ports))
    return out


def arp_set(trace: Any) -> list[tuple]:
    """Every ARP frame as (where, direction, op, psrc, pdst, eth src, eth dst), sorted."""
    rows = []
    for h in trace.hops:
        eth = h.frame
        if isinstance(eth, Ethernet) and isinstance(eth.payload, ARP):
            a = eth.payload
            rows.append((h.where, h.direction, a.op, a.psrc, a.pdst, eth.src, eth.dst))
    return sorted(rows)


def id_pattern(messages: list[Message]) -> list[int]:
    """Each message's query as the order in which its id first appeared."""
    seen: dict[int, int] = {}
    return [seen.setdefault(m.id, len(seen)) for m in messages]


def without_random(text: str) -> str:
    """dig's output without its query id, cookie, query time and date."""
    text = re.sub(r"id: \d+", "id: ID", text)
    text = re.sub(r"COOKIE: [0-9a-f]+", "COOKIE: C", text)
    text = re.sub(r"Query time: \d+ msec", "Query time: T msec", text)
    return re.sub(r"WHEN: .*", "WHEN: W", text)


def walk_differences(kernel: Any, model: Any) -> list[str]:
    """Where two DNS exchanges differ (an empty list: the same walk by the rules above)."""
    k, m = by_capture_point(kernel), by_capture_point(model)
    out = [f"capture point {p} only in the {'kernel' if p in k else 'model'}" for p in sorted(set(k) ^ set(m))]
    for point in sorted(set(k) & set(m)):
        if k[point] != m[point]:
            out.append(f"{point[0]} {point[1]}: kernel {k[point]!r}, model {m[point]!r}")
    if arp_set(kernel) != arp_set(model):
        out.append(f"ARP: kernel {arp_set(kernel)!r}, model {arp_set(model)!r}")
    return out
