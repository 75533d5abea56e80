"""Each protocol module on its own, against a recording fake of the kernel interface
(tests/fake_kernel.py): one behaviour of each, checked on the services it asked for and the
records it left, with exact values. The walk is not involved: what a module hands on is what
the fake wrote down.
"""

from __future__ import annotations

import inspect
from ipaddress import IPv4Network

import pytest

from netsim.arp import PendingResolutions, neigh_output
from netsim.bridge import Bridge, br_forward
from netsim.decision import (ArpReason, BridgeReason, Decision, FieldChange, IcmpReason, IpReason, NeighReason,
                             RouteReason, SocketReason, Subsystem, TunReason, Verdict, VethReason, fdb_ref)
from netsim.device import Veth
from netsim.flannel import UDP_PORT, UdpProxy
from netsim.icmp import icmp_send
from netsim.ip_forward import ip_forward
from netsim.ip_fragment import FragQueues, ip_defrag
from netsim.ip_input import ip_rcv
from netsim.ip_output import ip_local_out
from netsim.kernel import Kernel
from netsim.neighbour import INCOMPLETE
from netsim.netfilter.nf_reject_ipv4 import nf_reject
from netsim.netns import Namespace
from netsim.packet import (ARP, ARP_REQUEST, BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
                           TCP, UDP, VXLAN, Ethernet, IPv4)
from netsim.route import route_ref
from netsim.skb import Skb
from netsim.sockets import transport_rcv
from netsim.trace import Ended
from netsim.tun import Tun, tun_net_xmit
from netsim.veth import veth_xmit
from netsim.vxlan import VxlanDevice, vxlan_xmit

from tests.fake_kernel import FakeKernel

MAC_A, MAC_B, MAC_C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def udp(src: str, dst: str, size: int, ttl: int = 64, df: bool = True) -> IPv4:
    """An IPv4/UDP packet of `size` bytes in all."""
    return IPv4(src, dst, IPPROTO_UDP, UDP(40000, 53, b"x" * (size - 28)), ttl=ttl, id=7, df=df)


def host(name: str, dev: str, mac: str, cidr: str, mtu: int = 1500) -> tuple[Namespace, Veth]:
    ns = Namespace(name)
    eth = Veth(dev, mac, mtu)
    ns.add_device(eth)
    ns.addr_add(dev, cidr)
    return ns, eth


def test_the_fake_offers_every_service_of_the_interface():
    services = {name for name, _ in inspect.getmembers(Kernel, inspect.isfunction) if not name.startswith("_")}
    assert services == {"dev_queue_xmit", "netif_rx", "netif_receive_skb", "netif_deliver", "record_hop", "do_softirq", "schedule",
                        "new_flow", "state", "now_us", "advance_clock", "nf_hook", "neigh_output", "ip_forward", "ip_output", "ip_local_out",
                        "ip_do_fragment", "ip_defrag", "icmp_send", "ip_protocol_deliver", "udp_sock_lookup",
                        "sock_send_error"}
    assert services - set(dir(FakeKernel)) == set()


def test_veth_xmit_drops_a_frame_above_the_peers_mtu_and_hands_a_fitting_one_to_the_peer_scrubbed():
    """is_skb_forwardable: the peer takes up to its MTU plus a VLAN tag (4 bytes)."""
    a, left = host("a", "eth0", MAC_A, "10.0.0.1/24")
    b, right = host("b", "veth1", MAC_B, "10.0.0.2/24", mtu=1400)
    left.peer, right.peer = right, left
    k = FakeKernel()
    too_big = Ethernet(MAC_B, MAC_A, ETH_P_IP, udp("10.0.0.1", "10.0.0.2", 1405))
    dropped = k.new_flow("request")
    veth_xmit(k, left, too_big, dropped)
    assert k.calls == [("sock_send_error", "a", dropped, "ENOBUFS")]     # NET_XMIT_DROP: the sender's ENOBUFS
    assert k.log.ended == [Ended(1, "request", "b", "veth1", "dropped", Decision(
        Subsystem.VETH, "is_skb_forwardable", VethReason.TOO_BIG, Verdict.DROP, peer="b/veth1", size=1405, mtu=1400))]

    fits = Ethernet(MAC_B, MAC_A, ETH_P_IP, udp("10.0.0.1", "10.0.0.2", 1404))
    flow = k.new_flow("request")
    flow.skb = Skb(mark=0x4000, hash=99, ct_state="NEW")
    k.calls.clear()
    veth_xmit(k, left, fits, flow)
    [(dev, frame, copy)] = k.named("netif_rx")
    assert (dev, frame, copy.packet_id, copy.skb) == (right, fits, 2, Skb(hash=99))   # skb_scrub_packet


def test_br_forward_sends_a_frame_out_of_the_port_its_fdb_names():
    ns = Namespace("node1")
    ns.sysctl.bridge_nf_call_iptables = False
    br = Bridge("cni0", MAC_C)
    ns.add_device(br)
    ports = {}
    for name, mac in (("veth-a", MAC_A), ("veth-b", MAC_B)):
        ports[name] = Veth(name, mac)
        ns.add_device(ports[name])
        br.attach(ports[name])
    br.learn("0a:58:0a:f4:00:03", "veth-b")
    k = FakeKernel()
    flow = k.new_flow("request")
    frame = Ethernet("0a:58:0a:f4:00:03", "0a:58:0a:f4:00:02", ETH_P_IP, udp("10.244.0.2", "10.244.0.3", 100))
    br_forward(k, br, ports["veth-a"], frame, flow)
    assert k.calls == [("dev_queue_xmit", ports["veth-b"], frame, flow)]
    assert flow.early == [Decision(Subsystem.BRIDGE, "br_forward", BridgeReason.FDB, Verdict.FORWARD,
                                   consulted=(fdb_ref("cni0", "0a:58:0a:f4:00:03", port="veth-b"),),
                                   bridge="cni0", dst="0a:58:0a:f4:00:03", port="veth-b")]


def test_ip_forward_decrements_the_ttl_runs_forward_and_hands_the_packet_to_dst_output():
    ns, eth0 = host("r1", "eth0", MAC_A, "10.0.0.1/24")
    ns.add_device(Veth("eth1", MAC_B))
    ns.addr_add("eth1", "10.1.0.1/24")
    rr = ns.route_get("10.1.0.9")
    assert rr is not None and rr.dev == "eth1"
    k = FakeKernel()
    flow = k.new_flow("request")
    packet = udp("10.0.0.9", "10.1.0.9", 100, ttl=64)
    ip_forward(k, ns, eth0, packet, rr, flow)
    forwarded = IPv4("10.0.0.9", "10.1.0.9", IPPROTO_UDP, packet.payload, ttl=63, id=7)
    assert k.calls == [("nf_hook", "r1", "FORWARD", forwarded, "eth0", "eth1", None),
                       ("ip_output", "r1", forwarded, rr, flow)]
    assert flow.early == [
        Decision(Subsystem.ROUTE, "ip_route_input", RouteReason.FORWARD, Verdict.FORWARD,
                 consulted=(route_ref(rr, "10.1.0.0/24 dev eth1 proto kernel scope link src 10.1.0.1"),)),
        Decision(Subsystem.IP, "ip_forward", IpReason.FORWARDED, Verdict.FORWARD,
                 changes=(FieldChange("ipv4", "ttl", 64, 63),))]


def test_ip_forward_answers_a_ttl_of_one_with_time_exceeded():
    ns, eth0 = host("r1", "eth0", MAC_A, "10.0.0.1/24")
    rr = ns.route_get("10.0.0.9")
    k = FakeKernel()
    packet = udp("10.0.0.8", "10.0.0.9", 100, ttl=1)
    flow = k.new_flow("request")
    ip_forward(k, ns, eth0, packet, rr, flow)
    assert k.calls == [("icmp_send", "r1", packet, 11, 0, IcmpReason.ERROR, 0)]
    assert k.log.ended[0].reason == Decision(Subsystem.IP, "ip_forward", IpReason.TTL_EXCEEDED, Verdict.DROP, ttl=1)


def test_vxlan_xmit_builds_the_outer_header_from_the_fdb_and_sends_it_through_the_underlay():
    ns, _ = host("node1", "eth0", MAC_A, "192.168.50.11/24")
    vx = VxlanDevice("flannel.1", MAC_B, 1, "192.168.50.11", "eth0")
    ns.add_device(vx)
    vx.fdb_append(MAC_C, "192.168.50.12")
    k = FakeKernel()
    flow = k.new_flow("request")
    flow.skb.hash = 0x1234ABCD
    inner = Ethernet(MAC_C, MAC_B, ETH_P_IP, udp("10.244.0.2", "10.244.1.2", 100, ttl=63))
    vxlan_xmit(k, vx, inner, flow)
    [(netns, outer, outer_flow, rr)] = k.named("ip_local_out")
    # udp_flow_src_port: hash ^= hash << 16 (32 bits), then scaled into [32768, 60999)
    h = (0x1234ABCD ^ (0x1234ABCD << 16)) & 0xFFFFFFFF
    sport = ((h * (60999 - 32768)) >> 32) + 32768
    assert (netns, rr, outer_flow.packet_id, outer_flow.skb.hash) == ("node1", None, 1, 0x1234ABCD)
    assert (outer.src, outer.dst, outer.proto, outer.ttl, outer.df, outer.tos) == (
        "192.168.50.11", "192.168.50.12", IPPROTO_UDP, 64, False, 0)
    assert outer.payload == UDP(sport, 8472, VXLAN(1, inner), checksum=True)


def test_neigh_output_queues_the_packet_and_broadcasts_who_has_when_the_next_hop_is_unknown():
    ns, eth0 = host("pod-a", "eth0", MAC_A, "10.244.0.2/24")
    k = FakeKernel()
    packet = udp("10.244.0.2", "10.244.0.1", 100)
    flow = k.new_flow("request")
    neigh_output(k, ns, eth0, "10.244.0.1", packet, flow)
    [(dev, request, arp_flow)] = k.named("dev_queue_xmit")
    assert (dev, arp_flow.role) == (eth0, "arp")
    assert request == Ethernet(BROADCAST_MAC, MAC_A, ETH_P_ARP,
                               ARP(ARP_REQUEST, MAC_A, "10.244.0.2", "00:00:00:00:00:00", "10.244.0.1"))
    entry = ns.neighbours.get("eth0", "10.244.0.1")
    assert (entry.state, entry.queue, entry.probes) == (INCOMPLETE, [(packet, flow)], 1)
    assert k.state(PendingResolutions).entries == {("pod-a", "eth0", "10.244.0.1"): (ns, eth0, "10.244.0.1")}
    assert arp_flow.early == [Decision(Subsystem.ARP, "arp_solicit", ArpReason.SOLICIT, Verdict.SOLICIT,
                                       target="10.244.0.1", sender="10.244.0.2", dev="eth0")]
    assert [d.reason for d in flow.early] == [NeighReason.NEW_INCOMPLETE]


def test_ip_defrag_holds_fragments_in_its_own_state_until_the_packet_is_whole():
    k = FakeKernel()
    whole = udp("10.0.0.1", "10.0.0.2", 1028, df=False)
    data = whole.payload_bytes()
    first = IPv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, data[:512], id=7, df=False, mf=True)
    last = IPv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, data[512:], id=7, df=False, frag=64)
    flow1, flow2 = k.new_flow("request"), k.new_flow("request")
    assert ip_defrag(k, ("local", "b"), last, flow1, "ip_defrag") is None
    assert list(k.state(FragQueues).queues) == [("local", "b", "10.0.0.1", "10.0.0.2", 7, IPPROTO_UDP)]
    rebuilt = ip_defrag(k, ("local", "b"), first, flow2, "ip_defrag")
    assert rebuilt == whole and k.state(FragQueues).queues == {}
    assert flow2.skb.frag_max == 532 and k.calls == []


def test_icmp_send_addresses_the_error_to_the_offenders_source_and_sends_it_as_its_own_packet():
    ns, _ = host("r1", "eth0", MAC_A, "10.0.0.1/24")
    k = FakeKernel()
    offender = udp("10.0.0.9", "10.9.9.9", 100)
    icmp_send(k, ns, offender, 3, 0, k.new_flow("request"))
    [(netns, error, err_flow, rr)] = k.named("ip_local_out")
    assert (netns, err_flow.role, rr) == ("r1", "error", ns.route_get("10.0.0.9"))
    assert (error.src, error.dst, error.proto, error.tos, error.df) == ("10.0.0.1", "10.0.0.9", IPPROTO_ICMP, 0xC0, False)
    assert (error.payload.type, error.payload.code, error.payload.data) == (3, 0, offender.to_bytes())
    assert err_flow.early == [Decision(Subsystem.ICMP, "icmp_send", IcmpReason.ERROR, Verdict.SEND, type=3, code=0,
                                       src="10.0.0.1", dst="10.0.0.9")]


def test_ip_rcv_answers_a_packet_with_no_route_with_net_unreachable():
    ns, eth0 = host("r1", "eth0", MAC_A, "10.0.0.1/24")
    ns.sysctl.ip_forward = True
    k = FakeKernel()
    packet = udp("10.0.0.9", "172.16.0.1", 100)
    ip_rcv(k, ns, eth0, packet, k.new_flow("request"))
    assert k.calls == [("nf_hook", "r1", "PREROUTING", packet, "eth0", None, None),
                       ("icmp_send", "r1", packet, 3, 0, IcmpReason.ERROR, 0)]
    assert k.log.ended[0].reason == Decision(Subsystem.ROUTE, "ip_error", RouteReason.NO_ROUTE, Verdict.DROP,
                                             dst="172.16.0.1")


def test_ip_local_out_fails_the_send_with_emsgsize_for_a_df_packet_over_the_mtu():
    ns, _ = host("pod-a", "eth0", MAC_A, "10.244.0.2/24", mtu=1450)
    k = FakeKernel()
    packet = udp("10.244.0.2", "10.244.0.3", 1451)
    flow = k.new_flow("request")
    ip_local_out(k, ns, packet, flow)
    assert k.calls == [("nf_hook", "pod-a", "OUTPUT", packet, None, "eth0", "10.244.0.3"),
                       ("sock_send_error", "pod-a", flow, "EMSGSIZE")]


def test_a_udp_datagram_to_a_closed_port_gets_port_unreachable():
    ns, _ = host("pod-c", "eth0", MAC_A, "10.244.1.2/24")
    k = FakeKernel()
    packet = udp("10.244.0.2", "10.244.1.2", 40)
    transport_rcv(k, ns, packet, k.new_flow("request"))
    assert k.calls == [("icmp_send", "pod-c", packet, 3, 3, IcmpReason.ERROR, 0)]
    assert k.log.ended[0].reason == Decision(Subsystem.SOCKET, "udp_rcv", SocketReason.UDP_NO_SOCKET,
                                             Verdict.UNREACHABLE, port=53)


def test_tun_net_xmit_discards_what_no_program_reads():
    ns = Namespace("node1")
    tun = Tun("flannel0", 1472)
    ns.add_device(tun)
    k = FakeKernel()
    tun_net_xmit(k, tun, udp("10.244.0.2", "10.244.1.2", 100), k.new_flow("request"))
    assert k.calls == []
    assert k.log.ended[0].reason == Decision(Subsystem.TUN, "tun_net_xmit", TunReason.NOT_OPEN, Verdict.DROP,
                                             dev="flannel0")


def test_flanneld_udp_proxy_lowers_the_ttl_and_sends_the_packet_in_udp_to_the_peer():
    ns = Namespace("node1")
    tun = Tun("flannel0", 1472)
    ns.add_device(tun)
    proxy = UdpProxy("node1", "192.168.50.11", {IPv4Network("10.244.1.0/24"): "192.168.50.12"})
    k = FakeKernel()
    packet = udp("10.244.0.2", "10.244.1.2", 100, ttl=63)
    proxy.from_tun(k, tun, packet, k.new_flow("request"))
    [(netns, outer, out_flow, rr)] = k.named("ip_local_out")
    assert (netns, rr, out_flow.skb) == ("node1", None, Skb())
    assert outer == IPv4("192.168.50.11", "192.168.50.12", IPPROTO_UDP,
                         UDP(UDP_PORT, UDP_PORT, IPv4("10.244.0.2", "10.244.1.2", IPPROTO_UDP, packet.payload, ttl=62,
                                                      id=7)), ttl=64, id=0, df=True)


@pytest.mark.parametrize("how", ["tcp-reset", (3, 10)])
def test_nf_reject_sends_a_reset_through_ip_local_out_or_an_error_through_icmp_send(how):
    ns, _ = host("node1", "eth0", MAC_A, "192.168.50.11/24")
    k = FakeKernel()
    syn = IPv4("192.168.50.1", "192.168.50.11", IPPROTO_TCP, TCP(40000, 22, seq=1000, flags="S"), id=3)
    flow = k.new_flow("request")
    nf_reject(k, ns, syn, how, flow)
    if how == "tcp-reset":
        [(netns, rst, rst_flow, rr)] = k.named("ip_local_out")
        assert (netns, rst_flow.role, rr) == ("node1", "reply", None)
        assert rst == IPv4("192.168.50.11", "192.168.50.1", IPPROTO_TCP,
                           TCP(22, 40000, seq=0, ack=1001, flags="RA", window=0), ttl=64, id=0, df=True)
    else:
        assert k.calls == [("icmp_send", "node1", syn, 3, 10, IcmpReason.REJECTED, 0)]
