"""Lining a model trace up with what the kernel put on the wire, field by field.

`compare(model, observed)` takes netsim's `Trace` and the lab's `Observation` (or any trace
in netsim's shape) and returns a `Comparison` whose `differences` read like
`hop 13 node1/flannel.1 tx: inner ttl model 63 kernel 64`.

The rules (also printed in the conformance report, `RULES`; `FIELD_RULES` gives the rule of
every field of every header table in netsim.packet, and the exact comparisons walk those tables):
- Path: for the request and for the reply (and any ICMP error), the same capture points
  (namespace, device, direction) in the same order. The kernel's frames are ordered by
  capture timestamp; frames of one skb seen on several devices share a timestamp and are
  ordered receive before transmit, lower device before upper (kernel-observations.md).
- ARP: the same set of (device, direction, operation, sender, target, MACs); ARP is not
  ordered, because a flood's copies leave in an order that depends on the bridge's port list.
- Exact, at every hop: MACs (the lab sets netsim's; a difference is shown by owning device),
  EtherType, IP source, destination, TTL, DF, MF, fragment offset, TOS, protocol and total
  length, TCP flags, window, option kinds, MSS and window scale, the server's port, ICMP
  type, code and sequence, UDP payload, VXLAN flags, VNI and destination port. A DNS message
  (UDP or TCP, port 53) exactly but its ID and its EDNS client cookie's bytes (length kept).
- By rule, since the kernel randomises the value: the IP ID and the ICMP echo id (zero
  where the model has zero, and kept or changed from hop to hop as the model keeps or
  changes it, across request and reply); the client's port (in `ip_local_port_range` at the
  client socket, in 1024-65535 once translated, and translated and restored where the model
  does it); the VXLAN source port (in the port range, constant along a packet, and equal or not
  between the two directions as in the model); ICMP data (same length, same bytes after the
  16-byte timestamp ping puts first); a DNS message's ID and client cookie (res_randomid and
  dig's cookie are random): kept or changed from message to message as in the model, across
  queries and replies (a reply carries its query's ID and echoes its cookie).
- Ignored, said here: TCP sequence and acknowledgement numbers and timestamp values (random
  per connection), the kernel's frames that are not part of the modelled exchange (the
  handshake's final ACK and the lab client's closing RST).
- Checksums: every IP, ICMP, TCP and UDP checksum must verify on both sides wherever the
  kernel's are complete: the lab turns transmit checksum offload off, so that is every
  device except `lo` (where Linux never fills them in). With offload on, only the IP header
  and ICMP checksums are checked. A zero outer UDP checksum must be zero in both.
"""

from __future__ import annotations

import difflib
from collections import Counter
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Sequence

from ..packet import (
    ARP, ARP_HEADER, ETH_P_IP, ETHERNET_HEADER, ICMP, ICMP_ECHO_HEADER, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST,
    ICMP_HEADER, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER, TCP, TCP_HEADER, TCP_OPTIONS, TCPOPT_MSS,
    TCPOPT_WINDOW, UDP, UDP_HEADER, VXLAN, VXLAN_HEADER, Ethernet, Header, IPv4, TCPOption, internet_checksum,
    tcp_options,
)
from ..programs.dns import EDNS0_COOKIE, TYPE_OPT, DnsFormatError, Message, tcp_unframe
from ..trace import Frame, Hop, Trace
from ..views.sentences import outcome_text
from .comparison import Comparison, Difference, base_field as _base
from .rules import compare_rules

if TYPE_CHECKING:
    from ..cluster import Cluster

NAT_PORTS = (1024, 65535)
PING_TIMESTAMP = 16           # bytes of struct timeval that ping puts before its pattern
IGNORED_ROLES = ("arp", "other")

# Differences the model is known to have, each with its evidence. They are kept apart from
# the others (`Comparison.known`), printed in the report, and each has a strict xfail test in
# tests/test_lab.py, so they cannot hide and are noticed the day the model is fixed.
KNOWN_DEVIATIONS: dict[str, str] = {}

RULES = {
    "path": "same capture points (netns, device, direction) in the same order, for request and reply",
    "arp": "same set of ARP frames per capture point (op, sender, target, MACs)",
    "eth src/dst": "exact (the lab uses netsim's MACs)",
    "ip src/dst/ttl/df/mf/frag/tos/proto/len": "exact, inner and outer",
    "ip id": "by rule: zero where the model has zero; kept or changed between hops as in the model",
    "tcp flags/window/option kinds/mss/wscale": "exact",
    "tcp seq/ack/timestamps": "ignored (random per connection)",
    "server port": "exact",
    "client port": "by rule: the socket's port in ip_local_port_range; translated (into 1024-65535) and restored "
                   "where the model does",
    "icmp type/code/seq": "exact",
    "icmp id": "by rule: kept or changed between hops as in the model",
    "icmp data": "same length; same bytes after ping's 16-byte timestamp",
    "udp payload": "exact",
    "dns message": "exact but its id and its client cookie's bytes (length kept)",
    "dns id/cookie": "by rule: kept or changed from message to message as in the model, queries and replies "
                     "together (a reply carries its query's id and echoes its cookie)",
    "vxlan flags/vni/dport": "exact",
    "vxlan sport": "by rule: in the port range; equal or not between directions as in the model",
    "checksums": "verify on both sides where the kernel's are complete (offload off, not lo)",
    "fragments": "each piece (whole packet, or fragment at an offset) has its own path, compared as above; a later "
                 "fragment's data exactly; a fragment takes the role of the packet it reassembles into",
    "drops": "a packet the model drops is last seen by the kernel at the model's drop hop",
    "icmp errors": "rest (next-hop MTU) and the quoted header exact; its quoted IP ID and client port those of a "
                   "packet of the exchange on the same side (a request's source port, a reply's destination port)",
}


# ------------------------------------------------------------------------------------------
# How each field of each header table (netsim.packet) is compared. Every field of every table
# has a rule here (tests/test_packet.py checks it), so a field added to a table is compared, or
# says why not, from then on:
#   exact     value for value at every matched hop
#   rule      random in the kernel, compared by a rule of RULES (IP ID, ports, echo id)
#   ignored   random per connection and not compared (TCP sequence numbers)
#   checksum  verified on both sides (checksum_faults), not compared as a value
#   options   TCP options: the kinds in order, and the values of TCP_OPTION_VALUES exactly
#   implied   follows from fields compared exactly (lengths, header lengths, version), or is
#             zero in every packet the model builds and not kept by its records (reserved bits,
#             the urgent pointer, IP options)
FIELD_RULES: dict[Header, dict[str, str]] = {
    ETHERNET_HEADER: {"dst": "exact", "src": "exact", "type": "exact"},
    ARP_HEADER: {"htype": "implied", "ptype": "implied", "hlen": "implied", "plen": "implied",
                 "op": "exact", "sha": "exact", "spa": "exact", "tha": "exact", "tpa": "exact"},
    IPV4_HEADER: {"version": "implied", "ihl": "implied", "tos": "exact", "total_length": "exact", "id": "rule",
                  "df": "exact", "mf": "exact", "frag": "exact", "ttl": "exact", "proto": "exact",
                  "checksum": "checksum", "src": "exact", "dst": "exact", "options": "implied"},
    ICMP_HEADER: {"type": "exact", "code": "exact", "checksum": "checksum", "rest": "exact"},
    ICMP_ECHO_HEADER: {"type": "exact", "code": "exact", "checksum": "checksum", "ident": "rule", "seq": "exact"},
    TCP_HEADER: {"sport": "rule", "dport": "rule", "seq": "ignored", "ack": "ignored", "data_offset": "implied",
                 "flags": "exact", "window": "exact", "checksum": "checksum", "urgent": "implied",
                 "options": "options"},
    UDP_HEADER: {"sport": "rule", "dport": "rule", "length": "implied", "checksum": "checksum"},
    VXLAN_HEADER: {"flags": "exact", "reserved1": "implied", "vni": "exact", "reserved2": "implied"},
}
# TCP options compared by value; the others by kind and position only (timestamps are random).
TCP_OPTION_VALUES = (TCPOPT_MSS, TCPOPT_WINDOW)
# ------------------------------------------------------------------------------------------
# DNS messages: the resolver's query ID (glibc's res_randomid, dig's own generator) and dig's
# EDNS client cookie are random; the rest of a message is compared exactly.

DNS_PORT = 53


def dns_messages(l4: object) -> list[Message] | None:
    """The DNS messages a UDP datagram or TCP segment to or from port 53 carries (a TCP segment:
    each two-byte-length-framed message it holds whole), or None if it carries none that parse."""
    if not isinstance(l4, (UDP, TCP)) or DNS_PORT not in (l4.sport, l4.dport):
        return None
    data = l4.payload_bytes() if isinstance(l4, UDP) else l4.payload
    if not isinstance(data, bytes) or not data:
        return None
    try:
        raw = [data] if isinstance(l4, UDP) else tcp_unframe(data)[0]
        return [Message.from_bytes(r) for r in raw] or None
    except DnsFormatError:
        return None


def dns_cookie(m: Message) -> bytes | None:
    """The EDNS COOKIE option's bytes (client cookie, and the server's if any), if the message has one."""
    edns = m.edns
    found = [o.data for o in edns.options if o.code == EDNS0_COOKIE] if edns is not None else []
    return found[0] if found else None


def dns_shape(m: Message) -> tuple:
    """A DNS message but its ID and its cookie's bytes (their length kept): what is compared exactly."""
    edns = m.edns
    ed = None if edns is None else (edns.udp_size, edns.do, edns.version,
                                    tuple((o.code, len(o.data) if o.code == EDNS0_COOKIE else o.data)
                                          for o in edns.options))
    return (m.qr, m.opcode, m.aa, m.tc, m.rd, m.ra, m.ad, m.cd, m.rcode, m.questions, m.answers, m.authority,
            tuple(rr for rr in m.additional if rr.type != TYPE_OPT), ed)


def dns_random_differences(model: Sequence[Message], kernel: Sequence[Message]) -> list[tuple[str, str, str]]:
    """(field, model, kernel) where the IDs or cookies of two sequences of DNS messages (in the
    order they were seen) are not kept and changed alike: each message's value as "new" or "the
    same as message j" (_pattern, ungrouped: a reply carries its query's ID)."""
    out = []
    for name, get in (("dns id", lambda m: m.id + 1), ("dns cookie", dns_cookie)):
        mp, kp = _pattern([get(m) for m in model]), _pattern([get(m) for m in kernel])
        for i, (a, b) in enumerate(zip(mp, kp)):
            if a != b:
                out.append((f"{name} of message {i + 1}", a, b))
                break
    if len(model) != len(kernel):
        out.append(("dns messages", str(len(model)), str(len(kernel))))
    return out


# The words a difference uses for a field, where they are not the field's name.
LABELS = {"total_length": "length"}


def exact_fields(header: Header) -> tuple[str, ...]:
    """The fields of `header` compared value for value, in wire order."""
    rules = FIELD_RULES[header]
    return tuple(s.name for s in header.slots if rules[s.name] == "exact")


def _value(record: object, header: Header, name: str) -> object:
    """A field's value in a header record: its attribute (IPv4's total length is computed)."""
    if isinstance(record, IPv4) and name == "total_length":
        return record.length()
    return getattr(record, header.slot(name).field.attribute)


def _key(h: Hop) -> str:
    return f"{h.netns}/{h.device} {h.direction}"


def _vxlan(ip: IPv4 | None) -> VXLAN | None:
    if ip is not None and isinstance(ip.payload, UDP) and isinstance(ip.payload.payload, VXLAN):
        return ip.payload.payload
    return None


def _layers(frame: Frame | None) -> list[tuple[str, IPv4]]:
    """The IP headers of a frame, outermost first: [("", ip)] or [("outer ", o), ("inner ", i)]."""
    if frame is None:
        return []
    ip = frame if isinstance(frame, IPv4) else frame.ip
    if ip is None:
        return []
    vx = _vxlan(ip)
    if vx is None:
        return [("", ip)]
    inner = vx.payload.ip
    return [("outer ", ip)] + ([("inner ", inner)] if inner is not None else [])


def _piece(h: Hop) -> tuple[tuple[str, str, int, int], ...]:
    """Which piece of its packet a hop carries: () for a whole packet, else, for each fragmented
    IP layer (outer and inner), its addresses, protocol and fragment offset. A packet's
    fragments travel independently, and the kernel interleaves them with each other
    differently from the model; each piece's own path is what is compared."""
    if h.frame is None or h.is_arp:
        return ()
    return tuple((ip.src, ip.dst, ip.proto, ip.frag * 8) for _, ip in _layers(h.frame) if ip.is_fragment)


def _piece_name(piece: tuple[tuple[str, str, int, int], ...]) -> str:
    return ", ".join(f"fragment {src} > {dst} offset {off}" for src, dst, _, off in piece)


def _inner_eth(frame: Frame | None) -> Ethernet | None:
    ip = frame.ip if isinstance(frame, Ethernet) else frame
    vx = _vxlan(ip)
    return vx.payload if vx is not None else None


def _tcp_options(options: bytes) -> list[TCPOption]:
    return list(tcp_options(options))


class _Collector:
    def __init__(self, comparison: Comparison, owners: dict[str, str]):
        self.c = comparison
        self.owners = owners
        # (source, destination) of the model's reply packets: an ICMP error that quotes one of
        # them quotes the server's port as its source and the client's random one as its
        # destination (a reply dropped on its way back)
        self.replies: set[tuple[str, str]] = set()
        # (model hop, its DNS messages, the kernel's) at every matched hop that carries DNS
        self.dns: list[tuple[Hop, list[Message], list[Message]]] = []

    def exact(self, m: Hop, field_name: str, mv: object, kv: object) -> None:
        self.c.compared[field_name.strip()] += 1
        if mv != kv:
            self.c.differences.append(Difference(m.index, _key(m), field_name, mv, kv))

    def mac(self, m: Hop, field_name: str, mv: str, kv: str) -> None:
        self.c.compared["eth mac"] += 1
        if mv != kv:
            def show(mac: str) -> str:
                return f"{mac} ({self.owners[mac]})" if mac in self.owners else mac
            self.c.differences.append(Difference(m.index, _key(m), field_name, show(mv), show(kv)))

    def header(self, m: Hop, label: str, header: Header, a: object, b: object) -> None:
        """Every exact field of a header table, between the model's record and the kernel's."""
        for name in exact_fields(header):
            field_name = f"{label} {LABELS.get(name, name)}"
            mv, kv = _value(a, header, name), _value(b, header, name)
            if header.slot(name).field.show == "mac" and isinstance(mv, str) and isinstance(kv, str):
                self.mac(m, field_name, mv, kv)
            elif name == "type" and header is ETHERNET_HEADER:
                self.exact(m, field_name, hex(int(str(mv))), hex(int(str(kv))))
            else:
                self.exact(m, field_name, mv, kv)


def _pattern(values: Sequence[object], groups: list[str] | None = None) -> list[str]:
    """Each value as 0, "new" or "same as position j": what a rule compares when the value
    itself is random. Values are only "the same" within one group (one packet's journey):
    independent generators in different hosts may hand out equal values by chance."""
    first: dict[tuple[str | None, object], int] = {}
    out = []
    for i, v in enumerate(values):
        key = (groups[i] if groups is not None else None, v)
        if v == 0:
            out.append("0")
        elif key in first:
            out.append(f"={first[key]}")
        else:
            first[key] = i
            out.append("new")
    return out


def _compare_pattern(col: _Collector, name: str, hops: list[Hop], mvals: Sequence[object],
                     kvals: Sequence[object]) -> None:
    groups = [h.role for h in hops]
    mp, kp = _pattern(mvals, groups), _pattern(kvals, groups)
    col.c.compared[name.strip()] += len(mp)

    def describe(p: str, v: object) -> str:
        if p == "0":
            return "0"
        if p == "new":
            return f"{v} (new)"
        return f"{v} (same as hop {hops[int(p[1:])].index})"

    for i, (a, b) in enumerate(zip(mp, kp)):
        if a != b:
            col.c.differences.append(Difference(hops[i].index, _key(hops[i]), name,
                                                describe(a, mvals[i]), describe(b, kvals[i])))
            return                                 # the first divergence says it; the rest follow


def _compare_tcp(col: _Collector, m: Hop, prefix: str, pa: TCP, pb: TCP) -> None:
    col.header(m, f"{prefix}tcp", TCP_HEADER, pa, pb)
    oa, ob = _tcp_options(pa.options), _tcp_options(pb.options)
    col.exact(m, f"{prefix}tcp option kinds", [o.name for o in oa], [o.name for o in ob])
    for kind in TCP_OPTION_VALUES:
        name = TCP_OPTIONS[kind].name
        va = next((o.values[0] for o in oa if o.kind == kind and o.values), None)
        vb = next((o.values[0] for o in ob if o.kind == kind and o.values), None)
        col.exact(m, f"{prefix}tcp {name}", va, vb)
    if not _compare_dns(col, m, prefix, pa, pb):
        col.exact(m, f"{prefix}tcp payload", pa.payload, pb.payload)


def _compare_dns(col: _Collector, m: Hop, prefix: str, pa: UDP | TCP, pb: UDP | TCP) -> bool:
    """DNS messages on both sides: compared but their ID and cookie, which are kept for the
    rule (`dns_random_differences`, over the whole exchange). False if either side has none."""
    ma, mb = dns_messages(pa), dns_messages(pb)
    if ma is None or mb is None:
        return False
    col.exact(m, f"{prefix}dns message", [dns_shape(x) for x in ma], [dns_shape(x) for x in mb])
    col.dns.append((m, ma, mb))
    return True


def _compare_icmp(col: _Collector, m: Hop, prefix: str, pa: ICMP, pb: ICMP) -> None:
    echo = pa.type in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)
    header = ICMP_ECHO_HEADER if echo else ICMP_HEADER
    for name in exact_fields(header):
        if name == "rest" and not (pa.is_error and pb.is_error):
            continue                               # unused outside errors
        col.exact(m, f"{prefix}icmp {name}", _value(pa, header, name), _value(pb, header, name))
    if pa.is_error and pb.is_error:
        col.exact(m, f"{prefix}icmp quoted length", len(pa.data), len(pb.data))
        qa, qb = _quoted(pa.data), _quoted(pb.data)
        for name in exact_fields(IPV4_HEADER):
            attr = LABELS.get(name, IPV4_HEADER.slot(name).field.attribute)
            col.exact(m, f"{prefix}icmp quoted ip {attr}", qa.get(attr), qb.get(attr))
        # the server's port exactly; the client's (random) by rule, in _compare_quoted
        server = "sport" if (qa.get("src"), qa.get("dst")) in col.replies else "dport"
        col.exact(m, f"{prefix}icmp quoted {server}", qa.get(server), qb.get(server))
    if echo:
        col.exact(m, f"{prefix}icmp data length", len(pa.data), len(pb.data))
        col.exact(m, f"{prefix}icmp data after the timestamp", pa.data[PING_TIMESTAMP:].hex(),
                  pb.data[PING_TIMESTAMP:].hex())


def _compare_hop(col: _Collector, m: Hop, k: Hop) -> None:
    col.c.compared["hop"] += 1
    mf, kf = m.frame, k.frame
    if isinstance(mf, Ethernet) and isinstance(kf, Ethernet):
        col.header(m, "eth", ETHERNET_HEADER, mf, kf)
        mi, ki = _inner_eth(mf), _inner_eth(kf)
        if mi is not None and ki is not None:
            col.header(m, "inner eth", ETHERNET_HEADER, mi, ki)
    ml, kl = _layers(mf), _layers(kf)
    col.exact(m, "encapsulation", [n.strip() or "none" for n, _ in ml], [n.strip() or "none" for n, _ in kl])
    for (name, a), (_, b) in zip(ml, kl):
        col.header(m, f"{name}ip", IPV4_HEADER, a, b)
    if not ml or not kl:
        return
    a, b = ml[-1][1], kl[-1][1]
    pa, pb = a.payload, b.payload
    prefix = "inner " if len(ml) > 1 else ""
    if type(pa) is not type(pb):
        col.exact(m, f"{prefix}transport", type(pa).__name__, type(pb).__name__)
        return
    outer_m, outer_k = ml[0][1], kl[0][1]
    if outer_m.frag and isinstance(outer_m.payload, bytes) and isinstance(outer_k.payload, bytes):
        # a later fragment carries only data (the headers with random values are in the first)
        col.exact(m, f"{ml[0][0]}fragment data", outer_m.payload.hex(), outer_k.payload.hex())
    if isinstance(pa, TCP) and isinstance(pb, TCP):
        _compare_tcp(col, m, prefix, pa, pb)
    elif isinstance(pa, ICMP) and isinstance(pb, ICMP):
        _compare_icmp(col, m, prefix, pa, pb)
    elif isinstance(pa, UDP) and isinstance(pb, UDP):
        if not _compare_dns(col, m, prefix, pa, pb):
            col.exact(m, f"{prefix}udp payload", pa.payload_bytes(), pb.payload_bytes())
    ua, ub = outer_m.payload, outer_k.payload
    va, vb = _vxlan(outer_m), _vxlan(outer_k)
    if len(ml) > 1 and isinstance(ua, UDP) and isinstance(ub, UDP) and va is not None and vb is not None:
        col.exact(m, "outer udp dport", ua.dport, ub.dport)
        col.exact(m, "outer udp checksum present", ua.checksum, ub.checksum)
        for name in exact_fields(VXLAN_HEADER):
            mv, kv = _value(va, VXLAN_HEADER, name), _value(vb, VXLAN_HEADER, name)
            col.exact(m, f"vxlan {name}", hex(int(str(mv))) if name == "flags" else mv,
                      hex(int(str(kv))) if name == "flags" else kv)


def _quoted(data: bytes) -> dict[str, object]:
    """The header an ICMP error quotes, by the IPv4 record's attribute names (its IP ID and
    ports are compared by rule)."""
    if len(data) < IPV4_HEADER.size:
        return {}
    f = IPV4_HEADER.unpack(data)
    out: dict[str, object] = {}
    for s in IPV4_HEADER.slots:
        value = f[s.name]
        out[LABELS.get(s.name, s.field.attribute or s.name)] = (
            str(IPv4Address(value)) if s.field.show == "ipv4" and isinstance(value, bytes)
            else bool(value) if s.field.show == "flag" else value)
    ihl = IPV4_HEADER.length(data)
    transport = {IPPROTO_TCP: TCP_HEADER, IPPROTO_UDP: UDP_HEADER}.get(int(str(out["proto"])))
    if transport is not None and len(data) >= ihl + 4:
        out["sport"] = transport.slot("sport").read(data[ihl:])
        out["dport"] = transport.slot("dport").read(data[ihl:])
    return out


def _ports(ip: IPv4 | None) -> tuple[int, int] | None:
    p = ip.payload if ip is not None else None
    return (p.sport, p.dport) if isinstance(p, (TCP, UDP)) else None


def _compare_rules(col: _Collector, pairs: dict[str, list[tuple[Hop, Hop]]], port_range: tuple[int, int],
                   vxlan_range: tuple[int, int], client_port: int | None) -> None:
    req, rep = pairs.get("request", []), pairs.get("reply", [])
    both = req + rep
    if not both:
        return
    hops = [m for m, _ in both]
    inner_m = [ls[-1][1] for ls in (_layers(m.frame) for m, _ in both) if ls]
    inner_k = [ls[-1][1] for ls in (_layers(k.frame) for _, k in both) if ls]
    if len(inner_m) == len(inner_k) == len(both):
        # the packet's IP ID along request then reply
        _compare_pattern(col, "ip id", hops, [x.id for x in inner_m], [x.id for x in inner_k])
        # ports: the server's exactly, the client's by rule
        ports_m = [p for p in map(_ports, inner_m) if p is not None]
        ports_k = [p for p in map(_ports, inner_k) if p is not None]
        if len(ports_m) == len(ports_k) == len(both):
            # a packet of the request travels client -> server, a reply's server -> client, but
            # for the bare RST the client's kernel answers a SYN-ACK no socket takes with
            # (tcp_v4_send_reset), the reply's continuation, which travels client -> server
            n = len(req)
            forward = [i < n or (isinstance(x.payload, TCP) and x.payload.flags == "R")
                       for i, x in enumerate(inner_m)]
            server_m = [p[1] if f else p[0] for p, f in zip(ports_m, forward)]
            server_k = [p[1] if f else p[0] for p, f in zip(ports_k, forward)]
            client_m = [p[0] if f else p[1] for p, f in zip(ports_m, forward)]
            client_k = [p[0] if f else p[1] for p, f in zip(ports_k, forward)]
            for h, a, b in zip(hops, server_m, server_k):
                col.exact(h, "server port", a, b)
            _compare_pattern(col, "client port", hops, client_m, client_k)
            # the client socket's own port (getsockname in the lab: a node's own packets are
            # masqueraded before any capture sees them) must be in ip_local_port_range
            low, high = port_range
            if client_port is not None:
                col.c.compared["client port range"] += 1
                if not low <= client_port <= high:
                    col.c.differences.append(Difference(hops[0].index, _key(hops[0]), "client socket port",
                                                        f"in {low}-{high}", client_port))
            for values, label, own in ((client_m, "model", client_m[0]),
                                       (client_k, "kernel", client_port or client_k[0])):
                for h, v in zip(hops, values):
                    if v != own:
                        col.c.compared["translated port range"] += 1
                        if not NAT_PORTS[0] <= v <= NAT_PORTS[1]:
                            col.c.differences.append(Difference(h.index, _key(h), "translated port range",
                                                                f"{NAT_PORTS[0]}-{NAT_PORTS[1]}", f"{label} {v}"))
        echo_m = [x.payload for x in inner_m if isinstance(x.payload, ICMP) and x.payload.type in (0, 8)]
        echo_k = [x.payload for x in inner_k if isinstance(x.payload, ICMP) and x.payload.type in (0, 8)]
        if len(echo_m) == len(echo_k) == len(both):
            _compare_pattern(col, "icmp id", hops, [x.id for x in echo_m], [x.id for x in echo_k])
    # the outer header of VXLAN hops
    outer = [(m, k) for m, k in both if len(_layers(m.frame)) > 1 and len(_layers(k.frame)) > 1]
    om = [_layers(m.frame)[0][1] for m, _ in outer]
    ok = [_layers(k.frame)[0][1] for _, k in outer]
    udp_m = [x.payload for x in om if isinstance(x.payload, UDP)]
    udp_k = [x.payload for x in ok if isinstance(x.payload, UDP)]
    if outer and len(udp_m) == len(udp_k) == len(outer):
        ohops = [m for m, _ in outer]
        _compare_pattern(col, "outer ip id", ohops, [x.id for x in om], [x.id for x in ok])
        _compare_pattern(col, "vxlan sport", ohops, [u.sport for u in udp_m], [u.sport for u in udp_k])
        low, high = vxlan_range
        for h, ua, ub in zip(ohops, udp_m, udp_k):
            for label, v in (("model", ua.sport), ("kernel", ub.sport)):
                col.c.compared["vxlan sport range"] += 1
                if not low <= v < high:
                    col.c.differences.append(Difference(h.index, _key(h), "vxlan sport range",
                                                        f"{low}-{high - 1}", f"{label} {v}"))


def _compare_quoted(col: _Collector, pairs: dict[str, list[tuple[Hop, Hop]]]) -> None:
    """An ICMP error quotes the offending packet: its IP ID and client port, random values, must
    be those of a packet of the exchange seen on the same side (model or kernel): the source
    port of a request packet, or the destination port of a reply packet."""
    for m, k in pairs.get("error", []):
        for side, hop, at in (("model", m, 0), ("kernel", k, 1)):
            icmp = hop.inner_ip.payload if hop.inner_ip is not None else None
            if not isinstance(icmp, ICMP) or not icmp.is_error:
                continue
            q = _quoted(icmp.data)
            reply = (q.get("src"), q.get("dst")) in col.replies
            role, port = ("reply", "dport") if reply else ("request", "sport")
            seen = set()
            for pair in pairs.get(role, []):
                for _, ip in _layers(pair[at].frame):
                    if ip.src == q.get("src") and ip.dst == q.get("dst"):
                        ports = _ports(ip)
                        seen.add((ip.id, (ports[1] if reply else ports[0]) if ports else None))
            name = f"icmp quoted id and {port}"
            col.c.compared[name] += 1
            if seen and (q.get("id"), q.get(port)) not in seen:
                col.c.differences.append(Difference(m.index, _key(m), name, f"those of a {role} packet",
                                                    f"{side} {q.get('id')}, {q.get(port)}"))


# checksums ----------------------------------------------------------------------------

def checksum_faults(raw: bytes, complete: bool = True) -> list[str]:
    """The checksums in a captured Ethernet frame that do not verify. With `complete` False
    (offload on), TCP and UDP checksums are not checked: the kernel leaves them partial."""
    faults: list[str] = []
    _check_eth(raw, complete, "", faults)
    return faults


def _check_eth(raw: bytes, complete: bool, prefix: str, faults: list[str]) -> None:
    eth_len = ETHERNET_HEADER.size
    if len(raw) < eth_len + IPV4_HEADER.size or ETHERNET_HEADER.slot("type").read(raw) != ETH_P_IP:
        return
    ip = raw[eth_len:]
    ihl = IPV4_HEADER.length(ip)
    total = IPV4_HEADER.slot("total_length").read(ip)
    if internet_checksum(ip[:ihl]) != 0:
        faults.append(f"{prefix}ip header checksum {IPV4_HEADER.slot('checksum').read(ip):#06x} does not verify")
    proto = IPV4_HEADER.slot("proto").read(ip)
    if IPV4_HEADER.slot("mf").read(ip) or IPV4_HEADER.slot("frag").read(ip):
        return
    body = ip[ihl:total]
    src, dst = IPV4_HEADER.slot("src"), IPV4_HEADER.slot("dst")
    pseudo = ip[src.offset:dst.offset + dst.size] + bytes([0, proto]) + len(body).to_bytes(2, "big")
    if proto == IPPROTO_ICMP:
        if internet_checksum(body) != 0:
            faults.append(f"{prefix}icmp checksum does not verify")
    elif proto == IPPROTO_TCP and complete and len(body) >= TCP_HEADER.size:
        if internet_checksum(pseudo + body) != 0:
            faults.append(f"{prefix}tcp checksum {TCP_HEADER.slot('checksum').read(body):#06x} does not verify")
    elif proto == IPPROTO_UDP and len(body) >= UDP_HEADER.size:
        csum = UDP_HEADER.slot("checksum").read(body)
        if complete and csum and internet_checksum(pseudo + body) != 0:
            faults.append(f"{prefix}udp checksum {csum:#06x} does not verify")
        vxlan_at = UDP_HEADER.size + VXLAN_HEADER.size
        if UDP_HEADER.slot("dport").read(body) in (8472, 4789) and len(body) >= vxlan_at + eth_len:
            _check_eth(body[vxlan_at:], complete, "inner ", faults)


# ------------------------------------------------------------------------------------------

def _arp_set(trace: Trace) -> Counter[str]:
    out: Counter[str] = Counter()
    for h in trace.hops:
        frame = h.frame
        if isinstance(frame, Ethernet) and isinstance(frame.payload, ARP):
            a = frame.payload
            op = "who-has" if a.op == 1 else "is-at"
            out[f"{_key(h)} {op} {a.pdst} tell {a.psrc} ({frame.src} > {frame.dst})"] += 1
    return out


def compare(model: Trace, observed: Any, cluster: Cluster | None = None, title: str | None = None,
            known: dict[str, str] | None = None) -> Comparison:
    """Compare a model trace with the kernel's (a lab `Observation`, or a `Trace`).

    `cluster` (the modelled one) names MACs by owning device and gives the port ranges.
    Differences in a field named in `known` (default `KNOWN_DEVIATIONS`; pass `{}` for none)
    go to `Comparison.known` instead of `differences`."""
    known = KNOWN_DEVIATIONS if known is None else known
    kernel: Trace = getattr(observed, "trace", observed)
    captures = getattr(observed, "captures", None)        # in hop order
    raw = [c.data for c in captures] if captures is not None else None
    complete = bool(getattr(observed, "checksums_complete", False))
    comparison = Comparison(title or model.title, model, kernel)
    owners: dict[str, str] = {}
    port_range = (32768, 60999)
    vxlan_range = (32768, 60999)
    if cluster is not None:
        for ns in cluster.network.namespaces.values():
            for dev in ns.devices.values():
                if dev.mac != "00:00:00:00:00:00":
                    owners.setdefault(dev.mac, f"{ns.name}/{dev.name}")
                if dev.kind == "vxlan":
                    vxlan_range = getattr(dev, "port_range", None) or (ns.sysctl.ip_local_port_range[0],
                                                     ns.sysctl.ip_local_port_range[1] + 1)
        first = next((h for h in model.hops if h.role == "request"), None)
        if first is not None:
            port_range = cluster.network.namespaces[first.netns].sysctl.ip_local_port_range
    col = _Collector(comparison, owners)
    col.replies = {(ip.src, ip.dst) for h in model.hops if h.role == "reply" for _, ip in _layers(h.frame)}

    # the outcome
    comparison.compared["outcome"] += 1
    if outcome_text(model.outcome) != outcome_text(kernel.outcome):
        comparison.differences.append(Difference(None, "exchange", "outcome", repr(outcome_text(model.outcome)),
                                                 repr(outcome_text(kernel.outcome))))

    roles = [r for r in dict.fromkeys([h.role for h in model.hops] + [h.role for h in kernel.hops])
             if r not in IGNORED_ROLES]
    pairs: dict[str, list[tuple[Hop, Hop]]] = {}
    for role in roles:
        matched: list[tuple[Hop, Hop]] = []
        groups = dict.fromkeys(sorted({_piece(h) for h in model.hops + kernel.hops if h.role == role}))
        for piece in groups:
            mh = [h for h in model.hops if h.role == role and _piece(h) == piece]
            kh = [h for h in kernel.hops if h.role == role and _piece(h) == piece]
            mk, kk = [_key(h) for h in mh], [_key(h) for h in kh]
            comparison.compared["path"] += 1
            name = f"{role} path" + (f" ({_piece_name(piece)})" if piece else "")
            if mk != kk:
                diff = [line for line in difflib.unified_diff(mk, kk, "model", "kernel", lineterm="", n=1)
                        if not line.startswith(("---", "+++"))]
                comparison.differences.append(Difference(None, name, "hops", f"{len(mk)} hops",
                                                         f"{len(kk)} hops:\n      " + "\n      ".join(diff)))
                sm = difflib.SequenceMatcher(a=mk, b=kk, autojunk=False)
                for block in sm.get_matching_blocks():
                    matched.extend((mh[block.a + i], kh[block.b + i]) for i in range(block.size))
            else:
                matched.extend(zip(mh, kh))
            # a drop: the model's packet ends where the kernel's captures of it end
            if mh and mh[-1].verdict == "dropped":
                comparison.compared["drop point"] += 1
                if not kh or _key(kh[-1]) != _key(mh[-1]):
                    comparison.differences.append(Difference(
                        mh[-1].index, name, "drop point", f"dropped after {_key(mh[-1])}",
                        f"last seen at {_key(kh[-1])}" if kh else "never seen"))
        pairs[role] = matched
        comparison.pairs.extend(matched)
        for m, k in matched:
            _compare_hop(col, m, k)
    _compare_rules(col, pairs, port_range, vxlan_range, getattr(observed, "client_port", None))
    _compare_quoted(col, pairs)
    if col.dns:
        comparison.compared["dns id/cookie"] += sum(len(a) for _, a, _ in col.dns)
        for fld, mv, kv in dns_random_differences([x for _, a, _ in col.dns for x in a],
                                                  [x for _, _, b in col.dns for x in b]):
            comparison.differences.append(Difference(col.dns[0][0].index, _key(col.dns[0][0]), fld, mv, kv))

    # checksums, on both sides
    for role, matched in pairs.items():
        for m, k in matched:
            if m.device_kind == "loopback" or m.device == "lo":
                continue
            for side, data, full in (("model", m.data, True), ("kernel", raw[k.index] if raw else None, complete)):
                if data is None:
                    continue
                comparison.compared["checksums"] += 1
                for fault in checksum_faults(data, full):
                    comparison.differences.append(Difference(m.index, _key(m), "checksum",
                                                             "verifies" if side == "kernel" else fault,
                                                             fault if side == "kernel" else "-"))
    if raw is not None and not complete:
        comparison.notes.append("transmit checksum offload was on: TCP and UDP checksums were not verified")

    # ARP, as a set
    ma, ka = _arp_set(model), _arp_set(kernel)
    comparison.compared["arp"] += sum((ma | ka).values())
    for line, n in sorted((ma - ka).items()):
        comparison.differences.append(Difference(None, "arp", "frame", f"{line} x{n}", "absent"))
    for line, n in sorted((ka - ma).items()):
        comparison.differences.append(Difference(None, "arp", "frame", "absent", f"{line} x{n}"))
    if cluster is not None:
        compare_rules(model, observed, cluster, comparison)     # the kernel's netfilter trace, if taken
    comparison.notes += getattr(observed, "notes", None) or []
    comparison.known = [d for d in comparison.differences if _base(d.field) in known]
    comparison.differences = [d for d in comparison.differences if _base(d.field) not in known]
    return comparison
