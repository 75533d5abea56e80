"""Cluster.batch(): the changes made in the block reach each node's rules in one kube-proxy sync
at its end, or before a packet moves inside it; the rules are those of syncing change by change."""

from __future__ import annotations

import pytest

import netsim
from netsim.cluster.services import KubeProxy
from netsim.decision import NatReason


def _build(batched: bool, proxy_mode: str) -> netsim.Cluster:
    cluster = netsim.Cluster(nodes=3, proxy_mode=proxy_mode)
    for i in (1, 2, 3):
        cluster.add_pod(f"p{i}", node=f"node{i}")

    def services() -> None:
        cluster.add_service("web", port=80, target_port=8080, pods=["p1", "p3"], node_port=30080)
        cluster.add_service("api", port=443, target_port=8443, pods=["p2"])
        cluster.set_ready("p3", False)
    if batched:
        with cluster.batch():
            services()
    else:
        services()
    return cluster


def _rules(cluster: netsim.Cluster) -> dict[str, tuple[str, str]]:
    return {n: (cluster.show(n, "iptables-save"), cluster.show(n, "nft -a list ruleset")) for n in cluster.nodes}


@pytest.fixture
def syncs(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = KubeProxy.sync_rules

    def counted(self, node: str) -> None:
        if self._waiting is None:
            seen.append(node)
        real(self, node)
    monkeypatch.setattr(KubeProxy, "sync_rules", counted)
    return seen


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_a_batch_leaves_the_rules_of_syncing_change_by_change_with_one_sync_a_node(proxy_mode, syncs):
    one_by_one = _rules(_build(False, proxy_mode))
    syncs.clear()
    batched = _build(True, proxy_mode)
    assert syncs == ["node1", "node2", "node3"] * 2     # each node as built, then once at the block's end
    assert _rules(batched) == one_by_one


def test_inside_a_batch_the_rules_are_the_last_syncs_until_a_packet_moves(syncs):
    cluster = netsim.reference_cluster()
    syncs.clear()
    with cluster.batch():
        cluster.add_service("api", port=443, target_port=8443, pods=["pod-c"])
        assert "api" not in cluster.show("node1", "iptables-save") and syncs == []
        trace = cluster.send("pod-a", "api", proto="tcp")          # kube-proxy syncs before it
        assert syncs == ["node1", "node2"]
        cluster.add_service("api2", port=443, target_port=8443, pods=["pod-c"])
        assert "api2" not in cluster.show("node1", "iptables-save")
    assert syncs == ["node1", "node2"] * 2
    assert '"default/api2 cluster IP"' in cluster.show("node2", "iptables-save")
    bound = [d.change("ipv4", "dst") for h in trace.hops for d in h.decisions
             if d.function == "nf_nat_inet_fn" and d.reason == NatReason.BINDING]
    api_ip = cluster.services["api"].cluster_ip
    assert bound[0] is not None and (bound[0].old, bound[0].new) == (api_ip, cluster.pods["pod-c"].ip)
