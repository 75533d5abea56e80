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

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator
from ipaddress import IPv4Address, IPv4Network

from .. import flannel, flannel_nft, kubeproxy, kubeproxy_nft, portmap
from ..addresses import parse_address
from ..errors import ConfigError
from ..names import check_name
from ..params import check_port
from ..programs.healthcheck import ServiceHealthServer
from ..stack import Network
from . import metallb, policies
from .spec import FIRST_SERVICE_IP, SERVICE_CIDR, ClusterSpec, listing


class KubeProxy:
    """kube-proxy on every built node, and the Service API it watches."""

    def __init__(self, spec: ClusterSpec, network: Network):
        self.spec = spec
        self.network = network
        self._waiting: dict[str, None] | None = None    # inside coalesced(): the nodes to sync at its end

    @contextmanager
    def coalesced(self) -> Iterator[None]:
        """The changes made inside the block are synced once on each node, at its end (or
        before a packet is sent inside it: sync_waiting), as kube-proxy's sync runner
        (BoundedFrequencyRunner, minSyncPeriod) runs one sync for the events that arrive while
        it waits. A sync rewrites the node's whole ruleset from the cluster's description, so
        the rules are those the syncs one by one would have left."""
        if self._waiting is not None:
            yield                       # an outer block syncs
            return
        self._waiting = {}
        try:
            yield
        finally:
            self.sync_waiting()
            self._waiting = None

    def sync_waiting(self) -> None:
        """Run the syncs a coalesced() block holds back, in the order they were asked for."""
        waiting = self._waiting
        if waiting:
            self._waiting = None
            try:
                for node in waiting:
                    self.sync_rules(node)
            finally:
                waiting.clear()
                self._waiting = waiting

    def sync_rules(self, node: str) -> None:
        """A full sync on `node`: its iptables (or nftables) rewritten as flanneld and
        kube-proxy leave them (a new node, a new service)."""
        from ..netfilter import Netfilter
        if self._waiting is not None:
            self._waiting[node] = None
            return
        spec = self.spec
        ns = self.network.namespaces[node]
        metallb.install(spec, self.network, node)
        for svc in spec.services.values():        # kube-proxy's health server (pkg/proxy/healthcheck)
            if svc.health_check_node_port is not None and ("tcp", svc.health_check_node_port) not in ns.listeners:
                ns.listen("tcp", svc.health_check_node_port, HealthServerFactory(spec, svc.name, node))
        nf = ns.netfilter = Netfilter(ns)
        record = spec.nodes[node]
        if spec.proxy_mode == "nftables":
            config = kubeproxy_nft.NodeConfig(str(spec.pod_cidr), (str(SERVICE_CIDR),), (record.ip,),
                                              frozenset(record.pods))
            nf.nftables.run(kubeproxy_nft.transaction(spec.services.values(), config))
            # the policy agent's table next to kube-proxy's: the daemons' start order is not
            # fixed, and this one keeps a node's nftables batches together, as the lab replays them
            self._policies(nf, node)
            self._flannel(nf, node)
        else:
            # iptables mode with localhost NodePorts (the IPv4 default) writes
            # net/ipv4/conf/all/route_localnet=1 at start (pkg/proxy/iptables/proxier.go,
            # NewProxier: sysctlRouteLocalnet); the nftables mode has no localhost NodePorts
            ns.set_sysctl("net.ipv4.conf.all.route_localnet", 1)
            kubeproxy.base_rules(nf)
            self._flannel(nf, node)
            for svc in spec.services.values():
                local = [ip for pod, ip in svc.endpoints if spec.pods[pod].node == node]
                kubeproxy.service_rules(nf, svc, str(spec.pod_cidr), local, record.ip)
            kubeproxy.finish_nodeports(nf)
            self._policies(nf, node)
        for pod in record.pods:                 # the pods' portmap chains, written at their CNI ADD
            if pod in self.network.namespaces:
                self.portmap(spec.pods[pod])

    def portmap(self, pod) -> None:
        """CNI ADD's second plugin for `pod` on its node: portmap's chains (netsim.portmap),
        if the pod has a hostPort, and route_localnet on cni0."""
        spec = self.spec
        iface = next(iter(self.network.namespaces[pod.name].devices["eth0"].addresses))
        add = portmap.plan(pod.container_id, iface, pod.host_ports)
        if add is None:
            return
        ns = self.network.namespaces[pod.node]
        portmap.install(ns.netfilter, add)
        ns.set_sysctl(f"net.ipv4.conf.{add.route_localnet}.route_localnet", 1)

    def _policies(self, nf, node: str) -> None:
        """kube-network-policies' table, after kube-proxy's and flanneld's rules."""
        policies.install(self.spec, nf, node)

    def _flannel(self, nf, node: str) -> None:
        """flanneld's masquerade and forward rules: iptables chains, or its nftables batches."""
        spec = self.spec
        subnet = spec.nodes[node].subnet
        if spec.flannel_nftables:
            for text, check in flannel_nft.batches(spec.pod_cidr, subnet):
                (nf.nftables.check if check else nf.nftables.run)(text)
        else:
            flannel.masquerade_rules(nf, spec.pod_cidr, subnet)

    def add_service(self, name: str, port: int | None = None, target_port: int | None = None,
                    pods: list[str] | tuple[str, ...] = (), node_port: int | None = None,
                    external_traffic_policy: str = "Cluster", protocol: str = "tcp", cluster_ip: object = "",
                    *, ports: object = None, namespace: str = "default", type: str | None = None,
                    load_balancer_ip: str | None = None, load_balancer_source_ranges: object = (),
                    health_check_node_port: int | None = None,
                    publish_not_ready_addresses: bool = False) -> kubeproxy.Service:
        """A Service in front of `pods` (its selector, as names; endpoints are the ready ones):
        kube-proxy programs it on every node.

        One port (`port`, `target_port`, `protocol`, `node_port`) or several: `ports=[{"name":
        "dns", "port": 53, "protocol": "udp"}, {"name": "dns-tcp", "port": 53}, ...]` (targetPort
        defaults to port, protocol to tcp; with two or more ports each needs a distinct name, and
        no two may share protocol and port, as validation.go requires). `cluster_ip`: "" (the
        default) allocates one, an address asks for it, None makes a headless Service
        (clusterIP: None: no virtual address, no rules, DNS answers with the pods). `type`:
        ClusterIP, NodePort (the default when a nodePort is given; missing nodePorts are
        allocated) or LoadBalancer: a NodePort Service whose status.loadBalancer.ingress gets an
        address from MetalLB's pool (`load_balancer_ip` asks for one), announced in layer 2 by
        the elected node's speaker (`Cluster.speaker`); `load_balancer_source_ranges` limits its
        clients, and with externalTrafficPolicy Local it gets a healthCheckNodePort. The name is
        a DNS-1035 label (netsim.names); addresses and ports are checked and allocated as
        kube-apiserver does (kubeproxy.check_cluster_ip, allocate_cluster_ip, check_node_port)."""
        spec = self.spec
        spec.check_new_name("service", name)
        namespace = check_name("namespace", namespace)
        if external_traffic_policy not in ("Cluster", "Local"):
            raise ConfigError(f"externalTrafficPolicy must be Cluster or Local, not {external_traffic_policy!r}")
        headless = cluster_ip is None or cluster_ip == "None"
        port_list = service_ports(name, port, target_port, protocol, node_port, ports, headless)
        kind = service_type(name, type, port_list, headless, load_balancer_ip, load_balancer_source_ranges)
        pods = self._selected(name, namespace, pods)
        port_list = self._node_ports(name, kind, port_list)
        ranges = check_source_ranges(name, load_balancer_source_ranges, kind)
        taken = {s.cluster_ip: s.name for s in spec.services.values() if s.cluster_ip is not None}
        if headless:
            ip: str | None = None
        elif cluster_ip == "":
            # one step per ClusterIP allocated so far (those asked for by hand, like kube-dns's, do not count)
            allocated = sum(1 for s in spec.services.values() if s.name in spec.allocated_ips)
            ip = kubeproxy.allocate_cluster_ip(SERVICE_CIDR, FIRST_SERVICE_IP, allocated, taken)
            spec.allocated_ips.add(name)
        else:
            ip = kubeproxy.check_cluster_ip(cluster_ip, SERVICE_CIDR, taken)
        lb_ips = (self._load_balancer_ip(name, load_balancer_ip),) if kind == "LoadBalancer" else ()
        hc = self._health_check_port(name, kind, external_traffic_policy, health_check_node_port, port_list)
        svc = kubeproxy.Service(name, ip, port_list, external_traffic_policy, [], namespace, kind, lb_ips, ranges, hc)
        spec.services[name] = svc
        spec.selectors[name] = Selection(tuple(pods), publish_not_ready_addresses)
        self.refresh_endpoints(svc)
        built = self.network.namespaces
        for pod in pods:
            record = spec.pods[pod]
            for sp in port_list:
                if (sp.protocol, sp.target_port) not in record.listen:
                    record.listen = (*record.listen, (sp.protocol, sp.target_port))
                    if pod in built:
                        built[pod].listen(sp.protocol, sp.target_port)
        self.sync_all()
        return svc

    # the API server's part ---------------------------------------------------------------
    def _selected(self, name: str, namespace: str, pods: object) -> list[str]:
        spec = self.spec
        if isinstance(pods, str) or not isinstance(pods, (tuple, list)):
            raise ConfigError(f"service {name}: pods {pods!r} must be a list of pod names, e.g. ['pod-c']")
        for pod in pods:
            if not isinstance(pod, str) or pod not in spec.pods:
                raise ConfigError(f"service {name}: no pod {pod!r}; pods are {listing(list(spec.pods)) or 'none'}")
            if spec.pods[pod].namespace != namespace:
                raise ConfigError(f"service {name}: pod {pod} is in namespace {spec.pods[pod].namespace}, not "
                                  f"{namespace}: a Service selects pods of its own namespace only")
        if len(set(pods)) != len(pods):
            raise ConfigError(f"service {name}: pods {list(pods)!r} names a pod twice; an endpoint is listed once")
        return list(pods)

    def _node_ports(self, name: str, kind: str, port_list: tuple[kubeproxy.ServicePort, ...]
                    ) -> tuple[kubeproxy.ServicePort, ...]:
        """Each port's nodePort checked, then (NodePort and LoadBalancer) the missing ones
        allocated, so a port asked for is never handed to a sibling first."""
        taken = self.spec.taken_node_ports()
        for i, sp in enumerate(port_list):
            if sp.node_port is not None:
                if kind == "ClusterIP":
                    raise ConfigError(f"service {name}: spec.ports[{i}].nodePort: Forbidden: may not be used when "
                                      f"`type` is 'ClusterIP'")
                kubeproxy.check_node_port(sp.node_port, taken)
                taken[sp.node_port] = name
        out = []
        for sp in port_list:
            if sp.node_port is None and kind != "ClusterIP":
                sp = replace(sp, node_port=kubeproxy.allocate_node_port(taken))
                taken[sp.node_port] = name                        # type: ignore[index]
            out.append(sp)
        return tuple(out)

    def _load_balancer_ip(self, name: str, requested: str | None) -> str:
        """The address the load-balancer implementation (MetalLB) gives: the one asked for
        (its `metallb.universe.tf/loadBalancerIPs` annotation, or the deprecated
        spec.loadBalancerIP) if it is in the pool and free, else the pool's first free one."""
        spec = self.spec
        low, high = spec.lb_pool
        if high not in spec.underlay or any(spec.owner_at(str(IPv4Address(v))) is not None
                                            for v in (int(low), int(high))):
            raise ConfigError(f"service {name}: the load-balancer address pool {low}-{high} does not fit the "
                              f"underlay {spec.underlay} beside its nodes")
        taken = {ip: s.name for s in spec.services.values() for ip in s.load_balancer_ips}
        return allocate_load_balancer_ip(name, requested, spec.lb_pool, taken)

    def _health_check_port(self, name: str, kind: str, policy: str, requested: int | None,
                           port_list: tuple[kubeproxy.ServicePort, ...]) -> int | None:
        """healthCheckNodePort: only a LoadBalancer Service with externalTrafficPolicy Local
        has one (NeedsHealthCheck); allocated from the NodePort range unless given."""
        if kind != "LoadBalancer" or policy != "Local":
            if requested is not None:
                raise ConfigError(f"service {name}: spec.healthCheckNodePort: Invalid value: {requested!r}: "
                                  f"HealthCheckNodePort can only be set on LoadBalancer service with "
                                  f"ExternalTrafficPolicy=Local")
            return None
        taken = self.spec.taken_node_ports()
        taken.update({sp.node_port: name for sp in port_list if sp.node_port is not None})
        if requested is not None:
            return kubeproxy.check_node_port(requested, taken)
        return kubeproxy.allocate_node_port(taken)

    # endpoints -------------------------------------------------------------------------------
    def refresh_endpoints(self, svc: kubeproxy.Service) -> None:
        """The endpoints kube-proxy programs: the selected pods that are ready (all of them with
        publishNotReadyAddresses), as the EndpointSlice controller marks them and
        CategorizeEndpoints keeps them."""
        spec = self.spec
        selection = spec.selectors[svc.name]
        svc.endpoints = [(p, spec.pods[p].ip) for p in selection.pods
                         if spec.pods[p].ready or selection.publish_not_ready]

    def set_ready(self, pod: str, ready: bool) -> None:
        """A pod's Ready condition changed: its services' endpoints and every node's rules follow."""
        spec = self.spec
        spec.pods[pod].ready = ready
        for name, selection in spec.selectors.items():
            if pod in selection.pods:
                self.refresh_endpoints(spec.services[name])
        self.sync_all()

    def sync_all(self) -> None:
        built = self.network.namespaces
        for node in self.spec.nodes:
            if node in built:
                self.sync_rules(node)


class HealthServerFactory:
    """Makes kube-proxy's health server for Service `service` on `node` (programs/healthcheck.py)
    when a walk first reaches its port: the count it answers with is the node's at that moment,
    so a pod becoming unready (set_ready) shows in the next walk, as kube-proxy's SyncEndpoints
    after its next sync would show it."""

    def __init__(self, spec: ClusterSpec, service: str, node: str) -> None:
        self.spec, self.service, self.node = spec, service, node

    def identity(self) -> tuple[str, str, int]:
        """(namespace, name, healthCheckNodePort) of the Service."""
        svc = self.spec.services[self.service]
        assert svc.health_check_node_port is not None
        return svc.namespace, svc.name, svc.health_check_node_port

    def local_endpoints(self) -> int:
        """EndpointsMap.LocalReadyEndpoints(): the distinct addresses of the Service's ready
        endpoints on this node, over all its ports (svc.endpoints holds the ready ones)."""
        spec = self.spec
        svc = spec.services[self.service]
        return len({ip for pod, ip in svc.endpoints if spec.pods[pod].node == self.node})

    def __call__(self) -> ServiceHealthServer:
        namespace, name, port = self.identity()
        return ServiceHealthServer(port, namespace, name, self.local_endpoints())

    def __repr__(self) -> str:
        return f"<kube-proxy health server for {self.service} on {self.node}>"


@dataclass(frozen=True)
class Selection:
    """The pods a Service selects (its selector, as a list of names) and whether their
    endpoints count before they are ready."""

    pods: tuple[str, ...]
    publish_not_ready: bool = False


def service_ports(name: str, port: object, target_port: object, protocol: object, node_port: object,
                  ports: object, headless: bool) -> tuple[kubeproxy.ServicePort, ...]:
    """spec.ports, from the one-port arguments or from `ports` (a list of dicts with name,
    port, target_port, protocol, node_port, or of kubeproxy.ServicePort), checked as
    validation.go's ValidateService and validateServicePort check them."""
    if ports is None:
        if port is None and headless:
            return ()
        if port is None:
            raise ConfigError(f"service {name}: spec.ports: Required value: give port= (and target_port=) or "
                              f"ports=[...]")
        items: list[object] = [{"port": port, "target_port": target_port, "protocol": protocol,
                                "node_port": node_port}]
    else:
        if port is not None or target_port is not None or node_port is not None:
            raise ConfigError(f"service {name}: give either port=/target_port=/node_port= or ports=[...], not both")
        if isinstance(ports, (str, bytes, dict)) or not isinstance(ports, (list, tuple)):
            raise ConfigError(f"service {name}: ports {ports!r} must be a list of ports, e.g. "
                              f"[{{'name': 'dns', 'port': 53, 'protocol': 'udp'}}]")
        if not ports and not headless:
            raise ConfigError(f"service {name}: spec.ports: Required value")
        items = list(ports)
    out: list[kubeproxy.ServicePort] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        sp = _one_port(name, i, item, required_name=len(items) > 1, defaulted_target=ports is not None)
        if sp.name:
            if sp.name in names:
                raise ConfigError(f"service {name}: spec.ports[{i}].name: Duplicate value: {sp.name!r}")
            names.add(sp.name)
        for other in out:
            if (other.protocol, other.port) == (sp.protocol, sp.port):
                raise ConfigError(f"service {name}: spec.ports[{i}]: Duplicate value: protocol "
                                  f"{sp.protocol.upper()} port {sp.port} (ports must differ in protocol or port)")
            if sp.node_port is not None and (other.protocol, other.node_port) == (sp.protocol, sp.node_port):
                raise ConfigError(f"service {name}: spec.ports[{i}].nodePort: Duplicate value: {sp.node_port}")
        out.append(sp)
    return tuple(out)


def _one_port(name: str, i: int, item: object, required_name: bool, defaulted_target: bool) -> kubeproxy.ServicePort:
    if isinstance(item, kubeproxy.ServicePort):
        item = {"name": item.name, "port": item.port, "target_port": item.target_port, "protocol": item.protocol,
                "node_port": item.node_port}
    if not isinstance(item, dict):
        raise ConfigError(f"service {name}: spec.ports[{i}] {item!r} must be a dict such as "
                          f"{{'name': 'dns', 'port': 53, 'protocol': 'udp'}}")
    unknown = set(item) - {"name", "port", "target_port", "protocol", "node_port"}
    if unknown:
        raise ConfigError(f"service {name}: spec.ports[{i}] has unknown keys {sorted(unknown)}; keys are name, "
                          f"port, target_port, protocol, node_port")
    label = item.get("name", "")
    if label == "" and required_name:
        raise ConfigError(f"service {name}: spec.ports[{i}].name: Required value (a Service with more than one "
                          f"port names each)")
    if label != "":
        check_name("service port", label)
    port = check_port(item.get("port"), f"service {name}: spec.ports[{i}].port")
    target = item.get("target_port")
    if target is None and defaulted_target:
        target = port                              # the API defaults targetPort to port
    target = check_port(target, f"service {name}: targetPort")
    protocol = item.get("protocol", "tcp")
    if not isinstance(protocol, str) or protocol.lower() not in ("tcp", "udp"):
        raise ConfigError(f"service protocol must be tcp or udp, not {protocol!r}")
    node_port = item.get("node_port")
    if node_port is not None:
        check_port(node_port, "nodePort")
    return kubeproxy.ServicePort(label, port, target, protocol.lower(), node_port)   # type: ignore[arg-type]


TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


def service_type(name: str, kind: object, port_list: tuple[kubeproxy.ServicePort, ...], headless: bool,
                 lb_ip: object, ranges: object) -> str:
    """spec.type: given, or ClusterIP unless a port has a nodePort (then NodePort)."""
    if kind is None:
        kind = "NodePort" if any(sp.node_port is not None for sp in port_list) else "ClusterIP"
    if kind not in TYPES:
        raise ConfigError(f"service {name}: spec.type: Unsupported value: {kind!r}: supported values: "
                          f"{', '.join(repr(t) for t in TYPES)} (ExternalName is not modelled)")
    if headless and kind != "ClusterIP":
        raise ConfigError(f"service {name}: spec.clusterIP: Invalid value: 'None': may not be set to 'None' for "
                          f"{kind} services")
    if lb_ip is not None and kind != "LoadBalancer":
        raise ConfigError(f"service {name}: load_balancer_ip {lb_ip!r} needs type='LoadBalancer'")
    return str(kind)


def check_source_ranges(name: str, ranges: object, kind: str) -> tuple[str, ...]:
    """spec.loadBalancerSourceRanges: CIDRs, only on a LoadBalancer Service."""
    if isinstance(ranges, (str, bytes)) or not isinstance(ranges, (list, tuple)):
        raise ConfigError(f"service {name}: load_balancer_source_ranges {ranges!r} must be a list of CIDRs, "
                          f"e.g. ['203.0.113.0/24']")
    if ranges and kind != "LoadBalancer":
        raise ConfigError(f"service {name}: spec.LoadBalancerSourceRanges: Forbidden: may only be used when "
                          f"`type` is 'LoadBalancer'")
    out = []
    for text in ranges:
        try:
            out.append(str(IPv4Network(text)))
        except (ValueError, TypeError):
            raise ConfigError(f"service {name}: spec.LoadBalancerSourceRanges: Invalid value: {text!r}: must be a "
                              f"list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24") from None
    return tuple(out)


def allocate_load_balancer_ip(name: str, requested: object, pool: tuple[IPv4Address, IPv4Address],
                              taken: dict[str, str]) -> str:
    """MetalLB's controller: the requested address if the pool holds it and no other Service
    has it, else the lowest free address of the pool."""
    low, high = pool
    if requested is not None:
        if not isinstance(requested, str):
            raise ConfigError(f"service {name}: load_balancer_ip {requested!r} must be an address string")
        addr = parse_address(requested, "load_balancer_ip")
        if not low <= addr <= high:
            raise ConfigError(f"service {name}: load_balancer_ip {requested} is not in the address pool "
                              f"{low}-{high}")
        if str(addr) in taken:
            raise ConfigError(f"service {name}: load_balancer_ip {requested} is already assigned to service "
                              f"{taken[str(addr)]}")
        return str(addr)
    for value in range(int(low), int(high) + 1):
        ip = str(IPv4Address(value))
        if ip not in taken:
            return ip
    raise ConfigError(f"service {name}: the address pool {low}-{high} is used up")
