"""Transmit on a veth pair and on the loopback device.

Kernel behaviour modelled (drivers/net/veth.c `veth_xmit`, net/core/dev.c
`is_skb_forwardable` and `__dev_forward_skb`, drivers/net/loopback.c `loopback_xmit`):
- what one end of a veth transmits is received by its peer; with no peer, or a peer that is
  down, the frame is dropped;
- the peer accepts a frame only if it fits its MTU plus a VLAN tag (`is_skb_forwardable`);
  a larger one is counted in its rx_dropped, without an ICMP error; veth_xmit returns
  NET_XMIT_DROP, which `ip_send_skb` turns into ENOBUFS (`net_xmit_errno`): a socket whose send
  is still running sees it (ping prints "ping: sendmsg: No buffer space available"; UDP
  reports it only with IP_RECVERR), a packet that waited for ARP went out after the send
  returned and nobody is told (measured on Linux 6.18, tests/test_lab_sockets.py);
- a frame crossing into another namespace is scrubbed (`skb_scrub_packet`): its mark and
  conntrack reference are gone, only the flow hash survives;
- the loopback device receives what it sends, in the same namespace.
A physical NIC (`Nic`) is modelled as a veth whose peer is a port of the underlay switch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .decision import Decision, Subsystem, Verdict, VethReason
from .device import VLAN_HLEN, Device, Veth, l3_length
from .packet import Ethernet, IPv4
from .skb import Flow

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel


def veth_xmit(k: Kernel, dev: Veth, frame: Ethernet | IPv4, flow: Flow) -> None:
    """veth_xmit: hand the frame to the peer, which receives it on the next turn of the queue."""
    peer = dev.peer
    if peer is None or not peer.up:
        flow.end("dropped", Decision(Subsystem.VETH, "veth_xmit", VethReason.NO_PEER, Verdict.DROP, dev=dev.name))
        return
    size = l3_length(frame)
    if size > peer.mtu + VLAN_HLEN:
        flow.end("dropped", Decision(Subsystem.VETH, "is_skb_forwardable", VethReason.TOO_BIG, Verdict.DROP,
                                     peer=peer.where, size=size, mtu=peer.mtu),
                 peer.netns.name if peer.netns else "", peer.name)
        if dev.netns is not None:
            k.sock_send_error(dev.netns, flow, "ENOBUFS")
        return
    crossing = peer.netns is not dev.netns
    skb = flow.skb.scrub() if crossing else flow.skb
    k.netif_rx(peer, frame, flow.copy(skb))


def loopback_xmit(k: Kernel, dev: Device, frame: Ethernet | IPv4, flow: Flow) -> None:
    """loopback_xmit: the frame comes straight back in on `lo`."""
    k.netif_rx(dev, frame, flow)
