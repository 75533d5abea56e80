"""REJECT: the target (xt_REJECT.c, libipt_REJECT.c) and what it makes the stack send back
(net/ipv4/netfilter/nf_reject_ipv4.c).

The target drops the packet and answers it. `--reject-with tcp-reset` runs nf_send_reset(): a
new RST built from the rejected segment (nf_reject_iphdr_put, nf_reject_ip_tcphdr_put) and sent
with ip_local_out(); every other type runs nf_send_unreach(), which hands the packet to
icmp_send() (net/ipv4/icmp.c) with ICMP type 3 and the type's code. nf_reject_ipv4.py asks this
module what to send and sends it; icmp_send's own work (choosing the source address, the IP ID,
quoting the packet) stays with icmp.py, built by netsim.endpoints.icmp_error, so there is one
model of each.
"""

from __future__ import annotations

from typing import Sequence

from ..endpoints import icmp_error
from ..packet import ICMP, IPPROTO_TCP, IPv4, TCP
from .xtables import MASK32, RuleHeader, Target, error

ICMP_DEST_UNREACH = 3
# icmp_is_err(): the ICMP types that are errors; icmp_send never answers one of them
ICMP_ERROR_TYPES = (3, 4, 5, 11, 12)

# --reject-with name -> (ICMP type, code), as libipt_REJECT names them; tcp-reset sends a RST.
REJECT_TYPES: dict[str, tuple[int, int] | None] = {
    "icmp-net-unreachable": (3, 0), "icmp-host-unreachable": (3, 1),
    "icmp-proto-unreachable": (3, 2), "icmp-port-unreachable": (3, 3),
    "icmp-net-prohibited": (3, 9), "icmp-host-prohibited": (3, 10),
    "icmp-admin-prohibited": (3, 13), "tcp-reset": None,
}
REJECT_ALIASES = {
    "net-unreach": "icmp-net-unreachable", "host-unreach": "icmp-host-unreachable",
    "proto-unreach": "icmp-proto-unreachable", "port-unreach": "icmp-port-unreachable",
    "net-prohib": "icmp-net-prohibited", "host-prohib": "icmp-host-prohibited",
    "admin-prohib": "icmp-admin-prohibited", "tcp-rst": "tcp-reset",
}


class RejectTarget(Target):
    """-j REJECT [--reject-with TYPE]; the default type is icmp-port-unreachable."""

    name = "REJECT"
    options = {"--reject-with": 1}

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.reject_with = "icmp-port-unreachable"

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        name = REJECT_ALIASES.get(args[0], args[0])
        if name not in REJECT_TYPES:
            raise error(f"--reject-with {args[0]!r}: known types are {', '.join(REJECT_TYPES)}")
        self.reject_with = name

    def finish(self) -> None:
        # reject_tg_check(): a RST needs a TCP rule that cannot match anything else
        if self.reject_with == "tcp-reset" and (self.rule.proto != IPPROTO_TCP or self.rule.proto_inv):
            raise error("REJECT --reject-with tcp-reset is valid only with -p tcp")

    def save(self) -> str:
        return f"-j REJECT --reject-with {self.reject_with}"

    @property
    def reply(self) -> tuple[int, int] | str:
        """What HookResult.reject_with carries: the ICMP (type, code), or "tcp-reset"."""
        return REJECT_TYPES[self.reject_with] or self.reject_with


def nf_send_reset(packet: IPv4, ttl: int) -> IPv4 | None:
    """The RST nf_send_reset() sends for a rejected TCP segment, or None where it sends nothing
    (nf_reject_ip_tcphdr_get: a non-first fragment, not TCP, or a RST itself).

    nf_reject_iphdr_put: from the segment's destination to its source, TOS 0, IP ID 0, DF set,
    TTL `ttl` (ip4_dst_hoplimit: the route's hoplimit, i.e. net.ipv4.ip_default_ttl).
    nf_reject_ip_tcphdr_put: ports swapped, no options, window 0; if the segment had ACK the RST
    takes seq = its ack and carries no ACK, else it is RST,ACK with seq 0 and
    ack = seq + SYN + FIN + payload length."""
    seg = packet.payload
    if not isinstance(seg, TCP) or "R" in seg.flags or packet.frag:
        return None
    if "A" in seg.flags:
        reply = TCP(seg.dport, seg.sport, seq=seg.ack, ack=0, flags="R", window=0)
    else:
        length = len(seg.payload) + ("S" in seg.flags) + ("F" in seg.flags)
        reply = TCP(seg.dport, seg.sport, seq=0, ack=(seg.seq + length) & MASK32, flags="RA", window=0)
    return IPv4(packet.dst, packet.src, IPPROTO_TCP, reply, ttl=ttl, id=0, df=True)


def nf_send_unreach(packet: IPv4, type_code: tuple[int, int]) -> tuple[int, int] | None:
    """The ICMP (type, code) nf_send_unreach() asks icmp_send() for, or None where nothing is
    sent: a non-first fragment (nf_send_unreach's own test) or an ICMP error (icmp_send never
    answers one)."""
    if packet.frag:
        return None
    if isinstance(packet.payload, ICMP) and packet.payload.type in ICMP_ERROR_TYPES:
        return None
    return type_code


def reject_reply(packet: IPv4, reject_with: str, source: str | None = None, ttl: int = 64,
                 ip_id: int = 0) -> IPv4 | None:
    """The whole packet REJECT makes the stack send back, or None where the kernel sends nothing.

    tcp-reset: `nf_send_reset`. ICMP types: `nf_send_unreach`, then icmp_send's packet
    (netsim.endpoints.icmp_error): destination unreachable with the type's code, quoting the
    rejected packet up to 576 bytes in all, TOS (tos & 0x1e) | 0xc0, DF clear. `source` is the
    address icmp_send picks (the stack knows it; default: the packet's destination), `ttl` the
    namespace's ip_default_ttl and `ip_id` the ID the stack assigns."""
    name = REJECT_ALIASES.get(reject_with, reject_with)
    if name not in REJECT_TYPES:
        raise error(f"--reject-with {reject_with!r}: known types are {', '.join(REJECT_TYPES)}")
    type_code = REJECT_TYPES[name]
    if type_code is None:
        return nf_send_reset(packet, ttl)
    sent = nf_send_unreach(packet, type_code)
    if sent is None:
        return None
    return icmp_error(packet, source or packet.dst, sent[0], sent[1], ttl, ip_id)
