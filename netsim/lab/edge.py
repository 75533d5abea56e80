"""Chapter 18's exchanges ("In from the edge"), each on the model and on the kernel.

The clusters are built as the chapter's cells build them, so that the lab's comparison checks
the very exchanges the chapter shows:

- `lb_cluster`: the reference cluster with two LoadBalancer Services in front of pod-c, `web-lb`
  (externalTrafficPolicy Cluster, 192.168.50.200 from MetalLB's pool, announced by node1) and
  `local-lb` (Local, 192.168.50.201, announced by node2, the only node with an endpoint); ext
  connects to each (`CASES`, run by `breakages.run_case` in tests/test_lab_edge.py: frames, rule
  evaluations and drop counters compared).
- `policy_cluster`: the reference cluster with pod-d (app=db) on node2; pod-a's SYN to it answered
  with Flannel alone, then dropped on node2 once `default-deny` selects every pod of the
  namespace (kube-network-policies' table, with the agent's verdict in chain nfqueue-100 standing
  in for the NFQUEUE verdict this kernel cannot give: CONFIG_NFT_QUEUE is off).
- `headless_cluster`: StatefulSet `db` (three pods) behind the headless Service `db`; the
  chapter's two `dig` runs in pod-a (TOOL_RUNS), compared by tests/test_lab_edge.py with
  tests/test_lab_dns.py's rules (the query id and client cookie by rule, every frame per capture
  point, the output but what dig's clock and random numbers decide).
  On the same cluster `TOOL_RUNS` holds the chapter's curl to local-lb's healthCheckNodePort on
  node2 (200, one local endpoint) and node1 (503, none): kube-proxy's health server in the
  model (netsim/programs/healthcheck.py), a stand-in built from the Go sources in the lab
  (netsim.lab.kube_proxy_health), compared frame by frame by tests/test_lab_edge.py.
- `ingress_cluster`: the Ingress controller and its two backends (tests/ingress_topology.py
  builds the same); `TOOL_RUNS` are the curl runs the chapter makes through it, compared frame
  by frame by tests/test_lab_ingress.py and tests/test_lab_edge.py (netsim.lab.conversation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..cluster import Cluster, load_balancer_cluster, reference_cluster
from .breakages import TCP_WAIT, LabCase

HOST = "shop.example.com"
INGRESS_RULES = [{"host": HOST, "paths": [{"path": "/", "pathType": "Prefix", "service": "shop", "port": 80},
                                          {"path": "/api", "pathType": "Prefix", "service": "api", "port": 80}]}]


def lb_cluster() -> Cluster:
    return load_balancer_cluster()


def policy_cluster(deny: bool = False) -> Cluster:
    cluster = reference_cluster()
    cluster.add_pod("pod-d", node="node2", labels={"app": "db"})
    if deny:
        cluster.add_network_policy("default-deny", pod_selector={})
    return cluster


def ingress_cluster() -> Cluster:
    cluster = reference_cluster()
    cluster.add_service("shop", port=80, target_port=8080, pods=["pod-c"])
    cluster.add_service("api", port=80, target_port=8080, pods=["pod-b"])
    cluster.add_echoserver("pod-c")
    cluster.add_echoserver("pod-b")
    cluster.add_ingress_controller(INGRESS_RULES)
    return cluster


CASES = (
    LabCase("lb-cluster-policy", "chapter 18: ext to a LoadBalancer address (policy Cluster, entering on node1)",
            lb_cluster, "ext", "192.168.50.200:80", "tcp"),
    LabCase("lb-local-policy", "chapter 18: ext to a LoadBalancer address (policy Local, entering on node2)",
            lb_cluster, "ext", "192.168.50.201:80", "tcp"),
    LabCase("policy-flannel-alone", "chapter 18: pod-a to pod-d, no NetworkPolicy",
            policy_cluster, "pod-a", "pod-d", "tcp", dport=8080),
    LabCase("policy-default-deny", "chapter 18: pod-a to pod-d, dropped by default-deny on node2",
            lambda: policy_cluster(deny=True), "pod-a", "pod-d", "tcp", dport=8080, wait=TCP_WAIT),
)
BY_KEY = {case.key: case for case in CASES}


@dataclass(frozen=True)
class ToolCase:
    """A tool the chapter runs in a cluster: `model(cluster)` is its call on the model, `argv`
    the real tool's command line in the lab, in host `src`."""

    key: str
    title: str
    build: Callable[[], Any]
    src: str
    argv: tuple[str, ...]
    model: Callable[[Any], Any]


def headless_cluster() -> Cluster:
    cluster = reference_cluster()
    cluster.add_statefulset("db", service="db", replicas=3, nodes=["node1", "node2"])
    cluster.add_service("db", port=5432, target_port=5432, pods=["db-0", "db-1", "db-2"], cluster_ip=None)
    return cluster


TOOL_RUNS: tuple[ToolCase, ...] = (
    ToolCase("ingress-shop", "chapter 18: curl on ext through the Ingress controller to the shop",
             ingress_cluster, "ext", ("curl", "-sS", "-H", f"Host: {HOST}", "http://192.168.50.200/cart"),
             lambda c: c.fetch("ext", "http://192.168.50.200/cart", host=HOST)),
    ToolCase("ingress-unknown-host", "chapter 18: curl on ext with a Host no rule names",
             ingress_cluster, "ext", ("curl", "-sS", "-H", "Host: other.example.com", "http://192.168.50.200/cart"),
             lambda c: c.fetch("ext", "http://192.168.50.200/cart", host="other.example.com")),
    ToolCase("headless-service-name", "chapter 18: dig in pod-a for a headless Service's name",
             headless_cluster, "pod-a", ("dig", "@10.96.0.10", "db.default.svc.cluster.local"),
             lambda c: c.dig("pod-a", "db.default.svc.cluster.local", server="10.96.0.10")),
    ToolCase("headless-pod-name", "chapter 18: dig +short in pod-a for a StatefulSet pod's name",
             headless_cluster, "pod-a", ("dig", "@10.96.0.10", "db-1.db.default.svc.cluster.local", "+short"),
             lambda c: c.dig("pod-a", "db-1.db.default.svc.cluster.local", server="10.96.0.10", short=True)),
)
# local-lb's healthCheckNodePort in lb_cluster (allocated after web-lb's and local-lb's nodePorts)
HEALTH_CHECK_PORT = 30088
HEALTH_CHECK_NODES = {"node2": "192.168.50.12", "node1": "192.168.50.11"}


def _health_check_run(node: str, proxy_mode: str = "iptables") -> ToolCase:
    """curl on ext to local-lb's healthCheckNodePort on `node`; in nftables mode too, where
    kube-proxy writes no rule for the port (no default drop to open), the chapter's iptables
    mode opening it in filter KUBE-NODEPORTS."""
    url = f"http://{HEALTH_CHECK_NODES[node]}:{HEALTH_CHECK_PORT}/healthz"
    seen = "200, an endpoint" if node == "node2" else "503, no endpoint"
    suffix = "" if proxy_mode == "iptables" else f"-{proxy_mode}"
    return ToolCase(f"health-check-{node}{suffix}",
                    f"chapter 18: curl on ext to local-lb's health-check port on {node} ({seen}, {proxy_mode} mode)",
                    lambda: load_balancer_cluster(proxy_mode=proxy_mode), "ext", ("curl", "-sS", url),
                    lambda c: c.fetch("ext", url))


TOOL_RUNS += tuple(_health_check_run(node, mode) for mode in ("iptables", "nftables") for node in ("node2", "node1"))
TOOLS_BY_KEY = {case.key: case for case in TOOL_RUNS}
