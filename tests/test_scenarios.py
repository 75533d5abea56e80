"""The six scenarios on the reference cluster, hop by hop, against kernel-observations.md.

Each test states what the real kernel put on the wire (device sequence, MACs by owner, IPs,
TTLs, DF, ports and their translation, outer VXLAN headers) and checks netsim's trace.
"""

import pytest

import netsim
from netsim import scenarios
from netsim.decision import RuleRef
from netsim.packet import TCP, UDP, VXLAN


@pytest.fixture(scope="module")
def cluster():
    return netsim.reference_cluster()


def mac(cluster, host, dev):
    return cluster.netns(host).devices[dev].mac


def veth(cluster, pod):
    return cluster.pods[pod].host_veth


def syn_path(trace, role="request"):
    return [f"{h.where} {h.direction}" for h in trace.hops if h.role == role and not h.is_arp]


def test_s1_container_to_container_is_loopback_only(cluster):
    trace = scenarios.container_to_container(cluster=cluster)
    assert [h.where for h in trace] == ["pod-a/lo", "pod-a/lo"]
    syn, synack = trace.hops
    assert (syn.ip.src, syn.ip.dst, syn.ip.ttl, syn.ip.df) == ("127.0.0.1", "127.0.0.1", 64, True)
    assert syn.frame.src == syn.frame.dst == "00:00:00:00:00:00"
    assert syn.ip.payload.flags == "S" and syn.ip.payload.dport == 8080
    assert synack.ip.payload.flags == "SA" and synack.ip.id == 0
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", "127.0.0.1:8080")


def test_s2_same_node_is_bridged_with_ttl_unchanged(cluster):
    trace = scenarios.pod_to_pod_same_node(cluster=cluster)
    va, vb = veth(cluster, "pod-a"), veth(cluster, "pod-b")
    assert syn_path(trace) == ["pod-a/eth0 tx", f"node1/{va} rx", f"node1/{vb} tx", "pod-b/eth0 rx"]
    assert syn_path(trace, "reply") == ["pod-b/eth0 tx", f"node1/{vb} rx", f"node1/{va} tx", "pod-a/eth0 rx"]
    for hop in trace.request:
        assert hop.frame.src == mac(cluster, "pod-a", "eth0")
        assert hop.frame.dst == mac(cluster, "pod-b", "eth0")
        assert (hop.ip.src, hop.ip.dst, hop.ip.ttl, hop.ip.df) == ("10.244.0.2", "10.244.0.3", 64, True)
    assert len({h.ip.id for h in trace.request}) == 1


def test_s2_arp_broadcast_reaches_nine_device_directions_with_hairpin(cluster):
    """The broadcast goes out of every cni0 port (pod-a's own, by hairpin; pod-b's; the CoreDNS
    pod's) and up cni0: every pod on the bridge sees pod-a's who-has."""
    trace = scenarios.pod_to_pod_same_node(cluster=cluster)
    first_request = next(h for h in trace.arp if h.frame.payload.op == 1)
    copies = [f"{h.where} {h.direction}" for h in trace.arp if h.packet_id == first_request.packet_id]
    va, vb, vd = veth(cluster, "pod-a"), veth(cluster, "pod-b"), veth(cluster, "coredns")
    assert sorted(copies) == sorted([
        "pod-a/eth0 tx", f"node1/{va} rx", f"node1/{va} tx", f"node1/{vb} tx", f"node1/{vd} tx", "node1/cni0 rx",
        "pod-a/eth0 rx", "pod-b/eth0 rx", "coredns/eth0 rx"])


def test_s2_bridged_flow_enters_node_conntrack_without_nat(cluster):
    scenarios.pod_to_pod_same_node(cluster=cluster)
    listing = cluster.show("node1", "conntrack -L")
    assert "src=10.244.0.2 dst=10.244.0.3" in listing
    assert "src=10.244.0.3 dst=10.244.0.2 sport=8080" in listing


def test_s3_host_to_pod_uses_cni0_and_its_address(cluster):
    trace = scenarios.host_to_pod(cluster=cluster)
    va = veth(cluster, "pod-a")
    assert syn_path(trace) == ["node1/cni0 tx", f"node1/{va} tx", "pod-a/eth0 rx"]
    assert syn_path(trace, "reply") == ["pod-a/eth0 tx", f"node1/{va} rx", "node1/cni0 rx"]
    for hop in trace.request:
        assert hop.frame.src == mac(cluster, "node1", "cni0")
        assert (hop.ip.src, hop.ip.dst, hop.ip.ttl) == ("10.244.0.1", "10.244.0.2", 64)
    assert not any("flannel.1" in h.where for h in trace)
    assert cluster.show("node1", "ip route get 10.244.0.2").splitlines()[0].startswith(
        "10.244.0.2 dev cni0 src 10.244.0.1")


def test_s4_cross_node_packet_loses_two_ttl_and_is_encapsulated(cluster):
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    va, vc = veth(cluster, "pod-a"), veth(cluster, "pod-c")
    assert syn_path(trace) == [
        "pod-a/eth0 tx", f"node1/{va} rx", "node1/cni0 rx", "node1/flannel.1 tx", "node1/eth0 tx",
        "underlay/p-node1 rx", "underlay/p-node2 tx", "node2/eth0 rx", "node2/flannel.1 rx", "node2/cni0 tx",
        f"node2/{vc} tx", "pod-c/eth0 rx"]
    reply = syn_path(trace, "reply")
    flip = {"tx": "rx", "rx": "tx"}
    assert reply == [f"{p.split()[0]} {flip[p.split()[1]]}" for p in reversed(syn_path(trace))]
    inner_ttls = [h.inner_ip.ttl for h in trace.request]
    assert inner_ttls == [64, 64, 64, 63, 63, 63, 63, 63, 63, 62, 62, 62]
    assert {h.inner_ip.src for h in trace.request} == {"10.244.0.2"}
    assert len({h.inner_ip.id for h in trace.request}) == 1


def test_s4_inner_frame_goes_vtep_to_vtep(cluster):
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    tunnel = [h for h in trace.request if h.where in ("node1/flannel.1", "node2/flannel.1")]
    for hop in tunnel:
        assert hop.frame.src == mac(cluster, "node1", "flannel.1")
        assert hop.frame.dst == mac(cluster, "node2", "flannel.1")
    first = trace.request[0]
    assert first.frame.dst == mac(cluster, "node1", "cni0")
    last = trace.request[-1]
    assert (last.frame.src, last.frame.dst) == (mac(cluster, "node2", "cni0"), mac(cluster, "pod-c", "eth0"))


def test_s4_outer_header_as_the_kernel_builds_it(cluster):
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    wire = [h for h in trace.request if h.encapsulated]
    assert [h.where for h in wire] == ["node1/eth0", "underlay/p-node1", "underlay/p-node2", "node2/eth0"]
    outer = wire[0].ip
    udp = outer.payload
    assert (outer.src, outer.dst, outer.ttl, outer.df) == ("192.168.50.11", "192.168.50.12", 64, False)
    assert outer.id != 0
    assert isinstance(udp, UDP) and udp.dport == 8472 and udp.checksum
    assert 32768 <= udp.sport < 60999
    assert isinstance(udp.payload, VXLAN) and udp.payload.flags == 0x08 and udp.payload.vni == 1
    assert wire[0].data[42:50] == bytes.fromhex("0800000000000100")
    assert (wire[0].frame.src, wire[0].frame.dst) == (mac(cluster, "node1", "eth0"), mac(cluster, "node2", "eth0"))
    back = [h for h in trace.reply if h.encapsulated][0].ip.payload
    assert back.sport != udp.sport and 32768 <= back.sport < 60999


def test_s4_icmp_uses_the_same_vxlan_source_port_both_ways(cluster):
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster, proto="icmp")
    ports = {h.role: h.ip.payload.sport for h in trace if h.encapsulated and h.where == "underlay/p-node1"}
    assert ports["request"] == ports["reply"]
    reply = next(h for h in trace.reply if h.where == "pod-c/eth0")
    assert reply.ip.df is False and reply.ip.id != 0


def test_s4_no_arp_crosses_the_tunnel(cluster):
    trace = scenarios.pod_to_pod_cross_node(cluster=cluster)
    assert not any(h.is_arp and "flannel.1" in h.device for h in trace)
    asked = {(h.netns, h.frame.payload.pdst) for h in trace.arp if h.frame.payload.op == 1 and h.direction == "tx"
             and h.device in ("eth0", "cni0") and h.netns in ("pod-a", "node1", "node2")}
    assert asked == {("pod-a", "10.244.0.1"), ("node1", "192.168.50.12"), ("node2", "10.244.1.2")}


def test_s5_nodeport_is_dnat_and_snat_on_node1(cluster):
    trace = scenarios.external_to_nodeport(cluster=cluster)
    path = syn_path(trace)
    assert path[:6] == ["ext/eth0 tx", "gateway/eth1 rx", "gateway/eth0 tx", "underlay/p-gw rx",
                        "underlay/p-node1 tx", "node1/eth0 rx"]
    assert path[6:] == ["node1/flannel.1 tx", "node1/eth0 tx", "underlay/p-node1 rx", "underlay/p-node2 tx",
                        "node2/eth0 rx", "node2/flannel.1 rx", "node2/cni0 tx", f"node2/{veth(cluster, 'pod-c')} tx",
                        "pod-c/eth0 rx"]
    before = trace.where("node1/eth0", "rx", "request")[0].ip
    after = trace.where("node1/flannel.1", "tx", "request")[0].ip
    syn_in, syn_out = before.payload, after.payload
    assert (before.src, before.dst, syn_in.dport, before.ttl) == ("203.0.113.10", "192.168.50.11", 30080, 63)
    assert (after.src, after.dst, syn_out.dport, after.ttl) == ("10.244.0.0", "10.244.1.2", 8080, 62)
    assert syn_out.sport != syn_in.sport
    assert trace.where("pod-c/eth0", "rx", "request")[0].ip.ttl == 61
    decisions = trace.where("node1/eth0", "rx", "request")[0].decisions
    rules = {(d.verdict, r.chain, r.target) for d in decisions for r in d.consulted_of(RuleRef)}
    assert ("continue", "KUBE-MARK-MASQ", "MARK") in rules
    assert {(v, t) for v, _, t in rules} >= {("dnat", "DNAT"), ("masquerade", "MASQUERADE")}


def test_s5_nodeport_reply_is_un_natted_by_conntrack(cluster):
    trace = scenarios.external_to_nodeport(cluster=cluster)
    out = trace.where("node1/eth0", "tx", "reply")[0].ip
    syn = trace.where("ext/eth0", "tx", "request")[0].ip.payload
    assert (out.src, out.dst, out.ttl) == ("192.168.50.11", "203.0.113.10", 62)
    assert (out.payload.sport, out.payload.dport, out.payload.flags) == (30080, syn.sport, "SA")
    assert trace.where("ext/eth0", "rx", "reply")[0].ip.ttl == 61
    listing = cluster.show("node1", "conntrack -L")
    line = next(l for l in listing.splitlines() if "dport=30080" in l)
    assert f"src=203.0.113.10 dst=192.168.50.11 sport={syn.sport} dport=30080 src=10.244.1.2 dst=10.244.0.0 " \
           f"sport=8080" in line


def test_s6_pod_to_external_is_masqueraded_without_tunnel(cluster):
    trace = scenarios.pod_to_external(cluster=cluster)
    assert not any(h.encapsulated or "flannel" in h.device for h in trace)
    assert syn_path(trace)[3:] == ["node1/eth0 tx", "underlay/p-node1 rx", "underlay/p-gw tx", "gateway/eth0 rx",
                                   "gateway/eth1 tx", "ext/eth0 rx"]
    first = trace.request[0].ip
    leaving = trace.where("node1/eth0", "tx", "request")[0].ip
    arriving = trace.where("ext/eth0", "rx", "request")[0].ip
    assert (first.src, first.ttl) == ("10.244.0.2", 64)
    assert (leaving.src, leaving.dst, leaving.ttl) == ("192.168.50.11", "203.0.113.10", 63)
    assert arriving.ttl == 62 and arriving.id == first.id
    assert trace.where("pod-a/eth0", "rx", "reply")[0].ip.dst == "10.244.0.2"
    decisions = trace.where("node1/cni0", "rx", "request")[0].decisions
    assert ("masquerade", "FLANNEL-POSTRTG", 5, "MASQUERADE") in {
        (d.verdict, r.chain, r.rule, r.target) for d in decisions for r in d.consulted_of(RuleRef)}


def test_host_to_remote_pod_takes_flannel_address(cluster):
    trace = scenarios.host_to_remote_pod(cluster=cluster)
    first = trace.request[0]
    assert first.where == "node1/flannel.1"
    assert (first.ip.src, first.ip.ttl) == ("10.244.0.0", 64)
    assert trace.where("pod-c/eth0", "rx", "request")[0].ip.ttl == 63


def test_host_gw_cross_node_routes_via_node_ip_without_encapsulation():
    trace = scenarios.pod_to_pod_cross_node(backend="host-gw")
    c = netsim.reference_cluster("host-gw")
    assert not any(h.encapsulated for h in trace)
    hop = trace.where("node1/eth0", "tx", "request")[0]
    assert hop.frame.dst == mac(c, "node2", "eth0")
    assert (hop.ip.src, hop.ip.dst, hop.ip.ttl) == ("10.244.0.2", "10.244.1.2", 63)
    assert trace.where("pod-c/eth0", "rx", "request")[0].ip.ttl == 62


def test_udp_backend_ttl_drops_four_times_and_carries_bare_ip():
    trace = scenarios.pod_to_pod_cross_node(backend="udp")
    assert trace.where("pod-c/eth0", "rx", "request")[0].ip.ttl == 60
    wire = trace.where("node1/eth0", "tx", "request")[0]
    udp = wire.ip.payload
    assert (udp.sport, udp.dport) == (8285, 8285)
    assert isinstance(udp.payload, netsim.IPv4) and udp.payload.ttl == 62
    tun = trace.where("node1/flannel0", "tx", "request")[0]
    assert tun.link_type == "raw" and tun.frame.ttl == 63
    # flanneld lowers the TTL itself at both ends (proxy_amd64.c decrement_ttl)
    ttl_changes = [(h.where, d.function, c.old, c.new) for h in trace.request for d in h.decisions
                   for c in d.changes if (c.layer, c.field) == ("ipv4", "ttl") and d.subsystem == "flannel"]
    assert ttl_changes == [("node1/flannel0", "tun_to_udp", 63, 62), ("node2/eth0", "udp_to_tun", 62, 61)]


def test_pod_to_cluster_ip_same_node_service_is_dnatted_to_the_endpoint():
    c = netsim.reference_cluster()
    trace = c.send("pod-a", "web")
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", "10.96.0.100:80")
    syn = trace.where("pod-c/eth0", "rx", "request")[0].ip
    assert (syn.dst, syn.payload.dport) == ("10.244.1.2", 8080)
    answer = trace.where("pod-a/eth0", "rx", "reply")[0].ip
    assert (answer.src, answer.payload.sport) == ("10.96.0.100", 80)


@pytest.mark.parametrize("backend", ["vxlan", "host-gw", "udp"])
@pytest.mark.parametrize("number", sorted(scenarios.SIX))
def test_every_scenario_completes_under_every_backend(backend, number):
    trace = scenarios.SIX[number](backend=backend)
    assert trace.outcome.kind == "connected", trace.outcome
    assert trace.request and trace.reply
    assert not [h for h in trace.drops if h.role in ("request", "reply")]
