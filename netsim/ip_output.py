"""IPv4 output: a packet this namespace sends, or one it forwards, on its way to a device.

Kernel behaviour modelled (net/ipv4/ip_output.c `ip_local_out`, `__ip_local_out`,
`ip_output`, `ip_finish_output`, `ip_finish_output2`; net/ipv4/route.c `ip_route_output_key`):
- a locally generated packet takes the output route (`ip route get`); a `blackhole` route
  fails the send with EINVAL, an `unreachable` one with EHOSTUNREACH, no route with
  ENETUNREACH;
- a 127/8 source may leave only by the loopback device or one with route_localnet
  (__mkroute_output: `ipv4_is_loopback(fl4->saddr)` without `IN_DEV_ROUTE_LOCALNET` is EINVAL),
  both for the first output route and for the one a DNAT in OUTPUT asks again;
- OUTPUT runs; a DNAT there sends the packet through the route lookup again;
- a packet for one of our own addresses runs POSTROUTING and goes out of `lo`;
- a locally generated packet with DF set larger than the path MTU (the device's, or a lower
  one the namespace learned: pmtu.py) fails with EMSGSIZE; one without DF is fragmented to the
  path MTU (`ip_skb_dst_mtu`), a forwarded one to the device's MTU;
- POSTROUTING runs; a packet over the MTU (or over the largest fragment conntrack reassembled
  it from, IPCB frag_max_size) is fragmented if DF is clear (ip_do_fragment), else dropped;
- the neighbour layer puts the Ethernet header on (neigh_output).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from .decision import Decision, IpReason, RouteReason, Subsystem, Verdict, field_change
from .packet import ETH_P_IP, Ethernet, IPv4
from .netns import route_localnet
from .route import Route, RouteResult, route_ref, route_ref_for
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace

# What a socket's connect()/sendmsg() gets for a route that cannot carry locally generated packets.
LOCAL_OUT_ERRNO = {"blackhole": "EINVAL", "unreachable": "EHOSTUNREACH"}


@lru_cache(maxsize=1 << 12)
def _output_route(route: Route, src: str, dev: str, dst: str) -> Decision:
    """The output route's decision: the same route to the same address is the same record."""
    return Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.OUTPUT, Verdict.OUTPUT,
                    consulted=(route_ref_for(route, src, dev, str(route)),), dst=dst)


# ... found by the route lookup's answer itself (Namespace.route_get remembers its answers):
# id(answer) -> (the answer, its decision), without hashing the route
_OUTPUT: dict[int, tuple[RouteResult, Decision]] = {}


def _remember_output(rr: RouteResult) -> tuple[RouteResult, Decision]:
    if len(_OUTPUT) >= 1 << 12:
        _OUTPUT.clear()
    found = _OUTPUT[id(rr)] = (rr, _output_route(rr.route, rr.src or "", rr.dev, rr.dst))
    return found


def ip_local_out(k: Kernel, ns: Namespace, ip: IPv4, flow: Flow, rr: RouteResult | None = None) -> None:
    """ip_local_out for a packet this namespace generates."""
    if rr is None:
        rr = ns.route_get(ip.dst, ip.src)
        if rr is None:
            flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.NO_ROUTE, Verdict.DROP,
                                         dst=ip.dst, netns=ns.name), ns.name)
            k.sock_send_error(ns, flow, "ENETUNREACH")
            return
    if rr.route.type in LOCAL_OUT_ERRNO:
        flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.LOCAL_ERROR, Verdict.DROP,
                                     consulted=(route_ref(rr),), errno=LOCAL_OUT_ERRNO[rr.route.type]), ns.name)
        k.sock_send_error(ns, flow, LOCAL_OUT_ERRNO[rr.route.type])
        return
    if _loopback_source_refused(k, ns, ip, rr, flow, "ip_route_output_key"):
        return
    found = _OUTPUT.get(id(rr))
    if found is None or found[0] is not rr:
        found = _remember_output(rr)
    flow.note(found[1])
    original_dst = ip.dst
    hooked = k.nf_hook(ns, "OUTPUT", ip, flow, outdev=rr.dev, nexthop=rr.nexthop)
    if hooked is None:
        return
    ip = hooked
    if ip.dst != original_dst:
        rerouted = ns.route_get(ip.dst, ip.src)
        if rerouted is None:
            flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_me_harder", RouteReason.NO_ROUTE, Verdict.DROP,
                                         dst=ip.dst), ns.name)
            k.sock_send_error(ns, flow, "ENETUNREACH")       # the output route lookup's error
            return
        rr = rerouted
        if _loopback_source_refused(k, ns, ip, rr, flow, "ip_route_me_harder"):
            return
        flow.note(Decision(Subsystem.ROUTE, "ip_route_me_harder", RouteReason.REROUTED, Verdict.OUTPUT,
                           consulted=(route_ref(rr),), dst=rr.dst))
    if rr.is_local:
        hooked = k.nf_hook(ns, "POSTROUTING", ip, flow, outdev="lo")
        if hooked is None:
            return
        lo = ns.devices["lo"]
        k.dev_queue_xmit(lo, Ethernet("00:00:00:00:00:00", "00:00:00:00:00:00", ETH_P_IP, hooked), flow)
        return
    out_dev = ns.devices[rr.dev]
    mtu = out_dev.mtu
    if ns.route_cache.by_dst:
        learned = ns.path_mtu(rr)
        if learned < mtu:
            mtu = flow.skb.pmtu = learned
    if ip.df and ip.length() > mtu:
        flow.end("dropped", Decision(Subsystem.IP, "ip_fragment", IpReason.EMSGSIZE, Verdict.DROP,
                                     size=ip.length(), dev=out_dev.name, mtu=mtu), ns.name, out_dev.name)
        k.sock_send_error(ns, flow, "EMSGSIZE")
        return
    k.ip_output(ns, ip, rr, flow)


def _loopback_source_refused(k: Kernel, ns: Namespace, ip: IPv4, rr: RouteResult, flow: Flow, fn: str) -> bool:
    """__mkroute_output's check: a 127/8 source routed out of a device other than `lo` without
    route_localnet fails the route with EINVAL (the packet is dropped, the sender told)."""
    if rr.is_local or ip.src[:4] != "127." or route_localnet(ns, ns.devices[rr.dev]):
        return False
    flow.end("dropped", Decision(Subsystem.ROUTE, fn, RouteReason.LOOPBACK_SOURCE, Verdict.DROP,
                                 consulted=(route_ref(rr),), src=ip.src, dst=ip.dst, dev=rr.dev, errno="EINVAL"),
             ns.name)
    k.sock_send_error(ns, flow, "EINVAL")
    return True


def ip_output(k: Kernel, ns: Namespace, ip: IPv4, rr: RouteResult, flow: Flow) -> None:
    """ip_output and ip_finish_output: POSTROUTING, then fragment what does not fit."""
    hooked = k.nf_hook(ns, "POSTROUTING", ip, flow, outdev=rr.dev, nexthop=rr.nexthop)
    if hooked is None:
        return
    ip = hooked
    out_dev = ns.devices[rr.dev]
    frag_max = flow.skb.frag_max
    mtu = min(out_dev.mtu, flow.skb.pmtu) if flow.skb.pmtu else out_dev.mtu
    if ip.length() > mtu or (frag_max and ip.length() > frag_max):
        if ip.df:
            flow.end("dropped", Decision(Subsystem.IP, "ip_fragment", IpReason.DF_TOO_BIG, Verdict.DROP,
                                         size=ip.length(), dev=out_dev.name, mtu=mtu), ns.name, out_dev.name)
            return
        size = min(mtu, frag_max) if frag_max else mtu
        fragments = k.ip_do_fragment(ip, size)
        changes = (field_change("ipv4", "len", ip.length(), fragments[0].length()),)
        if frag_max and frag_max <= out_dev.mtu:
            flow.note(Decision(Subsystem.IP, "ip_do_fragment", IpReason.REFRAGMENTED, Verdict.FRAGMENT,
                               changes=changes, frag_max=frag_max, count=len(fragments)))
        else:
            flow.note(Decision(Subsystem.IP, "ip_do_fragment", IpReason.FRAGMENTED, Verdict.FRAGMENT,
                               changes=changes, size=ip.length(), dev=out_dev.name, mtu=mtu,
                               count=len(fragments)))
        for frag in fragments:
            k.neigh_output(ns, out_dev, rr.nexthop, frag, flow.copy())
        return
    k.neigh_output(ns, out_dev, rr.nexthop, ip, flow)
