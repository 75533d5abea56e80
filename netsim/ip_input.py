"""IPv4 receive: from a device up to routing, and local delivery to the transport layer.

Kernel behaviour modelled (net/ipv4/ip_input.c `ip_rcv`, `ip_rcv_finish`, `ip_local_deliver`,
`ip_local_deliver_finish`; net/ipv4/route.c `ip_route_input_slow`, `ip_error`;
net/ipv4/fib_frontend.c `fib_validate_source`):
- PREROUTING runs first (unless br_netfilter ran it already while the frame was bridged);
- a packet from outside to 127/8 is a martian destination, one from 127/8 a martian source,
  and dropped, unless net.ipv4.conf.{all,DEV}.route_localnet is 1 (ip_route_input_slow:
  `ipv4_is_loopback(daddr)` and `IN_DEV_NET_ROUTE_LOCALNET` before the FIB lookup; it moves
  no SNMP counter, only the per-CPU in_martian_dst / in_martian_src of /proc/net/stat/rt_cache,
  which is not per namespace); kube-proxy's iptables mode writes all.route_localnet=1 for
  NodePorts on localhost, the portmap plugin cni0's for hostPorts;
- a packet from outside whose source is one of our own addresses is a martian and dropped
  (accept_local=0), whatever its destination;
- a packet for one of our addresses (or the limited broadcast) runs INPUT, is reassembled if
  it is a fragment (ip_defrag) and goes to the transport layer (ip_protocol_deliver);
- a packet for a broadcast address of ours, or for the all-hosts group 224.0.0.1 every IPv4
  device joins, is delivered here too (`brd_input`, `ip_check_mc_rcu`) and never forwarded;
  one for another multicast group is dropped (no group joined, no multicast routing);
  with `net.ipv4.ip_forward=0`
  nothing is; otherwise the route decides: no route is ICMP net unreachable (ENETUNREACH),
  an `unreachable` route ICMP host unreachable, a `blackhole` route a silent discard, and a
  unicast route hands the packet to ip_forward (dst_input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .decision import Decision, RouteReason, Subsystem, Verdict
from .device import Device
from .packet import ICMP_DEST_UNREACH, IPv4
from .netns import route_localnet
from .route import address_int, route_ref

ALL_HOSTS = "224.0.0.1"
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace


def ip_rcv(k: Kernel, ns: Namespace, dev: Device, ip: IPv4, flow: Flow) -> None:
    """ip_rcv and ip_rcv_finish: PREROUTING, then the input route decides."""
    if not flow.skb.bridged:
        hooked = k.nf_hook(ns, "PREROUTING", ip, flow, indev=dev.name)
        if hooked is None:
            return
        ip = hooked
    flow.skb.bridged = False
    dst_int = address_int(ip.dst)
    if (dst_int >> 24 == 127 or address_int(ip.src) >> 24 == 127) and not route_localnet(ns, dev):
        if dst_int >> 24 == 127:
            flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.MARTIAN_DESTINATION,
                                         Verdict.DROP, dst=ip.dst, src=ip.src, dev=dev.name))
        else:
            flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.MARTIAN, Verdict.DROP,
                                         dst=ip.dst, src=ip.src, dev=dev.name))
        return
    is_local = ns.local_table.is_local         # ns.is_local_address, asked twice of every packet
    if is_local(ip.src) and "LOOPBACK" not in dev.flags:
        # fib_validate_source: a packet arriving from outside with one of our own addresses
        # as source is a martian (accept_local=0), whether it is for us or to be forwarded.
        flow.end("dropped", Decision(Subsystem.ROUTE, "fib_validate_source", RouteReason.MARTIAN, Verdict.DROP,
                                     src=ip.src, dev=dev.name, netns=ns.name))
        return
    if is_local(ip.dst) or ip.dst == "255.255.255.255":
        ip_local_deliver(k, ns, dev, ip, flow)
        return
    if 0xE0000000 <= dst_int <= 0xEFFFFFFF:
        if ip.dst == ALL_HOSTS:
            flow.note(Decision(Subsystem.ROUTE, "ip_route_input_mc", RouteReason.BROADCAST_LOCAL, Verdict.DELIVER,
                               dst=ip.dst))
            ip_local_deliver(k, ns, dev, ip, flow)
        else:
            flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_input_mc", RouteReason.NOT_MEMBER, Verdict.DROP,
                                         dst=ip.dst, dev=dev.name))
        return
    rr = ns.route_get(ip.dst)
    if rr is not None and rr.route.type == "broadcast":
        flow.note(Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.BROADCAST_LOCAL, Verdict.DELIVER,
                           consulted=(route_ref(rr),), dst=ip.dst))
        ip_local_deliver(k, ns, dev, ip, flow)
        return
    if not ns.sysctl.ip_forward:
        flow.end("dropped", Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.NOT_FORWARDING, Verdict.DROP,
                                     dst=ip.dst, netns=ns.name))
        return
    # ip_error: no route is ENETUNREACH (ICMP net unreachable), an `unreachable` route
    # EHOSTUNREACH (ICMP host unreachable); a `blackhole` route discards silently.
    if rr is None:
        flow.end("dropped", Decision(Subsystem.ROUTE, "ip_error", RouteReason.NO_ROUTE, Verdict.DROP, dst=ip.dst))
        k.icmp_send(ns, ip, ICMP_DEST_UNREACH, 0, flow)
        return
    if rr.route.type == "unreachable":
        flow.end("dropped", Decision(Subsystem.ROUTE, "ip_error", RouteReason.UNREACHABLE, Verdict.DROP,
                                     consulted=(route_ref(rr),)))
        k.icmp_send(ns, ip, ICMP_DEST_UNREACH, 1, flow)
        return
    if rr.route.type == "blackhole":
        flow.end("dropped", Decision(Subsystem.ROUTE, "ip_error", RouteReason.BLACKHOLE, Verdict.DROP,
                                     consulted=(route_ref(rr),)))
        return
    k.ip_forward(ns, dev, ip, rr, flow)


def ip_local_deliver(k: Kernel, ns: Namespace, dev: Device, ip: IPv4, flow: Flow) -> None:
    """ip_local_deliver: INPUT, reassembly (a socket only ever sees whole packets), then the
    protocol handler."""
    hooked = k.nf_hook(ns, "INPUT", ip, flow, indev=dev.name)
    if hooked is None:
        return
    ip = hooked
    if ip.is_fragment:
        whole = k.ip_defrag(("local", ns.name), ip, flow, "ip_defrag")
        if whole is None:
            return
        ip = whole
    k.ip_protocol_deliver(ns, ip, flow)
