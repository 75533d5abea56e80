"""Pods made by Debian's CNI plugins (bridge, host-local, loopback) against netsim's pods.

A node with three pods: the plugins get the configuration flannel's CNI plugin hands `bridge`
(netsim.lab.cni.delegate_config) over the CNI protocol, and what they build in real
namespaces is compared with the model. Needs root and containernetworking-plugins; skipped
with the reason otherwise.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest

import netsim
from netsim.lab import unavailable_reason
from netsim.lab._netns import netns_path
from netsim.lab.cni import VETH_NAME, compare_cni, delegate_config, plugins_reason, real_cni_node

REASON = unavailable_reason() or plugins_reason()
if REASON:
    warnings.warn(f"tests/test_lab_cni.py: the real CNI plugins are not run: {REASON}")
needs_plugins = pytest.mark.skipif(REASON is not None, reason=f"real CNI plugins unavailable: {REASON}")


def _three_pods() -> netsim.Cluster:
    cluster = netsim.reference_cluster()
    cluster.add_pod("pod-d", node="node1")      # pod-a, pod-b and pod-d on node1
    return cluster


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
    assert [p.name for p in real.pods] == ["pod-a", "pod-b", "pod-d"]
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
    assert real.version.startswith("1.")
    # nothing is left: the namespaces and host-local's allocation directory are gone
    assert made and not os.path.exists(made[0])
    assert not [n for n in os.listdir("/run/netns") if n.startswith(prefix)]
