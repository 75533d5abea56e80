"""ICMP errors the kernel sends about a packet it could not deliver or forward.

Kernel behaviour modelled (net/ipv4/icmp.c `icmp_send`, `__icmp_send`):
- never about an ICMP error (no error answers an error);
- only about the first fragment of a packet: a fragment with a non-zero offset gets no error
  (`if (iph->frag_off & htons(IP_OFFSET)) goto out;`, "Only reply to fragment 0");
- addressed to the offending packet's source; from the address the offender was sent to when
  that is ours (`saddr = iph->daddr` for an RTCF_LOCAL route: 127.0.0.1 for a packet to
  127.0.0.1, which then leaves only by a device with route_localnet), else from the source
  address the route back to it selects;
- the offender's header and as much of its payload as fits in 576 bytes are quoted, with
  TOS 0xc0 and DF clear (endpoints.icmp_error builds it);
- rate limited per destination (`icmpv4_xrlim_allow`, `inet_peer_xrlim_allow`): the types in
  net.ipv4.icmp_ratemask (destination unreachable, source quench, time exceeded, parameter
  problem) cost net.ipv4.icmp_ratelimit ms (1000) of a bucket that holds six and refills with
  time (a new peer starts full); "fragmentation needed" and errors sent over loopback are never
  limited; with icmp_ratelimit 0 nothing is. The global limit (icmp_msgs_per_sec, 1000 a second
  after a burst of 50) is not modelled: a walk never sends that many;
- it leaves through the normal output path (ip_local_out), as a packet of its own, carrying
  the offender's conntrack entry as RELATED (`icmp_glue_bits` -> `nf_ct_attach`), so the NAT
  the offender went through is undone on the error and on the header it quotes (a router's
  time exceeded about a DNATed NodePort probe quotes the NodePort, as traceroute shows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import endpoints as ep
from .conntrack_entry import ORIGINAL, REPLY, conntrack_ref
from .decision import ConntrackReason, Decision, IcmpReason, Subsystem, Verdict
from .packet import ICMP, IPPROTO_ICMP, IPv4
from .route import address_int
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace
    from .route import RouteResult

XRLIM_BURST_FACTOR = 6
PEER_START_US = 60_000_000          # inet_getpeer: a new peer's rate_last is 60 s in the past


def icmp_xrlim_allow(k: Kernel, ns: Namespace, rr: RouteResult, dst: str, itype: int, code: int) -> bool:
    """icmpv4_xrlim_allow: whether this error may be sent now (the module docstring)."""
    if itype == 3 and code == 4:
        return True
    if rr.dev == "lo" or not (ns.sysctl.icmp_ratemask >> itype) & 1:
        return True
    timeout = ns.sysctl.icmp_ratelimit * 1000
    if not timeout:
        return True
    now = k.now_us()
    tokens, last = ns.icmp_peers.get(dst, (0, now - PEER_START_US))
    tokens = min(tokens + now - last, XRLIM_BURST_FACTOR * timeout)
    allowed = tokens >= timeout
    if allowed:
        tokens -= timeout
    ns.icmp_peers[dst] = (tokens, now)
    return allowed


def icmp_send(k: Kernel, ns: Namespace, offender: IPv4, itype: int, code: int, flow: Flow,
              why: IcmpReason = IcmpReason.ERROR, rest: int = 0) -> None:
    if offender.frag:
        return   # __icmp_send replies to fragment 0 only
    if isinstance(offender.payload, ICMP) and offender.payload.is_error:
        return   # never answer an ICMP error with an ICMP error
    rr = ns.route_get(offender.src)
    if rr is None:
        return
    if not icmp_xrlim_allow(k, ns, rr, offender.src, itype, code):
        flow.note(Decision(Subsystem.ICMP, "icmp_send", IcmpReason.RATELIMITED, Verdict.DROP, type=itype, code=code,
                           dst=offender.src, ratelimit=ns.sysctl.icmp_ratelimit))
        return
    local = ns.is_local_address(offender.dst) or address_int(offender.dst) >> 24 == 127
    src = offender.dst if local else rr.src or offender.dst
    error = ep.icmp_error(offender, src, itype, code, ns.sysctl.ip_default_ttl,
                          ns.ip_id(src, offender.src, IPPROTO_ICMP), rest)
    err_flow = k.new_flow("error")
    ct = flow.skb.ct
    if ct is not None and not ct.confirmed:
        # icmp_glue_bits -> nf_ct_attach: the error belongs to the offender's connection
        # (RELATED, in the other direction) even when that entry is not in the table yet (a
        # packet dropped before its last hook), so NAT translates it back. A confirmed entry
        # is the one conntrack's own lookup of the quoted header finds at OUTPUT: same result.
        reply = not flow.skb.ct_reply
        err_flow.skb.ct, err_flow.skb.ct_reply, err_flow.skb.ct_state = ct, reply, "RELATED"
        err_flow.note(Decision(Subsystem.CONNTRACK, "nf_ct_attach", ConntrackReason.RELATED, Verdict.RELATED,
                               consulted=(conntrack_ref(ct, REPLY if reply else ORIGINAL, "RELATED"),), src=src))
    err_flow.note(Decision(Subsystem.ICMP, "icmp_send", why, Verdict.SEND, type=itype, code=code, src=src,
                           dst=offender.src))
    k.ip_local_out(ns, error, err_flow, rr)
