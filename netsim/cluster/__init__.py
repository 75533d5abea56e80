"""A Flannel cluster built on the modelled kernel: nodes, pods, services, the outside world.

`Cluster` is what a user drives: it takes the cluster's description, checks every input
where it enters and hands the building to the rooms of this package:

| module | what it models |
| --- | --- |
| spec.py | the description: parameters, node, pod and external host records, names, the address plan |
| builder.py | the namespaces, as kubelet, the CNI plugin, flanneld and kube-proxy program them; lazy clusters |
| services.py | Services: kube-apiserver's checks and allocations, kube-proxy's rules on every node |
| endpoints.py | what a name in `send()` stands for |
| dns.py | a pod's resolv.conf, the DNS server attached to a pod (answering from records.py), name resolution |
| tools.py | ping, traceroute, dig, curl and nc run in a host: `ToolRun` (output, exit status, traces) |
| inject.py | a crafted frame written to a packet socket on a device, walked from there |
| breakages.py | the `break_*` methods and `set_mtu`, for the troubleshooting chapter |
| owners.py | who owns an address only the cluster knows (a service's ClusterIP, a load-balancer IP) |
| objects.py | StatefulSets, readiness, NetworkPolicy objects, EndpointSlices, `bridge link set` (Cluster's methods) |
| metallb.py | MetalLB's layer-2 speaker: the election and the ARP answer for a LoadBalancer address |
| policies.py | NetworkPolicy objects and kube-network-policies' table on every node |
| records.py | the DNS server's data built from the cluster (CoreDNS's kubernetes plugin), StatefulSet names |

Endpoints are named: a pod (`pod-a`), a container (`pod-a/sidecar`), a node (`node1`), an
external host (`ext`), a service (`web`), or an address, optionally with a port
(`192.168.50.11:30080`). Names follow Kubernetes' rules (netsim.names) and every refusal is a
ConfigError naming the value and what would be valid.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Callable, Concatenate, ParamSpec, TypeVar

from .. import flannel, kubeproxy
from ..addresses import parse_address
from ..errors import ConfigError
from ..names import check_name
from ..params import check_port, check_protocol
from ..trace import Trace
from . import breakages, tools
from . import dns as cluster_dns
from .builder import EAGER_MAX_NODES, Builder
from .services import KubeProxy
from .dns import DnsServer, Resolution
from .tools import ToolRun
from .endpoints import Endpoint, resolve
from .objects import ClusterObjects
from .owners import cluster_owners
from .spec import (DEFAULT_CONTAINERS, EXTERNAL_NET, FIRST_SERVICE_IP, GATEWAY_EXTERNAL_IP, MIN_MTU, POD_PORTS, SERVICE_CIDR,
                   ClusterSpec, External, Node, Pod)

__all__ = ["Cluster", "DnsServer", "Endpoint", "External", "Node", "Pod", "Resolution", "ToolRun",
           "reference_cluster", "load_balancer_cluster", "EAGER_MAX_NODES",
           "EXTERNAL_NET", "FIRST_SERVICE_IP", "GATEWAY_EXTERNAL_IP", "MIN_MTU", "POD_PORTS", "SERVICE_CIDR"]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _kube_proxy_method(fn: Callable[Concatenate[KubeProxy, _P], _R]) -> Callable[Concatenate[Cluster, _P], _R]:
    """A Cluster method that is `fn` on the cluster's kube-proxy: the same signature, type hints
    and docstring, written once."""
    @functools.wraps(fn)
    def method(self: Cluster, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return fn(self._builder.kube_proxy, *args, **kwargs)
    return method


class Cluster(ClusterObjects):
    """A Kubernetes cluster with Flannel, as the kernel of each machine sees it."""

    def __init__(self, nodes: int = 2, backend: str = "vxlan", pod_cidr: str = "10.244.0.0/16",
                 subnet_len: int = 24, underlay_cidr: str = "192.168.50.0/24", underlay_mtu: int = 1500,
                 lazy: bool | None = None, proxy_mode: str = "iptables", flannel_nftables: bool = False):
        """`proxy_mode` is kube-proxy's --proxy-mode: "iptables" (chains KUBE-*, iptables-save) or
        "nftables" (table `ip kube-proxy`, `nft list ruleset`); `flannel_nftables` is flannel's
        EnableNFTables (net-conf.json, v0.25.0 and later): its masquerade and forward rules in
        table `ip flannel-ipv4` instead of the chains FLANNEL-POSTRTG and FLANNEL-FWD."""
        if lazy is not None and not isinstance(lazy, bool):
            raise ConfigError(f"lazy must be True, False or None (decide by size), got {lazy!r}")
        spec = self.spec = ClusterSpec(nodes, backend, pod_cidr, subnet_len, underlay_cidr, underlay_mtu,
                                       proxy_mode, flannel_nftables)
        self.proxy_mode, self.flannel_nftables = spec.proxy_mode, spec.flannel_nftables
        # The description's parameters and records, under the names users know.
        self.backend, self.pod_cidr, self.underlay, self.mtu = spec.backend, spec.pod_cidr, spec.underlay, spec.mtu
        self.subnet_len, self.underlay_mtu, self.gateway_ip = spec.subnet_len, spec.underlay_mtu, spec.gateway_ip
        self.nodes, self.pods, self.externals, self.services = spec.nodes, spec.pods, spec.externals, spec.services
        self.lazy = nodes > EAGER_MAX_NODES if lazy is None else bool(lazy)
        self._builder = Builder(spec, self.lazy)
        self.network = self._builder.network
        self.network.owner_hook = lambda: cluster_owners(spec)     # traces name services' ClusterIPs
        self.dns: DnsServer | None = None          # the DNS server pods resolve names with (set_dns)

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
                listen: tuple[tuple[str, int], ...] = POD_PORTS, *, namespace: str = "default",
                labels: dict[str, str] | None = None, hostname: str = "", subdomain: str = "",
                ready: bool = True, host_ports: object = ()) -> Pod:
        """Schedule a pod: CNI ADD on its node (cni0, veth pair, host-local address, routes).
        Pod, container and namespace names are DNS-1123 labels (netsim.names); names are unique
        across namespaces too, since each pod is a network namespace of that name. `hostname`
        and `subdomain` are spec.hostname and spec.subdomain (a StatefulSet pod's identity, which
        a headless Service of that name turns into DNS names); `ready` its Ready condition.
        `host_ports` are its ports with a hostPort (`[{"container_port": 80, "host_port": 8080,
        "protocol": "tcp"}]`, optional "host_ip"): the CNI chain's portmap plugin forwards them
        on the node (netsim.portmap)."""
        pod = self.spec.add_pod(name, node, containers, listen, namespace, labels, hostname, subdomain, ready,
                                host_ports)
        self._builder.pod_added(pod)
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

    # the Service API: one signature, KubeProxy.add_service's (its docstring is this method's)
    add_service = _kube_proxy_method(KubeProxy.add_service)

    def batch(self) -> AbstractContextManager[None]:
        """`with cluster.batch(): ...`: the Services, endpoints and policies changed inside the
        block reach each node's rules in one kube-proxy sync at its end (or before the first
        packet sent inside it), as kube-proxy syncs once for the events of its minSyncPeriod.
        The rules are the same as without the block; a view of them inside it shows the last
        sync's. Building many Services is then one rewrite per node instead of one per
        Service."""
        return self._builder.kube_proxy.coalesced()

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

    # the tools a reader types (tools.py) ---------------------------------------------------
    def ping(self, src: str, dst: str, count: int = 1, size: int = 56, ttl: int | None = None,
             pmtudisc: str = "want", tos: int = 0, broadcast: bool = False, cold: bool = True) -> ToolRun:
        """`ping -c COUNT -s SIZE [-t TTL] -M want|do|dont [-Q TOS] [-b] DST` run in `src`; prints
        as iputils' ping does (`str(run)`), with the trace of every probe and answer."""
        return tools.ping(self, src, dst, count, size, ttl, pmtudisc, tos, broadcast, cold)

    def traceroute(self, src: str, dst: str, mode: str = "udp", queries: int = 3, max_ttl: int = 30,
                   first_ttl: int = 1, port: int | None = None, wait: float = 5.0, packetlen: int | None = None,
                   numeric: bool = False, dont_fragment: bool = False, cold: bool = True) -> ToolRun:
        """`traceroute` run in `src`: UDP probes (the default), ICMP echo (`mode="icmp"`, -I) or
        TCP SYNs (`mode="tcp"`, -T), as traceroute 2.1 sends and prints them."""
        return tools.traceroute(self, src, dst, mode, queries, max_ttl, first_ttl, port, wait, packetlen, numeric,
                                dont_fragment, cold=cold)

    def dig(self, src: str, name: str, server: str | None = None, tcp: bool = False, search: bool = False,
            qtype: str = "A", short: bool = False, cold: bool = True) -> ToolRun:
        """`dig [@SERVER] NAME [+tcp] [+search]` run in `src`, to the pod's resolv.conf nameserver
        unless `server` is given; prints as BIND's dig does."""
        return tools.dig(self, src, name, server, tcp, search, qtype, short, cold)

    def fetch(self, src: str, target: str, size: int | None = None, data: bytes | None = None,
              max_time: float | None = None, cold: bool = True, host: str | None = None) -> ToolRun:
        """`curl -sS URL` run in `src`: an HTTP request over a TCP connection, its response (`size`
        bytes of body from the pods' HTTP server), the teardown. `target` is a URL or host[:port];
        `host` the Host header to send instead (curl -H "Host: HOST"), as for an Ingress rule."""
        return tools.fetch(self, src, target, size, data, max_time, cold, host)

    def nc(self, src: str, dst: str, port: int, data: bytes = b"", udp: bool = False, verbose: bool = False,
           zero: bool = False, wait: int | None = None, cold: bool = True) -> ToolRun:
        """`nc [-u] [-v] [-z] [-w WAIT] DST PORT` run in `src`, sending `data` (then FIN, as -N)."""
        return tools.nc(self, src, dst, port, data, udp, verbose, zero, wait, cold=cold)

    def inject(self, host: str, device: str, packet: object, cold: bool = False) -> Trace:
        """Write a frame crafted with scapy (`Ether(...)/IP(...)/...`, or bytes; an IPv4 packet
        on flannel0) to a packet socket on `device` of `host` and walk it from there on, as
        packet_snd hands it to dev_queue_xmit: no routing or netfilter in the sender
        (cluster/inject.py)."""
        from .inject import inject
        return inject(self, host, device, packet, cold)

    # names -----------------------------------------------------------------------------------
    def set_dns(self, pod: str, nameserver: str | None = None) -> DnsServer:
        """Run a DNS server in CoreDNS's role in `pod` (UDP and TCP 53, answering from
        `dns_records()`) and name `nameserver` (default: the pod's address; a kube-dns ClusterIP
        in front of it) in every pod's resolv.conf. The tools then resolve names with DNS queries.
        The reference cluster does this for its coredns pod behind kube-dns (10.96.0.10)."""
        return cluster_dns.attach_dns(self, pod, nameserver)

    def resolv_conf(self, pod: str) -> str:
        """The pod's /etc/resolv.conf, as kubelet writes it for a ClusterFirst pod."""
        conf = cluster_dns.resolv_conf(self, pod)
        if conf is None:
            raise ConfigError(f"{pod!r} is not a pod: only pods get kubelet's resolv.conf (pods: "
                              f"{', '.join(self.pods) or 'none'})")
        return conf.text()

    # views --------------------------------------------------------------------------------
    def show(self, host: str, what: str) -> str:
        """A state view of one host: "ip addr", "ip -d link show [DEV]", "ip route", "ip neigh",
        "bridge fdb", "bridge link" and "bridge -d link" (each also "... show [dev DEV]"),
        "iptables-save", "nft list ruleset" (and "nft -a list ruleset", with handles),
        "conntrack -L", "subnet.env" (nodes only), "ip route get ADDR", "ip route get ADDR
        from SRC" and "node annotations" (flanneld's annotations on the Node object, nodes
        only)."""
        from .. import show
        views = {
            "ip addr": show.ip_addr, "ip -d link show": show.ip_link_details, "ip route": show.ip_route,
            "ip neigh": show.ip_neigh, "bridge fdb": show.bridge_fdb, "iptables-save": show.iptables_save,
            "nft list ruleset": show.nft_list_ruleset, "nft -a list ruleset": show.nft_list_ruleset_handles,
            "conntrack -L": show.conntrack_list,
            "bridge link": show.bridge_link, "bridge -d link": lambda ns: show.bridge_link(ns, details=True),
        }
        names = ", ".join([*views, "ip -d link show DEV", "bridge [-d] link show [dev DEV]",
                           "ip route get ADDR [from SRC]", "subnet.env", "node annotations"])
        if not isinstance(what, str):
            raise ConfigError(f"view {what!r} must be a string, one of: {names}")
        words = what.split()
        route_get = words[:3] == ["ip", "route", "get"]
        if words[:4] == ["ip", "-d", "link", "show"] and len(words) == 5:
            return show.ip_link_details(self.netns(host), words[4])
        if what == "node annotations":          # kubectl get node NODE -o yaml: metadata.annotations
            n = self.spec.check_node_name(host)
            return show.node_annotations(flannel.node_annotations(n.lease, self.backend))
        bridge_link = _bridge_link_words(words)
        if bridge_link is not None:
            details, dev = bridge_link
            return show.bridge_link(self.netns(host), details, dev)
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
        """`iptables -t nat -D FLANNEL-POSTRTG ...` (flannel's nftables mode: `nft delete rule ip
        flannel-ipv4 postrtg handle N`): remove the pod-to-outside masquerade rule on `node`. An
        error if it is gone already."""
        breakages.break_masquerade(self.spec, self._builder, node)

    def break_route(self, node: str, peer: str) -> None:
        """`ip route del SUBNET` on `node`: its route to `peer`'s pod subnet (vxlan and host-gw;
        the udp backend has one route for the whole pod network). An error if it is gone."""
        breakages.break_route(self.spec, self._builder, node, peer)

    def break_backend_port(self, node: str) -> None:
        """`iptables -A INPUT -p udp -m udp --dport 8472 -j DROP` on `node`: a host firewall that
        lets no VXLAN packet in (8285 for the udp backend). An error if the rule is there already."""
        breakages.break_backend_port(self.spec, self._builder, node)

    def break_public_ip(self, node: str, address: str) -> None:
        """flanneld on `node` picked the wrong interface: its public-ip annotation is `address`
        and every other node sends `node`'s VXLAN packets there (vxlan backend)."""
        breakages.break_public_ip(self.spec, self._builder, node, address)

    def set_mtu(self, host: str, dev: str, mtu: int) -> None:
        """`ip link set DEV mtu MTU` on any host, e.g. a pod's eth0 left at 1500."""
        breakages.set_mtu(self._builder, host, dev, mtu)


def _bridge_link_words(words: list[str]) -> tuple[bool, str | None] | None:
    """`bridge [-d] link [show [dev DEV]]` as (details, device), or None for another view."""
    details = words[1:2] == ["-d"]
    rest = words[2:] if details else words[1:]
    if words[:1] != ["bridge"] or rest[:1] != ["link"]:
        return None
    rest = rest[1:]
    if rest in ([], ["show"]):
        return details, None
    if len(rest) == 3 and rest[:2] == ["show", "dev"]:
        return details, rest[2]
    raise ConfigError(f"view {' '.join(words)!r}: use 'bridge [-d] link [show [dev DEV]]'")


# kubeadm's DNS add-on: the CoreDNS pod's ports and the kube-dns Service in front of it
# (cmd/kubeadm/app/phases/addons/dns/manifests.go: ports dns/UDP 53, dns-tcp/TCP 53, metrics/TCP
# 9153; the ClusterIP is the tenth address of the service CIDR, 10.96.0.10 for kubeadm's default
# 10.96.0.0/12, GetDNSIP in cmd/kubeadm/app/constants)
KUBE_DNS_IP = "10.96.0.10"
KUBE_DNS_PORTS = ({"name": "dns", "port": 53, "protocol": "udp"}, {"name": "dns-tcp", "port": 53, "protocol": "tcp"},
                  {"name": "metrics", "port": 9153, "protocol": "tcp"})
COREDNS_LISTEN = (("udp", 53), ("tcp", 53), ("tcp", 9153))


def reference_cluster(backend: str = "vxlan", lazy: bool | None = None, proxy_mode: str = "iptables") -> Cluster:
    """The book's cluster (kernel-observations.md): two nodes, pods a and b on node1, pod c
    on node2, an external host behind the gateway, and service `web` (ClusterIP 10.96.0.100:80,
    NodePort 30080) in front of pod-c:8080; and the DNS every kubeadm cluster has: pod `coredns`
    (namespace kube-system, on node1, 10.244.0.4) behind Service `kube-dns` (10.96.0.10, ports
    dns/UDP 53, dns-tcp/TCP 53, metrics/TCP 9153), running the CoreDNS-role server on UDP and TCP
    53 (`set_dns`), so the tools' names are looked up through the ClusterIP. CoreDNS is added after the other pods so
    they keep the addresses the book's chapters show (on a real cluster it starts first and
    takes .2). `lazy=True` builds it lazily (for tests)."""
    cluster = Cluster(nodes=2, backend=backend, lazy=lazy, proxy_mode=proxy_mode)
    with cluster.batch():           # each node's rules written once more, with every Service
        cluster.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
        cluster.add_pod("pod-b", node="node1")
        cluster.add_pod("pod-c", node="node2")
        cluster.add_pod("coredns", node="node1", namespace="kube-system", labels={"k8s-app": "kube-dns"},
                        listen=COREDNS_LISTEN)
        cluster.add_external("ext", ip="203.0.113.10")
        cluster.add_service("web", port=80, target_port=8080, pods=["pod-c"], node_port=30080)
        cluster.add_service("kube-dns", namespace="kube-system", cluster_ip=KUBE_DNS_IP, pods=["coredns"],
                            ports=list(KUBE_DNS_PORTS))
        cluster.set_dns("coredns", KUBE_DNS_IP)          # every pod's resolv.conf names kube-dns's ClusterIP
    return cluster


def load_balancer_cluster(backend: str = "vxlan", proxy_mode: str = "iptables") -> Cluster:
    """The reference cluster plus chapter 18's two LoadBalancer Services in front of pod-c:
    `web-lb` (externalTrafficPolicy Cluster: 192.168.50.200, nodePort 30086, announced by node1)
    and `local-lb` (Local: 192.168.50.201, nodePort 30087, healthCheckNodePort 30088, announced
    by node2, the only node with an endpoint), as the chapter and `netsim curl --cluster
    load-balancer` build it."""
    cluster = reference_cluster(backend, proxy_mode=proxy_mode)
    with cluster.batch():
        cluster.add_service("web-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer")
        cluster.add_service("local-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                            external_traffic_policy="Local")
    return cluster
