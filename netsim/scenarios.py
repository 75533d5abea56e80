"""The book's scenarios, each a function returning the trace of a request and its reply.

The six of the spine, on the reference cluster (`reference_cluster()`), with the traffic the
reference captures used (TCP to port 8080 unless said otherwise):
1. container to container in one pod (loopback);
2. pod to pod on one node (bridged by cni0);
3. host to pod (routed onto cni0, source 10.244.0.1);
4. pod to pod across nodes (VXLAN by default);
5. external client to a NodePort (DNAT and SNAT on node1);
6. pod to an external host (masqueraded, no tunnel).
Extras: host to a remote pod, pod to a ClusterIP. Each takes `backend=` ("vxlan", "host-gw",
"udp") and `proto=`, and an existing cluster if you want to reuse or break one.
"""

from __future__ import annotations

from .cluster import Cluster, reference_cluster
from .trace import Trace


def _cluster(cluster: Cluster | None, backend: str) -> Cluster:
    return cluster if cluster is not None else reference_cluster(backend)


def container_to_container(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Scenario 1: pod-a's app connects to its sidecar on 127.0.0.1."""
    return _cluster(cluster, backend).send("pod-a/app", "pod-a/sidecar", proto=proto)


def pod_to_pod_same_node(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Scenario 2: pod-a to pod-b, both on node1."""
    return _cluster(cluster, backend).send("pod-a", "pod-b", proto=proto)


def host_to_pod(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Scenario 3: node1 itself to pod-a."""
    return _cluster(cluster, backend).send("node1", "pod-a", proto=proto)


def pod_to_pod_cross_node(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Scenario 4: pod-a on node1 to pod-c on node2."""
    return _cluster(cluster, backend).send("pod-a", "pod-c", proto=proto)


def external_to_nodeport(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Scenario 5: ext to node1's NodePort 30080, served by pod-c on node2."""
    c = _cluster(cluster, backend)
    return c.send("ext", f"{c.nodes['node1'].ip}:30080", proto=proto)


def pod_to_external(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Scenario 6: pod-a to the external host."""
    return _cluster(cluster, backend).send("pod-a", "ext", proto=proto)


def host_to_remote_pod(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Extra: node1 to pod-c on node2 (source flannel.1's 10.244.0.0 under vxlan)."""
    return _cluster(cluster, backend).send("node1", "pod-c", proto=proto)


def pod_to_cluster_ip(backend: str = "vxlan", proto: str = "tcp", cluster: Cluster | None = None) -> Trace:
    """Extra: pod-a to service web's ClusterIP 10.96.0.100:80."""
    return _cluster(cluster, backend).send("pod-a", "web", proto=proto)


SIX = {
    1: container_to_container,
    2: pod_to_pod_same_node,
    3: host_to_pod,
    4: pod_to_pod_cross_node,
    5: external_to_nodeport,
    6: pod_to_external,
}
EXTRAS = {"host-to-remote-pod": host_to_remote_pod, "pod-to-cluster-ip": pod_to_cluster_ip}
