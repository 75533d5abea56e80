"""ICMP errors the kernel sends about a packet it could not deliver or forward.

Kernel behaviour modelled (net/ipv4/icmp.c `icmp_send`, `__icmp_send`):
- never about an ICMP error (no error answers an error);
- only about the first fragment of a packet: a fragment with a non-zero offset gets no error
  (`if (iph->frag_off & htons(IP_OFFSET)) goto out;`, "Only reply to fragment 0");
- addressed to the offending packet's source, from the source address the route back to it
  selects (else the address the offender was sent to);
- the offender's header and as much of its payload as fits in 576 bytes are quoted, with
  TOS 0xc0 and DF clear (endpoints.icmp_error builds it);
- it leaves through the normal output path (ip_output.py), as a packet of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import endpoints as ep
from .decision import Decision, IcmpReason, Subsystem, Verdict
from .ip_output import ip_local_out
from .packet import ICMP, IPPROTO_ICMP, IPv4

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .netns import Namespace
    from .walk import Walk


def icmp_send(walk: Walk, ns: Namespace, offender: IPv4, itype: int, code: int, flow: Flow,
              why: IcmpReason = IcmpReason.ERROR, rest: int = 0) -> None:
    if offender.frag:
        return   # __icmp_send replies to fragment 0 only
    if isinstance(offender.payload, ICMP) and offender.payload.is_error:
        return   # never answer an ICMP error with an ICMP error
    rr = ns.route_get(offender.src)
    if rr is None:
        return
    src = rr.src or offender.dst
    error = ep.icmp_error(offender, src, itype, code, ns.sysctl.ip_default_ttl,
                          ns.ip_id(src, offender.src, IPPROTO_ICMP), rest)
    err_flow = Flow(walk, "error")
    err_flow.note(Decision(Subsystem.ICMP, "icmp_send", why, Verdict.SEND, type=itype, code=code, src=src,
                           dst=offender.src))
    ip_local_out(walk, ns, error, err_flow, rr)
