"""LoadBalancer Services on the kernel (tests/lb_topology.py), both kube-proxy modes: the
gateway's ARP for the load-balancer address answered from the elected node (in the lab by
netsim.lab.arp_responder, a packet socket standing in for MetalLB's speaker, told what the
model's speaker announces), then the path from the external client to pod-c, frame by frame
and rule by rule; policy Local entering on node2 with the client's address kept;
loadBalancerSourceRanges letting ext through one Service and dropping it at another; the
health-check node port; the nodes' rulesets byte for byte. Needs root on Linux, like
tests/test_lab.py; skipped with the reason otherwise."""

from __future__ import annotations

import pytest

from netsim.lab import compare
from tests import labkit
from tests.lb_topology import LB, LB_PATHS, lb_cluster

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab
DROP_TIMEOUT = 0.9

# (id, destination, port, what ext sees): netsim.lab.exchanges
PATHS = LB_PATHS


lab = labkit.module_lab(GATE, lb_cluster, per_proxy_mode=True, trace_rules=True)


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
    labkit.assert_rulesets_are_netsims(lab, host)
