"""A pod calling its own Service (hairpin traffic), for tests/test_hairpin.py and
tests/test_lab_hairpin.py: the reference cluster plus Service `echo` in front of pod-c with two
named ports (http TCP 80 -> 8080, dns UDP 90 -> 9090), node2's br_netfilter switch and the
hairpin flag of pod-c's cni0 port set as asked."""

from __future__ import annotations

import netsim
from netsim.cni import host_veth_name

ECHO_IP = "10.96.0.101"
PORTS = {"tcp": 80, "udp": 90}
POD_C_PORT = host_veth_name("pod-c")        # veth4bd4e613


def hairpin_cluster(proxy_mode: str = "iptables", br_netfilter: bool = True, hairpin: bool = True) -> netsim.Cluster:
    c = netsim.reference_cluster(proxy_mode=proxy_mode)
    c.add_service("echo", pods=["pod-c"], ports=[{"name": "http", "port": 80, "target_port": 8080},
                                                {"name": "dns", "port": 90, "target_port": 9090, "protocol": "udp"}])
    c.netns("node2").set_sysctl("net.bridge.bridge-nf-call-iptables", int(br_netfilter))
    c.bridge_link_set("node2", POD_C_PORT, hairpin=hairpin)
    return c
