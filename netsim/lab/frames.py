"""Captured frames as a netsim `Trace`: in the order the kernel handled them, each with its role.

`order()` sorts captures by kernel timestamp; one skb seen on several devices shares a
timestamp, and ties go receive before transmit, lower device before upper
(kernel-observations.md, fact 10). `classify()` names a frame's role in the exchange
(request, reply, error, arp, other) from its innermost packet; a fragment takes the role of
the packet it reassembles into. `to_trace()` puts it together.
"""

from __future__ import annotations

from dataclasses import replace

from ..decision import CaptureReason, Decision, Subsystem, Verdict
from ..packet import ARP, ICMP, TCP, UDP, VXLAN, Ethernet, IPv4, _parse_transport, innermost_ip, parse_ethernet
from ..trace import Hop, Trace
from .capture import Capture


def _tie_rank(capture: Capture, kinds: dict[tuple[str, str], str]) -> tuple:
    """Frames with one timestamp are one skb seen on several devices: receive before transmit,
    the lower device (veth, NIC, switch port) before the upper one (bridge, VXLAN) on receive,
    the upper before the lower on transmit (kernel-observations.md, fact 10)."""
    upper = kinds.get((capture.netns, capture.device)) in ("bridge", "vxlan")
    if capture.direction == "rx":
        return (0, 1 if upper else 0)
    return (1, 0 if upper else 1)


def classify(frame: Ethernet | IPv4, refused: bool = False, request: bytes = b"REQ") -> str:
    """The role of a captured frame in the exchange, judged from its innermost packet: the
    SYN, echo request or `request` datagram (b"REQ" unless the exchange sent another payload)
    is the request; the SYN-ACK (or, when the connection was refused, the RST-ACK), echo reply
    or b"RSP" the reply, and so is a bare RST answering a SYN-ACK no socket takes; the rest (the
    handshake's ACK, the client's closing RST-ACK) is "other".
    A fragment has no transport header of its own: `to_trace` classifies it by the packet
    it belongs to."""
    if isinstance(frame, Ethernet) and isinstance(frame.payload, ARP):
        return "arp"
    ip = innermost_ip(frame) if isinstance(frame, Ethernet) else frame
    if ip is None:
        return "other"
    p = ip.payload
    if isinstance(p, TCP):
        if p.flags == "S":
            return "request"
        if p.flags == "SA" or (refused and p.flags == "RA"):
            return "reply"
        if p.flags == "R":
            # tcp_v4_send_reset answering a segment that carries an ACK (a SYN-ACK no socket
            # takes: an un-DNATed reply) sends a bare RST, seq = the segment's ack: the model
            # walks it as the reply's continuation. The lab client's own closing RST (SO_LINGER
            # 0: tcp_send_active_reset) carries ACK ("RA") and stays "other".
            return "reply"
        return "other"
    if isinstance(p, ICMP):
        return {8: "request", 0: "reply"}.get(p.type, "error" if p.is_error else "other")
    if isinstance(p, UDP):
        data = p.payload if isinstance(p.payload, bytes) else b""
        if data != request and len(request) >= 12 and len(data) >= 12 and data[:2] == request[:2] \
                and data[2] & 0x80 and not request[2] & 0x80:
            return "reply"      # a DNS response to the DNS query sent: its ID, QR set (RFC 1035 4.1.1)
        return {request: "request", b"RSP": "reply"}.get(data, "other")
    return "other"


def _fragment_key(ip: IPv4) -> tuple:
    """What ties a fragment to its packet (ip_defrag's key, RFC 791)."""
    return (ip.src, ip.dst, ip.id, ip.proto)


def _fragment_roles(frames: list[Ethernet], refused: bool, request: bytes) -> dict[tuple, str]:
    """The role of every fragmented packet among `frames`, from its reassembled payload.

    The fragments of one packet are gathered by (src, dst, IP ID, protocol), wherever they
    were captured and at whatever depth (outer VXLAN packets are fragmented too); their
    payloads, put in order of offset, are parsed and classified as the whole packet would be.
    A packet whose fragments were not all captured keeps the role "other"."""
    pieces: dict[tuple, dict[int, IPv4]] = {}

    def collect(ip: IPv4 | None) -> None:
        while ip is not None:
            if ip.is_fragment:
                pieces.setdefault(_fragment_key(ip), {}).setdefault(ip.frag * 8, ip)
                return
            ip = _vxlan_inner(ip)

    for frame in frames:
        if isinstance(frame.payload, IPv4):
            collect(frame.payload)
    roles: dict[tuple, str] = {}
    for key, parts in pieces.items():
        data, offset, last = b"", 0, None
        for off in sorted(parts):
            if off != offset:
                break
            part = parts[off]
            chunk = part.payload if isinstance(part.payload, bytes) else part.payload_bytes()
            data += chunk
            offset += len(chunk)
            last = parts[off]
        if last is None or last.mf:
            continue
        whole = replace(parts[0], mf=False, frag=0, payload=_parse_transport(key[3], data, (8472, 4789)))
        roles[key] = classify(innermost_ip(Ethernet("", "", 0x0800, whole)) or whole, refused, request)
    return roles


def order(captures: list[Capture], kinds: dict | None = None, peers: dict | None = None) -> list[Capture]:
    """Captures in time order, ties as `_tie_rank` says. With `peers` ((netns, dev) -> its veth
    peer), a frame received on a veth end never comes before the same bytes sent by its peer:
    a fragment keeps the timestamp of the packet it was cut from, and its peer's receive copy
    can tie with, or precede, the capture of its transmission."""
    kinds = kinds or {}
    out = sorted(captures, key=lambda c: (c.time, *_tie_rank(c, kinds)))
    if not peers:
        return out
    sent: dict[tuple, int] = {}
    i = 0
    while i < len(out):
        c = out[i]
        if c.direction == "tx" and (c.netns, c.device) in peers:
            key = (peers[(c.netns, c.device)], c.data)
            sent[key] = sent.get(key, 0) + 1
        elif c.direction == "rx" and (c.netns, c.device) in peers.values():
            key = ((c.netns, c.device), c.data)
            if sent.get(key):
                sent[key] -= 1
            else:
                j = next((j for j in range(i + 1, len(out)) if out[j].direction == "tx"
                          and peers.get((out[j].netns, out[j].device)) == (c.netns, c.device)
                          and out[j].data == c.data), None)
                if j is not None:
                    out.insert(i, out.pop(j))
                    continue                       # the moved transmission is looked at next
        i += 1
    return out


def _vxlan_inner(ip: IPv4) -> IPv4 | None:
    """The packet a VXLAN datagram carries, if `ip` is one."""
    udp = ip.payload
    if isinstance(udp, UDP) and isinstance(udp.payload, VXLAN):
        return udp.payload.payload.ip
    return None


def _outermost_fragment(frame: Ethernet) -> IPv4 | None:
    ip = frame.ip if isinstance(frame, Ethernet) else None
    while ip is not None:
        if ip.is_fragment:
            return ip
        ip = _vxlan_inner(ip)
    return None


def to_trace(captures: list[Capture], title: str = "", outcome: str = "", kinds: dict | None = None,
             refused: bool = False, request: bytes = b"REQ", peers: dict | None = None) -> Trace:
    """Captured frames as a netsim `Trace`, one hop per capture, in `order()`. A fragment takes
    the role of the packet it belongs to (`_fragment_roles`)."""
    kinds = kinds or {}
    ordered = order(captures, kinds, peers)
    frames = [parse_ethernet(c.data) for c in ordered]
    fragment_roles = _fragment_roles(frames, refused, request)
    hops = []
    packet_ids: dict[tuple, int] = {}
    for i, (c, frame) in enumerate(zip(ordered, frames)):
        frag = _outermost_fragment(frame)
        role = fragment_roles.get(_fragment_key(frag), "other") if frag is not None else classify(frame, refused, request)
        ip = innermost_ip(frame)
        key = (role, ip.src if ip else None, ip.dst if ip else None) if role != "arp" else ("arp", i)
        pid = packet_ids.setdefault(key, len(packet_ids) + 1)
        hops.append(Hop(i, c.netns, c.device, c.direction, frame, (Decision(Subsystem.LAB, "packet_rcv", CaptureReason.CAPTURED, Verdict.CAPTURE, time=c.time),), pid, role, "",
                        kinds.get((c.netns, c.device), "")))
    return Trace(tuple(hops), title, outcome)
