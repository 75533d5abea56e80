"""IPv4 output: a packet this namespace sends, or one it forwards, on its way to a device.

Kernel behaviour modelled (net/ipv4/ip_output.c `ip_local_out`, `__ip_local_out`,
`ip_output`, `ip_finish_output`, `ip_finish_output2`; net/ipv4/route.c `ip_route_output_key`):
- a locally generated packet takes the output route (`ip route get`); a `blackhole` route
  fails the send with EINVAL, an `unreachable` one with EHOSTUNREACH, no route with
  ENETUNREACH;
- OUTPUT runs; a DNAT there sends the packet through the route lookup again;
- a packet for one of our own addresses runs POSTROUTING and goes out of `lo`;
- a locally generated packet with DF set larger than the device's MTU fails with EMSGSIZE;
- POSTROUTING runs; a packet over the MTU (or over the largest fragment conntrack reassembled
  it from, IPCB frag_max_size) is fragmented if DF is clear (ip_fragment.py), else dropped;
- the neighbour layer puts the Ethernet header on (arp.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .arp import neigh_output
from .decision import Decision, field_change
from .ip_fragment import ip_fragment
from .packet import ETH_P_IP, Ethernet, IPv4
from .route import RouteResult, route_ref

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .netns import Namespace
    from .walk import Walk

# What a socket's connect()/sendmsg() gets for a route that cannot carry locally generated packets.
LOCAL_OUT_ERRORS = {"blackhole": "Invalid argument", "unreachable": "No route to host"}
LOCAL_OUT_ERRNO = {"blackhole": "EINVAL", "unreachable": "EHOSTUNREACH"}


def ip_local_out(walk: Walk, ns: Namespace, ip: IPv4, flow: Flow, rr: RouteResult | None = None) -> None:
    """ip_local_out for a packet this namespace generates."""
    if rr is None:
        rr = ns.route_get(ip.dst, ip.src)
        if rr is None:
            flow.end("dropped", Decision("route", "ip_route_output_key",
                                         f"no route to {ip.dst} in {ns.name}: Network is unreachable", verdict="drop"),
                     ns.name)
            walk.local_error(ns, flow, "ENETUNREACH")
            return
    if rr.route.type in LOCAL_OUT_ERRORS:
        flow.end("dropped", Decision("route", "ip_route_output_key",
                                     f"route {rr.route}: {LOCAL_OUT_ERRORS[rr.route.type]}", verdict="drop",
                                     consulted=(route_ref(rr),)), ns.name)
        walk.local_error(ns, flow, LOCAL_OUT_ERRNO[rr.route.type])
        return
    text = str(rr)
    flow.note(Decision("route", "ip_route_output_key", f"route: {text}", verdict="output",
                       consulted=(route_ref(rr, str(rr.route)),)))
    original_dst = ip.dst
    hooked = walk.hook(ns, "OUTPUT", ip, flow, outdev=rr.dev, nexthop=rr.nexthop)
    if hooked is None:
        return
    ip = hooked
    if ip.dst != original_dst:
        rerouted = ns.route_get(ip.dst, ip.src)
        if rerouted is None:
            flow.end("dropped", Decision("route", "ip_route_me_harder", f"no route to {ip.dst} after NAT",
                                         verdict="drop"), ns.name)
            walk.local_error(ns, flow, "ENETUNREACH")       # the output route lookup's error
            return
        rr = rerouted
        flow.note(Decision("route", "ip_route_me_harder", f"rerouted after DNAT: {rr}", verdict="output",
                           consulted=(route_ref(rr),)))
    if rr.is_local:
        hooked = walk.hook(ns, "POSTROUTING", ip, flow, outdev="lo")
        if hooked is None:
            return
        lo = ns.devices["lo"]
        walk.transmit(lo, Ethernet("00:00:00:00:00:00", "00:00:00:00:00:00", ETH_P_IP, hooked), flow)
        return
    out_dev = ns.devices[rr.dev]
    if ip.df and ip.length() > out_dev.mtu:
        flow.end("dropped", Decision("ip", "ip_fragment",
                                     f"{ip.length()} bytes with DF set exceed {out_dev.name}'s MTU {out_dev.mtu}: "
                                     f"the socket gets EMSGSIZE", verdict="drop"), ns.name, out_dev.name)
        walk.local_error(ns, flow, "EMSGSIZE")
        return
    ip_output(walk, ns, ip, rr, flow)


def ip_output(walk: Walk, ns: Namespace, ip: IPv4, rr: RouteResult, flow: Flow) -> None:
    """ip_output and ip_finish_output: POSTROUTING, then fragment what does not fit."""
    hooked = walk.hook(ns, "POSTROUTING", ip, flow, outdev=rr.dev, nexthop=rr.nexthop)
    if hooked is None:
        return
    ip = hooked
    out_dev = ns.devices[rr.dev]
    frag_max = flow.skb.frag_max
    if ip.length() > out_dev.mtu or (frag_max and ip.length() > frag_max):
        if ip.df:
            flow.end("dropped", Decision("ip", "ip_fragment", f"{ip.length()} bytes exceed {out_dev.name}'s MTU "
                                                               f"{out_dev.mtu}", verdict="drop"), ns.name, out_dev.name)
            return
        size = min(out_dev.mtu, frag_max) if frag_max else out_dev.mtu
        fragments = ip_fragment(ip, size)
        why = (f"reassembled by conntrack, cut back to its largest fragment ({frag_max} bytes)"
               if frag_max and frag_max <= out_dev.mtu else f"{ip.length()} bytes exceed {out_dev.name}'s MTU "
                                                            f"{out_dev.mtu} and DF is clear")
        flow.note(Decision("ip", "ip_do_fragment", f"{why}: {len(fragments)} fragments", verdict="fragment",
                           changes=(field_change("ipv4", "len", ip.length(), fragments[0].length()),)))
        for frag in fragments:
            neigh_output(walk, ns, out_dev, rr.nexthop, frag, flow.copy())
        return
    neigh_output(walk, ns, out_dev, rr.nexthop, ip, flow)
