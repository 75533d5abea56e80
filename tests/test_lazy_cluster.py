"""Lazily built clusters: records for every node and pod, a node built with all its pods on
first use by the same code that builds an eager cluster, and the same packets and state."""

import dataclasses

import pytest

import netsim
from netsim import flannel, scenarios, show
from netsim.cluster import EAGER_MAX_NODES
from netsim.decision import BridgeReason

VIEWS = (show.ip_link, show.ip_addr, show.ip_route, show.ip_neigh, show.bridge_fdb, show.iptables_save,
         show.conntrack_list, show.sysctl)


def record(d):
    return (d.subsystem, d.function, d.verdict, d.consulted, d.changes)


def hops(trace):
    """Each hop as data: capture point, direction, role, verdict, packet, bytes, decision records."""
    return [(h.where, h.direction, h.role, h.verdict, h.packet_id, h.data, [record(d) for d in h.decisions])
            for h in trace]


def state(cluster):
    """Every namespace by name: its listeners and every state view (ifindexes, MACs, routes,
    neighbours, FDB, rules, sysctls)."""
    cluster.materialize_all()
    return {name: (sorted(ns.listeners), [view(ns) for view in VIEWS])
            for name, ns in cluster.network.namespaces.items()}


def exchanges(cluster):
    traces = []
    for scenario in scenarios.SIX.values():
        for proto in ("tcp", "udp", "icmp"):
            traces.append(scenario(cluster=cluster, proto=proto))
    traces += [extra(cluster=cluster) for extra in scenarios.EXTRAS.values()]
    traces.append(cluster.send("pod-a", "pod-c", proto="tcp", payload=b"hello"))
    traces.append(cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(3000)))
    return traces


def pods_on(cluster, nodes, per_node):
    for i in nodes:
        for j in range(per_node):
            cluster.add_pod(f"p{i}-{j}", node=f"node{i}")
    return cluster


@pytest.mark.parametrize("backend", ["vxlan", "host-gw", "udp"])
def test_lazy_reference_cluster_gives_byte_identical_traces_and_state(backend):
    eager, lazy = netsim.reference_cluster(backend, lazy=False), netsim.reference_cluster(backend, lazy=True)
    assert not eager.lazy and lazy.lazy
    assert set(lazy.network.namespaces) == {"underlay", "gateway", "ext"}
    for a, b in zip(exchanges(eager), exchanges(lazy), strict=True):
        assert (a.title, a.outcome.kind, a.outcome.errno, a.outcome.peer) == \
               (b.title, b.outcome.kind, b.outcome.errno, b.outcome.peer)
        assert hops(a) == hops(b)
    assert state(eager) == state(lazy)


@pytest.mark.parametrize("backend", ["vxlan", "host-gw", "udp"])
def test_nodes_built_in_any_order_hold_what_an_eager_build_holds(backend):
    """The same builder makes each node whenever it is reached: ifindexes, the switch's and
    cni0's ports, routes, neighbours, FDB and rules do not depend on the order."""
    eager = pods_on(netsim.Cluster(nodes=5, backend=backend, lazy=False), (1, 2, 3, 5), 3)
    lazy = pods_on(netsim.Cluster(nodes=5, backend=backend, lazy=True), (1, 2, 3, 5), 3)
    for name in ("p5-2", "node3", "p2-0"):
        lazy.netns(name)
    assert [n for n in lazy.network.namespaces if n.startswith("node")] == ["node5", "node3", "node2"]
    lazy.materialize_all()
    assert state(eager) == state(lazy)
    switch = lazy.network.namespaces["underlay"].devices["sw0"]
    assert list(switch.ports) == ["p-gw", *(f"p-node{i}" for i in range(1, 6))]
    assert [switch.ports[p].dev.ifindex for p in switch.ports] == [3, 4, 5, 6, 7, 8]
    # fully built, a lazy cluster's floods reach every node: the traces are the eager ones
    assert hops(lazy.send("p3-1", "p5-0", proto="tcp")) == hops(eager.send("p3-1", "p5-0", proto="tcp"))


def test_small_clusters_are_built_at_once_and_big_ones_lazily():
    assert not netsim.Cluster(nodes=EAGER_MAX_NODES).lazy
    big = netsim.Cluster(nodes=EAGER_MAX_NODES + 1)
    assert big.lazy and set(big.network.namespaces) == {"underlay", "gateway"}


def test_a_trace_builds_only_the_nodes_it_reaches_each_with_its_pods():
    c = pods_on(netsim.Cluster(nodes=40), range(1, 41), 3)
    assert c.built == 2
    trace = c.send("p1-0", "p40-2", proto="tcp")
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", "10.244.39.4:8080")
    assert set(c.network.namespaces) == {"underlay", "gateway", "node1", "p1-0", "p1-1", "p1-2",
                                         "node40", "p40-0", "p40-1", "p40-2"}
    assert len(c.network.namespaces["node1"].main_table) == 39 + 3   # a route per peer; default, eth0 and cni0 subnets


def test_the_switch_has_a_port_per_node_and_floods_only_to_the_plugged_ones():
    c = pods_on(netsim.Cluster(nodes=40), (1, 40), 3)
    underlay = c.network.namespaces["underlay"]
    ports = underlay.devices["sw0"].ports
    assert len(ports) == 41 and [ports[f"p-node{i}"].dev.has_link for i in (1, 2, 40)] == [False] * 3
    trace = c.send("p1-0", "p40-2", proto="tcp")
    assert [ports[f"p-node{i}"].dev.has_link for i in (1, 2, 40)] == [True, False, True]
    [who_has] = [h for h in trace if h.where == "underlay/p-node1" and h.direction == "rx" and h.is_arp]
    assert ("bridge", "br_flood", "flood") in [record(d)[:3] for d in who_has.decisions]
    copies = [h.where for h in trace if h.packet_id == who_has.packet_id and h.direction == "tx"
              and h.netns == "underlay"]
    assert copies == ["underlay/p-gw", "underlay/p-node40"]          # node40 was built for the request
    assert [(h.where, h.verdict) for h in trace if h.packet_id == who_has.packet_id and h.verdict] == [
        ("underlay/sw0", "dropped"), ("gateway/eth0", "dropped"), ("node40/eth0", "delivered")]
    # cni0 floods reach every pod of a built node
    [pod_who_has] = [h for h in trace if h.where == "node40/cni0" and h.direction == "tx" and h.is_arp]
    assert [h.where for h in trace if h.packet_id == pod_who_has.packet_id and h.direction == "rx"] == [
        "p40-0/eth0", "p40-1/eth0", "p40-2/eth0"]
    notes = [(d.function, d.reason, d.verdict, dict(d.facts)) for h in trace for d in h.decisions
             if d.reason is BridgeReason.LAZY_NODES]
    assert notes == [("br_flood", BridgeReason.LAZY_NODES, "flood", {"bridge": "sw0", "missing": 38, "nodes": 40})]
    assert not any(h.where.startswith("node2/") or h.where == "underlay/p-node2" for h in trace)


def test_naming_a_lazy_node_builds_it_with_all_its_pods_as_eager_building_would():
    eager = pods_on(netsim.Cluster(nodes=4, lazy=False), range(1, 5), 4)
    lazy = pods_on(netsim.Cluster(nodes=4, lazy=True), range(1, 5), 4)
    # the underlay's ARP flood reaches fewer nodes: node2 and node4 are not built
    assert hops(lazy.send("p3-2", "p1-0")) != hops(eager.send("p3-2", "p1-0"))
    for view in ("ip addr", "ip route", "ip neigh", "bridge fdb", "iptables-save"):
        assert lazy.show("node3", view) == eager.show("node3", view)
    assert show.ip_link(lazy.netns("node3")) == show.ip_link(eager.netns("node3"))
    assert show.ip_link(lazy.netns("p3-0")) == show.ip_link(eager.netns("p3-0"))


def test_peer_tables_are_shared_immutable_records_that_no_node_changes_for_another():
    c = netsim.Cluster(nodes=20)
    n1, n3 = c.netns("node1"), c.netns("node3")
    mac = flannel.vtep_mac("node2")
    fdb1, fdb3 = n1.devices["flannel.1"].fdb, n3.devices["flannel.1"].fdb
    assert fdb1[mac] is fdb3[mac]                                     # one record, on purpose
    with pytest.raises(dataclasses.FrozenInstanceError):
        fdb1[mac].dst = "192.168.50.99"
    assert n1.route_get("10.244.1.5").route is n3.route_get("10.244.1.5").route
    vtep = c.nodes["node2"].lease.vtep_ip
    assert n1.neighbours.get("flannel.1", vtep) is not n3.neighbours.get("flannel.1", vtep)
    c.break_fdb("node1", "node2")
    c.break_route("node1", "node2")
    c.break_neighbour("node1", "node2")
    assert mac not in fdb1 and fdb3[mac].dst == "192.168.50.12"
    assert n1.route_get("10.244.1.5").route.dev == "eth0"            # the default route now
    assert str(n3.route_get("10.244.1.5").route) == "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink"
    assert n1.neighbours.get("flannel.1", vtep) is None
    assert n3.neighbours.get("flannel.1", vtep).lladdr == mac
    assert len(n3.main_table) == 19 + 2 and len(n3.neighbours) == 19 and len(fdb3) == 19


def test_pods_added_to_a_built_node_and_services_reach_lazy_namespaces():
    c = netsim.Cluster(nodes=20)
    c.netns("node5")
    c.add_pod("late", node="node5")
    c.add_pod("other", node="node9")
    assert "late" in c.network.namespaces and "other" not in c.network.namespaces
    c.add_service("svc", port=80, target_port=8080, pods=["late", "other"], node_port=30100)
    assert "cni0" in c.network.namespaces["node5"].devices
    assert "KUBE-SVC-" in c.show("node9", "iptables-save")
    nodeport = c.send("node12", "192.168.50.19:30100").outcome
    assert (nodeport.kind, nodeport.peer) == ("connected", "192.168.50.19:30100")
    udp = c.send("late", "10.244.8.2", proto="udp").outcome
    assert (udp.kind, udp.peer) == ("answered", "10.244.8.2:9090")


def test_five_thousand_node_cluster_keeps_records_and_traces_across_it():
    c = netsim.Cluster(nodes=5000, pod_cidr="10.128.0.0/9", underlay_cidr="172.16.0.0/16")
    c.add_pod("first", node="node1")
    c.add_pod("last", node="node5000")
    trace = c.send("first", "last", proto="tcp")
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", "10.147.135.2:8080")
    assert c.built == 6
    node = c.network.namespaces["node1"]
    assert sum(e.state == "PERMANENT" for e in node.neighbours.entries()) == 4999 and len(node.devices["flannel.1"].fdb) == 4999
    assert str(node.route_get("10.147.135.2").route) == "10.147.135.0/24 via 10.147.135.0 dev flannel.1 onlink"
