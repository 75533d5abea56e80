"""A cluster in kube-proxy's nftables mode (and flannel's EnableNFTables) built on the kernel by
netsim.lab: each node's nftables batches loaded with `nft -f` in the order netsim sent them,
`nft -a list ruleset` equal to netsim's byte for byte, and the Service paths (ClusterIP to an
endpoint on the client's node and on another node, NodePort, externalTrafficPolicy Local with
and without a local endpoint, a service without endpoints) compared with netsim frame by frame
and, through `nft monitor trace`, rule by rule (netsim.lab's compare; lab/nft_rules.py). The six
scenarios run in nftables mode in tests/test_lab.py (shape "nftables"). Needs root on Linux,
like tests/test_lab.py; skipped with the reason otherwise."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netsim import Cluster
from netsim.lab import Lab, compare
from netsim.lab import state
from netsim.netfilter import nft_eval
from tests import labkit

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab

DROP_TIMEOUT = 0.9     # a silent drop: waited for less than TCP's first SYN retransmission (1 s)


def services_cluster(flannel_nftables: bool = True, backend: str = "vxlan") -> Cluster:
    c = Cluster(backend=backend, proxy_mode="nftables", flannel_nftables=flannel_nftables)
    c.add_pod("pod-a", node="node1")
    c.add_pod("pod-b", node="node1")
    c.add_pod("pod-c", node="node2")
    c.add_external("ext", ip="203.0.113.10")
    c.add_service("web", port=80, target_port=8080, pods=["pod-c"], node_port=30080)
    c.add_service("near", port=80, target_port=8080, pods=["pod-b"])
    c.add_service("local", port=80, target_port=8080, pods=["pod-c"], node_port=30081, external_traffic_policy="Local")
    c.add_service("empty", port=80, target_port=8080, node_port=30083)
    return c


# (id, client, destination, port, what the client sees)
PATHS = [
    ("clusterip-same-node", "pod-a", "near", None, "connected to 10.96.0.101:80 (SYN-ACK)"),
    ("clusterip-other-node", "pod-a", "web", None, "connected to 10.96.0.100:80 (SYN-ACK)"),
    ("nodeport", "ext", "192.168.50.11", 30080, "connected to 192.168.50.11:30080 (SYN-ACK)"),
    ("local-policy-endpoint-node", "ext", "192.168.50.12", 30081, "connected to 192.168.50.12:30081 (SYN-ACK)"),
    ("local-policy-other-node", "ext", "192.168.50.11", 30081, "no answer reached the sender"),
    ("no-endpoints-clusterip", "pod-a", "empty", None, "error: ICMP destination unreachable code 3 from 10.244.0.1"),
    ("no-endpoints-nodeport", "ext", "192.168.50.11", 30083,
     "error: ICMP destination unreachable code 3 from 192.168.50.11"),
]


lab = labkit.module_lab(GATE, services_cluster, trace_rules=True)


def run_path(lab, client, dst, port, proto="tcp"):
    model = lab.cluster.send(client, dst, proto=proto, dport=port)
    timeout = DROP_TIMEOUT if (client, dst, port) == ("ext", "192.168.50.11", 30081) and proto == "tcp" else 3.0
    observed = lab.exchange(client, dst, proto, port, timeout=timeout)
    return model, observed, compare(model, observed, cluster=lab.cluster, title=f"{client} -> {dst}:{port} {proto}")


@needs_lab
@pytest.mark.parametrize("host", ["node1", "node2"])
def test_the_nodes_rulesets_are_netsims_byte_for_byte(lab, host):
    assert state.differences(lab, lab.cluster, host, "nft -a list ruleset") == []
    assert state.model_view(lab.cluster, host, "nft -a list ruleset")[0] == "table ip kube-proxy { # handle 1"
    assert state.differences(lab, lab.cluster, host, "iptables-save") == []


@needs_lab
@pytest.mark.parametrize("path", PATHS, ids=[p[0] for p in PATHS])
def test_service_path_matches_the_kernel_frame_by_frame_and_rule_by_rule(lab, path):
    _, client, dst, port, seen = path
    model, observed, result = run_path(lab, client, dst, port)
    assert result.ok, "\n" + str(result)
    assert observed.outcome == seen
    assert result.compared["rule evaluations"] > 0 and result.compared["netfilter nat"] > 0


@needs_lab
@pytest.mark.parametrize("path", PATHS, ids=[p[0] for p in PATHS])
def test_service_path_over_udp_matches_the_kernel(lab, path):
    """The services are TCP: a datagram to the same address and port meets kube-proxy's checks
    (cluster-ips-check rejects a ClusterIP's other ports) or the node's own stack."""
    _, client, dst, port, _ = path
    _, _, result = run_path(lab, client, dst, port, "udp")
    assert result.ok, "\n" + str(result)
    assert result.compared["rule evaluations"] > 0


@needs_lab
def test_a_wrong_rule_handle_in_the_model_is_found_in_the_kernels_trace(lab, monkeypatch):
    """netsim names the endpoint chain's DNAT rule one place later than it is: the kernel's trace
    finds the rule by its text at its real place."""
    original = nft_eval._rule_ref

    def shifted(rule, family, table, chain, hook, verdict, path, set_name, element):
        ref = original(rule, family, table, chain, hook, verdict, path, set_name, element)
        return replace(ref, handle=ref.handle - 1) if chain.startswith("endpoint-") and ref.statements[-1].startswith(
            "dnat") else ref

    monkeypatch.setattr(nft_eval, "_rule_ref", shifted)
    _, _, result = run_path(lab, "ext", "192.168.50.11", 30080)
    rules = [str(d) for d in result.differences if d.field == "netfilter rules"]
    assert rules, str(result)
    assert " rule 1 ACCEPT [meta l4proto tcp dnat to 10.244.1.2:8080]" in rules[0]        # the model's
    assert " rule 2 ACCEPT [meta l4proto tcp dnat to 10.244.1.2:8080]" in rules[0]        # the kernel's


@needs_lab
def test_a_wrong_mark_in_the_model_is_found_in_the_kernels_trace(lab, monkeypatch):
    """netsim's `meta mark set meta mark | 0x4000` sets 0x8000: flannel's postrtg, which returns
    for 0x4000, is left with another mark than the kernel's."""
    from netsim.netfilter import nft_expr
    original = nft_expr.BINOPS["|"]
    monkeypatch.setitem(nft_expr.BINOPS, "|", lambda a, b: original(a, b) << 1)
    _, _, result = run_path(lab, "ext", "192.168.50.11", 30080)
    marks = [d for d in result.differences if d.field == "netfilter mark"]
    assert marks and marks[0].model.startswith("0x8000") and marks[0].kernel == "0x4000", str(result)


@needs_lab
@pytest.mark.parametrize("path", PATHS[:3], ids=[p[0] for p in PATHS[:3]])
def test_kube_proxy_in_nftables_mode_beside_flannel_in_iptables_mode(path):
    """flanneld without EnableNFTables: its FLANNEL-POSTRTG and FLANNEL-FWD (iptables-nft's
    tables) registered after kube-proxy's chains, at the same priorities. The frames, and
    kube-proxy's rules one by one, are the kernel's (the iptables rules of a namespace traced
    with nft monitor trace are not compared rule by rule)."""
    _, client, dst, port, seen = path
    with Lab(services_cluster(flannel_nftables=False), trace_rules=True) as mixed:
        assert state.differences(mixed, mixed.cluster, "node1", "iptables-save") == []
        assert state.differences(mixed, mixed.cluster, "node1", "nft -a list ruleset") == []
        model, observed, result = run_path(mixed, client, dst, port)
    assert result.ok, "\n" + str(result)
    assert observed.outcome == seen
