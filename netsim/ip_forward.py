"""IPv4 forwarding: a packet routed through this namespace to another host.

Kernel behaviour modelled (net/ipv4/ip_forward.c `ip_forward`, `ip_forward_finish`;
net/ipv4/ip_output.c `ip_output`):
- the unicast route chosen by ip_route_input is the one the packet leaves by;
- a TTL of 1 (or 0) cannot be decremented: the packet is dropped with ICMP time exceeded;
- a packet with DF set that exceeds the output device's MTU is dropped with ICMP
  fragmentation needed, carrying that MTU (`ip_exceeds_mtu`);
- otherwise the TTL drops by one (`ip_decrease_ttl`), FORWARD runs, and the packet goes to
  the output path (dst_output: POSTROUTING, fragmentation, neighbour);
- a packet that leaves by the device it came in on, from a source on that device's own subnet,
  makes ip_forward ask for an ICMP redirect first (IPSKB_DOREDIRECT, set by __mkroute_input
  with send_redirects and shared_media at their default 1; ip_rt_send_redirect). When the
  packet belongs to a tracked connection whose NAT is not fully decided yet or that is NATed,
  the redirect, related to it, is dropped at its OUTPUT hook by nf_nat
  (nf_nat_icmp_reply_translation: "redirects on non-null nats must be dropped"), and
  ip_send_skb counts IPSTATS_MIB_OUTDISCARDS. Measured: node1 routing pod-b's datagram to a
  ClusterIP back out of cni0 (bridge-nf-call-iptables 0) counts one IpOutDiscards and sends
  nothing; with send_redirects 0 it counts none. Not modelled: the redirect itself where
  nothing drops it (a packet of no tracked connection, or of an un-NATed one after its
  first), and ip_rt_send_redirect's backoff (at most one redirect per source within 40 ms).
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_address
from typing import TYPE_CHECKING

from .decision import Decision, IpReason, RouteReason, Subsystem, Verdict, field_change
from .device import Device
from .packet import ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, IPv4, with_ttl
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


# ... found by the route lookup's answer itself (Namespace.route_get remembers its answers):
# id(answer) -> (the answer, its decision), without hashing the route
_ROUTED: dict[int, tuple[RouteResult, Decision]] = {}


def _remember_routed(rr: RouteResult) -> tuple[RouteResult, Decision]:
    if len(_ROUTED) >= 1 << 12:
        _ROUTED.clear()
    found = _ROUTED[id(rr)] = (rr, _routed(rr.route, rr.src or "", rr.dev))
    return found


@lru_cache(maxsize=1 << 8)
def _forwarded(ttl: int) -> Decision:
    return Decision(Subsystem.IP, "ip_forward", IpReason.FORWARDED, Verdict.FORWARD,
                    changes=(field_change("ipv4", "ttl", ttl, ttl - 1),))


def ip_forward(k: Kernel, ns: Namespace, in_dev: Device, ip: IPv4, rr: RouteResult, flow: Flow) -> None:
    found = _ROUTED.get(id(rr))
    if found is None or found[0] is not rr:
        found = _remember_routed(rr)
    flow.note(found[1])
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
    ip = with_ttl(ip, ip.ttl - 1)
    flow.note(_forwarded(ip.ttl + 1))
    if out_dev is in_dev and _redirect_dropped_by_nat(ns, in_dev, ip, flow):
        flow.note(Decision(Subsystem.NAT, "nf_nat_icmp_reply_translation", IpReason.REDIRECT_ON_NAT, Verdict.DROP,
                           src=ip.src, dev=in_dev.name))
    hooked = k.nf_hook(ns, "FORWARD", ip, flow, indev=in_dev.name, outdev=rr.dev)
    if hooked is None:
        return
    k.ip_output(ns, hooked, rr, flow)


def _redirect_dropped_by_nat(ns: Namespace, dev: Device, ip: IPv4, flow: Flow) -> bool:
    """Whether ip_forward asks for a redirect (the source is on `dev`'s own subnet: the reverse
    route is a link route) that nf_nat then drops (the packet's connection is NATed, or its NAT
    is not decided in both directions yet: IPS_NAT_DONE_MASK not all set)."""
    ct = flow.skb.ct
    if ct is None or not (ct.snat or ct.dnat or not (ct.src_nat_done and ct.dst_nat_done)):
        return False
    return any(ip_address(ip.src) in iface.network for iface in dev.addresses)
