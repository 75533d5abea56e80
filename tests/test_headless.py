"""Headless Services and StatefulSet names in the cluster model: `cluster_ip=None` gives a
Service no virtual address and no kube-proxy rule; `add_statefulset` names pods as the
StatefulSet controller does; readiness decides the EndpointSlice's `ready`; and the DNS
server's data (netsim.programs.coredns.ClusterDns) is built from the cluster."""

from __future__ import annotations

import pytest

import netsim
from netsim import ConfigError
from netsim.programs.dns import NOERROR, NXDOMAIN, TYPE_A
from netsim.programs.headless import SliceEndpoint


def db_cluster(proxy_mode: str = "iptables") -> netsim.Cluster:
    c = netsim.reference_cluster(proxy_mode=proxy_mode)
    c.add_statefulset("db", "db", 3, nodes=["node1", "node2"], labels={"app": "db"})
    c.add_service("db", port=5432, target_port=5432, pods=["db-0", "db-1", "db-2"], cluster_ip=None)
    return c


def addresses(dns, name):
    rcode, records = dns.lookup(name, TYPE_A)
    return rcode, [r.data.address for r in records]


def test_statefulset_pods_have_their_identity():
    c = db_cluster()
    pods = [c.pods[f"db-{i}"] for i in range(3)]
    assert [(p.name, p.node, p.ip, p.hostname, p.subdomain, p.labels) for p in pods] == [
        ("db-0", "node1", "10.244.0.5", "db-0", "db", (("app", "db"),)),
        ("db-1", "node2", "10.244.1.3", "db-1", "db", (("app", "db"),)),
        ("db-2", "node1", "10.244.0.6", "db-2", "db", (("app", "db"),))]


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_a_headless_service_has_no_address_and_no_rule(proxy_mode):
    c = db_cluster(proxy_mode)
    svc = c.services["db"]
    assert (svc.cluster_ip, svc.headless, svc.type) == (None, True, "ClusterIP")
    view = "iptables-save" if proxy_mode == "iptables" else "nft list ruleset"
    for node in ("node1", "node2"):
        assert "db" not in c.show(node, view).replace("kube-dns", "")
    with pytest.raises(ConfigError, match="service db is headless"):
        c.send("pod-a", "db")
    assert c.send("pod-a", "10.244.1.3", proto="tcp", dport=5432).outcome.kind == "connected"   # the pod itself


def test_the_endpoint_slice_and_dns_follow_readiness():
    c = db_cluster()
    c.set_ready("db-2", False)
    assert c.endpoint_slice("db") == (
        SliceEndpoint("10.244.0.5", True, "db-0", "db-0", "node1"), SliceEndpoint("10.244.1.3", True, "db-1", "db-1", "node2"),
        SliceEndpoint("10.244.0.6", False, "db-2", "db-2", "node1"))
    dns = c.dns_records()
    assert addresses(dns, "db.default.svc.cluster.local.") == (NOERROR, ["10.244.0.5", "10.244.1.3"])
    assert addresses(dns, "db-1.db.default.svc.cluster.local.") == (NOERROR, ["10.244.1.3"])
    assert addresses(dns, "db-2.db.default.svc.cluster.local.") == (NXDOMAIN, [])      # not ready: left out
    c.set_ready("db-2", True)
    assert addresses(c.dns_records(), "db-2.db.default.svc.cluster.local.") == (NOERROR, ["10.244.0.6"])


def test_publish_not_ready_addresses_and_a_pod_without_the_service_as_subdomain():
    c = netsim.reference_cluster()
    c.add_pod("cache-0", node="node2", hostname="cache-0", subdomain="other", ready=False)
    c.add_service("cache", 6379, 6379, pods=["cache-0"], cluster_ip=None, publish_not_ready_addresses=True)
    (ep,) = c.endpoint_slice("cache")
    assert (ep.ready, ep.hostname) == (True, None)        # ShouldSetHostname: subdomain is not "cache"
    assert addresses(c.dns_records(), "10-244-1-3.cache.default.svc.cluster.local.") == (NOERROR, ["10.244.1.3"])


def test_the_reference_clusters_dns_data():
    dns = netsim.reference_cluster().dns_records()
    assert addresses(dns, "kube-dns.kube-system.svc.cluster.local.") == (NOERROR, ["10.96.0.10"])
    rcode, records = dns.lookup("web.default.svc.cluster.local.", TYPE_A)
    assert (rcode, [(r.name, r.ttl, r.data.address) for r in records]) == (
        NOERROR, [("web.default.svc.cluster.local.", 30, "10.96.0.100")])          # kubeadm's ttl 30
    assert addresses(dns, "10-244-0-4.kube-system.pod.cluster.local.") == (NOERROR, ["10.244.0.4"])
    assert dns.namespaces == ("default", "kube-system")


@pytest.mark.parametrize("call, message", [
    (lambda c: c.add_statefulset("db", "db", -1), "replicas -1 must be a whole number"),
    (lambda c: c.add_statefulset("Db", "db", 1), "pod name 'Db'"),
    (lambda c: c.add_statefulset("db", "1db", 1), "service name '1db'"),
    (lambda c: c.add_statefulset("db", "db", 1, nodes="node1"), "must be a list of node names"),
    (lambda c: c.add_pod("x", hostname="X"), "pod name 'X'"),
    (lambda c: c.add_pod("x", namespace="Kube"), "namespace name 'Kube'"),
    (lambda c: c.add_pod("x", labels={"app": "a b"}), "label app='a b'"),
    (lambda c: c.add_pod("x", ready="yes"), "ready must be True or False"),
    (lambda c: c.set_ready("nope", True), "no pod 'nope'"),
    (lambda c: c.endpoint_slice("nope"), "no service 'nope'"),
    (lambda c: c.add_service("h", cluster_ip="None", node_port=30500, port=80, target_port=80),
     "may not be set to 'None' for NodePort services"),
])
def test_refusals(call, message):
    with pytest.raises(ConfigError) as err:
        call(netsim.reference_cluster())
    assert message in str(err.value)
