"""Every capture point a netsim trace crosses is compared with the kernel's capture of it.

The lab opens a capture socket on every device of every namespace (netsim.lab.capture), so
the bridge device cni0 and flannel.1 are captured in both directions like any veth. These
tests hold the comparison to it, on its records (`Comparison.pairs`, the model and kernel hops
it lined up): each hop of the model's trace, request and reply, has the kernel's frame at the
same namespace, device and direction compared with it, and the ARP frames are the same set at
the same capture points. Two exchanges: scenario 4 under vxlan (cni0 and flannel.1 on both
nodes, each both ways), and a ClusterIP whose endpoint shares the client's bridge, where
br_netfilter's DNAT sends the SYN back out through cni0 itself.

Needs root on Linux, like tests/test_lab.py; skipped with the reason otherwise, except the
first test (the check itself, on netsim's traces alone), which needs no root."""

from __future__ import annotations

import pytest

import netsim
from netsim.lab import Lab, compare
from netsim.lab.compare import IGNORED_ROLES
from netsim.lab.conformance import run_scenario
from netsim.trace import Trace
from tests import labkit

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab


def _point(h) -> tuple[str, str, str]:
    return (h.netns, h.device, h.direction)


def uncompared(result) -> list[str]:
    """The model's hops (ARP aside) that no kernel frame at the same capture point was compared
    with, and ARP frames that differ or were not compared."""
    lined = {id(m) for m, k in result.pairs if _point(m) == _point(k)}
    out = [f"hop {h.index} {h.where} {h.direction} ({h.role})" for h in result.model.hops
           if h.role not in IGNORED_ROLES and id(h) not in lined]
    arp = sum(1 for h in result.model.hops if h.is_arp)
    out += [str(d) for d in result.differences if d.where == "arp"]
    if result.compared["arp"] != arp:
        out.append(f"arp: {result.compared['arp']} frames compared, the model has {arp}")
    return out


def compared_points(result, role: str | None = None) -> set[tuple[str, str, str]]:
    return {_point(k) for m, k in result.pairs if _point(m) == _point(k) and role in (None, m.role)}


def test_the_check_finds_a_capture_point_left_out():
    """Without the kernel's cni0 frames the comparison lines up the rest, and the check names
    each cni0 hop the model has and nothing else."""
    model = netsim.reference_cluster("vxlan").send("pod-a", "pod-c", proto="tcp")
    assert uncompared(compare(model, model)) == []
    blind = Trace(tuple(h for h in model.hops if h.where != "node1/cni0"), model.title, model.outcome)
    missing = uncompared(compare(model, blind))
    cni0 = [h for h in model.hops if h.where == "node1/cni0"]
    assert [line for line in missing if not line.startswith("arp")] == \
        [f"hop {h.index} node1/cni0 {h.direction} ({h.role})" for h in cni0 if not h.is_arp]
    assert any(line.startswith("arp") for line in missing) == any(h.is_arp for h in cni0)
    assert {h.direction for h in cni0 if not h.is_arp} == {"rx", "tx"}


@needs_lab
def test_every_device_scenario_4_crosses_is_compared_both_ways():
    cluster = netsim.reference_cluster("vxlan")
    with Lab(cluster) as lab:
        every_device = {(ns.name, dev) for ns in cluster.network.namespaces.values() for dev in ns.devices}
        assert set(lab.capture_points) == every_device
        result = run_scenario(lab, 4, "tcp")
    assert result.ok, str(result)
    assert uncompared(result) == []
    points = compared_points(result)
    for node in ("node1", "node2"):
        for dev in ("cni0", "flannel.1", "eth0"):
            assert {(node, dev, "rx"), (node, dev, "tx")} <= points, f"{node}/{dev}"
    # request and reply each cross both bridges and both VTEPs
    for role in ("request", "reply"):
        assert {(n, d) for n, d, _ in compared_points(result, role)} >= \
            {("node1", "cni0"), ("node1", "flannel.1"), ("node2", "flannel.1"), ("node2", "cni0")}
    assert result.hops_compared == len(result.pairs) == sum(1 for h in result.model.hops if not h.is_arp)


@needs_lab
def test_a_dnat_back_through_cni0_is_compared_on_cni0():
    """pod-a to a ClusterIP served by pod-b on the same node: br_netfilter DNATs the SYN as it
    is bridged; routed up to cni0 (the bridge ARPs for pod-b first), it leaves through cni0 to
    pod-b's port, and the kernel's frame on cni0 tx is the one compared with the model's. On
    cni0 it carries cni0's MAC as source (neigh_resolve_output's header); br_dev_xmit then copies
    pod-a's back over it (br_nf_pre_routing_finish_bridge_slow), so pod-b's port sends pod-a's.
    (A recvmsg capture read the frame after that copy and showed pod-a's MAC on cni0 too.)"""
    cluster = netsim.reference_cluster("vxlan")
    cluster.add_service("svc", port=80, target_port=8080, pods=["pod-b"])
    model = cluster.send("pod-a", "svc", proto="tcp")
    with Lab(cluster) as lab:
        observed = lab.exchange("pod-a", "svc", "tcp", None)
    result = compare(model, observed, cluster=cluster, title="pod-a -> svc (endpoint pod-b, same node)")
    assert result.ok, str(result)
    assert uncompared(result) == []
    assert ("node1", "cni0", "tx") in compared_points(result, "request")
    syn = next(k for m, k in result.pairs if m.role == "request" and _point(m) == ("node1", "cni0", "tx"))
    assert syn.frame.ip.dst == "10.244.0.3" and syn.frame.src == cluster.netns("node1").devices["cni0"].mac
    port = next(k for m, k in result.pairs if m.role == "request" and _point(m) == ("pod-b", "eth0", "rx"))
    assert port.frame.src == cluster.netns("pod-a").devices["eth0"].mac
    # cni0's own ARP for pod-b, both ways, is in the compared set
    arps = [h for h in model.hops if h.is_arp and h.where == "node1/cni0"]
    assert {h.direction for h in arps} == {"rx", "tx"}
