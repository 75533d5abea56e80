"""flannel.1: the outer header the kernel builds, the source port hash, decapsulation."""

import pytest

import netsim
from netsim.decision import FdbRef, FieldChange
from netsim.errors import ConfigError
from netsim.packet import UDP, VXLAN, vxlan_of
from netsim.vxlan import flow_source_port
from tests.checks import bad_checksums, scapy_rebuild_matches
from tests.topologies import VTEP_MAC, flannel_pair


def outer_hops(trace, role="request"):
    return [h for h in trace if h.role == role and h.encapsulated]


def test_vxlan_outer_header_ttl64_df_clear_port_8472():
    net = flannel_pair()
    net.netns("n2pod0").listen("tcp", 8080)
    trace = net.send("n1pod0", "10.244.1.2", "tcp", dport=8080)
    hops = outer_hops(trace)
    assert [f"{h.where} {h.direction}" for h in hops] == [
        "node1/eth0 tx", "underlay/p-node1 rx", "underlay/p-node2 tx", "node2/eth0 rx"]
    eth0_1, eth0_2 = net.netns("node1").device("eth0").mac, net.netns("node2").device("eth0").mac
    for hop in hops:
        outer = hop.ip
        assert (hop.frame.src, hop.frame.dst) == (eth0_1, eth0_2)
        assert (outer.src, outer.dst, outer.ttl, outer.df, outer.tos) == ("192.168.50.11", "192.168.50.12", 64, False, 0)
        assert outer.id != 0 and outer.id != hop.inner_ip.id
        udp = outer.payload
        assert isinstance(udp, UDP) and udp.dport == 8472 and udp.checksum
        vx = vxlan_of(hop.frame)
        assert (vx.flags, vx.vni) == (0x08, 1)
        assert (vx.payload.src, vx.payload.dst) == (VTEP_MAC[1], VTEP_MAC[2])
        assert hop.inner_ip.ttl == 63
        assert bad_checksums(hop.data) == []
        assert scapy_rebuild_matches(hop.data)
    assert hops[0].data[14 + 20 + 6:14 + 20 + 8] != b"\0\0"       # outer UDP checksum present (udpcsum)
    encap = trace.where("node1/flannel.1", "tx", "request")[0].decisions[0]
    assert (encap.subsystem, encap.function, encap.verdict) == ("vxlan", "vxlan_xmit", "encapsulate")
    assert encap.consulted == (FdbRef("flannel.1", VTEP_MAC[2], dst="192.168.50.12"),)
    assert {f"{c.layer}.{c.field}": c.new for c in encap.changes} == {
        "outer-ipv4.src": "192.168.50.11", "outer-ipv4.dst": "192.168.50.12", "outer-ipv4.ttl": 64,
        "outer-udp.sport": hops[0].ip.payload.sport, "outer-udp.dport": 8472, "vxlan.vni": 1}


def test_encapsulation_and_decapsulation_leave_the_inner_frame_unchanged():
    trace = flannel_pair().send("n1pod0", "10.244.1.2")
    sent = trace.where("node1/flannel.1", "tx", "request")[0]
    received = trace.where("node2/flannel.1", "rx", "request")[0]
    assert sent.data == received.data
    assert vxlan_of(trace.where("node1/eth0", "tx", "request")[0].frame).payload.to_bytes() == sent.data
    assert received.ip.ttl == 63
    assert trace.where("n2pod0/eth0", "rx", "request")[0].ip.ttl == 62


def test_vxlan_source_port_in_local_port_range_and_stable_per_flow():
    net = flannel_pair()
    net.netns("n2pod0").listen("tcp", 8080)
    ports = []
    for _ in range(2):
        trace = net.send("n1pod0", "10.244.1.2", "tcp", dport=8080, sport=45000)
        ports.append((outer_hops(trace, "request")[0].ip.payload.sport, outer_hops(trace, "reply")[0].ip.payload.sport))
    assert ports[0] == ports[1]                 # the same connection hashes to the same port
    request_port, reply_port = ports[0]
    assert request_port != reply_port           # socket hashes differ per direction (kernel-observations s4)
    assert all(32768 <= p < 60999 for p in ports[0])
    other = net.send("n1pod0", "10.244.1.2", "tcp", dport=8080, sport=45001)
    assert outer_hops(other)[0].ip.payload.sport != request_port


def test_icmp_outer_source_port_is_the_same_in_both_directions():
    trace = flannel_pair().send("n1pod0", "10.244.1.2")
    assert outer_hops(trace, "request")[0].ip.payload.sport == outer_hops(trace, "reply")[0].ip.payload.sport


def test_source_port_follows_ip_local_port_range():
    net = flannel_pair()
    net.netns("node1").set_sysctl("net.ipv4.ip_local_port_range", "40000 40100")
    trace = net.send("n1pod0", "10.244.1.2")
    assert 40000 <= outer_hops(trace)[0].ip.payload.sport < 40100


def test_flow_source_port_scales_the_folded_hash_into_the_range():
    # udp_flow_src_port: hash ^= hash << 16; ((u64)hash * (max - min)) >> 32) + min
    assert flow_source_port(0, 32768, 60999) == 32768
    assert flow_source_port(0xFFFFFFFF, 32768, 60999) == 32768 + ((0xFFFF0000 ^ 0xFFFFFFFF) * 28231 >> 32)
    assert flow_source_port(0x0000FFFF, 32768, 60999) == 60998


def test_noudpcsum_sends_zero_outer_checksum():
    net = flannel_pair()
    net.netns("node1").device("flannel.1").udp_csum = False
    hop = outer_hops(net.send("n1pod0", "10.244.1.2"))[0]
    assert hop.data[14 + 20 + 6:14 + 20 + 8] == b"\0\0"
    assert bad_checksums(hop.data) == []


def test_missing_fdb_entry_drops_the_frame_with_the_reason():
    net = flannel_pair()
    net.netns("node1").device("flannel.1").fdb_delete(VTEP_MAC[2])
    trace = net.send("n1pod0", "10.244.1.2")
    last = trace.request[-1]
    assert (last.where, last.direction, last.verdict) == ("node1/flannel.1", "tx", "dropped")
    assert (last.reason.function, last.reason.verdict, last.reason.consulted) == (
        "vxlan_xmit", "drop", (FdbRef("flannel.1", VTEP_MAC[2]),))


def test_vni_mismatch_is_dropped_at_decapsulation():
    net = flannel_pair()
    net.netns("node2").device("flannel.1").vni = 2
    trace = net.send("n1pod0", "10.244.1.2")
    last = trace.request[-1]
    assert (last.where, last.direction, last.verdict) == ("node2/eth0", "rx", "dropped")
    assert (last.reason.function, last.reason.verdict) == ("vxlan_rcv", "drop")


def test_decapsulation_is_delivery_to_the_udp_socket_on_8472():
    trace = flannel_pair().send("n1pod0", "10.244.1.2")
    hop = trace.where("node2/eth0", "rx", "request")[0]
    assert hop.verdict == "delivered"
    assert (hop.reason.subsystem, hop.reason.function, hop.reason.verdict) == ("vxlan", "vxlan_rcv", "decapsulate")
    assert trace.where("node2/flannel.1", "rx", "request")[0].packet_id == hop.packet_id


def test_ip_d_link_line_matches_flannels_device():
    vx = flannel_pair().netns("node1").device("flannel.1")
    assert vx.details() == ("vxlan id 1 local 192.168.50.11 dev eth0 srcport 0 0 dstport 8472 nolearning ttl auto "
                            "ageing 300 udpcsum")


def test_fdb_entries_print_like_bridge_fdb():
    vx = flannel_pair().netns("node1").device("flannel.1")
    assert [str(e) for e in vx.fdb.values()] == [f"{VTEP_MAC[2]} dev flannel.1 dst 192.168.50.12 self permanent"]
    with pytest.raises(ConfigError, match="no FDB entry for 02:00:00:00:00:99 on flannel.1"):
        vx.fdb_delete("02:00:00:00:00:99")


def test_vxlan_header_built_for_the_wire_is_8_bytes():
    hop = outer_hops(flannel_pair().send("n1pod0", "10.244.1.2"))[0]
    vx = vxlan_of(hop.frame)
    assert isinstance(vx, VXLAN)
    assert hop.ip.payload.length() == 8 + 8 + 14 + hop.inner_ip.length()
    assert len(hop.data) == 14 + 20 + 8 + 8 + 14 + hop.inner_ip.length()


def test_vxlan_outer_tos_carries_inner_ecn_with_ce_as_ect0():
    """ip_tunnel_ecn_encap / INET_ECN_encapsulate: the outer header copies the inner ECN
    bits, except that congestion-experienced goes out as ECT(0)."""
    from netsim.packet import IPPROTO_ICMP, ICMP, IPv4, Ethernet, ETH_P_IP
    from netsim.skb import Skb
    from netsim.vxlan import vxlan_xmit
    from netsim.walk import Walk
    import netsim

    c = netsim.reference_cluster()
    node1 = c.netns("node1")
    vx = node1.devices["flannel.1"]
    peer_mac = c.netns("node2").devices["flannel.1"].mac
    outer_tos = {}
    for ecn in (0, 1, 2, 3):
        walk = Walk(c.network.udp_programs)
        inner = IPv4("10.244.0.2", "10.244.1.2", IPPROTO_ICMP, ICMP(8, 0, 1, b""), ttl=63, tos=0x20 | ecn)
        vxlan_xmit(walk, vx, Ethernet(peer_mac, vx.mac, ETH_P_IP, inner), walk.new_flow("request"))
        walk.run()
        outer_tos[ecn] = next(h.ip.tos for h in walk.hops() if h.where == "node1/eth0" and h.encapsulated)
    assert outer_tos == {0: 0, 1: 1, 2: 2, 3: 2}


def test_the_trace_names_the_owners_at_the_vxlan_hop_of_scenario_4():
    """pod-a -> pod-c: on node1's eth0 the inner frame is addressed to node2's VTEP and the
    outer packet to node2's underlay address; the trace says whose they are."""
    cluster = netsim.reference_cluster("vxlan")
    trace = netsim.scenarios.SIX[4](backend="vxlan", proto="tcp", cluster=cluster)
    hop = next(h for h in trace.request if h.where == "node1/eth0" and h.direction == "tx" and h.encapsulated)
    inner = vxlan_of(hop.frame).payload
    assert trace.owner(inner.dst) == "node2's flannel.1 (VTEP)"
    assert trace.owner(inner.src) == "node1's flannel.1 (VTEP)"
    assert trace.owner(hop.ip.dst) == "node2's eth0"
    assert trace.owner(hop.frame.dst) == "node2's eth0"
    assert trace.owner(hop.inner_ip.dst) == "pod-c's eth0"
    assert trace.owner(trace.where("node1/cni0", "rx", "request")[0].frame.dst) == "cni0 on node1"
    assert trace.owner("203.0.113.99") is None


def test_owners_name_a_service_and_the_vtep_address_used_as_snat_source():
    cluster = netsim.reference_cluster("vxlan")
    trace = cluster.send("pod-a", "web", proto="tcp")
    assert trace.owner("10.96.0.100") == "service web's ClusterIP"
    # node1 -> a pod on node2 leaves flannel.1 from its /32: the address flanneld gives the VTEP
    from_node = cluster.send("node1", "pod-c", proto="icmp")
    source = from_node.where("node1/flannel.1", "tx", "request")[0].ip.src
    assert (source, from_node.owner(source)) == ("10.244.0.0", "node1's flannel.1 /32")
