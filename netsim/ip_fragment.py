"""IPv4 fragmentation and reassembly.

Kernel behaviour modelled (net/ipv4/ip_output.c `ip_do_fragment`; net/ipv4/ip_fragment.c
`ip_defrag`, `ip_frag_reasm`; net/ipv4/netfilter/nf_defrag_ipv4.c):
- a packet with DF clear that exceeds the MTU is cut into fragments whose payloads are
  multiples of 8 bytes and fit the MTU with their 20-byte header; each keeps the header
  (ID, TTL, protocol), sets MF on all but the last, and carries its offset in 8-byte units;
- fragments are held until they add up to the whole packet, then it is rebuilt; this
  happens in ip_local_deliver (a socket only ever sees whole packets) and, when conntrack
  is active, in PREROUTING (nf_defrag_ipv4), which records the largest fragment's size
  (IPCB frag_max_size) so the output path can cut the packet back to it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .decision import Decision, IpReason, Subsystem, Verdict
from .packet import IPv4, _parse_transport

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel


class FragQueues:
    """The fragments held for reassembly in one walk (struct ipq per datagram), by scope
    (ip_defrag for a local socket, nf_defrag_ipv4 for conntrack, and the namespace), source,
    destination, IP ID and protocol."""

    def __init__(self) -> None:
        self.queues: dict[tuple, list[IPv4]] = {}


def ip_fragment(ip: IPv4, mtu: int) -> list[IPv4]:
    """ip_do_fragment: split the payload into 8-byte-aligned pieces that fit the MTU."""
    data = ip.payload_bytes() if not isinstance(ip.payload, bytes) else ip.payload
    step = (mtu - 20) // 8 * 8
    base = ip.frag * 8
    pieces = []
    for offset in range(0, len(data), step):
        chunk = data[offset:offset + step]
        last = offset + step >= len(data)
        pieces.append(replace(ip, payload=chunk, mf=(not last) or ip.mf, frag=(base + offset) // 8))
    return pieces


fragment = ip_fragment      # the name the walk used before it was split into modules


def ip_defrag(k: Kernel, scope: tuple, ip: IPv4, flow: Flow, function: str) -> IPv4 | None:
    """Hold fragments until they add up to the whole packet; then return it, with the
    largest fragment's size noted in the skb (IPCB frag_max_size). `function` is who
    reassembles: ip_defrag (for a local socket) or nf_defrag_ipv4 (for conntrack)."""
    key = (*scope, ip.src, ip.dst, ip.id, ip.proto)
    queues = k.state(FragQueues).queues
    parts = queues.setdefault(key, [])
    parts.append(ip)
    parts.sort(key=lambda p: p.frag)
    offset, data, complete = 0, b"", False
    for part in parts:
        if part.frag * 8 != offset:
            break
        chunk = part.payload if isinstance(part.payload, bytes) else part.payload_bytes()
        data += chunk
        offset += len(chunk)
        if not part.mf:
            complete = True
    if not complete:
        flow.end("delivered", Decision(Subsystem.IP, function, IpReason.HOLD, Verdict.HOLD, offset=ip.frag * 8))
        return None
    del queues[key]
    flow.skb.frag_max = max(part.length() for part in parts)
    flow.note(Decision(Subsystem.IP, function, IpReason.REASSEMBLED, Verdict.REASSEMBLE, count=len(parts),
                       size=20 + len(data)))
    return replace(parts[0], payload=_parse_transport(ip.proto, data, (8472, 4789)), mf=False, frag=0)
