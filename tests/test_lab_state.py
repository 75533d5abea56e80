"""netsim's state views print what the real tools print for the same cluster built in real
namespaces (netsim.lab.state): `ip link`, `ip -d link` (each line of the model's the start of
the kernel's: flags, MTU, master, state, MAC, peer namespace, the promiscuity and allmulti
counts joining a bridge sets, the VXLAN and bridge-port settings), `ip route`, permanent
`ip neigh` entries, `bridge fdb` and `iptables-save`.

Skipped, with the reason, where the lab cannot run (no root, no namespaces)."""

import pytest

import netsim
from netsim.lab import Lab
from netsim.lab.state import HOSTS, VIEWS, differences, kernel_view
from tests import labkit

pytestmark = labkit.gate(__file__).needs_lab


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_state_views_match_the_kernel(backend):
    cluster = netsim.reference_cluster(backend)
    with Lab(cluster) as lab:
        for host in HOSTS:
            for view in VIEWS:
                assert differences(lab, cluster, host, view) == [], f"{host} `{view}`"
        # the promiscuity counts are read, not assumed: each cni0 and sw0 port's is 1
        ports = [line for line in kernel_view(lab, "node1", "ip -d link") + kernel_view(lab, "underlay", "ip -d link")
                 if " promiscuity 1  allmulti 1" in line]
        assert len(ports) == len(cluster.netns("node1").devices["cni0"].ports) + \
            len(cluster.netns("underlay").devices["sw0"].ports)
        # ... and a model port that is not promiscuous is found
        port = cluster.netns("pod-b").devices["eth0"].peer
        port.promiscuity -= 1
        (found,) = differences(lab, cluster, "node1", "ip -d link")
        assert found.startswith(f"{port.name}:\n") and " promiscuity 0  allmulti 1" in found
