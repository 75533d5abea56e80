"""Lazily built clusters: records for every node and pod, namespaces built on first use, and
the same packets as a cluster built all at once."""

import pytest

import netsim
from netsim import scenarios, show
from netsim.cluster import EAGER_MAX_NODES
from netsim.decision import BridgeReason


def hops(trace):
    return [(h.where, h.direction, h.role, h.verdict, h.packet_id, h.data, h.decisions) for h in trace]


def state(cluster):
    cluster.materialize_all()
    views = (show.ip_link, show.ip_addr, show.ip_route, show.ip_neigh, show.bridge_fdb, show.iptables_save,
             show.conntrack_list, show.sysctl)
    return [(name, sorted(ns.listeners), [view(ns) for view in views])
            for name, ns in cluster.network.namespaces.items()]


def exchanges(cluster):
    traces = []
    for scenario in scenarios.SIX.values():
        for proto in ("tcp", "udp", "icmp"):
            traces.append(scenario(cluster=cluster, proto=proto))
    traces += [extra(cluster=cluster) for extra in scenarios.EXTRAS.values()]
    traces.append(cluster.send("pod-a", "pod-c", proto="tcp", payload=b"hello"))
    traces.append(cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(3000)))
    return traces


@pytest.mark.parametrize("backend", ["vxlan", "host-gw", "udp"])
def test_lazy_reference_cluster_gives_byte_identical_traces_and_state(backend):
    eager, lazy = netsim.reference_cluster(backend, lazy=False), netsim.reference_cluster(backend, lazy=True)
    assert not eager.lazy and lazy.lazy
    assert set(lazy.network.namespaces) == {"underlay", "gateway", "ext"}
    for a, b in zip(exchanges(eager), exchanges(lazy), strict=True):
        assert (a.title, a.outcome) == (b.title, b.outcome)
        assert hops(a) == hops(b)
    assert state(eager) == state(lazy)
    assert list(eager.network.namespaces) == list(lazy.network.namespaces)


def test_small_clusters_are_built_at_once_and_big_ones_lazily():
    assert not netsim.Cluster(nodes=EAGER_MAX_NODES).lazy
    big = netsim.Cluster(nodes=EAGER_MAX_NODES + 1)
    assert big.lazy and set(big.network.namespaces) == {"underlay", "gateway"}


def test_a_trace_builds_only_the_nodes_and_pods_it_reaches():
    c = netsim.Cluster(nodes=40)
    for i in range(1, 41):
        for j in range(3):
            c.add_pod(f"p{i}-{j}", node=f"node{i}")
    assert c.built == 2
    trace = c.send("p1-0", "p40-2", proto="tcp")
    assert (trace.outcome.kind, trace.outcome.peer) == ("connected", "10.244.39.4:8080")
    assert set(c.network.namespaces) == {"underlay", "gateway", "node1", "p1-0", "node40", "p40-2"}
    assert len(c.network.namespaces["node1"].main_table) == 39 + 3   # a route per peer; default, eth0 and cni0 subnets


def test_floods_in_a_lazy_cluster_say_what_they_leave_out():
    c = netsim.Cluster(nodes=40)
    for i in (1, 40):
        for j in range(3):
            c.add_pod(f"p{i}-{j}", node=f"node{i}")
    trace = c.send("p1-0", "p40-2", proto="tcp")
    notes = [(d.function, d.reason, d.verdict, dict(d.facts)) for h in trace for d in h.decisions
             if d.reason in (BridgeReason.LAZY_PODS, BridgeReason.LAZY_NODES)]
    assert ("br_flood", BridgeReason.LAZY_PODS, "flood", {"bridge": "cni0", "missing": 2, "pods": 3, "node": "node1"}) \
        in notes
    assert ("br_flood", BridgeReason.LAZY_NODES, "flood", {"bridge": "sw0", "missing": 38, "nodes": 40}) in notes
    assert not any(h.where.startswith("node2/") or h.where == "underlay/p-node2" for h in trace)


def test_naming_a_lazy_node_builds_it_with_all_its_pods_as_eager_building_would():
    def cluster(lazy):
        c = netsim.Cluster(nodes=4, lazy=lazy)
        for i in range(1, 5):
            for j in range(4):
                c.add_pod(f"p{i}-{j}", node=f"node{i}")
        return c
    eager, lazy = cluster(False), cluster(True)
    assert hops(lazy.send("p3-2", "p1-0")) != hops(eager.send("p3-2", "p1-0"))   # floods reach fewer pods
    for view in ("ip addr", "ip route", "ip neigh", "bridge fdb", "iptables-save"):
        assert lazy.show("node3", view) == eager.show("node3", view)
    assert show.ip_link(lazy.netns("node3")) == show.ip_link(eager.netns("node3"))
    assert show.ip_link(lazy.netns("p3-0")) == show.ip_link(eager.netns("p3-0"))


def test_pods_added_to_a_built_node_and_services_reach_lazy_namespaces():
    c = netsim.Cluster(nodes=20)
    c.netns("node5")
    c.add_pod("late", node="node5")
    c.add_pod("other", node="node9")
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
