"""The cluster's description: its parameters and a record for every node, pod, external host
and service, before (and apart from) any namespace.

Inputs are checked where they enter, as the real components check them: names by
Kubernetes' rules (netsim.names: DNS-1123 labels for pods, nodes, containers and external
hosts, DNS-1035 for services, unique across kinds, never an address); ports as the socket
calls do (netsim.params); CIDRs must be unicast space, not loopback, link-local, multicast or
reserved (netsim.addresses), and must not overlap. Every refusal is a ConfigError naming the
value and what would be valid.

The address plan: node N (from 1) is .10+N on the underlay and holds the N-th subnet of the
pod CIDR (its lease); host-local IPAM gives its pods .2 upward in the order they were added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Iterator, Mapping

from .. import cni, flannel, kubeproxy, portmap
from ..addresses import check_unicast_network, parse_network
from ..errors import ConfigError
from ..names import check_name, quick_match
from ..params import check_port
from ..route import address_int

EXTERNAL_NET = IPv4Network("203.0.113.0/24")
GATEWAY_EXTERNAL_IP = "203.0.113.1"
SERVICE_CIDR = IPv4Network("10.96.0.0/12")
FIRST_SERVICE_IP = IPv4Address("10.96.0.100")
POD_PORTS = (("tcp", 8080), ("udp", 9090))
DEFAULT_CONTAINERS = ("app",)
MIN_MTU = 68
OWN_HOSTS = ("underlay", "gateway")
_POD_NAME = quick_match("pod")
# MetalLB's address pool for LoadBalancer Services (an IPAddressPool in the nodes' own layer-2
# network, as layer-2 mode needs): .200 to .250 of the underlay
LB_POOL = (200, 250)
# kube-proxy's --proxy-mode values netsim models (ipvs is explained in the book, not modelled)
PROXY_MODES = ("iptables", "nftables")


@dataclass(slots=True)
class Node:
    name: str
    ip: str
    subnet: IPv4Network
    lease: flannel.Lease
    ipam: cni.HostLocalIpam
    pods: list[str] = field(default_factory=list)      # in the order they were added (IPAM order)
    index: int = 0                                     # its place among the nodes (its lease's)

    @property
    def netns(self) -> str:
        return self.name


@dataclass(slots=True)
class Pod:
    """A pod: its node and address, and the fields Services, DNS and NetworkPolicy read: its
    namespace and labels, spec.hostname and spec.subdomain (a StatefulSet's pods get their own
    name and the governing Service), and its Ready condition."""

    name: str
    node: str
    ip: str
    containers: tuple[str, ...] = DEFAULT_CONTAINERS
    listen: tuple[tuple[str, int], ...] = field(default=POD_PORTS, repr=False, compare=False)
    namespace: str = "default"
    labels: tuple[tuple[str, str], ...] = ()
    hostname: str = ""
    subdomain: str = ""
    ready: bool = True
    host_ports: tuple[portmap.HostPort, ...] = ()

    @property
    def netns(self) -> str:
        return self.name

    @property
    def container_id(self) -> str:
        """Its sandbox's container ID, netsim's deterministic one (portmap.container_id)."""
        return portmap.container_id(self.namespace, self.name)

    @property
    def host_veth(self) -> str:
        """The host end of its veth pair, on its node (cni.host_veth_name)."""
        return cni.host_veth_name(self.name)


class PodTable(Mapping[str, Pod]):
    """The pods by name, in the order they were added. A pod is kept as a plain tuple until
    its `Pod` record is first asked for (then the record is kept and is the pod from then
    on): the garbage collector stops tracking such tuples, so a cluster of half a million
    pods costs no collection that walks them all, again and again, while it is built."""

    __slots__ = ("rows", "_records")

    def __init__(self) -> None:
        # name -> (node, ip, containers, listen[, namespace, labels, hostname, subdomain, ready]),
        # the arguments of its Pod after the name, filled by ClusterSpec.add_pod
        self.rows: dict[str, tuple[Any, ...]] = {}
        self._records: dict[str, Pod] = {}

    def __getitem__(self, name: str) -> Pod:
        pod = self._records.get(name)
        if pod is None:
            pod = self._records[name] = Pod(name, *self.rows[name])
        return pod

    def __contains__(self, name: object) -> bool:
        return name in self.rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"<PodTable: {len(self)} pods>"


@dataclass
class External:
    name: str
    ip: str

    @property
    def netns(self) -> str:
        return self.name


LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def check_labels(owner: str, labels: object) -> tuple[tuple[str, str], ...]:
    """metadata.labels as sorted (key, value) pairs: keys an optional DNS subdomain prefix and
    a name of up to 63 characters, values up to 63 (IsQualifiedName, IsValidLabelValue)."""
    if labels is None:
        return ()
    if not isinstance(labels, dict):
        raise ConfigError(f"pod {owner}: labels {labels!r} must be a dict such as {{'app': 'web'}}")
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key) or len(key.split("/")[-1]) > 63:
            raise ConfigError(f"pod {owner}: label key {key!r} is not a qualified name (e.g. 'app' or "
                              f"'app.kubernetes.io/name')")
        if not isinstance(value, str) or not LABEL_VALUE.fullmatch(value) or len(value) > 63:
            raise ConfigError(f"pod {owner}: label {key}={value!r}: a value is at most 63 letters, digits, "
                              f"'-', '_' or '.', starting and ending with a letter or digit")
    return tuple(sorted(labels.items()))


def listing(names: list[str], most: int = 12) -> str:
    """Names for an error message: all of them, or the first few and how many there are."""
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f", ... ({len(names)} in all)"


class ClusterSpec:
    """The validated parameters of a cluster and the records of what it holds."""

    def __init__(self, nodes: int, backend: str, pod_cidr: str, subnet_len: int, underlay_cidr: str,
                 underlay_mtu: int, proxy_mode: str = "iptables", flannel_nftables: bool = False):
        if not isinstance(backend, str) or backend not in flannel.BACKENDS:
            raise ConfigError(f"backend {backend!r} is not one of {', '.join(flannel.BACKENDS)}")
        if not isinstance(proxy_mode, str) or proxy_mode not in PROXY_MODES:
            raise ConfigError(f"proxy_mode {proxy_mode!r} is not one of {', '.join(PROXY_MODES)} (kube-proxy's "
                              f"--proxy-mode; ipvs is not modelled)")
        if not isinstance(flannel_nftables, bool):
            raise ConfigError(f"flannel_nftables must be True or False (flannel's EnableNFTables), got "
                              f"{flannel_nftables!r}")
        self.proxy_mode = proxy_mode
        self.flannel_nftables = flannel_nftables
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise ConfigError(f"nodes must be a positive integer, got {nodes!r}")
        self.backend = backend
        self.pod_cidr = check_unicast_network(parse_network(pod_cidr, "pod_cidr"), "pod_cidr")
        self.underlay = check_unicast_network(parse_network(underlay_cidr, "underlay_cidr"), "underlay_cidr")
        if isinstance(subnet_len, bool) or not isinstance(subnet_len, int) \
                or not self.pod_cidr.prefixlen < subnet_len <= 30:
            raise ConfigError(f"subnet_len {subnet_len!r} must be longer than pod_cidr's /{self.pod_cidr.prefixlen} "
                              f"and at most 30 (a node subnet needs a gateway and a pod address)")
        capacity = 2 ** (subnet_len - self.pod_cidr.prefixlen)
        if nodes > capacity:
            raise ConfigError(f"{nodes} nodes do not fit: {self.pod_cidr} has {capacity} subnets of /{subnet_len}")
        room = self.underlay.num_addresses - 12          # .11 upward, below the broadcast address
        if nodes > room:
            raise ConfigError(f"underlay {self.underlay} has room for {max(room, 0)} nodes (from .11); "
                              f"use a larger underlay_cidr")
        ranges = (("pod_cidr", self.pod_cidr), ("underlay_cidr", self.underlay),
                  ("the service CIDR", SERVICE_CIDR), ("the external network", EXTERNAL_NET))
        for i, (what, net) in enumerate(ranges):
            for other, other_net in ranges[i + 1:]:
                if net.overlaps(other_net):
                    raise ConfigError(f"{what} {net} overlaps {other} {other_net}: pod, underlay, service and "
                                      f"external networks must not overlap (a route would hide the other)")
        if isinstance(underlay_mtu, bool) or not isinstance(underlay_mtu, int) or underlay_mtu > 65535:
            raise ConfigError(f"underlay_mtu {underlay_mtu!r} must be an integer up to 65535")
        self.mtu = flannel.flannel_mtu(backend, underlay_mtu)
        if self.mtu < MIN_MTU:
            raise ConfigError(f"underlay_mtu {underlay_mtu} is too small for the {backend} backend: its overhead is "
                              f"{flannel.OVERHEAD[backend]} bytes and IPv4 needs an MTU of at least {MIN_MTU}")
        self.subnet_len = subnet_len
        self.underlay_mtu = underlay_mtu
        self.nodes: dict[str, Node] = {}
        self.node_list: list[Node] = []       # by index: node N is node_list[N - 1]
        self.pods = PodTable()
        self.externals: dict[str, External] = {}
        self.services: dict[str, kubeproxy.Service] = {}
        self.allocated_ips: set[str] = set()     # the services whose ClusterIP was allocated, not asked for
        self.selectors: dict[str, Any] = {}
        self.network_policies: dict[tuple[str, str], Any] = {}    # (namespace, name) -> networkpolicy.NetworkPolicy
        self.namespace_labels: dict[str, dict[str, str]] = {}      # service name -> the pods it selects (services.Selection)
        self.servers: dict[str, dict[tuple[str, int], Any]] = {}   # pod -> (proto, port) -> the program factory it runs
        self.lb_pool = (self.underlay.network_address + LB_POOL[0], self.underlay.network_address + LB_POOL[1])
        self.gateway_ip = str(self.underlay.network_address + 1)
        self._subnets = self.pod_cidr.subnets(new_prefix=subnet_len)
        for i in range(1, nodes + 1):
            self.add_node(f"node{i}", str(self.underlay.network_address + 10 + i))

    def add_node(self, name: str, ip: str) -> Node:
        """The node's record: address, subnet lease and IPAM. Its namespace is built later."""
        check_name("node", name)
        subnet = next(self._subnets)
        lease = flannel.Lease(name, subnet, ip, self.backend)
        node = self.nodes[name] = Node(name, ip, subnet, lease, cni.HostLocalIpam(subnet), index=len(self.node_list))
        self.node_list.append(node)
        return node

    def taken_node_ports(self) -> dict[int, str]:
        """Every allocated nodePort and healthCheckNodePort, with its service."""
        taken = {sp.node_port: s.name for s in self.services.values() for sp in s.ports if sp.node_port is not None}
        taken.update({s.health_check_node_port: s.name for s in self.services.values()
                      if s.health_check_node_port is not None})
        return taken

    def add_pod(self, name: str, node: str, containers: tuple[str, ...], listen: tuple[tuple[str, int], ...],
                namespace: str = "default", labels: object = None, hostname: str = "", subdomain: str = "",
                ready: bool = True, host_ports: object = ()) -> Pod:
        """The pod's record: checked names, its address from the node's IPAM (the rest of CNI
        ADD happens when its node's namespace is built)."""
        nodes = self.nodes
        n = nodes.get(node) if type(node) is str else None
        rows = self.pods.rows
        plain = (namespace == "default" and labels is None and not hostname and not subdomain and ready is True
                 and (type(host_ports) is tuple and not host_ports))
        if (n is None or type(name) is not str or not _POD_NAME(name) or name in rows or name in nodes
                or name in self.externals or name in self.services or name in OWN_HOSTS or not plain):
            self.check_new_name("pod", name)            # says what is wrong, in this order
            n = self.check_node_name(node)
            check_name("namespace", namespace)
            label_items = check_labels(name, labels)
            if hostname:
                check_name("pod", hostname)
            if subdomain:
                check_name("service", subdomain)
            if not isinstance(ready, bool):
                raise ConfigError(f"pod {name}: ready must be True or False, got {ready!r}")
        if containers is not DEFAULT_CONTAINERS:
            if isinstance(containers, str) or not isinstance(containers, (tuple, list)) or not containers:
                raise ConfigError(f"pod {name}: containers {containers!r} must be a non-empty tuple of names, "
                                  f"e.g. ('app',) or ('app', 'sidecar')")
            for container in containers:
                check_name("container", container)
            if len(set(containers)) != len(containers):
                raise ConfigError(f"pod {name} needs distinct container names, got {tuple(containers)!r}")
            containers = tuple(containers)
        if listen is not POD_PORTS:
            listen = self.check_listen(listen, f"pod {name}")
        if plain:
            ip = n.ipam.allocate(name)
            rows[name] = (node, ip, containers, listen)
        else:
            mappings = portmap.check_host_ports(name, host_ports)
            self._check_host_ports_free(n, name, mappings)
            ip = n.ipam.allocate(name)
            rows[name] = (node, ip, containers, listen, namespace, label_items, hostname, subdomain, ready, mappings)
        n.pods.append(name)
        # a plain pod's record is made when it is asked for (a fresh one here, equal to it)
        return Pod(name, node, ip, containers, listen) if plain else self.pods[name]

    def _check_host_ports_free(self, node: Node, name: str, mappings: tuple[portmap.HostPort, ...]) -> None:
        """kube-scheduler's NodePorts filter: a pod fits a node only if none of its host ports
        (protocol, port, host IP; 0.0.0.0 or none overlapping every address) is taken there."""
        for other in node.pods:
            for used in self.pods[other].host_ports:
                for wanted in mappings:
                    if (used.protocol, used.host_port) == (wanted.protocol, wanted.host_port) and (
                            used.host_ip in ("", "0.0.0.0") or wanted.host_ip in ("", "0.0.0.0")
                            or used.host_ip == wanted.host_ip):
                        raise ConfigError(f"pod {name}: host port {wanted.host_port}/{wanted.protocol} is taken on "
                                          f"{node.name} by pod {other} (the scheduler's NodePorts filter would not "
                                          f"place it there)")

    def check_new_name(self, kind: str, name: object) -> str:
        """A new object's name: Kubernetes' rule for its kind (netsim.names), and unique across
        pods, nodes, external hosts, services and the cluster's own hosts (gateway, underlay)."""
        check_name(kind, name)
        assert isinstance(name, str)
        holder = ("a pod" if name in self.pods else "a node" if name in self.nodes else
                  "an external host" if name in self.externals else "a service" if name in self.services else
                  "the cluster's own host" if name in OWN_HOSTS else None)
        if holder is not None:
            raise ConfigError(f"{kind} name {name!r} is taken already by {holder}: pods, nodes, external hosts and "
                              f"services share one set of names; pick another")
        return name

    @staticmethod
    def check_listen(listen: object, owner: str) -> tuple[tuple[str, int], ...]:
        """Listening sockets as ((protocol, port), ...) with tcp/udp and ports 1..65535."""
        if listen is POD_PORTS:
            return POD_PORTS
        if isinstance(listen, (str, bytes)) or not isinstance(listen, (tuple, list)):
            raise ConfigError(f"{owner}: listen {listen!r} must be a tuple of (protocol, port) pairs, "
                              f"e.g. (('tcp', 8080), ('udp', 9090))")
        out = []
        for item in listen:
            if not isinstance(item, (tuple, list)) or len(item) != 2 or item[0] not in ("tcp", "udp"):
                raise ConfigError(f"{owner}: listen entry {item!r} must be a ('tcp' or 'udp', port) pair")
            out.append((item[0], check_port(item[1], f"{owner}: listen port")))
        return tuple(out)

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except (KeyError, TypeError):
            raise ConfigError(f"no node {name!r}; nodes are {listing(list(self.nodes))}") from None

    def check_node_name(self, node: object, what: str = "node") -> Node:
        if not isinstance(node, str):
            raise ConfigError(f"{what} {node!r} must be a node name such as 'node1', not {type(node).__name__}")
        return self.node(node)

    def owner_at(self, addr: str) -> str | None:
        """The node or pod that would hold `addr` (its underlay address, or an address of its
        pod subnet: .0 and .1 the node's, .2 upward its pods' in IPAM order), if any."""
        value = address_int(addr)
        under, pods = self.underlay, self.pod_cidr
        node: Node | None = None
        if int(under.network_address) <= value <= int(under.broadcast_address):
            node = self._node_at(value - int(under.network_address) - 11)
            return node.name if node is not None else None
        if int(pods.network_address) <= value <= int(pods.broadcast_address):
            offset = value - int(pods.network_address)
            node = self._node_at(offset >> (32 - self.subnet_len))
            index = (offset & ((1 << (32 - self.subnet_len)) - 1)) - 2
            if node is not None and 0 <= index < len(node.pods):
                return node.pods[index]
            return node.name if node is not None else None
        return None

    def _node_at(self, index: int) -> Node | None:
        return self.node_list[index] if 0 <= index < len(self.node_list) else None
