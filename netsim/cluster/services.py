"""Services: the API's checks and allocations (kube-apiserver) and the rules kube-proxy writes
on every node for them.

kube-proxy rewrites a node's whole ruleset on a sync: in iptables mode with `iptables-restore`
(kubeproxy.py), in nftables mode with one `nft -f` transaction (kubeproxy_nft.py); it syncs on
a node's first start and after every change of a Service or its endpoints. netsim rebuilds the
node's netfilter state on each sync as kube-proxy and flanneld leave it when both start on a
node that already has every Service: kube-proxy's rules first, then flanneld's (its iptables
chains, or with EnableNFTables its `ip flannel-ipv4` table, flannel_nft.py). The ClusterIP and
NodePort are checked and allocated as kube-apiserver does (kubeproxy.check_cluster_ip,
allocate_cluster_ip, check_node_port).
"""

from __future__ import annotations

from .. import flannel, flannel_nft, kubeproxy, kubeproxy_nft
from ..errors import ConfigError
from ..params import check_port
from ..stack import Network
from .spec import FIRST_SERVICE_IP, SERVICE_CIDR, ClusterSpec, listing


class KubeProxy:
    """kube-proxy on every built node, and the Service API it watches."""

    def __init__(self, spec: ClusterSpec, network: Network):
        self.spec = spec
        self.network = network

    def sync_rules(self, node: str) -> None:
        """A full sync on `node`: its iptables (or nftables) rewritten as flanneld and
        kube-proxy leave them (a new node, a new service)."""
        from ..netfilter import Netfilter
        spec = self.spec
        ns = self.network.namespaces[node]
        nf = ns.netfilter = Netfilter(ns)
        record = spec.nodes[node]
        if spec.proxy_mode == "nftables":
            config = kubeproxy_nft.NodeConfig(str(spec.pod_cidr), (str(SERVICE_CIDR),), (record.ip,),
                                              frozenset(record.pods))
            nf.nftables.run(kubeproxy_nft.transaction(spec.services.values(), config))
            self._flannel(nf, node)
            return
        kubeproxy.base_rules(nf)
        self._flannel(nf, node)
        for svc in spec.services.values():
            local = [ip for pod, ip in svc.endpoints if spec.pods[pod].node == node]
            kubeproxy.service_rules(nf, svc, str(spec.pod_cidr), local)
        kubeproxy.finish_nodeports(nf)

    def _flannel(self, nf, node: str) -> None:
        """flanneld's masquerade and forward rules: iptables chains, or its nftables batches."""
        spec = self.spec
        subnet = spec.nodes[node].subnet
        if spec.flannel_nftables:
            for text, check in flannel_nft.batches(spec.pod_cidr, subnet):
                (nf.nftables.check if check else nf.nftables.run)(text)
        else:
            flannel.masquerade_rules(nf, spec.pod_cidr, subnet)

    def add_service(self, name: str, port: int, target_port: int, pods: list[str] | tuple[str, ...] = (),
                    node_port: int | None = None, external_traffic_policy: str = "Cluster",
                    protocol: str = "tcp", cluster_ip: str | None = None) -> kubeproxy.Service:
        """A Service: kube-proxy programs its ClusterIP (and NodePort) on every node. The name
        is a DNS-1035 label (netsim.names); the ClusterIP and NodePort are checked and allocated
        as kube-apiserver does (kubeproxy.check_cluster_ip, allocate_cluster_ip, check_node_port)."""
        spec = self.spec
        spec.check_new_name("service", name)
        if protocol not in ("tcp", "udp"):
            raise ConfigError(f"service protocol must be tcp or udp, not {protocol!r}")
        if external_traffic_policy not in ("Cluster", "Local"):
            raise ConfigError(f"externalTrafficPolicy must be Cluster or Local, not {external_traffic_policy!r}")
        check_port(port, f"service {name}: port")
        check_port(target_port, f"service {name}: targetPort")
        if node_port is not None:
            kubeproxy.check_node_port(node_port, {s.node_port: s.name for s in spec.services.values()
                                                  if s.node_port is not None})
        if isinstance(pods, str) or not isinstance(pods, (tuple, list)):
            raise ConfigError(f"service {name}: pods {pods!r} must be a list of pod names, e.g. ['pod-c']")
        for pod in pods:
            if not isinstance(pod, str) or pod not in spec.pods:
                raise ConfigError(f"service {name}: no pod {pod!r}; pods are {listing(list(spec.pods)) or 'none'}")
        if len(set(pods)) != len(pods):
            raise ConfigError(f"service {name}: pods {list(pods)!r} names a pod twice; an endpoint is listed once")
        taken = {s.cluster_ip: s.name for s in spec.services.values()}
        if cluster_ip is None:
            cluster_ip = kubeproxy.allocate_cluster_ip(SERVICE_CIDR, FIRST_SERVICE_IP, len(spec.services), taken)
        else:
            cluster_ip = kubeproxy.check_cluster_ip(cluster_ip, SERVICE_CIDR, taken)
        svc = kubeproxy.Service(name, cluster_ip, port, target_port, protocol, node_port, external_traffic_policy,
                                [(p, spec.pods[p].ip) for p in pods])
        spec.services[name] = svc
        built = self.network.namespaces
        for pod in pods:
            record = spec.pods[pod]
            if (protocol, target_port) not in record.listen:
                record.listen = (*record.listen, (protocol, target_port))
            if pod in built:
                built[pod].listen(protocol, target_port)
        for node in spec.nodes:
            if node in built:
                self.sync_rules(node)
        return svc
