"""Pods made by Debian's CNI plugins (bridge, host-local, loopback) against netsim's pods.

A node with three pods: the plugins get the configuration flannel's CNI plugin hands `bridge`
(netsim.lab.cni.delegate_config) over the CNI protocol, and what they build in real
namespaces is compared with the model. Needs root and containernetworking-plugins; skipped
with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

import netsim
from netsim.lab._netns import netns_path
from netsim.lab.cni import (MAC, VETH_NAME, chapter_record, compare_cni, delegate_config, masked, plugins_reason,
                            real_cni_node)
from tests import labkit

GATE = labkit.gate(__file__, plugins_reason, unavailable="real CNI plugins unavailable",
                   skipped="the real CNI plugins are not run")
needs_plugins = GATE.needs_lab


CHAPTER_DATA = Path(__file__).resolve().parent.parent / "notebooks" / "data" / "cni-result.json"


def _three_pods() -> netsim.Cluster:
    return netsim.reference_cluster()           # pod-a, pod-b and coredns on node1


def test_the_delegate_configuration_is_flannels():
    """flannel-io/cni-plugin flannel_linux.go (doCmdAdd, getDelegateIPAM) and kube-flannel.yml."""
    config = delegate_config(_three_pods(), "node1")
    assert config["type"] == "bridge" and config["name"] == "cbr0"
    assert config["isGateway"] is True and config["isDefaultGateway"] is True and config["hairpinMode"] is True
    assert config["ipMasq"] is False and config["mtu"] == 1450
    assert config["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]],
                              "routes": [{"dst": "10.244.0.0/16"}]}


@needs_plugins
def test_three_pods_made_by_the_real_plugins_are_the_models(monkeypatch):
    cluster = _three_pods()
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    prefix = f"nsl-{os.getpid()}-0-"
    real = real_cni_node(cluster, "node1", prefix)
    assert compare_cni(cluster, "node1", real) == []
    assert [p.name for p in real.pods] == ["pod-a", "pod-b", "coredns"]
    # the plugin's result JSON: the model's addresses in creation order, its gateway, the sandbox
    for pod in real.pods:
        (ip,) = pod.result["ips"]
        assert ip["address"] == str(cluster.netns(pod.name).devices["eth0"].addresses[0])
        assert ip["gateway"] == "10.244.0.1"
        names = [i["name"] for i in pod.result["interfaces"]]
        assert names[0] == "cni0" and VETH_NAME.fullmatch(names[1]) and names[2] == "eth0"
        assert pod.result["interfaces"][2]["sandbox"] == netns_path(f"{prefix}{pod.name}")
        assert pod.routes[0].split() == ["default", "via", "10.244.0.1", "dev", "eth0"]
    assert real.bridge["addr_assign_type"] == 3          # cni0's MAC is set, as netsim's fixed one
    assert len(real.ports) == 3 and all(p["linkinfo"]["info_slave_data"]["hairpin"] for p in real.ports)
    # promiscuous mode: each port joined cni0 (br_add_if), cni0 and the pods' eth0 did not
    assert [(p["promiscuity"], p["allmulti"]) for p in real.ports] == [(1, 1)] * 3
    assert (real.bridge["promiscuity"], real.bridge["allmulti"]) == (0, 0)
    assert [pod.counts for pod in real.pods] == [(0, 0)] * 3
    # ... and the comparison finds a model port that is not promiscuous
    port = cluster.netns("pod-b").devices["eth0"].peer
    real_name = real.pods[1].result["interfaces"][1]["name"]
    port.promiscuity -= 1
    assert compare_cni(cluster, "node1", real) == [
        f"{real_name} promiscuity/allmulti: model (0, 1) ({port.name}), plugins (1, 1)"]
    port.promiscuity += 1
    assert real.version.startswith("1.")
    # nothing is left: the namespaces and host-local's allocation directory are gone
    assert made and not os.path.exists(made[0])
    assert not [n for n in os.listdir("/run/netns") if n.startswith(prefix)]


def test_the_chapters_cni_result_is_netsims_pods_but_for_what_the_plugins_randomise():
    """notebooks/data/cni-result.json (the toolbox chapter's): the configuration is the one
    netsim.lab.cni hands `bridge` for node1, each pod's address, gateway and routes are
    netsim's, and the names and MACs the plugins pick at random are not netsim's."""
    stored = json.loads(CHAPTER_DATA.read_text())
    cluster = netsim.reference_cluster()
    assert stored["config"] == delegate_config(cluster, "node1")
    cni0 = cluster.netns("node1").devices["cni0"]
    assert [p["name"] for p in stored["pods"]] == [p for p, spec in cluster.pods.items() if spec.node == "node1"]
    for pod in stored["pods"]:
        result, eth0 = pod["result"], cluster.netns(pod["name"]).devices["eth0"]
        (ip,) = result["ips"]
        assert (ip["address"], ip["gateway"], ip["interface"]) == (str(eth0.addresses[0]), str(cni0.addresses[0].ip), 2)
        assert result["routes"] == [{"dst": "10.244.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.244.0.1"}]
        bridge, host, inside = result["interfaces"]
        assert (bridge["name"], inside["name"]) == ("cni0", "eth0")
        assert VETH_NAME.fullmatch(host["name"]) and host["name"] != eth0.peer.name
        assert all(MAC.fullmatch(i["mac"]) for i in result["interfaces"])
        assert bridge["mac"] != cni0.mac and inside["mac"] != eth0.mac and host["mac"] != eth0.peer.mac


@needs_plugins
def test_the_chapters_cni_result_is_what_the_plugins_produce():
    """A fresh run of the plugins gives the stored file, random MACs and veth names aside
    (regenerate with `tools/cni_result.py --write`)."""
    stored = json.loads(CHAPTER_DATA.read_text())
    fresh = chapter_record(real_cni_node(netsim.reference_cluster(), "node1", f"nsl-{os.getpid()}-1-"), "node1")
    assert masked(fresh) == masked(stored)
    assert [p["name"] for p in fresh["pods"]] == ["pod-a", "pod-b", "coredns"]
    # what the masking leaves is compared: another address is a difference
    fresh["pods"][0]["result"]["ips"][0]["address"] = "10.244.0.9/24"
    assert masked(fresh) != masked(stored)
