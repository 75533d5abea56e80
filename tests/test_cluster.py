"""The cluster builder: what flanneld, the CNI plugin and kube-proxy program, any shape, clear
errors for impossible shapes, and broken clusters that show where the packet died."""

import pytest

import netsim
from netsim import ConfigError, scenarios
from netsim.cni import host_veth_name
from netsim.decision import RuleRef


def test_nodes_get_underlay_addresses_and_subnets_in_order():
    c = netsim.Cluster(nodes=3)
    assert [(n.name, n.ip, str(n.subnet)) for n in c.nodes.values()] == [
        ("node1", "192.168.50.11", "10.244.0.0/24"), ("node2", "192.168.50.12", "10.244.1.0/24"),
        ("node3", "192.168.50.13", "10.244.2.0/24")]
    assert c.subnet_env("node2") == ("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n"
                                     "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")


def test_vxlan_programs_one_route_neighbour_and_fdb_entry_per_remote_node():
    c = netsim.Cluster(nodes=3)
    node = c.netns("node1")
    assert c.show("node1", "ip route").splitlines() == [
        "default via 192.168.50.1 dev eth0",
        "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink",
        "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
        "192.168.50.0/24 dev eth0 proto kernel scope link src 192.168.50.11"]
    neigh = sorted(str(n) for n in node.neighbours.entries())
    assert neigh == [f"10.244.1.0 dev flannel.1 lladdr {c.netns('node2').devices['flannel.1'].mac} PERMANENT",
                     f"10.244.2.0 dev flannel.1 lladdr {c.netns('node3').devices['flannel.1'].mac} PERMANENT"]
    fdb = node.devices["flannel.1"].fdb
    assert sorted(e.dst for e in fdb.values()) == ["192.168.50.12", "192.168.50.13"]
    vx = node.devices["flannel.1"]
    assert (vx.vni, vx.dstport, vx.mtu, vx.learning, vx.local) == (1, 8472, 1450, False, "192.168.50.11")
    assert [str(a) for a in vx.addresses] == ["10.244.0.0/32"]


def test_vtep_mac_is_locally_administered_unicast():
    c = netsim.Cluster()
    first = int(c.netns("node1").devices["flannel.1"].mac[:2], 16)
    assert first & 0x02 and not first & 0x01


def test_host_gw_programs_routes_via_node_ips_and_full_mtu():
    c = netsim.Cluster(nodes=2, backend="host-gw")
    assert "10.244.1.0/24 via 192.168.50.12 dev eth0" in c.show("node1", "ip route").splitlines()
    assert "flannel.1" not in c.netns("node1").devices
    assert c.mtu == 1500 and "FLANNEL_MTU=1500" in c.subnet_env("node1")


def test_udp_backend_has_tun_and_whole_network_route():
    c = netsim.Cluster(backend="udp")
    # flanneld adds it with netlink.SCOPE_UNIVERSE (udp_network_amd64.go configureIface): no "scope link"
    assert "10.244.0.0/16 dev flannel0" in c.show("node1", "ip route").splitlines()
    assert c.netns("node1").devices["flannel0"].mtu == 1472


def test_cni_gives_pods_addresses_from_2_and_routes_via_gateway():
    c = netsim.Cluster()
    a = c.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
    b = c.add_pod("pod-b", node="node1")
    assert (a.ip, b.ip, a.netns, a.node) == ("10.244.0.2", "10.244.0.3", "pod-a", "node1")
    assert a.host_veth == host_veth_name("pod-a") and len(a.host_veth) == 12 and a.host_veth.startswith("veth")
    assert c.show("pod-a", "ip route").splitlines() == [
        "default via 10.244.0.1 dev eth0", "10.244.0.0/24 dev eth0 proto kernel scope link src 10.244.0.2",
        "10.244.0.0/16 via 10.244.0.1 dev eth0"]
    cni0 = c.netns("node1").devices["cni0"]
    assert cni0.mtu == 1450 and [str(x) for x in cni0.addresses] == ["10.244.0.1/24"]
    assert cni0.ports[a.host_veth].hairpin is True
    assert c.netns("node1").sysctl.ip_forward is True


def test_kube_proxy_chains_have_real_names_and_order():
    c = netsim.reference_cluster()
    nat = c.show("node1", "iptables-save").split("*nat")[1]
    post = [l for l in nat.splitlines() if l.startswith("-A POSTROUTING")]
    assert post == ['-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
                    '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG']
    services = [l for l in nat.splitlines() if l.startswith("-A KUBE-SERVICES")]
    assert services[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    svc = c.services["web"]
    assert svc.svc_chain.startswith("KUBE-SVC-") and len(svc.svc_chain) == len("KUBE-SVC-") + 16
    assert f"-j DNAT --to-destination 10.244.1.2:8080" in nat


@pytest.mark.parametrize("nodes", [1, 2, 5, 12])
def test_any_cluster_size_traces_cross_and_same_node(nodes):
    c = netsim.Cluster(nodes=nodes)
    for i in range(1, nodes + 1):
        c.add_pod(f"p{i}", node=f"node{i}")
    assert c.send("p1", f"p{nodes}", proto="tcp").outcome.kind == "connected"
    assert c.send(f"p{nodes}", "p1", proto="icmp").outcome.kind == "answered"


@pytest.mark.parametrize("kwargs", [
    dict(pod_cidr="10.50.0.0/16", subnet_len=26),
    dict(pod_cidr="172.20.0.0/20", subnet_len=28, nodes=3),
    dict(underlay_cidr="10.1.0.0/22", underlay_mtu=9000),
])
def test_other_shapes_work(kwargs):
    c = netsim.Cluster(**kwargs)
    c.add_pod("a", node="node1")
    c.add_pod("b", node=list(c.nodes)[-1])
    trace = c.send("a", "b", proto="tcp")
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", f"{c.pods['b'].ip}:8080")
    if "underlay_mtu" in kwargs:
        assert c.mtu == 8950


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend="ipsec"), "backend 'ipsec' is not one of vxlan, host-gw, udp"),
    (dict(nodes=0), "nodes must be a positive integer"),
    (dict(nodes=300, pod_cidr="172.16.0.0/12"), "underlay 192.168.50.0/24 has room for 244 nodes"),
    (dict(nodes=5, pod_cidr="10.244.0.0/24", subnet_len=26), "5 nodes do not fit: 10.244.0.0/24 has 4 subnets of /26"),
    (dict(subnet_len=16), "subnet_len 16 must be longer than pod_cidr's /16"),
    (dict(pod_cidr="10.244.0.1/16"), "has host bits set; did you mean 10.244.0.0/16?"),
    (dict(pod_cidr="banana"), "is not a valid IPv4 network"),
    (dict(underlay_mtu=100), "underlay_mtu 100 is too small for the vxlan backend: its overhead is 50 bytes"),
    (dict(pod_cidr="192.168.0.0/16"), "must not overlap"),
])
def test_impossible_clusters_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError) as err:
        netsim.Cluster(**kwargs)
    assert message in str(err.value)


def test_pods_beyond_subnet_size_are_refused():
    c = netsim.Cluster(pod_cidr="10.244.0.0/16", subnet_len=29)
    for i in range(5):
        c.add_pod(f"p{i}")
    with pytest.raises(ConfigError, match=r"subnet 10.244.0.0/29 is full: host-local has 5 pod addresses"):
        c.add_pod("one-too-many")


def test_bad_names_are_clear_errors():
    c = netsim.reference_cluster()
    with pytest.raises(ConfigError, match="no node 'node9'; nodes are node1, node2"):
        c.add_pod("x", node="node9")
    with pytest.raises(ConfigError, match="unknown endpoint 'pod-z'"):
        c.send("pod-a", "pod-z")
    with pytest.raises(ConfigError, match="pod pod-a has no container 'db'; it has app, sidecar"):
        c.send("pod-a/db", "pod-b")
    with pytest.raises(ConfigError, match="nodePort 80 is outside the NodePort range 30000-32767"):
        c.add_service("bad", port=80, target_port=80, node_port=80)


def test_container_endpoint_in_another_pod_uses_the_pod_ip():
    c = netsim.reference_cluster()
    trace = c.send("pod-b", "pod-a/sidecar")
    assert trace.request[0].ip.dst == "10.244.0.2"


def test_missing_fdb_entry_drops_at_flannel_1():
    c = netsim.reference_cluster()
    c.break_fdb("node1", "node2")
    trace = scenarios.pod_to_pod_cross_node(cluster=c)
    drop = [h for h in trace.drops if h.role == "request"]
    assert [h.where for h in drop] == ["node1/flannel.1"]
    reason = drop[0].reason
    assert (reason.function, reason.verdict, [f.mac for f in reason.consulted]) == (
        "vxlan_xmit", "drop", [c.netns("node2").devices["flannel.1"].mac])
    assert (trace.outcome.kind, trace.outcome.errno) == ("timed-out", "ETIMEDOUT")


def test_forwarding_off_drops_at_node_with_reason():
    c = netsim.reference_cluster()
    c.break_forwarding("node1")
    trace = scenarios.pod_to_pod_cross_node(cluster=c)
    drop = [h for h in trace.drops if h.role == "request"][0]
    assert drop.where == "node1/cni0"
    assert (drop.reason.subsystem, drop.reason.function, drop.reason.verdict) == ("route", "ip_route_input_slow", "drop")


def test_missing_masquerade_leaks_pod_source_and_reply_dies_at_gateway():
    c = netsim.reference_cluster()
    c.break_masquerade("node1")
    trace = scenarios.pod_to_external(cluster=c)
    arriving = trace.where("ext/eth0", "rx", "request")[0].ip
    assert arriving.src == "10.244.0.2"
    drop = [h for h in trace.drops if h.role == "reply"][0]
    assert drop.where == "gateway/eth1"
    assert (drop.reason.function, drop.reason.verdict) == ("ip_error", "drop")
    assert [(e.ip.payload.type, e.ip.payload.code) for e in trace.of_role("error")][:1] == [(3, 0)]


def test_pod_mtu_above_flannel_mtu_is_a_silent_drop_at_the_host_veth():
    """Measured on Linux 6.18: a 1500-MTU veth end sending 1488 bytes to its 1450-MTU peer;
    the peer counts rx_dropped and nobody sends ICMP."""
    c = netsim.reference_cluster()
    c.set_mtu("pod-a", "eth0", 1500)
    trace = c.send("pod-a", "pod-c", proto="udp", payload=bytes(1460))
    drop = [h for h in trace.drops if h.role == "request"]
    assert [(h.where, h.direction) for h in drop] == [("pod-a/eth0", "tx")]
    assert (drop[0].reason.subsystem, drop[0].reason.function, drop[0].reason.verdict) == (
        "veth", "is_skb_forwardable", "drop")
    assert not trace.of_role("error")
    assert c.send("pod-a", "pod-c", proto="udp", payload=bytes(1400)).outcome.kind == "answered"


def test_df_packet_too_big_for_flannel_1_gets_frag_needed():
    c = netsim.reference_cluster()
    c.set_mtu("pod-a", "eth0", 1500)
    c.set_mtu("node1", c.pods["pod-a"].host_veth, 1500)
    c.set_mtu("node1", "cni0", 1500)
    trace = c.send("pod-a", "pod-c", proto="udp", payload=bytes(1460))
    drop = [h for h in trace.drops if h.role == "request"][0]
    assert drop.where == "node1/cni0"
    assert (drop.reason.function, drop.reason.verdict) == ("ip_forward", "drop")
    assert (trace.outcome.kind, trace.outcome.errno, trace.outcome.icmp) == ("icmp-error", "EMSGSIZE", (3, 4))
    error = trace.where("pod-a/eth0", "rx", "error")[0].ip.payload
    assert (error.type, error.code, error.rest) == (3, 4, 1450)


def test_bridge_drops_a_frame_too_big_for_the_out_port():
    c = netsim.reference_cluster()
    c.set_mtu("pod-a", "eth0", 1500)
    c.set_mtu("node1", c.pods["pod-a"].host_veth, 1500)
    trace = c.send("pod-a", "pod-b", proto="udp", payload=bytes(1460))
    drop = [h for h in trace.drops if h.role == "request"][0]
    assert drop.where == f"node1/{c.pods['pod-a'].host_veth}"
    assert (drop.reason.subsystem, drop.reason.function, drop.reason.verdict) == ("bridge", "is_skb_forwardable", "drop")


def test_wrong_route_sends_pod_traffic_to_the_gateway():
    c = netsim.reference_cluster()
    c.break_route("node1", "node2")
    trace = scenarios.pod_to_pod_cross_node(cluster=c)
    assert trace.where("node1/eth0", "tx", "request")[0].frame.dst == c.netns("gateway").devices["eth0"].mac
    assert any(h.where == "gateway/eth0" for h in trace.drops)


def test_external_traffic_policy_local_keeps_client_ip_and_drops_without_local_endpoint():
    c = netsim.reference_cluster()
    c.add_service("local", port=81, target_port=8080, pods=["pod-c"], node_port=30081,
                  external_traffic_policy="Local")
    served = c.send("ext", "192.168.50.12:30081")
    assert served.where("pod-c/eth0", "rx", "request")[0].ip.src == "203.0.113.10"
    assert (served.outcome.kind, served.outcome.peer) == ("connected", "192.168.50.12:30081")
    refused = c.send("ext", "192.168.50.11:30081")
    drop = [h for h in refused.drops if h.role == "request"][0]
    assert drop.where == "node1/eth0"
    dropped_by = [(r.table, r.hook, r.chain, r.rule, r.comment, r.target)
                  for d in drop.decisions if d.verdict == "drop" for r in d.consulted_of(RuleRef)]
    assert dropped_by == [("filter", "INPUT", "KUBE-EXTERNAL-SERVICES", 1, "default/local has no local endpoints", "DROP")]


def test_conntrack_reassembles_fragments_and_cuts_them_back_on_output():
    """nf_defrag_ipv4: node1 tracks a datagram pod-a fragmented as one packet (cni0 sees it
    whole) and sends it on in its original fragment sizes (IPCB frag_max_size)."""
    c = netsim.reference_cluster("host-gw")
    trace = c.send("pod-a", "pod-c", proto="udp", payload=bytes(2050))
    assert (trace.outcome.kind, trace.outcome.peer) == ("answered", "10.244.1.2:9090")
    sizes = lambda where: [(h.ip.length(), h.ip.frag * 8, h.ip.mf) for h in trace.where(where, role="request")]
    assert sizes("pod-a/eth0") == [(1500, 0, True), (598, 1480, False)]
    assert sizes("node1/cni0") == [(2078, 0, False)]
    assert sizes("node1/eth0") == [(1500, 0, True), (598, 1480, False)]
    assert sizes("pod-c/eth0") == [(1500, 0, True), (598, 1480, False)]
    held = trace.where(f"node1/{c.pods['pod-a'].host_veth}", "rx", "request")[0]
    assert (held.verdict, held.reason.function, held.reason.verdict) == ("delivered", "nf_defrag_ipv4", "hold")
