"""A Flannel cluster built on the modelled kernel: nodes, pods, services, the outside world.

`Cluster` is what a user drives: it takes the cluster's description, checks every input
where it enters and hands the building to the rooms of this package:

| module | what it models |
| --- | --- |
| spec.py | the description: parameters, node, pod and external host records, names, the address plan |
| builder.py | the namespaces, as kubelet, the CNI plugin, flanneld and kube-proxy program them; lazy clusters |
| services.py | Services: kube-apiserver's checks and allocations, kube-proxy's rules on every node |
| endpoints.py | what a name in `send()` stands for |
| breakages.py | the `break_*` methods and `set_mtu`, for the troubleshooting chapter |
| owners.py | who owns an address only the cluster knows (a service's ClusterIP) |

Endpoints are named: a pod (`pod-a`), a container (`pod-a/sidecar`), a node (`node1`), an
external host (`ext`), a service (`web`), or an address, optionally with a port
(`192.168.50.11:30080`). Names follow Kubernetes' rules (netsim.names) and every refusal is a
ConfigError naming the value and what would be valid.
"""

from __future__ import annotations

from .. import flannel, kubeproxy
from ..addresses import parse_address
from ..errors import ConfigError
from ..names import check_name
from ..params import check_port, check_protocol
from ..trace import Trace
from . import breakages
from .builder import EAGER_MAX_NODES, Builder
from .endpoints import Endpoint, resolve
from .owners import cluster_owners
from .spec import (DEFAULT_CONTAINERS, EXTERNAL_NET, FIRST_SERVICE_IP, GATEWAY_EXTERNAL_IP, MIN_MTU, POD_PORTS, SERVICE_CIDR,
                   ClusterSpec, External, Node, Pod)

__all__ = ["Cluster", "Endpoint", "External", "Node", "Pod", "reference_cluster", "EAGER_MAX_NODES",
           "EXTERNAL_NET", "FIRST_SERVICE_IP", "GATEWAY_EXTERNAL_IP", "MIN_MTU", "POD_PORTS", "SERVICE_CIDR"]


class Cluster:
    """A Kubernetes cluster with Flannel, as the kernel of each machine sees it."""

    def __init__(self, nodes: int = 2, backend: str = "vxlan", pod_cidr: str = "10.244.0.0/16",
                 subnet_len: int = 24, underlay_cidr: str = "192.168.50.0/24", underlay_mtu: int = 1500,
                 lazy: bool | None = None):
        if lazy is not None and not isinstance(lazy, bool):
            raise ConfigError(f"lazy must be True, False or None (decide by size), got {lazy!r}")
        spec = self.spec = ClusterSpec(nodes, backend, pod_cidr, subnet_len, underlay_cidr, underlay_mtu)
        # The description's parameters and records, under the names users know.
        self.backend, self.pod_cidr, self.underlay, self.mtu = spec.backend, spec.pod_cidr, spec.underlay, spec.mtu
        self.subnet_len, self.underlay_mtu, self.gateway_ip = spec.subnet_len, spec.underlay_mtu, spec.gateway_ip
        self.nodes, self.pods, self.externals, self.services = spec.nodes, spec.pods, spec.externals, spec.services
        self.lazy = nodes > EAGER_MAX_NODES if lazy is None else bool(lazy)
        self._builder = Builder(spec, self.lazy)
        self.network = self._builder.network
        self.network.owner_hook = lambda: cluster_owners(spec)     # traces name services' ClusterIPs

    @property
    def built(self) -> int:
        """How many namespaces exist so far (all of them unless the cluster is lazy)."""
        return self._builder.built

    def materialize_all(self) -> None:
        """Build every namespace a lazy cluster has not built yet (for views that draw the
        whole cluster and for the real-kernel lab). Costs O(nodes^2) with vxlan."""
        self._builder.materialize_all()

    # populating -----------------------------------------------------------------------------
    def add_pod(self, name: str, node: str = "node1", containers: tuple[str, ...] = DEFAULT_CONTAINERS,
                listen: tuple[tuple[str, int], ...] = POD_PORTS) -> Pod:
        """Schedule a pod: CNI ADD on its node (cni0, veth pair, host-local address, routes).
        Pod and container names are DNS-1123 labels (netsim.names)."""
        pod = self.spec.add_pod(name, node, containers, listen)
        if node in self.network.namespaces:      # its node is built: CNI ADD now (else with the node)
            self._builder.build_pod(pod)
        return pod

    def add_external(self, name: str, ip: str = "203.0.113.10",
                     listen: tuple[tuple[str, int], ...] = POD_PORTS) -> External:
        """A host outside the cluster, on 203.0.113.0/24 behind the gateway. Its name is a
        DNS-1123 label (netsim.names)."""
        check_name("external host", name)
        addr = parse_address(ip, "external address")
        if addr not in EXTERNAL_NET or addr in (EXTERNAL_NET.network_address, EXTERNAL_NET.broadcast_address):
            raise ConfigError(f"external host {name}: {ip} must be a host address in {EXTERNAL_NET}")
        if str(addr) == GATEWAY_EXTERNAL_IP:
            raise ConfigError(f"{ip} is the gateway's own external address")
        self.spec.check_new_name("external host", name)
        listen = self.spec.check_listen(listen, f"external host {name}")
        if self.externals:
            raise ConfigError(f"the gateway's eth1 is already cabled to {next(iter(self.externals))}: "
                              f"netsim models one external host per cluster")
        ext = External(name, str(addr))
        self._builder.build_external(ext, listen)
        self.externals[name] = ext
        return ext

    def add_service(self, name: str, port: int, target_port: int, pods: list[str] | tuple[str, ...] = (),
                    node_port: int | None = None, external_traffic_policy: str = "Cluster",
                    protocol: str = "tcp", cluster_ip: str | None = None) -> kubeproxy.Service:
        """A Service: kube-proxy programs its ClusterIP (and NodePort) on every node. The name
        is a DNS-1035 label (netsim.names); the ClusterIP and NodePort are checked and allocated
        as kube-apiserver does (kubeproxy.check_cluster_ip, allocate_cluster_ip, check_node_port)."""
        return self._builder.kube_proxy.add_service(name, port, target_port, pods, node_port,
                                                    external_traffic_policy, protocol, cluster_ip)

    # hosts, endpoints and sending -----------------------------------------------------------
    def netns(self, name: str):
        """The namespace of a node, pod, external host, `gateway` or `underlay` (in a lazy
        cluster, built now if it was not, a node with all its pods)."""
        return self._builder.host(name)

    def subnet_env(self, node: str) -> str:
        n = self.spec.check_node_name(node)
        return flannel.subnet_env(self.pod_cidr, n.lease, self.mtu)

    def resolve(self, name: str, *, source: bool = False, from_ns: str | None = None) -> Endpoint:
        """Turn an endpoint name into a namespace and address. An address may carry a port
        (1..65535): `10.244.1.2:8080`."""
        return resolve(self.spec, self._builder, name, source=source, from_ns=from_ns)

    def send(self, src: str, dst: str, proto: str | None = None, dport: int | None = None,
             sport: int | None = None, payload: bytes | None = None, cold: bool = True) -> Trace:
        """Send one request from `src` to `dst` and return the trace of request and reply.

        `proto` defaults to tcp when a port (`dport`, `sport`, an endpoint's port) or a payload
        is given, else icmp; tcp and udp default to the pods' ports 8080 and 9090. An icmp
        request ignores the port of a service or `ADDR:PORT` endpoint (ping has no ports) but
        refuses `dport`, `sport` and `payload` (netsim.params)."""
        if proto is not None:
            check_protocol(proto)
        if dport is not None:
            check_port(dport, "destination port")
        if not isinstance(cold, bool):
            raise ConfigError(f"cold must be True or False, got {cold!r}")
        source = self.resolve(src, source=True)
        if source.netns is None:
            raise ConfigError(f"{src!r} cannot send: a service is not a host")
        target = self.resolve(dst, from_ns=source.netns)
        if proto is None:
            proto = "tcp" if (dport or target.port or sport is not None or payload is not None) else "icmp"
        if dport is None and proto != "icmp":
            dport = target.port if target.port is not None else (8080 if proto == "tcp" else 9090)
        title = f"{src} -> {dst} ({proto}{'/' + str(dport) if dport else ''})"
        return self.network.send(source.netns, target.ip, proto, dport, sport, payload, cold=cold, title=title)

    # views --------------------------------------------------------------------------------
    def show(self, host: str, what: str) -> str:
        """A state view of one host: "ip addr", "ip route", "ip neigh", "bridge fdb",
        "iptables-save", "conntrack -L", "subnet.env" (nodes only), "ip route get ADDR" and
        "ip route get ADDR from SRC"."""
        from .. import show
        views = {
            "ip addr": show.ip_addr, "ip route": show.ip_route, "ip neigh": show.ip_neigh,
            "bridge fdb": show.bridge_fdb, "iptables-save": show.iptables_save, "conntrack -L": show.conntrack_list,
        }
        names = ", ".join([*views, "ip route get ADDR [from SRC]", "subnet.env"])
        if not isinstance(what, str):
            raise ConfigError(f"view {what!r} must be a string, one of: {names}")
        words = what.split()
        route_get = words[:3] == ["ip", "route", "get"]
        if not route_get and " ".join(words) not in views and what != "subnet.env":
            raise ConfigError(f"unknown view {what!r}; views are {names}")
        ns = self.netns(host)
        if what == "subnet.env":
            return self.subnet_env(host)
        if route_get:
            if len(words) == 4:
                return show.ip_route_get(ns, words[3])
            if len(words) == 6 and words[4] == "from":
                return show.ip_route_get(ns, words[3], words[5])
            raise ConfigError(f"view {what!r}: use 'ip route get ADDR' or 'ip route get ADDR from SRC'")
        return views[" ".join(words)](ns)

    # breaking things (for the troubleshooting chapter; breakages.py) ------------------------
    def break_fdb(self, node: str, peer: str) -> None:
        """`bridge fdb del MAC dev flannel.1` on `node`: its FDB entry for `peer`'s VTEP MAC
        (vxlan backend). An error if the entry is gone already."""
        breakages.break_fdb(self.spec, self._builder, node, peer)

    def break_neighbour(self, node: str, peer: str) -> None:
        """`ip neigh del VTEP dev flannel.1` on `node`: its permanent entry for `peer`'s VTEP
        address (vxlan backend). An error if no entry is left."""
        breakages.break_neighbour(self.spec, self._builder, node, peer)

    def break_forwarding(self, node: str) -> None:
        """`sysctl -w net.ipv4.ip_forward=0` on `node` (repeating it changes nothing)."""
        breakages.break_forwarding(self.spec, self._builder, node)

    def break_masquerade(self, node: str) -> None:
        """`iptables -t nat -D FLANNEL-POSTRTG ...`: remove the pod-to-outside MASQUERADE rule on
        `node`. An error if it is gone already."""
        breakages.break_masquerade(self.spec, self._builder, node)

    def break_route(self, node: str, peer: str) -> None:
        """`ip route del SUBNET` on `node`: its route to `peer`'s pod subnet (vxlan and host-gw;
        the udp backend has one route for the whole pod network). An error if it is gone."""
        breakages.break_route(self.spec, self._builder, node, peer)

    def set_mtu(self, host: str, dev: str, mtu: int) -> None:
        """`ip link set DEV mtu MTU` on any host, e.g. a pod's eth0 left at 1500."""
        breakages.set_mtu(self._builder, host, dev, mtu)


def reference_cluster(backend: str = "vxlan", lazy: bool | None = None) -> Cluster:
    """The book's cluster (kernel-observations.md): two nodes, pods a and b on node1, pod c
    on node2, an external host behind the gateway, and service `web` (ClusterIP 10.96.0.100:80,
    NodePort 30080) in front of pod-c:8080. `lazy=True` builds it lazily (for tests)."""
    cluster = Cluster(nodes=2, backend=backend, lazy=lazy)
    cluster.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
    cluster.add_pod("pod-b", node="node1")
    cluster.add_pod("pod-c", node="node2")
    cluster.add_external("ext", ip="203.0.113.10")
    cluster.add_service("web", port=80, target_port=8080, pods=["pod-c"], node_port=30080)
    return cluster
