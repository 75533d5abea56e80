"""LoadBalancer Services on the kernel (tests/lb_topology.py), both kube-proxy modes: the
gateway's ARP for the load-balancer address answered from the elected node (in the lab by
netsim.lab.arp_responder, a packet socket standing in for MetalLB's speaker, told what the
model's speaker announces), then the path from the external client to pod-c, frame by frame
and rule by rule; policy Local entering on node2 with the client's address kept;
loadBalancerSourceRanges letting ext through one Service and dropping it at another; the
health-check node port; the nodes' rulesets byte for byte. Needs root on Linux, like
tests/test_lab.py; skipped with the reason otherwise."""

from __future__ import annotations

import warnings

import pytest

from netsim.lab import Lab, compare, unavailable_reason
from netsim.lab import state
from tests.lb_topology import LB, LB_PATHS, lb_cluster

REASON = unavailable_reason()
if REASON:
    warnings.warn(f"tests/test_lab_loadbalancer.py: the real-kernel lab is skipped: {REASON}")
needs_lab = pytest.mark.skipif(REASON is not None, reason=f"real-kernel lab unavailable: {REASON}")
DROP_TIMEOUT = 0.9

# (id, destination, port, what ext sees): netsim.lab.exchanges
PATHS = LB_PATHS


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request):
    if REASON:
        pytest.skip(REASON)
    with Lab(lb_cluster(request.param), trace_rules=True) as built:
        yield built


@needs_lab
@pytest.mark.parametrize("path", PATHS, ids=[p[0] for p in PATHS])
def test_load_balancer_path_matches_the_kernel(lab, path):
    _, dst, port, seen = path
    model = lab.cluster.send("ext", f"{dst}:{port}", proto="tcp")
    observed = lab.exchange("ext", dst, "tcp", port, timeout=DROP_TIMEOUT if seen.startswith("no answer") else 3.0)
    result = compare(model, observed, cluster=lab.cluster, title=f"ext -> {dst}:{port} ({lab.cluster.proxy_mode})")
    assert result.ok, "\n" + str(result)
    assert observed.outcome == seen
    assert result.compared["rule evaluations"] > 0


@needs_lab
def test_the_speaker_answers_from_the_elected_node_only(lab):
    model = lab.cluster.send("ext", f"{LB['web-lb']}:80", proto="tcp")
    observed = lab.exchange("ext", LB["web-lb"], "tcp", 80)
    replies = [(h.where, h.frame.src, len(h.frame.to_bytes())) for h in observed.hops
               if h.frame.type == 0x0806 and h.frame.payload.op == 2 and h.frame.payload.psrc == LB["web-lb"]
               and h.direction == "tx" and not h.where.startswith("underlay")]
    node1_mac = lab.cluster.netns("node1").devices["eth0"].mac
    assert replies == [("node1/eth0", node1_mac, 60)]
    assert compare(model, observed, cluster=lab.cluster).ok


@needs_lab
@pytest.mark.parametrize("host", ["node1", "node2"])
def test_the_rulesets_are_netsims(lab, host):
    if lab.cluster.proxy_mode == "nftables":
        assert state.differences(lab, lab.cluster, host, "nft -a list ruleset") == []
        return
    kernel = [t.strip() for t in "\n".join(state.kernel_view(lab, host, "iptables-save")).split("COMMIT")]
    model = [t.strip() for t in "\n".join(state.model_view(lab.cluster, host, "iptables-save")).split("COMMIT")]
    assert [t for t in kernel if not t.startswith("*raw")] == model
