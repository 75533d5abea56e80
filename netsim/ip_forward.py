"""IPv4 forwarding: a packet routed through this namespace to another host.

Kernel behaviour modelled (net/ipv4/ip_forward.c `ip_forward`, `ip_forward_finish`;
net/ipv4/ip_output.c `ip_output`):
- the unicast route chosen by ip_route_input is the one the packet leaves by;
- a TTL of 1 (or 0) cannot be decremented: the packet is dropped with ICMP time exceeded;
- a packet with DF set that exceeds the output device's MTU is dropped with ICMP
  fragmentation needed, carrying that MTU (`ip_exceeds_mtu`);
- otherwise the TTL drops by one (`ip_decrease_ttl`), FORWARD runs, and the packet goes to
  the output path (dst_output: POSTROUTING, fragmentation, neighbour).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from .decision import Decision, IpReason, RouteReason, Subsystem, Verdict, field_change
from .device import Device
from .packet import ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, IPv4, evolve
from .route import Route, RouteResult, route_ref_for
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace


# The same route taken, the same TTL decremented: the same decision in every trace, found.
@lru_cache(maxsize=1 << 12)
def _routed(route: Route, src: str, dev: str) -> Decision:
    return Decision(Subsystem.ROUTE, "ip_route_input", RouteReason.FORWARD, Verdict.FORWARD,
                    consulted=(route_ref_for(route, src, dev, str(route)),))


@lru_cache(maxsize=1 << 8)
def _forwarded(ttl: int) -> Decision:
    return Decision(Subsystem.IP, "ip_forward", IpReason.FORWARDED, Verdict.FORWARD,
                    changes=(field_change("ipv4", "ttl", ttl, ttl - 1),))


def ip_forward(k: Kernel, ns: Namespace, in_dev: Device, ip: IPv4, rr: RouteResult, flow: Flow) -> None:
    flow.note(_routed(rr.route, rr.src or "", rr.dev))
    if ip.ttl <= 1:
        flow.end("dropped", Decision(Subsystem.IP, "ip_forward", IpReason.TTL_EXCEEDED, Verdict.DROP, ttl=ip.ttl))
        k.icmp_send(ns, ip, ICMP_TIME_EXCEEDED, 0, flow)
        return
    out_dev = ns.devices[rr.dev]
    if ip.df and ip.length() > out_dev.mtu:
        flow.end("dropped", Decision(Subsystem.IP, "ip_forward", IpReason.FRAG_NEEDED, Verdict.DROP,
                                     size=ip.length(), dev=out_dev.name, mtu=out_dev.mtu))
        k.icmp_send(ns, ip, ICMP_DEST_UNREACH, 4, flow, rest=out_dev.mtu)
        return
    ip = evolve(ip, ttl=ip.ttl - 1)
    flow.note(_forwarded(ip.ttl + 1))
    hooked = k.nf_hook(ns, "FORWARD", ip, flow, indev=in_dev.name, outdev=rr.dev)
    if hooked is None:
        return
    k.ip_output(ns, hooked, rr, flow)
