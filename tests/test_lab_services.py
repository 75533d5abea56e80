"""A ClusterIP service from a pod on the endpoint's own node, in netsim and in real network
namespaces, compared frame by frame. Needs root on Linux, like tests/test_lab.py; skipped with
the reason otherwise."""

from __future__ import annotations

import pytest

import netsim
from netsim.decision import Outcome, OutcomeReason
from netsim.lab import Lab, compare
from tests import labkit

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab


@needs_lab
def test_a_service_whose_endpoint_shares_the_clients_bridge_connects_as_in_the_kernel():
    """br_netfilter DNATs the SYN to pod-b, behind another cni0 port with no neighbour entry:
    the kernel's cni0 ARPs for 10.244.0.3 from 10.244.0.1 and then bridges the SYN with pod-a's
    own source MAC. Every frame, the ARPs included, matches the model."""
    cluster = netsim.reference_cluster()
    cluster.add_service("svc", port=80, target_port=8080, pods=["pod-b"])
    model = cluster.send("pod-a", "svc", proto="tcp")
    with Lab(cluster, trace_rules=True) as lab:
        observed = lab.exchange("pod-a", "svc", "tcp", None)
    result = compare(model, observed, cluster=cluster, title="pod-a -> svc (endpoint pod-b, same node)")
    assert result.ok, str(result)
    assert model.outcome == Outcome("connected", OutcomeReason.CONNECTED, peer="10.96.0.101:80")
    assert result.compared["hop"] == 9 and result.compared["arp"] >= 20
