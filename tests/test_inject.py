"""Cluster.inject: a frame crafted with scapy, written to a packet socket on one device of one
host and walked from there on (packet_snd -> dev_queue_xmit: no route lookup, no netfilter in
the sender); bad hosts, devices and packets are netsim's own errors naming the value."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from netsim import ConfigError, UsageError, reference_cluster

POD_A_MAC, CNI0_MAC = "82:e5:dd:73:ad:88", "da:0d:8a:c2:5c:31"


def echo(ttl: int = 9, dst_mac: str = CNI0_MAC):
    return (Ether(src=POD_A_MAC, dst=dst_mac) / IP(src="10.244.0.2", dst="10.244.1.2", id=4242, ttl=ttl)
            / ICMP(id=7, seq=1) / Raw(b"netsim!!"))


def ip_path(trace):
    return [(h.where, h.direction, h.role, h.ip.ttl if h.inner_ip is None else h.inner_ip.ttl)
            for h in trace.hops if h.ip is not None]


def test_a_crafted_echo_request_leaves_the_device_as_written_and_is_answered():
    cluster = reference_cluster()
    assert (cluster.netns("pod-a").devices["eth0"].mac, cluster.netns("node1").devices["cni0"].mac) == (
        POD_A_MAC, CNI0_MAC)
    packet = echo()
    trace = cluster.inject("pod-a", "eth0", packet, cold=True)
    first = trace.hops[0]
    assert (first.where, first.direction, first.frame.to_bytes()) == ("pod-a/eth0", "tx", bytes(packet))
    assert ip_path(trace) == [
        ("pod-a/eth0", "tx", "request", 9), ("node1/veth9bb860b4", "rx", "request", 9),
        ("node1/cni0", "rx", "request", 9), ("node1/flannel.1", "tx", "request", 8),
        ("node1/eth0", "tx", "request", 8), ("underlay/p-node1", "rx", "request", 8),
        ("underlay/p-node2", "tx", "request", 8), ("node2/eth0", "rx", "request", 8),
        ("node2/flannel.1", "rx", "request", 8), ("node2/cni0", "tx", "request", 7),
        ("node2/veth4bd4e613", "tx", "request", 7), ("pod-c/eth0", "rx", "request", 7),
        ("pod-c/eth0", "tx", "reply", 64), ("node2/veth4bd4e613", "rx", "reply", 64),
        ("node2/cni0", "rx", "reply", 64), ("node2/flannel.1", "tx", "reply", 63),
        ("node2/eth0", "tx", "reply", 63), ("underlay/p-node2", "rx", "reply", 63),
        ("underlay/p-node1", "tx", "reply", 63), ("node1/eth0", "rx", "reply", 63),
        ("node1/flannel.1", "rx", "reply", 63), ("node1/cni0", "tx", "reply", 62),
        ("node1/veth9bb860b4", "tx", "reply", 62), ("pod-a/eth0", "rx", "reply", 62)]
    reply = trace.hops[-1]
    icmp = reply.ip.payload
    assert (reply.ip.src, reply.ip.dst, icmp.type, icmp.code, icmp.rest >> 16, icmp.rest & 0xFFFF, icmp.data) == (
        "10.244.1.2", "10.244.0.2", 0, 0, 7, 1, b"netsim!!")
    # pod-a has no ping socket for id 7: the reply ends there, as icmp_rcv drops it
    assert (reply.verdict, reply.reason.function, reply.reason.reason.value) == ("dropped", "icmp_rcv", "icmp-no-socket")
    # no route lookup or OUTPUT hook in pod-a: its first hop records no decision
    assert first.decisions == ()


def test_a_frame_for_a_mac_nobody_has_is_flooded_and_dropped_by_every_pod():
    cluster = reference_cluster()
    trace = cluster.inject("pod-a", "eth0", echo(dst_mac="02:00:00:00:00:99"), cold=True)
    ends = [(h.where, h.verdict, h.reason.reason.value if h.reason else "") for h in trace.hops if h.verdict]
    # an unknown unicast destination is flooded to every port, pod-a's own too (hairpin on:
    # br_flood's should_deliver), and every pod drops it as PACKET_OTHERHOST
    assert [(h.where, h.direction) for h in trace.hops] == [
        ("pod-a/eth0", "tx"), ("node1/veth9bb860b4", "rx"), ("node1/veth9bb860b4", "tx"),
        ("node1/veth274a81a3", "tx"), ("node1/veth8a32e516", "tx"), ("pod-a/eth0", "rx"), ("pod-b/eth0", "rx"),
        ("coredns/eth0", "rx")]
    assert ends == [("pod-a/eth0", "dropped", "otherhost"), ("pod-b/eth0", "dropped", "otherhost"),
                    ("coredns/eth0", "dropped", "otherhost")]


def test_an_arp_request_written_on_a_pod_is_answered_by_cni0():
    cluster = reference_cluster()
    arp = Ether(src=POD_A_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=POD_A_MAC, psrc="10.244.0.2",
                                                              pdst="10.244.0.1")
    trace = cluster.inject("pod-a", "eth0", arp, cold=True)
    answers = [h for h in trace.hops if h.where == "pod-a/eth0" and h.direction == "rx" and h.frame.payload.op == 2]
    assert [(a.frame.src, a.frame.payload.psrc, a.frame.payload.hwsrc, a.frame.payload.pdst) for a in answers] == [
        (CNI0_MAC, "10.244.0.1", CNI0_MAC, "10.244.0.2")]


@pytest.mark.parametrize("host, device, packet, error, words", [
    ("nohost", "eth0", echo(), ConfigError, ("'nohost'",)),
    ("pod-a", "eth9", echo(), ConfigError, ("'eth9'", "eth0")),
    ("pod-a", "eth0", "a frame", UsageError, ("'a frame'", "scapy")),
    ("pod-a", "eth0", echo() / Raw(b"x" * 1500), ConfigError, ("1550 bytes", "MTU 1450", "EMSGSIZE")),
    ("pod-a", "eth0", Ether(src=POD_A_MAC, dst=CNI0_MAC) / IP(dst="10.244.1.2", chksum=0x1234) / ICMP(),
     ConfigError, ("byte 24", "checksum")),
    ("pod-a", "eth0", b"\x01\x02", ConfigError, ("at least 14 bytes", "2")),
])
def test_bad_input_to_inject_is_netsims_own_error(host, device, packet, error, words):
    with pytest.raises(error) as caught:
        reference_cluster().inject(host, device, packet)
    assert all(w in str(caught.value) for w in words), str(caught.value)


def test_a_down_device_refuses_the_write():
    cluster = reference_cluster()
    cluster.netns("pod-a").devices["eth0"].up = False
    with pytest.raises(ConfigError, match="ENETDOWN"):
        cluster.inject("pod-a", "eth0", echo())


def test_a_udp_datagram_written_on_cni0_reaches_the_pod_and_its_server_answers():
    cluster = reference_cluster()
    cni0 = cluster.netns("node1").devices["cni0"]
    pod_b = cluster.netns("pod-b").devices["eth0"]
    packet = (Ether(src=cni0.mac, dst=pod_b.mac) / IP(src="10.244.0.1", dst="10.244.0.3", ttl=64)
              / UDP(sport=40000, dport=9090) / Raw(b"REQ"))
    trace = cluster.inject("node1", "cni0", packet, cold=True)
    udp = [(h.where, h.direction, h.ip.src, h.ip.dst, h.ip.payload.payload) for h in trace.hops
           if h.ip is not None and h.ip.proto == 17]
    # cold: cni0 has learned no port for pod-b's MAC, so br_dev_xmit floods it to every port
    assert udp[:7] == [("node1/cni0", "tx", "10.244.0.1", "10.244.0.3", b"REQ")] + [
        ("node1/" + veth, "tx", "10.244.0.1", "10.244.0.3", b"REQ")
        for veth in ("veth9bb860b4", "veth274a81a3", "veth8a32e516")] + [
        (pod + "/eth0", "rx", "10.244.0.1", "10.244.0.3", b"REQ") for pod in ("pod-a", "pod-b", "coredns")]
    assert ("pod-b/eth0", "tx", "10.244.0.3", "10.244.0.1", b"RSP") in udp
