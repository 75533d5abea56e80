"""Neighbour resolution and ARP: how IPv4 finds the MAC of its next hop.

Kernel behaviour modelled (net/ipv4/arp.c `arp_rcv`, `arp_process`, `arp_solicit`,
`arp_error_report`; net/core/neighbour.c `neigh_resolve_output`, `__neigh_event_send`,
`neigh_update`, `neigh_timer_handler`):
- a packet for a next hop with a usable entry (PERMANENT, REACHABLE, STALE, NOARP) leaves
  with the entry's MAC; one for a broadcast address or a multicast group needs no ARP: the
  broadcast MAC, or 01:00:5e and the group's low 23 bits (`arp_constructor`, NUD_NOARP); with no entry an INCOMPLETE one is created, the packet is queued and
  an ARP request is broadcast; more packets for an INCOMPLETE entry join the queue;
- when the wire goes quiet the request is repeated until `mcast_solicit` (3) requests went
  unanswered; then the entry is FAILED and every queued packet is dropped with an ICMP host
  unreachable to its sender (arp_error_report -> ipv4_link_failure);
- an ARP request for one of our addresses is answered and teaches us its sender (STALE,
  `neigh_event_ns`); one for another address is ignored, though it refreshes an existing
  entry for its sender whose MAC changed;
- a request whose sender is in 127/8 arriving on a device without route_localnet gets no
  answer and teaches nothing (arp_process asks ip_route_input_noref(skb, tip, sip, ...), which
  finds a martian source);
- an ARP reply makes a waiting entry REACHABLE and sends its queue; a reply nobody asked for
  is ignored (arp_accept=0); PERMANENT and NOARP entries never change;
- a userspace program with a packet socket for ARP (MetalLB's speaker) sees every request
  and may answer for an address no interface holds; the kernel still ignores the request.
A raw-IP device (TUN) has no link-layer header; a NOARP device (lo) uses its own address.
The table itself is in neighbour.py; the resolutions waiting on the timer are this module's
per-walk state (`PendingResolutions`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from .decision import (ArpReason, Decision, FieldChange, NeighbourRef, NeighReason, Subsystem, Verdict, field_change,
                       neighbour_ref)
from .device import Device
from .neighbour import FAILED, INCOMPLETE, MCAST_SOLICIT, REACHABLE, STALE, Neighbour

RETRANS_TIME_US = 1_000_000          # neigh retrans_time: a second between ARP requests
from .packet import ARP, ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, ICMP_DEST_UNREACH, Ethernet, IPv4

from .netns import route_localnet
from .route import address_int
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace


class PendingResolutions:
    """The INCOMPLETE entries whose timer is running (neigh_add_timer), in the order they were
    created: (namespace, device, address) by (namespace name, device name, address)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], tuple[Namespace, Device, str]] = {}


def neigh_ref(entry: Neighbour) -> NeighbourRef:
    return neighbour_ref(entry.dev, entry.ip, entry.lladdr or "", entry.state)


def l2_changes(flow: Flow, src: str, dst: str) -> tuple[FieldChange, ...]:
    """The Ethernet addresses a routed packet leaves with, against those it arrived with
    (none for a packet this host generated)."""
    return _l2_changes(flow.skb.eth, src, dst)


def _l2_changes(arrived: tuple[str, str] | None, src: str, dst: str) -> tuple[FieldChange, ...]:
    if arrived is None:
        return ()
    old_src, old_dst = arrived
    out = []
    if old_dst != dst:
        out.append(field_change("ethernet", "dst", old_dst, dst))
    if old_src != src:
        out.append(field_change("ethernet", "src", old_src, src))
    return tuple(out)


# The decisions every trace makes again, by the names they carry: found, not built, when the
# same entry (device, address, MAC, state) is met the same way. _key is what names an entry.
def _key(entry: Neighbour) -> tuple[str, str, str, str]:
    return entry.dev, entry.ip, entry.lladdr or "", entry.state


@lru_cache(maxsize=1 << 12)
def _not_for_us(target: str) -> Decision:
    return Decision(Subsystem.ARP, "arp_process", ArpReason.NOT_FOR_US, Verdict.IGNORE, target=target)


@lru_cache(maxsize=1 << 12)
def _replied(target: str, mac: str, sender: str, sender_mac: str, dev: str,
             learned: tuple[str, str, str, str] | None) -> Decision:
    return Decision(Subsystem.ARP, "arp_process", ArpReason.REPLY, Verdict.REPLY,
                    consulted=(neighbour_ref(*learned),) if learned is not None else (),
                    target=target, mac=mac, sender=sender, sender_mac=sender_mac, dev=dev)


@lru_cache(maxsize=1 << 12)
def _reachable(dev: str, ip: str, lladdr: str, state: str) -> Decision:
    return Decision(Subsystem.NEIGHBOUR, "neigh_update", NeighReason.REACHABLE, Verdict.REACHABLE,
                    consulted=(neighbour_ref(dev, ip, lladdr, state),))


@lru_cache(maxsize=1 << 12)
def _queued_sent(entry: tuple[str, str, str, str], arrived: tuple[str, str] | None, src: str) -> Decision:
    return Decision(Subsystem.NEIGHBOUR, "neigh_update", NeighReason.QUEUED_SENT, Verdict.SEND,
                    consulted=(neighbour_ref(*entry),), changes=_l2_changes(arrived, src, entry[2]))


@lru_cache(maxsize=1 << 12)
def _solicited(target: str, sender: str, dev: str) -> Decision:
    return Decision(Subsystem.ARP, "arp_solicit", ArpReason.SOLICIT, Verdict.SOLICIT, target=target, sender=sender,
                    dev=dev)


@lru_cache(maxsize=1 << 12)
def _resolved(entry: tuple[str, str, str, str], arrived: tuple[str, str] | None, src: str) -> Decision:
    return Decision(Subsystem.NEIGHBOUR, "neigh_resolve_output", NeighReason.RESOLVED, Verdict.RESOLVED,
                    consulted=(neighbour_ref(*entry),), changes=_l2_changes(arrived, src, entry[2]))


@lru_cache(maxsize=1 << 12)
def _new_incomplete(dev: str, ip: str, lladdr: str, state: str) -> Decision:
    return Decision(Subsystem.NEIGHBOUR, "__neigh_event_send", NeighReason.NEW_INCOMPLETE, Verdict.QUEUE,
                    consulted=(neighbour_ref(dev, ip, lladdr, state),))


@lru_cache(maxsize=1 << 12)
def _still_incomplete(dev: str, ip: str, lladdr: str, state: str) -> Decision:
    return Decision(Subsystem.NEIGHBOUR, "__neigh_event_send", NeighReason.INCOMPLETE, Verdict.QUEUE,
                    consulted=(neighbour_ref(dev, ip, lladdr, state),))


# ARP frames are values: the same question or answer on the same link is the same frame
@lru_cache(maxsize=1 << 12)
def _who_has(mac: str, sender: str, target: str) -> Ethernet:
    return Ethernet(BROADCAST_MAC, mac, ETH_P_ARP, ARP(ARP_REQUEST, mac, sender, "00:00:00:00:00:00", target))


@lru_cache(maxsize=1 << 12)
def _is_at(asker_mac: str, mac: str, ip: str, asker: str) -> Ethernet:
    return Ethernet(asker_mac, mac, ETH_P_ARP, ARP(ARP_REPLY, mac, ip, asker_mac, asker))


def arp_rcv(k: Kernel, ns: Namespace, dev: Device, arp: ARP, flow: Flow) -> None:
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
            flow.end("dropped", _not_for_us(arp.pdst))
            for responder in ns.arp_responders:
                answer = responder(dev, arp)
                if answer is not None:
                    flow.note(answer[0])
                    k.dev_queue_xmit(dev, answer[1], k.new_flow("arp"))
            return
        if arp.psrc.startswith("127.") and not route_localnet(ns, dev):
            flow.end("dropped", Decision(Subsystem.ARP, "arp_process", ArpReason.MARTIAN_SENDER, Verdict.IGNORE,
                                         sender=arp.psrc, dev=dev.name))
            return
        existing = ns.neighbours.get(dev.name, arp.psrc)
        if existing is None or existing.state not in ("PERMANENT", "NOARP"):
            ns.neighbours.set(dev.name, arp.psrc, arp.hwsrc, STALE)
            neigh_update_flush(k, ns, dev, arp.psrc)
        learned = ns.neighbours.get(dev.name, arp.psrc)
        flow.end("delivered", _replied(arp.pdst, dev.mac, arp.psrc, arp.hwsrc, dev.name,
                                       _key(learned) if learned is not None else None))
        k.dev_queue_xmit(dev, _is_at(arp.hwsrc, dev.mac, arp.pdst, arp.psrc), k.new_flow("arp"))
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
    k.state(PendingResolutions).entries.pop((ns.name, dev.name, arp.psrc), None)
    flow.end("delivered", _reachable(*_key(updated)))
    neigh_update_flush(k, ns, dev, arp.psrc)


def neigh_update_flush(k: Kernel, ns: Namespace, dev: Device, ip: str) -> None:
    """neigh_update: an entry that became usable sends the packets queued on it."""
    entry = ns.neighbours.get(dev.name, ip)
    if entry is None or not entry.queue:
        return
    queued, entry.queue = entry.queue, []
    for packet, qflow in queued:
        # the device's own address as source, a bridged DNAT's too: a capture on the bridge
        # shows the bridge's MAC; br_dev_xmit puts the source it arrived with back
        # (br_nf_pre_routing_finish_bridge_slow, from nf_bridge->neigh_header) after the taps
        entry.hh = True                     # neigh_resolve_output -> neigh_hh_init
        qflow.note(_queued_sent(_key(entry), qflow.skb.eth, dev.mac))
        k.dev_queue_xmit(dev, Ethernet(entry.lladdr or "", dev.mac, ETH_P_IP, packet), qflow)


def arp_solicit(k: Kernel, ns: Namespace, dev: Device, target: str, src_hint: str | None) -> None:
    """arp_solicit: broadcast who-has, from the queued packet's source if it is ours."""
    if src_hint is not None and ns.is_local_address(src_hint):
        sip: str | None = src_hint
    else:
        sip = ns.masquerade_source(dev.name, target) if dev.addresses else None
    if sip is None:
        sip = next((str(i.ip) for n, i in ns.addresses() if n != "lo"), "0.0.0.0")
    request = _who_has(dev.mac, sip, target)
    arp_flow = k.new_flow("arp")
    arp_flow.note(_solicited(target, sip, dev.name))
    k.dev_queue_xmit(dev, request, arp_flow)


def neigh_timer(k: Kernel) -> bool:
    """neigh_timer_handler, once the wire went quiet: probe again, or give up (FAILED, ICMP
    host unreachable for every queued packet). Returns whether anything was sent."""
    progressed = False
    pending = k.state(PendingResolutions).entries
    if pending:
        k.advance_clock(k.now_us() + RETRANS_TIME_US)     # the timer fires retrans_time later
    for key, (ns, dev, ip) in list(pending.items()):
        entry = ns.neighbours.get(dev.name, ip)
        if entry is None or entry.state != INCOMPLETE:
            del pending[key]
            continue
        if entry.probes < MCAST_SOLICIT:
            entry.probes += 1
            # neigh_probe solicits with the newest queued packet (skb_peek_tail), as the first time
            arp_solicit(k, ns, dev, ip, entry.queue[-1][0].src if entry.queue else None)
            progressed = True
            continue
        entry.state = FAILED
        del pending[key]
        queued, entry.queue = entry.queue, []
        for packet, qflow in queued:
            qflow.end("dropped", Decision(Subsystem.NEIGHBOUR, "neigh_invalidate", NeighReason.FAILED, Verdict.DROP,
                                          consulted=(neigh_ref(entry),), probes=MCAST_SOLICIT), ns.name, dev.name)
            # arp_error_report -> ipv4_link_failure -> icmp_send, for forwarded and local
            # packets alike: ping shows "From <own address> ... Destination Host Unreachable".
            k.icmp_send(ns, packet, ICMP_DEST_UNREACH, 1, qflow)
            progressed = True
    return progressed


def noarp_mac(ns: Namespace, addr: str) -> tuple[str, str] | None:
    """arp_constructor: a broadcast address (255.255.255.255, or one of the namespace's subnet
    broadcasts) takes the device's broadcast MAC, a multicast group 01:00:5e and its low 23
    bits (ip_eth_mc_map); no ARP for either (NUD_NOARP)."""
    value = address_int(addr)
    if value == 0xFFFFFFFF:
        return "broadcast", BROADCAST_MAC
    if 0xE0000000 <= value <= 0xEFFFFFFF:
        low = value & 0x7FFFFF
        return "multicast", f"01:00:5e:{low >> 16:02x}:{(low >> 8) & 0xFF:02x}:{low & 0xFF:02x}"
    route = ns.local_table.lookup(value)
    if route is not None and route.type == "broadcast" and route.dst.prefixlen == 32:
        return "broadcast", BROADCAST_MAC
    return None


def neigh_output(k: Kernel, ns: Namespace, dev: Device, nexthop: str, ip: IPv4, flow: Flow) -> None:
    """ip_finish_output2 -> neigh_output: put the link-layer header on, resolving the next
    hop's MAC first if needed."""
    if dev.link_type == "none":                 # no hard header (TUN)
        k.dev_queue_xmit(dev, ip, flow)
        return
    if "NOARP" in dev.flags or "LOOPBACK" in dev.flags:      # arp_constructor: the device's own address
        k.dev_queue_xmit(dev, Ethernet(dev.mac, dev.mac, ETH_P_IP, ip), flow)
        return
    entry = ns.neighbours.get(dev.name, nexthop)
    if entry is not None and entry.usable:
        # the device's own address as source, a bridged DNAT's too (neigh_update_flush)
        entry.hh = True                     # neigh_resolve_output -> neigh_hh_init
        flow.note(_resolved(_key(entry), flow.skb.eth, dev.mac))
        k.dev_queue_xmit(dev, Ethernet(entry.lladdr or "", dev.mac, ETH_P_IP, ip), flow)
        return
    if entry is None:
        mapped = noarp_mac(ns, nexthop)
        if mapped is not None:
            kind, mac = mapped
            flow.note(Decision(Subsystem.NEIGHBOUR, "arp_constructor", NeighReason.NOARP, Verdict.RESOLVED,
                               dst=nexthop, kind=kind, mac=mac))
            k.dev_queue_xmit(dev, Ethernet(mac, dev.mac, ETH_P_IP, ip), flow)
            return
    if entry is None or entry.state == FAILED:
        entry = ns.neighbours.set(dev.name, nexthop, None, INCOMPLETE)
        entry.probes = 1
        entry.queue.append((ip, flow))
        flow.note(_new_incomplete(*_key(entry)))
        k.state(PendingResolutions).entries[(ns.name, dev.name, nexthop)] = (ns, dev, nexthop)
        arp_solicit(k, ns, dev, nexthop, ip.src)
        return
    entry.queue.append((ip, flow))
    flow.note(_still_incomplete(*_key(entry)))
