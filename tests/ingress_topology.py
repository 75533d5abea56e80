"""The Ingress path on the reference cluster, for tests/test_ingress_path.py, tests/test_lab_ingress_path.py
and chapter 18: an ingress-nginx controller pod on node1 (10.244.0.5, after coredns's .4) behind
its LoadBalancer Service `ingress-nginx-controller` (MetalLB gives it 192.168.50.200, node1 wins
the election), one Ingress for host shop.example.com: `/` to Service `shop` (pod-c on node2,
port 80 -> 8080), Prefix `/api` to Service `api` (pod-b on node1); both backends run the
echoserver that answers with the headers it received.

The host and the rules are chapter 18's, from netsim.lab.edge (whose `ingress_cluster` is this
one with every default: test_ingress_path checks that they build the same cluster); this one
also takes the controller Service's policy and type, service_upstream and kube-proxy's mode."""

from __future__ import annotations

import netsim
from netsim.lab.edge import HOST, INGRESS_RULES as RULES

__all__ = ["CONTROLLER_IP", "HOST", "LB_IP", "RULES", "ingress_cluster"]

LB_IP = "192.168.50.200"
CONTROLLER_IP = "10.244.0.5"


def ingress_cluster(policy: str = "Cluster", service_type: str = "LoadBalancer", service_upstream: bool = False,
                    proxy_mode: str = "iptables"):
    """(cluster, controller)."""
    c = netsim.reference_cluster(proxy_mode=proxy_mode)
    c.add_service("shop", port=80, target_port=8080, pods=["pod-c"])
    c.add_service("api", port=80, target_port=8080, pods=["pod-b"])
    c.add_echoserver("pod-c")
    c.add_echoserver("pod-b")
    controller = c.add_ingress_controller(RULES, service_type=service_type, external_traffic_policy=policy,
                                          service_upstream=service_upstream)
    return c, controller
