"""LoadBalancer Services on the reference cluster, for tests/test_loadbalancer.py and
tests/test_lab_loadbalancer.py: MetalLB's pool is 192.168.50.200-250 on the nodes' own network.

- web-lb (192.168.50.200, policy Cluster) in front of pod-c: node1 wins the election for .200
  (sha256("node1#192.168.50.200") sorts first), so traffic enters on node1 and crosses to node2;
- local-lb (192.168.50.201, policy Local) in front of pod-c: only node2 has an endpoint, so
  only node2 is a candidate; it gets a healthCheckNodePort;
- open-lb (192.168.50.202, loadBalancerSourceRanges 203.0.113.0/24: ext may) and shut-lb
  (192.168.50.203, 198.51.100.0/24: ext may not), both in front of pod-c.
"""

from __future__ import annotations

import netsim

LB = {"web-lb": "192.168.50.200", "local-lb": "192.168.50.201", "open-lb": "192.168.50.202",
      "shut-lb": "192.168.50.203"}


def lb_cluster(proxy_mode: str = "iptables") -> netsim.Cluster:
    c = netsim.reference_cluster(proxy_mode=proxy_mode)
    c.add_service("web-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer")
    c.add_service("local-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                  external_traffic_policy="Local")
    c.add_service("open-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                  load_balancer_source_ranges=["203.0.113.0/24"])
    c.add_service("shut-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                  load_balancer_source_ranges=["198.51.100.0/24"])
    return c
