"""A tool's or a program's walk (dig, glibc's resolver) lined up with the kernel's, capture point by
capture point.

`compare()` lines up one exchange by role (request, reply); a resolver's walk is several
exchanges (a socket per name, an A and an AAAA query on each), so `walk_differences(model,
kernel)` compares it per capture point instead:

- every IP frame at every capture point (netns, device, direction), in order per capture
  point: MACs, addresses, TTL, DF, length, protocol, UDP and TCP ports (the client's ephemeral
  ports by rule: each numbered by its first appearance, so one port per socket, the same at
  every hop), TCP flags, window and options (sequence numbers and timestamps ignored: random),
  ICMP type, code and data (an error's quoted IP ID and checksum left out), and each DNS message
  but its ID and cookie (compare.dns_shape);
- the IDs and cookies of the DNS messages one capture point saw, by compare's rule (kept or
  changed from message to message as in the model);
- VXLAN frames by their outer addresses, TTL and length and the inner addresses;
- ARP: the same set of requests and replies at every capture point (a flood's copies leave in
  the bridge's port order);
- left out: IGMP (the kernel's membership reports on its own timer; netsim models no IGMP).
"""

from __future__ import annotations

from ..packet import ARP, ICMP, TCP, UDP, Ethernet, tcp_options
from ..trace import Trace
from .compare import DNS_PORT, dns_messages, dns_random_differences, dns_shape

TCPOPT_TIMESTAMP = 8
IPPROTO_IGMP = 2
VXLAN_PORT = 8472
SERVER_PORTS = (DNS_PORT, VXLAN_PORT)


def _frame_row(h, ports: dict[int, str]) -> tuple:
    """One IP frame at a capture point, a client's ephemeral port as its order of appearance."""
    eth = h.frame if isinstance(h.frame, Ethernet) else None
    ip = h.ip
    head = ((eth.src, eth.dst) if eth is not None else None, ip.src, ip.dst, ip.ttl, ip.df, ip.proto, ip.length())
    l4 = ip.payload
    if isinstance(l4, (UDP, TCP)):
        def port(p: int) -> object:
            return p if p in SERVER_PORTS else ports.setdefault(p, f"eph{len(ports)}")
        body: tuple = (port(l4.sport), port(l4.dport))
        if isinstance(l4, TCP):
            body += (l4.flags, l4.window, tuple((o.kind, o.values) for o in tcp_options(l4.options)
                                                if o.kind != TCPOPT_TIMESTAMP))
        msgs = dns_messages(l4)
        data = l4.payload_bytes() if isinstance(l4, UDP) else l4.payload
        if msgs is not None:
            body += tuple(dns_shape(m) for m in msgs)
        elif isinstance(data, bytes) and data:
            body += (len(data),)
        return head + body
    if isinstance(l4, ICMP):
        data = l4.data
        if l4.type in (3, 11) and len(data) >= 20:      # the quoted packet's IP ID (random) and checksum
            data = data[:4] + b"ID" + data[6:10] + b"CK" + data[12:]
        return head + (l4.type, l4.code, l4.rest, data)
    return head


def by_capture_point(trace: Trace) -> dict[tuple[str, str], list[tuple]]:
    """Each capture point's IP frames (IGMP left out), as rows compared exactly."""
    ports: dict[int, str] = {}
    out: dict[tuple[str, str], list[tuple]] = {}
    for h in trace.hops:
        if h.ip is None or h.ip.proto == IPPROTO_IGMP:
            continue
        key = (h.where, h.direction)
        if isinstance(h.ip.payload, UDP) and h.ip.payload.dport == VXLAN_PORT:
            inner = h.inner_ip
            out.setdefault(key, []).append(("vxlan", h.ip.src, h.ip.dst, h.ip.ttl, h.ip.length(),
                                            inner.src if inner else None, inner.dst if inner else None))
            continue
        out.setdefault(key, []).append(_frame_row(h, ports))
    return out


def dns_by_capture_point(trace: Trace) -> dict[tuple[str, str], list]:
    """The DNS messages each capture point saw (a VXLAN frame's inner ones included), in order."""
    out: dict[tuple[str, str], list] = {}
    for h in trace.hops:
        ip = h.inner_ip if h.inner_ip is not None else h.ip
        msgs = dns_messages(ip.payload) if ip is not None else None
        if msgs:
            out.setdefault((h.where, h.direction), []).extend(msgs)
    return out


def arp_set(trace: Trace) -> list[tuple]:
    rows = []
    for h in trace.hops:
        eth = h.frame
        if isinstance(eth, Ethernet) and isinstance(eth.payload, ARP):
            a = eth.payload
            rows.append((h.where, h.direction, a.op, a.psrc, a.pdst, eth.src, eth.dst))
    return sorted(rows)


def walk_differences(model: Trace, kernel: Trace) -> list[str]:
    """Every way the kernel's walk differs from the model's (the module docstring's rules);
    empty when they are the same walk."""
    out: list[str] = []
    m, k = by_capture_point(model), by_capture_point(kernel)
    for point in sorted(set(m) | set(k)):
        if m.get(point) != k.get(point):
            mr, kr = m.get(point, []), k.get(point, [])
            first = next((i for i, (a, b) in enumerate(zip(mr, kr)) if a != b), min(len(mr), len(kr)))
            out.append(f"{'/'.join(point)} frame {first + 1}: model {mr[first] if first < len(mr) else 'none'}, "
                       f"kernel {kr[first] if first < len(kr) else 'none'}")
    md, kd = dns_by_capture_point(model), dns_by_capture_point(kernel)
    for point in sorted(set(md) & set(kd)):
        for fld, mv, kv in dns_random_differences(md[point], kd[point]):
            out.append(f"{'/'.join(point)} {fld}: model {mv}, kernel {kv}")
    ma, ka = arp_set(model), arp_set(kernel)
    if ma != ka:
        out.append(f"arp: model only {sorted(set(ma) - set(ka))}, kernel only {sorted(set(ka) - set(ma))}")
    return out
