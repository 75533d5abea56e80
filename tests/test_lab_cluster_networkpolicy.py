"""NetworkPolicy objects of a Cluster on the kernel (tests/netpol_cluster.py), both kube-proxy
modes: each node's kube-network-policies table (netsim's form, with the agent's verdicts in
chain nfqueue-100 standing in for `queue`, which this kernel cannot load: CONFIG_NFT_QUEUE is
off, tests/test_lab_networkpolicy.py) loaded by the lab with the rest of the node's rules;
pod-a's SYN accepted and pod-b's dropped on node2 at the rule netsim names, frame by frame and,
through nft monitor trace, rule by rule; the tables byte for byte. Needs root on Linux, like
tests/test_lab.py; skipped with the reason otherwise."""

from __future__ import annotations

import pytest

from netsim.lab import compare
from netsim.lab import state
from tests import labkit
from tests.netpol_cluster import netpol_cluster

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab
DROP_TIMEOUT = 0.9

PATHS = [("pod-a", "tcp", 8080, "connected to 10.244.1.2:8080 (SYN-ACK)"),
         ("pod-b", "tcp", 8080, "no answer reached the sender"),
         ("pod-a", "udp", 9090, "no answer reached the sender")]


lab = labkit.module_lab(GATE, netpol_cluster, per_proxy_mode=True, trace_rules=True)


@needs_lab
@pytest.mark.parametrize("path", PATHS, ids=[f"{p[0]}-{p[1]}" for p in PATHS])
def test_the_policy_decides_as_on_the_kernel(lab, path):
    src, proto, port, seen = path
    model = lab.cluster.send(src, "pod-c", proto=proto, dport=port)
    observed = lab.exchange(src, "pod-c", proto, port, timeout=DROP_TIMEOUT if seen.startswith("no answer") else 3.0)
    result = compare(model, observed, cluster=lab.cluster, title=f"{src} -> pod-c {proto}/{port}")
    assert result.ok, "\n" + str(result)
    assert observed.outcome == seen
    assert result.compared["rule evaluations"] > 0


@needs_lab
@pytest.mark.parametrize("host", ["node1", "node2"])
def test_the_tables_are_netsims(lab, host):
    assert state.differences(lab, lab.cluster, host, "nft -a list ruleset") == []
