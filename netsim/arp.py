"""Neighbour resolution and ARP: how IPv4 finds the MAC of its next hop.

Kernel behaviour modelled (net/ipv4/arp.c `arp_rcv`, `arp_process`, `arp_solicit`,
`arp_error_report`; net/core/neighbour.c `neigh_resolve_output`, `__neigh_event_send`,
`neigh_update`, `neigh_timer_handler`):
- a packet for a next hop with a usable entry (PERMANENT, REACHABLE, STALE, NOARP) leaves
  with the entry's MAC; with no entry an INCOMPLETE one is created, the packet is queued and
  an ARP request is broadcast; more packets for an INCOMPLETE entry join the queue;
- when the wire goes quiet the request is repeated until `mcast_solicit` (3) requests went
  unanswered; then the entry is FAILED and every queued packet is dropped with an ICMP host
  unreachable to its sender (arp_error_report -> ipv4_link_failure);
- an ARP request for one of our addresses is answered and teaches us its sender (STALE,
  `neigh_event_ns`); one for another address is ignored, though it refreshes an existing
  entry for its sender whose MAC changed;
- an ARP reply makes a waiting entry REACHABLE and sends its queue; a reply nobody asked for
  is ignored (arp_accept=0); PERMANENT and NOARP entries never change;
- a userspace program with a packet socket for ARP (MetalLB's speaker) sees every request
  and may answer for an address no interface holds; the kernel still ignores the request.
A raw-IP device (TUN) has no link-layer header; a NOARP device (lo) uses its own address.
The table itself is in neighbour.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .decision import (ArpReason, Decision, FieldChange, NeighbourRef, NeighReason, Subsystem, Verdict, field_change,
                       neighbour_ref)
from .device import Device
from .neighbour import FAILED, INCOMPLETE, MCAST_SOLICIT, REACHABLE, STALE, Neighbour
from .packet import ARP, ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, ICMP_DEST_UNREACH, Ethernet, IPv4

from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .netns import Namespace
    from .walk import Walk


def neigh_ref(entry: Neighbour) -> NeighbourRef:
    return neighbour_ref(entry.dev, entry.ip, entry.lladdr or "", entry.state)


def l2_changes(flow: Flow, src: str, dst: str) -> tuple[FieldChange, ...]:
    """The Ethernet addresses a routed packet leaves with, against those it arrived with
    (none for a packet this host generated)."""
    arrived = flow.skb.eth
    if arrived is None:
        return ()
    old_src, old_dst = arrived
    out = []
    if old_dst != dst:
        out.append(field_change("ethernet", "dst", old_dst, dst))
    if old_src != src:
        out.append(field_change("ethernet", "src", old_src, src))
    return tuple(out)


def arp_rcv(walk: Walk, ns: Namespace, dev: Device, arp: ARP, flow: Flow) -> None:
    """arp_process: answer requests for our addresses, learn from replies we asked for. A
    program reading ARP from a packet socket bound to the device (ns.arp_responders) gets a
    request for another address too, after the kernel's handler (__netif_receive_skb_core
    serves ptype_base, where arp_rcv is, before the device's ptype_specific list), and may
    answer it itself."""
    if arp.op == ARP_REQUEST:
        if not ns.is_local_address(arp.pdst) or arp.pdst.startswith("127."):
            entry = ns.neighbours.get(dev.name, arp.psrc)
            if entry is not None and entry.state not in ("PERMANENT", "NOARP") and entry.lladdr != arp.hwsrc:
                ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, STALE)
            flow.end("dropped", Decision(Subsystem.ARP, "arp_process", ArpReason.NOT_FOR_US, Verdict.IGNORE,
                                         target=arp.pdst))
            for responder in ns.arp_responders:
                answer = responder(dev, arp)
                if answer is not None:
                    flow.note(answer[0])
                    walk.transmit(dev, answer[1], Flow(walk, "arp"))
            return
        existing = ns.neighbours.get(dev.name, arp.psrc)
        if existing is None or existing.state not in ("PERMANENT", "NOARP"):
            ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, STALE)
            neigh_update_flush(walk, ns, dev, arp.psrc)
        learned = ns.neighbours.get(dev.name, arp.psrc)
        flow.end("delivered", Decision(
            Subsystem.ARP, "arp_process", ArpReason.REPLY, Verdict.REPLY,
            consulted=(neigh_ref(learned),) if learned is not None else (),
            target=arp.pdst, mac=dev.mac, sender=arp.psrc, sender_mac=arp.hwsrc, dev=dev.name))
        reply = Ethernet(arp.hwsrc, dev.mac, ETH_P_ARP, ARP(ARP_REPLY, dev.mac, arp.pdst, arp.hwsrc, arp.psrc))
        walk.transmit(dev, reply, Flow(walk, "arp"))
        return
    entry = ns.neighbours.get(dev.name, arp.psrc)
    if entry is None:
        flow.end("dropped", Decision(Subsystem.ARP, "arp_process", ArpReason.UNSOLICITED, Verdict.IGNORE,
                                     sender=arp.psrc))
        return
    if entry.state in ("PERMANENT", "NOARP"):
        flow.end("delivered", Decision(Subsystem.ARP, "arp_process", ArpReason.KEEP, Verdict.KEEP,
                                       consulted=(neigh_ref(entry),)))
        return
    updated = ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, REACHABLE)
    walk.pending_arp.pop((ns.name, dev.name, arp.psrc), None)
    flow.end("delivered", Decision(Subsystem.NEIGHBOUR, "neigh_update", NeighReason.REACHABLE, Verdict.REACHABLE,
                                   consulted=(neigh_ref(updated),)))
    neigh_update_flush(walk, ns, dev, arp.psrc)


def neigh_update_flush(walk: Walk, ns: Namespace, dev: Device, ip: str) -> None:
    """neigh_update: an entry that became usable sends the packets queued on it."""
    entry = ns.neighbours.get(dev.name, ip)
    if entry is None or not entry.queue:
        return
    queued, entry.queue = entry.queue, []
    for packet, qflow in queued:
        # a bridged DNAT packet keeps the Ethernet source it arrived with (br_netfilter saved
        # it in nf_bridge->neigh_header; a capture on the bridge shows the pod's MAC)
        pending = qflow.skb.bridged_dnat
        src = pending[1] if pending is not None else dev.mac
        entry.hh = True                     # neigh_resolve_output -> neigh_hh_init
        qflow.note(Decision(Subsystem.NEIGHBOUR, "neigh_update", NeighReason.QUEUED_SENT, Verdict.SEND,
                            consulted=(neigh_ref(entry),), changes=l2_changes(qflow, src, entry.lladdr or "")))
        walk.transmit(dev, Ethernet(entry.lladdr or "", src, ETH_P_IP, packet), qflow)


def arp_solicit(walk: Walk, ns: Namespace, dev: Device, target: str, src_hint: str | None) -> None:
    """arp_solicit: broadcast who-has, from the queued packet's source if it is ours."""
    if src_hint is not None and ns.is_local_address(src_hint):
        sip: str | None = src_hint
    else:
        sip = ns.masquerade_source(dev.name, target) if dev.addresses else None
    if sip is None:
        sip = next((str(i.ip) for n, i in ns.addresses() if n != "lo"), "0.0.0.0")
    request = Ethernet(BROADCAST_MAC, dev.mac, ETH_P_ARP, ARP(ARP_REQUEST, dev.mac, sip, "00:00:00:00:00:00", target))
    arp_flow = Flow(walk, "arp")
    arp_flow.note(Decision(Subsystem.ARP, "arp_solicit", ArpReason.SOLICIT, Verdict.SOLICIT,
                           target=target, sender=sip, dev=dev.name))
    walk.transmit(dev, request, arp_flow)


def neigh_timer(walk: Walk) -> bool:
    """neigh_timer_handler, once the wire went quiet: probe again, or give up (FAILED, ICMP
    host unreachable for every queued packet). Returns whether anything was sent."""
    progressed = False
    for key, (ns, dev, ip) in list(walk.pending_arp.items()):
        entry = ns.neighbours.get(dev.name, ip)
        if entry is None or entry.state != INCOMPLETE:
            del walk.pending_arp[key]
            continue
        if entry.probes < MCAST_SOLICIT:
            entry.probes += 1
            arp_solicit(walk, ns, dev, ip, None)
            progressed = True
            continue
        entry.state = FAILED
        del walk.pending_arp[key]
        queued, entry.queue = entry.queue, []
        for packet, qflow in queued:
            qflow.end("dropped", Decision(Subsystem.NEIGHBOUR, "neigh_invalidate", NeighReason.FAILED, Verdict.DROP,
                                          consulted=(neigh_ref(entry),), probes=MCAST_SOLICIT), ns.name, dev.name)
            # arp_error_report -> ipv4_link_failure -> icmp_send, for forwarded and local
            # packets alike: ping shows "From <own address> ... Destination Host Unreachable".
            walk.send_icmp_error(ns, packet, ICMP_DEST_UNREACH, 1, qflow)
            progressed = True
    return progressed


def neigh_output(walk: Walk, ns: Namespace, dev: Device, nexthop: str, ip: IPv4, flow: Flow) -> None:
    """ip_finish_output2 -> neigh_output: put the link-layer header on, resolving the next
    hop's MAC first if needed."""
    if dev.link_type == "none":                 # no hard header (TUN)
        walk.transmit(dev, ip, flow)
        return
    if "NOARP" in dev.flags or "LOOPBACK" in dev.flags:      # arp_constructor: the device's own address
        walk.transmit(dev, Ethernet(dev.mac, dev.mac, ETH_P_IP, ip), flow)
        return
    entry = ns.neighbours.get(dev.name, nexthop)
    if entry is not None and entry.usable:
        # a bridged DNAT keeps the source it arrived with, as when it waited on ARP (neigh_update_flush)
        src = flow.skb.bridged_dnat[1] if flow.skb.bridged_dnat is not None else dev.mac
        entry.hh = True                     # neigh_resolve_output -> neigh_hh_init
        flow.note(Decision(Subsystem.NEIGHBOUR, "neigh_resolve_output", NeighReason.RESOLVED, Verdict.RESOLVED,
                           consulted=(neigh_ref(entry),), changes=l2_changes(flow, src, entry.lladdr or "")))
        walk.transmit(dev, Ethernet(entry.lladdr or "", src, ETH_P_IP, ip), flow)
        return
    if entry is None or entry.state == FAILED:
        entry = ns.neighbours.set(dev.name, nexthop, None, INCOMPLETE)
        entry.probes = 1
        entry.queue.append((ip, flow))
        flow.note(Decision(Subsystem.NEIGHBOUR, "__neigh_event_send", NeighReason.NEW_INCOMPLETE, Verdict.QUEUE,
                           consulted=(neigh_ref(entry),)))
        walk.pending_arp[(ns.name, dev.name, nexthop)] = (ns, dev, nexthop)
        arp_solicit(walk, ns, dev, nexthop, ip.src)
        return
    entry.queue.append((ip, flow))
    flow.note(Decision(Subsystem.NEIGHBOUR, "__neigh_event_send", NeighReason.INCOMPLETE, Verdict.QUEUE,
                       consulted=(neigh_ref(entry),)))
