"""A whole TCP conversation compared with the kernel, frame by frame at every capture point.

`compare.compare` lines up one request and its reply. A tool run that opens several
connections (curl through an Ingress controller: client -> proxy, proxy -> backend, each with
its handshake, data, ACKs and FINs) is compared here instead: `differences(model, kernel)`
takes the two traces (the model's walk, the lab's capture as `frames.to_trace` builds it) and
returns one line per difference, [] when they agree.

The rules:
- Every capture point (namespace, device, direction) carries the same frames in the same order.
  The order is compared per capture point, not across them: the kernel's frames at two
  devices are ordered by capture timestamps, and frames handled at the same moment on two
  CPUs can swap.
- Exact, per frame: MAC addresses, EtherType, IP source, destination, TTL, TOS, DF, MF,
  fragment offset, protocol and total length; TCP flags, option kinds with the MSS and window
  scale values, the payload bytes, the server ports; the window on SYN and SYN-ACK; VXLAN VNI,
  flags and destination port, and the inner frame by the same rules.
- By rule, because the kernel randomises them: every other port (a client's ephemeral port,
  the port MASQUERADE --random-fully picks, a VXLAN source port) is replaced by a token in
  order of first appearance on each side, so the same port must stand wherever the model has
  the same port and a different one wherever the model has a different one; sequence and
  acknowledgement numbers are compared relative to the ISNs of the connection as seen at that
  capture point (NAT keeps them).
- By rule too, because the lab's server writes the wall clock: the value of an HTTP `Date`
  header in Go's http.TimeFormat (kube-proxy's health server answers with one; the model dates
  it from a fixed epoch, netsim/programs/healthcheck.py, the lab's stand-in writes this
  machine's time) is replaced by a token in order of first appearance, like a port; the rest
  of the payload, the header's name and the date's length and form included, is compared.
- ARP: the same set of (capture point, direction, operation, sender, target, MACs).
- Left out as the kernel's own chatter, not part of any exchange: IGMP membership reports (a
  device joining 224.0.0.1 when it comes up sends them at its own times) and IPv6 frames.
- Not compared, said here: the IP ID (the kernel's per-socket or per-destination counters start
  at random), TCP timestamp values (random offset per connection), the window after the
  handshake (the kernel grows its receive window; programs/tcp.py does not), checksums
  (the lab turns transmit offload off; compare.py checks them for single exchanges).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from ..packet import ARP, ETH_P_IP, TCP, TCPOPT_MSS, TCPOPT_WINDOW, UDP, VXLAN, Ethernet, IPv4
from ..trace import Trace

Key = tuple[Any, ...]
# Go's http.TimeFormat, "Mon, 02 Jan 2006 15:04:05 GMT", as a Date header's value (29 bytes)
HTTP_DATE = re.compile(rb"\r\nDate: ((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|"
                       rb"Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT)\r\n")
ETH_P_IPV6 = 0x86DD
IPPROTO_IGMP = 2


class _Side:
    """Port tokens and ISNs for one trace."""

    def __init__(self, servers: set[int]) -> None:
        self.servers = servers
        self.tokens: dict[int, str] = {}
        self.isn: dict[tuple[str, int, str, int], int] = {}
        self.dates: dict[bytes, bytes] = {}

    def payload(self, data: bytes) -> bytes:
        """`data` with each HTTP Date value (Go's http.TimeFormat) replaced by its token."""
        if b"\r\nDate: " not in data:
            return data
        return HTTP_DATE.sub(lambda m: b"\r\nDate: " + self.dates.setdefault(
            m.group(1), f"date#{len(self.dates) + 1}".ljust(29, "_").encode()) + b"\r\n", data)

    def port(self, port: int) -> object:
        if port in self.servers:
            return port
        return self.tokens.setdefault(port, f"port#{len(self.tokens) + 1}")

    def tcp(self, ip: IPv4, seg: TCP) -> Key:
        flow = (ip.src, seg.sport, ip.dst, seg.dport)
        back = (ip.dst, seg.dport, ip.src, seg.sport)
        if "S" in seg.flags:
            self.isn.setdefault(flow, seg.seq)
            if "A" in seg.flags:
                self.isn.setdefault(back, (seg.ack - 1) % (1 << 32))
        seq = (seg.seq - self.isn[flow]) % (1 << 32) if flow in self.isn else "seq?"
        ack = ((seg.ack - self.isn[back]) % (1 << 32) if back in self.isn else "ack?") if "A" in seg.flags else None
        options = tuple((o.kind, o.values if o.kind in (TCPOPT_MSS, TCPOPT_WINDOW) else ()) for o in seg.option_list)
        window = seg.window if "S" in seg.flags else None
        return ("tcp", self.port(seg.sport), self.port(seg.dport), seg.flags, seq, ack, options, window,
                self.payload(seg.payload))

    def ip(self, ip: IPv4) -> Key:
        head = ("ip", ip.src, ip.dst, ip.ttl, ip.tos, ip.df, ip.mf, ip.frag, ip.proto, ip.length())
        payload = ip.payload
        if isinstance(payload, TCP):
            return head + self.tcp(ip, payload)
        if isinstance(payload, UDP) and isinstance(payload.payload, VXLAN):
            vx = payload.payload
            return head + ("udp", self.port(payload.sport), payload.dport, "vxlan", vx.vni, vx.flags,
                           self.frame(vx.payload))
        if isinstance(payload, UDP):
            return head + ("udp", self.port(payload.sport), self.port(payload.dport), payload.payload)
        return head + (payload.to_bytes() if hasattr(payload, "to_bytes") else payload,)

    def frame(self, frame: Any) -> Key:
        if isinstance(frame, IPv4):
            return self.ip(frame)
        assert isinstance(frame, Ethernet)
        inner = self.ip(frame.payload) if isinstance(frame.payload, IPv4) else (frame.payload,)
        return (frame.src, frame.dst, frame.type) + inner


def _servers(trace: Trace) -> set[int]:
    """The ports listeners answered on: the destination port of every SYN without ACK, and
    VXLAN's."""
    ports = {8472, 8285}
    for hop in trace:
        for ip in (hop.ip, hop.inner_ip):
            if ip is not None and isinstance(ip.payload, TCP) and ip.payload.flags == "S":
                ports.add(ip.payload.dport)
    return ports


def by_capture_point(trace: Trace, servers: set[int]) -> tuple[dict[tuple[str, str], list[Key]], set[Key]]:
    """Per (capture point, direction) the normalised frames in order; the ARP frames as a set."""
    side = _Side(servers)
    frames: dict[tuple[str, str], list[Key]] = defaultdict(list)
    arp: set[Key] = set()
    for hop in trace:
        frame = hop.frame
        payload = getattr(frame, "payload", None)
        if getattr(frame, "type", ETH_P_IP) == ETH_P_IPV6 or (isinstance(payload, IPv4) and payload.proto == IPPROTO_IGMP):
            continue
        if isinstance(payload, ARP):
            arp.add((hop.where, hop.direction, payload.op, payload.psrc, payload.pdst, payload.hwsrc, payload.hwdst,
                     frame.src, frame.dst))
            continue
        frames[(hop.where, hop.direction)].append(side.frame(frame))
    return frames, arp


def differences(model: Trace, kernel: Trace, limit: int = 40) -> list[str]:
    """What differs between the model's trace and the kernel's (module docstring); [] if nothing."""
    servers = _servers(model)
    m_frames, m_arp = by_capture_point(model, servers)
    k_frames, k_arp = by_capture_point(kernel, servers)
    out: list[str] = []
    for point in sorted(set(m_frames) | set(k_frames)):
        m, k = m_frames.get(point, []), k_frames.get(point, [])
        where = f"{point[0]} {point[1]}"
        if len(m) != len(k):
            out.append(f"{where}: model {len(m)} frames, kernel {len(k)}")
        for i, (a, b) in enumerate(zip(m, k)):
            if a != b:
                fields = [f"{x!r} != {y!r}" for x, y in zip(_flat(a), _flat(b)) if x != y][:3]
                out.append(f"{where} frame {i + 1}: model/kernel {'; '.join(fields) or 'shape differs'}")
    for extra in sorted(m_arp - k_arp, key=repr):
        out.append(f"ARP only in the model: {extra}")
    for extra in sorted(k_arp - m_arp, key=repr):
        out.append(f"ARP only in the kernel: {extra}")
    return out[:limit]


def frame_count(trace: Trace) -> int:
    """How many frames the comparison covers (every capture, ARP included)."""
    return len(trace)


def _flat(key: Key) -> list[object]:
    out: list[object] = []
    for x in key:
        out.extend(_flat(x) if isinstance(x, tuple) else [x])
    return out
