"""A cluster with NetworkPolicy objects (kube-network-policies beside Flannel), for
tests/test_cluster_networkpolicy.py and tests/test_lab_cluster_networkpolicy.py; the same
example as tests/npol_topology.py, now as cluster objects:

pod-a (namespace shop, app=frontend) and pod-b (namespace default, app=frontend) on node1, pod-c
(namespace default, app=web) on node2; namespace shop labelled team=shop;
- default/default-deny: podSelector {}, policyTypes [Ingress], no ingress rules;
- default/allow-frontend: podSelector app=web, ingress from pods app=frontend in namespaces
  team=shop, TCP port 8080.
"""

from __future__ import annotations

import netsim


def netpol_cluster(proxy_mode: str = "iptables") -> netsim.Cluster:
    c = netsim.Cluster(proxy_mode=proxy_mode)
    c.add_pod("pod-a", node="node1", namespace="shop", labels={"app": "frontend"})
    c.add_pod("pod-b", node="node1", labels={"app": "frontend"})
    c.add_pod("pod-c", node="node2", labels={"app": "web"})
    c.label_namespace("shop", {"team": "shop"})
    c.add_network_policy("default-deny", pod_selector={})
    c.add_network_policy("allow-frontend", pod_selector={"app": "web"}, ingress=[
        {"from": [{"pod_selector": {"app": "frontend"}, "namespace_selector": {"team": "shop"}}],
         "ports": [{"protocol": "TCP", "port": 8080}]}])
    return c
