"""A Flannel cluster built on the modelled kernel: nodes, pods, services, the outside world.

`Cluster` programs each namespace the way the real components do: the CNI bridge plugin
(cni.py) for pods, flanneld (flannel.py) for the backend and masquerade rules, kube-proxy
(kubeproxy.py) for services. The underlay is a switch (`sw0` in namespace `underlay`, bridge
netfilter off) with one port per node and one for the gateway; the gateway routes between the
underlay and the external network 203.0.113.0/24, without NAT. Its eth1 is cabled straight to
the one external host, as on the reference cluster.

Endpoints are named: a pod (`pod-a`), a container (`pod-a/sidecar`), a node (`node1`), an
external host (`ext`), a service (`web`), or an address, optionally with a port
(`192.168.50.11:30080`).

Inputs are checked where they enter, as the real components check them: names by
Kubernetes' rules (names.py: DNS-1123 labels for pods, nodes, containers and external hosts,
DNS-1035 for services, unique across kinds, never an address); ClusterIPs and NodePorts as
kube-apiserver allocates them (kubeproxy.py); ports and payloads as the socket calls do
(params.py); CIDRs must be unicast space, not loopback, link-local, multicast or reserved
(addresses.py), and must not overlap. Every refusal is a ConfigError naming the value and
what would be valid.

Scale: lazy clusters. A cluster of more than EAGER_MAX_NODES nodes (or any cluster built with
`lazy=True`) keeps cheap records for every node and pod (name, addresses, lease, IPAM) and
builds a node's namespace, with everything flanneld, kube-proxy and the CNI plugin program
there and the namespaces of all its pods, on first use: when a trace or `resolve()` reaches
it, when `netns()`, `show()` or a `break_*` method names it, or on `materialize_all()` (for
views and the real-kernel lab, which need every namespace). A built node holds its full
Flannel state, one route, neighbour and FDB entry per peer, as the kernel would; what differs
is what no trace touched. One consequence is visible: a broadcast on the underlay switch
reaches the gateway and the nodes built so far, not every node. The node an ARP request asks
for is built first, so it answers exactly as in a fully built cluster; the others would only
have ignored the request, and the switch's hop says how many were left out. Below
EAGER_MAX_NODES nodes everything is built at once and a trace is the same hop for hop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from . import cni, flannel, kubeproxy
from .addresses import check_unicast_network, derive_mac, parse_address, parse_network
from .errors import ConfigError
from .names import check_name
from .neighbour import PERMANENT, Neighbour
from .packet import ARP_REQUEST, ETH_P_ARP
from .params import check_port, check_protocol
from .route import Route
from .owners import cluster_owners
from .stack import Network
from .trace import Trace
from .vxlan import VxlanDevice, VxlanFdbEntry

EXTERNAL_NET = IPv4Network("203.0.113.0/24")
GATEWAY_EXTERNAL_IP = "203.0.113.1"
SERVICE_CIDR = IPv4Network("10.96.0.0/12")
FIRST_SERVICE_IP = IPv4Address("10.96.0.100")
POD_PORTS = (("tcp", 8080), ("udp", 9090))
MIN_MTU = 68
EAGER_MAX_NODES = 16     # larger clusters are built lazily (see "Scale" above)


@dataclass(slots=True)
class Node:
    name: str
    ip: str
    subnet: IPv4Network
    lease: flannel.Lease
    ipam: cni.HostLocalIpam
    pods: list[str] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return self.name


@dataclass(slots=True)
class Pod:
    name: str
    node: str
    ip: str
    host_veth: str
    containers: tuple[str, ...] = ("app",)
    listen: tuple[tuple[str, int], ...] = field(default=POD_PORTS, repr=False, compare=False)

    @property
    def netns(self) -> str:
        return self.name


@dataclass
class External:
    name: str
    ip: str

    @property
    def netns(self) -> str:
        return self.name


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint: the namespace to send from, the address to send to, a port."""

    netns: str | None
    ip: str
    port: int | None = None
    container: str | None = None


class _PendingSync:
    """Stands in for a node's `Netfilter` between a change that needs kube-proxy's full sync
    (a node's first rules, a new service) and the first look at the rules: the sync runs then,
    replaces this stand-in and answers. Like kube-proxy's min-sync-period, a burst of changes
    costs one sync, and what anyone sees is what syncing at every change would show."""

    __slots__ = ("_cluster", "_node")

    def __init__(self, cluster: "Cluster", node: str):
        object.__setattr__(self, "_cluster", cluster)
        object.__setattr__(self, "_node", node)

    def _target(self):
        """The node's rules now: synced if this stand-in is still in place (a reference kept
        from before follows the namespace's current `Netfilter`)."""
        current = self._cluster.network.namespaces[self._node].netfilter
        return self._cluster._write_rules(self._node) if current is self else current

    def __getattr__(self, name: str):
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._target(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._target(), name)

    def __repr__(self) -> str:
        return repr(self._target())


class _LazyNetwork(Network):
    """A Network that asks its cluster to build a node's or pod's namespace when it is named."""

    def __init__(self, cluster: "Cluster"):
        super().__init__()
        self._cluster = cluster

    def netns(self, name: str):
        ns = self.namespaces.get(name)
        if ns is None:
            self._cluster._materialize(name)
        return super().netns(name)


class Cluster:
    """A Kubernetes cluster with Flannel, as the kernel of each machine sees it."""

    def __init__(self, nodes: int = 2, backend: str = "vxlan", pod_cidr: str = "10.244.0.0/16",
                 subnet_len: int = 24, underlay_cidr: str = "192.168.50.0/24", underlay_mtu: int = 1500,
                 lazy: bool | None = None):
        if not isinstance(backend, str) or backend not in flannel.BACKENDS:
            raise ConfigError(f"backend {backend!r} is not one of {', '.join(flannel.BACKENDS)}")
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise ConfigError(f"nodes must be a positive integer, got {nodes!r}")
        if lazy is not None and not isinstance(lazy, bool):
            raise ConfigError(f"lazy must be True, False or None (decide by size), got {lazy!r}")
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
        self.lazy = nodes > EAGER_MAX_NODES if lazy is None else bool(lazy)
        self.network = _LazyNetwork(self) if self.lazy else Network()
        self.network.owner_hook = lambda: cluster_owners(self)     # traces name services' ClusterIPs
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, Pod] = {}
        self.externals: dict[str, External] = {}
        self.services: dict[str, kubeproxy.Service] = {}
        self.gateway_ip = str(self.underlay.network_address + 1)
        self._subnets = self.pod_cidr.subnets(new_prefix=subnet_len)
        self._peers: dict[str, tuple] = {}        # node -> what every other node programs for it
        self._peer_lists: tuple | None = None
        self._route_bucket: tuple | None = None
        self._vtep_maps: tuple | None = None
        self._built_nodes = 0
        self._external_after: dict[str, int] = {}  # external host -> pods added before it
        self._build_underlay()
        for i in range(1, nodes + 1):
            self._add_node(f"node{i}", str(self.underlay.network_address + 10 + i))
        if self.lazy:
            # The switch's MAC is its lowest port MAC; with every port present that is fixed now.
            switch = self._switch
            switch.mac = min([switch.mac, *(derive_mac("underlay", f"p-{n}") for n in self.nodes)],
                             key=lambda m: bytes.fromhex(m.replace(":", "")))
            self._switch_mac = switch.mac
            switch.flood_hook = self._underlay_flood
            self._peer_tables()
            if self.backend in ("vxlan", "host-gw"):
                self._peer_route_bucket(0)       # the shared peer tables, paid for at build time
            if self.backend == "vxlan":
                self._peer_vtep_maps()
        else:
            for node in self.nodes.values():
                self._build_node(node)

    # building ---------------------------------------------------------------------------
    def _build_underlay(self) -> None:
        net = self.network
        net.add_netns("underlay")
        self._switch = net.bridge("underlay", "sw0", mtu=self.underlay_mtu)
        net.netns("underlay").set_sysctl("net.bridge.bridge-nf-call-iptables", 0)
        gw = net.add_netns("gateway")
        gw.set_sysctl("net.ipv4.ip_forward", 1)
        self._cable("gateway", "eth0", "p-gw")
        gw.addr_add("eth0", f"{self.gateway_ip}/{self.underlay.prefixlen}")
        self._first_port_ifindex = self._switch.ports["p-gw"].dev.ifindex

    def _cable(self, host: str, dev: str, port: str) -> None:
        nic, switch_port = self.network.veth(host, dev, "underlay", port, mtu=self.underlay_mtu, nic="a")
        self._switch.attach(switch_port)
        if self.lazy and host in self.nodes:
            # Built out of order: give the port the ifindex and the place among the switch's
            # ports that building every node in order would have given it.
            index = int(host[4:])
            switch_port.ifindex = self._first_port_ifindex + index
            ports = self._switch.ports
            self._switch.ports = {p: ports[p] for p in sorted(ports, key=lambda p: 0 if p == "p-gw" else int(p[6:]))}
            underlay = switch_port.netns
            assert underlay is not None     # the port was just added to the underlay namespace
            underlay.devices = dict(sorted(underlay.devices.items(), key=lambda kv: kv[1].ifindex))
            self._switch.mac = self._switch_mac

    def _add_node(self, name: str, ip: str) -> Node:
        """The node's record: address, subnet lease and IPAM. Its namespace is built later."""
        check_name("node", name)
        subnet = next(self._subnets)
        lease = flannel.Lease(name, subnet, ip, self.backend)
        node = self.nodes[name] = Node(name, ip, subnet, lease, cni.HostLocalIpam(subnet))
        self._peer_entries(node)     # the VTEP MAC is part of the lease flanneld publishes
        return node

    def _build_node(self, node: Node) -> None:
        """The node's namespace as it is once kubelet, flanneld and kube-proxy have run. In a
        lazy cluster its pods' namespaces are built when something reaches them; `cni0` (and
        its connected route) is there from the start if the node has pods."""
        net = self.network
        name = node.name
        ns = net.add_netns(name)
        ns.set_sysctl("net.ipv4.ip_forward", 1)
        self._cable(name, "eth0", f"p-{name}")
        ns.addr_add("eth0", f"{node.ip}/{self.underlay.prefixlen}")
        ns.route_add("default", via=self.gateway_ip, dev="eth0")
        flannel.setup_device(net, node.lease, self.backend, self.underlay_mtu)
        self._program_peers(node)
        self._sync_rules(name)
        self._built_nodes += 1
        if self.lazy and node.pods:
            self._ensure_bridge(node)

    def _ensure_bridge(self, node: Node):
        bridge = cni.ensure_bridge(self.network, node.name, node.subnet, self.mtu)
        if self.lazy:
            bridge.flood_hook = lambda frame, flow: self._bridge_flood(node, frame, flow)
        return bridge

    def _peer_entries(self, node: Node) -> tuple:
        """What flanneld on every other node programs for `node`'s lease: the route and, for
        vxlan, the VTEP address and MAC and the FDB entry (immutable, so every node's tables
        share them)."""
        entries = self._peers.get(node.name)
        if entries is None:
            lease = node.lease
            if self.backend == "vxlan":
                mac, vtep = flannel.vtep_mac(node.name), lease.vtep_ip
                route = Route(lease.subnet, "flannel.1", via=vtep, onlink=True)
                route.slot
                entries = (route, vtep, mac, VxlanFdbEntry(mac, lease.public_ip, "flannel.1"))
            elif self.backend == "host-gw":
                route = Route(lease.subnet, "eth0", via=lease.public_ip)
                route.slot
                entries = (route, None, None, None)
            else:
                entries = (None, None, None, None)
            self._peers[node.name] = entries
        return entries

    def _peer_tables(self) -> tuple[list, list, list]:
        """Every lease's route, (VTEP address, MAC) and (MAC, FDB entry), in lease order."""
        if self._peer_lists is None or len(self._peer_lists[0]) != len(self.nodes):
            entries = [self._peers[name] for name in self.nodes]
            self._peer_lists = ([e[0] for e in entries], [(e[1], e[2]) for e in entries],
                                [(e[2], e[3]) for e in entries])
        return self._peer_lists

    def _peer_route_bucket(self, i: int) -> tuple[int, dict, int]:
        """Every lease's route by network, for RoutingTable.add_bucket (built once, shared)."""
        routes = self._peer_tables()[0]
        if self._route_bucket is None or self._route_bucket[0] is not routes:
            self._route_bucket = (routes, {route.slot[1]: [route] for route in routes})
        return routes[i].slot[0], self._route_bucket[1], routes[i].slot[1]

    def _peer_vtep_maps(self) -> tuple[dict, dict]:
        """Every lease's PERMANENT VTEP neighbour entry and FDB entry (built once, shared)."""
        _, neighbours, fdb = self._peer_tables()
        if self._vtep_maps is None or self._vtep_maps[0] is not neighbours:
            self._vtep_maps = (neighbours,
                               {("flannel.1", ip): Neighbour(ip, "flannel.1", mac, PERMANENT) for ip, mac in neighbours},
                               dict(fdb))
        return self._vtep_maps[1], self._vtep_maps[2]

    def _program_peers(self, node: Node) -> None:
        """flanneld's peer programming on `node` for every other lease, in lease order: what
        `flannel.add_peer` does peer by peer (neighbour, FDB entry, route), in bulk and without
        re-parsing the same addresses once per node (the routes are on-link by construction)."""
        ns = self.network.namespaces[node.name]
        i = int(node.name[4:]) - 1           # node<i+1> is the i-th lease
        routes, neighbours, fdb = self._peer_tables()
        if self.backend in ("vxlan", "host-gw"):
            prefixlen, by_network, own_route = self._peer_route_bucket(i)
            ns.main_table.add_bucket(prefixlen, by_network, exclude=own_route)
        if self.backend == "vxlan":
            shared, by_mac = self._peer_vtep_maps()
            vtep, mac = neighbours[i]
            ns.neighbours.add_shared(shared, exclude=("flannel.1", vtep))
            vxlan_dev = ns.devices["flannel.1"]
            assert isinstance(vxlan_dev, VxlanDevice)
            table = vxlan_dev.fdb
            table.update(by_mac)
            table.pop(mac, None)
        elif self.backend == "udp":
            flannel.setup_udp_backend(self.network, node.lease, self.pod_cidr,
                                      [n.lease for n in self.nodes.values() if n is not node])

    def _build_pod(self, pod: Pod) -> None:
        """CNI ADD for the pod sandbox: namespace, veth pair, address, routes, sockets."""
        node = self.nodes[pod.node]
        ns = self.network.add_netns(pod.name)
        bridge = self._ensure_bridge(node)
        cni.add_pod(self.network, pod.node, pod.name, pod.ip, node.subnet, self.pod_cidr, self.mtu)
        for proto, port in pod.listen:
            ns.listen(proto, port)
        if self.lazy:
            # Built out of order: give the host end the ifindex and the place among cni0's
            # ports that creating every pod in order would have given it.
            rank = {self.pods[name].host_veth: i for i, name in enumerate(node.pods)}
            node_ns = bridge.netns
            node_ns.devices[pod.host_veth].ifindex = bridge.ifindex + 1 + rank[pod.host_veth]
            ports = bridge.ports
            bridge.ports = {p: ports[p] for p in sorted(ports, key=rank.__getitem__)}
            node_ns.devices = dict(sorted(node_ns.devices.items(), key=lambda kv: kv[1].ifindex))

    def _materialize(self, name: str, whole: bool = False) -> None:
        """Build the namespace `name` names, if it is a node or pod not built yet (for a node
        with `whole`, its pods' namespaces too)."""
        built = self.network.namespaces
        node = self.nodes.get(name)
        pod = self.pods.get(name) if node is None else None
        if pod is not None:
            node = self.nodes[pod.node]
        if node is None:
            return
        if node.name not in built:
            self._build_node(node)
        if pod is not None and pod.name not in built:
            self._build_pod(pod)
        if whole:
            for other in node.pods:
                if other not in built:
                    self._build_pod(self.pods[other])

    def materialize_all(self) -> None:
        """Build every namespace, in the order a fully built cluster has them (for views that
        draw the whole cluster and for the real-kernel lab). Costs O(nodes^2) with vxlan."""
        if not self.lazy:
            return
        for node in self.nodes.values():
            self._materialize(node.name, whole=True)
        pods = {name: i for i, name in enumerate(self.pods)}

        def rank(name: str) -> tuple:
            if name in self.nodes:
                return (1, int(name[4:]))
            if name in pods:
                return (2, pods[name])
            if name in self._external_after:
                return (2, self._external_after[name] - 0.5)
            return (0, ("underlay", "gateway").index(name) if name in ("underlay", "gateway") else 2)

        ns = self.network.namespaces
        self.network.namespaces = {name: ns[name] for name in sorted(ns, key=rank)}

    @property
    def built(self) -> int:
        """How many namespaces exist so far (all of them unless the cluster is lazy)."""
        return len(self.network.namespaces)

    def _owner_at(self, addr: str) -> str | None:
        """The node or pod that would hold `addr` (its underlay address, or an address of its
        pod subnet: .0 and .1 the node's, .2 upward its pods' in IPAM order), if any."""
        value = int(IPv4Address(addr))
        under, pods = self.underlay, self.pod_cidr
        if int(under.network_address) <= value <= int(under.broadcast_address):
            return f"node{value - int(under.network_address) - 10}"
        if int(pods.network_address) <= value <= int(pods.broadcast_address):
            offset = value - int(pods.network_address)
            node = self.nodes.get(f"node{(offset >> (32 - self.subnet_len)) + 1}")
            index = (offset & ((1 << (32 - self.subnet_len)) - 1)) - 2
            if node is not None and 0 <= index < len(node.pods):
                return node.pods[index]
            return node.name if node is not None else None
        return None

    def _arp_target(self, frame) -> str | None:
        """The node or pod an ARP request asks for, if it is one of ours."""
        if frame.type != ETH_P_ARP or frame.payload.op != ARP_REQUEST:
            return None
        name = self._owner_at(frame.payload.pdst)
        if name is None:
            return None
        owner = self.nodes.get(name) or self.pods.get(name)
        return name if owner is not None and owner.ip == frame.payload.pdst else None

    def _underlay_flood(self, frame, flow) -> None:
        """sw0 is about to flood `frame`: build the node an ARP request asks for, and say how
        many nodes the flood leaves out because they are not built."""
        target = self._arp_target(frame)
        if target is not None and target in self.nodes:
            self._materialize(target)
        missing = len(self.nodes) - self._built_nodes
        if missing:
            flow.note(f"{self._switch.name}: {missing} of {len(self.nodes)} nodes are not built (lazy cluster) and "
                      f"are left out of the flood; their NICs would ignore it")

    def _bridge_flood(self, node: Node, frame, flow) -> None:
        """cni0 of `node` is about to flood `frame`: build the pod an ARP request asks for, and
        say how many of the node's pods the flood leaves out because they are not built."""
        target = self._arp_target(frame)
        if target is not None and target in self.pods and self.pods[target].node == node.name:
            self._materialize(target)
        built = self.network.namespaces
        missing = sum(1 for pod in node.pods if pod not in built)
        if missing:
            flow.note(f"cni0: {missing} of the {len(node.pods)} pods on {node.name} are not built (lazy cluster) and "
                      f"are left out of the flood; each would ignore it")

    def _sync_rules(self, node: str) -> None:
        """The node's iptables must be rewritten (a new node, a new service): the rewrite
        happens when anything next looks at them (see `_PendingSync`)."""
        # A stand-in until the next lookup (the lazy builder's trick that issue #12 asks to
        # replace with an explicit builder): typed as what it stands in for.
        self.network.namespaces[node].netfilter = _PendingSync(self, node)  # type: ignore[assignment]

    def _write_rules(self, node: str):
        """Rewrite the node's iptables as flanneld and a kube-proxy full sync leave them."""
        from .netfilter import Netfilter
        ns = self.network.namespaces[node]
        nf = ns.netfilter = Netfilter(ns)
        kubeproxy.base_rules(nf)
        flannel.masquerade_rules(nf, self.pod_cidr, self.nodes[node].subnet)
        for svc in self.services.values():
            local = [ip for pod, ip in svc.endpoints if self.pods[pod].node == node]
            kubeproxy.service_rules(nf, svc, str(self.pod_cidr), local)
        kubeproxy.finish_nodeports(nf)
        return nf

    def _check_new_name(self, kind: str, name: object) -> str:
        """A new object's name: Kubernetes' rule for its kind (netsim.names), and unique across
        pods, nodes, external hosts, services and the cluster's own hosts (gateway, underlay)."""
        check_name(kind, name)
        assert isinstance(name, str)
        holder = ("a pod" if name in self.pods else "a node" if name in self.nodes else
                  "an external host" if name in self.externals else "a service" if name in self.services else
                  "the cluster's own host" if name in self.network.namespaces else None)
        if holder is not None:
            raise ConfigError(f"{kind} name {name!r} is taken already by {holder}: pods, nodes, external hosts and "
                              f"services share one set of names; pick another")
        return name

    @staticmethod
    def _check_listen(listen: object, owner: str) -> tuple[tuple[str, int], ...]:
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

    def _check_node_name(self, node: object, what: str = "node") -> Node:
        if not isinstance(node, str):
            raise ConfigError(f"{what} {node!r} must be a node name such as 'node1', not {type(node).__name__}")
        return self._node(node)

    # public API -------------------------------------------------------------------------
    def add_pod(self, name: str, node: str = "node1", containers: tuple[str, ...] = ("app",),
                listen: tuple[tuple[str, int], ...] = POD_PORTS) -> Pod:
        """Schedule a pod: CNI ADD on its node (cni0, veth pair, host-local address, routes).
        Pod and container names are DNS-1123 labels (netsim.names)."""
        self._check_new_name("pod", name)
        n = self._check_node_name(node)
        if isinstance(containers, str) or not isinstance(containers, (tuple, list)) or not containers:
            raise ConfigError(f"pod {name}: containers {containers!r} must be a non-empty tuple of names, "
                              f"e.g. ('app',) or ('app', 'sidecar')")
        for container in containers:
            check_name("container", container)
        if len(set(containers)) != len(containers):
            raise ConfigError(f"pod {name} needs distinct container names, got {tuple(containers)!r}")
        listen = self._check_listen(listen, f"pod {name}")
        ip = n.ipam.allocate(name)
        pod = Pod(name, node, ip, cni.host_veth_name(name), tuple(containers), tuple(listen))
        if not self.lazy:
            self._build_pod(pod)
        elif node in self.network.namespaces:
            self._ensure_bridge(n)       # CNI ADD creates cni0 on a node's first pod
        self.pods[name] = pod
        n.pods.append(name)
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
        self._check_new_name("external host", name)
        listen = self._check_listen(listen, f"external host {name}")
        if self.externals:
            raise ConfigError(f"the gateway's eth1 is already cabled to {next(iter(self.externals))}: "
                              f"netsim models one external host per cluster")
        net = self.network
        ns = net.add_netns(name)
        net.veth("gateway", "eth1", name, "eth0")
        net.netns("gateway").addr_add("eth1", f"{GATEWAY_EXTERNAL_IP}/{EXTERNAL_NET.prefixlen}")
        ns.addr_add("eth0", f"{addr}/{EXTERNAL_NET.prefixlen}")
        ns.route_add("default", via=GATEWAY_EXTERNAL_IP, dev="eth0")
        for proto, port in listen:
            ns.listen(proto, port)
        ext = self.externals[name] = External(name, str(addr))
        self._external_after[name] = len(self.pods)
        return ext

    def add_service(self, name: str, port: int, target_port: int, pods: list[str] | tuple[str, ...] = (),
                    node_port: int | None = None, external_traffic_policy: str = "Cluster",
                    protocol: str = "tcp", cluster_ip: str | None = None) -> kubeproxy.Service:
        """A Service: kube-proxy programs its ClusterIP (and NodePort) on every node. The name
        is a DNS-1035 label (netsim.names); the ClusterIP and NodePort are checked and allocated
        as kube-apiserver does (kubeproxy.check_cluster_ip, allocate_cluster_ip, check_node_port)."""
        self._check_new_name("service", name)
        if protocol not in ("tcp", "udp"):
            raise ConfigError(f"service protocol must be tcp or udp, not {protocol!r}")
        if external_traffic_policy not in ("Cluster", "Local"):
            raise ConfigError(f"externalTrafficPolicy must be Cluster or Local, not {external_traffic_policy!r}")
        check_port(port, f"service {name}: port")
        check_port(target_port, f"service {name}: targetPort")
        if node_port is not None:
            kubeproxy.check_node_port(node_port, {s.node_port: s.name for s in self.services.values()
                                                  if s.node_port is not None})
        if isinstance(pods, str) or not isinstance(pods, (tuple, list)):
            raise ConfigError(f"service {name}: pods {pods!r} must be a list of pod names, e.g. ['pod-c']")
        for pod in pods:
            if not isinstance(pod, str) or pod not in self.pods:
                raise ConfigError(f"service {name}: no pod {pod!r}; pods are {_listing(list(self.pods)) or 'none'}")
        if len(set(pods)) != len(pods):
            raise ConfigError(f"service {name}: pods {list(pods)!r} names a pod twice; an endpoint is listed once")
        taken = {s.cluster_ip: s.name for s in self.services.values()}
        if cluster_ip is None:
            cluster_ip = kubeproxy.allocate_cluster_ip(SERVICE_CIDR, FIRST_SERVICE_IP, len(self.services), taken)
        else:
            cluster_ip = kubeproxy.check_cluster_ip(cluster_ip, SERVICE_CIDR, taken)
        svc = kubeproxy.Service(name, cluster_ip, port, target_port, protocol, node_port, external_traffic_policy,
                                [(p, self.pods[p].ip) for p in pods])
        self.services[name] = svc
        built = self.network.namespaces
        for pod in pods:
            spec = self.pods[pod]
            if (protocol, target_port) not in spec.listen:
                spec.listen = (*spec.listen, (protocol, target_port))
            if pod in built:
                built[pod].listen(protocol, target_port)
        for node in self.nodes:
            if node in built:
                self._sync_rules(node)
        return svc

    def netns(self, name: str):
        """The namespace of a node, pod, external host, `gateway` or `underlay` (in a lazy
        cluster, built now if it was not, a node with all its pods)."""
        if not isinstance(name, str):
            raise ConfigError(f"host {name!r} must be a name such as 'node1' or 'pod-a', not {type(name).__name__}")
        name = name.split("/")[0]
        if self.lazy:
            if not (name in self.nodes or name in self.pods or name in self.network.namespaces):
                hosts = [*self.nodes, *self.pods, *self.externals, "gateway", "underlay"]
                raise ConfigError(f"no host {name!r}; hosts are {_listing(hosts)}")
            self._materialize(name, whole=True)
        return self.network.netns(name)

    def subnet_env(self, node: str) -> str:
        n = self._check_node_name(node)
        return flannel.subnet_env(self.pod_cidr, n.lease, self.mtu)

    def _node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except (KeyError, TypeError):
            raise ConfigError(f"no node {name!r}; nodes are {_listing(list(self.nodes))}") from None

    # endpoints and sending --------------------------------------------------------------
    def resolve(self, name: str, *, source: bool = False, from_ns: str | None = None) -> Endpoint:
        """Turn an endpoint name into a namespace and address. An address may carry a port
        (1..65535): `10.244.1.2:8080`."""
        if not isinstance(name, str):
            raise ConfigError(f"endpoint {name!r} must be a name or an address string such as 'pod-a' or "
                              f"'10.244.1.2:8080', not {type(name).__name__}")
        text = name.strip()
        if "/" in text and text.split("/")[0] in self.pods:
            pod_name, container = text.split("/", 1)
            pod = self.pods[pod_name]
            if container not in pod.containers:
                raise ConfigError(f"pod {pod_name} has no container {container!r}; it has {', '.join(pod.containers)}")
            ip = "127.0.0.1" if from_ns == pod_name else pod.ip
            return Endpoint(pod_name, ip, container=container)
        if text in self.pods:
            return Endpoint(text, self.pods[text].ip)
        if text in self.nodes:
            return Endpoint(text, self.nodes[text].ip)
        if text in self.externals:
            return Endpoint(text, self.externals[text].ip)
        if text == "gateway":
            return Endpoint("gateway", self.gateway_ip)
        if text in self.services:
            svc = self.services[text]
            return Endpoint(None, svc.cluster_ip, svc.port)
        port = None
        if text.count(":") == 1:
            text, port_text = text.split(":")
            if not (port_text.isascii() and port_text.isdigit()):
                raise ConfigError(f"endpoint {name!r}: port {port_text!r} is not a number")
            port = check_port(int(port_text), f"endpoint {name!r}: port")
        try:
            addr = str(IPv4Address(text))
        except ValueError:
            valid = _listing([*self.pods, *self.nodes, *self.externals, *self.services])
            raise ConfigError(f"unknown endpoint {name!r}: use a pod, pod/container, node, external host, "
                              f"service or IPv4 address[:port] (known names: {valid})") from None
        if self.lazy:
            owner = self._owner_at(addr)
            if owner is not None:
                self._materialize(owner)
        owner = next((n for n, ns in self.network.namespaces.items() if ns.is_local_address(addr)
                      and not addr.startswith("127.")), None)
        return Endpoint(owner, addr, port)

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
        """A state view of one host: "ip addr", "ip -d link show [DEV]", "ip route", "ip neigh",
        "bridge fdb", "iptables-save", "conntrack -L", "subnet.env" (nodes only), "ip route get
        ADDR" and "ip route get ADDR from SRC"."""
        from . import show
        views = {
            "ip addr": show.ip_addr, "ip -d link show": show.ip_link_details, "ip route": show.ip_route,
            "ip neigh": show.ip_neigh, "bridge fdb": show.bridge_fdb, "iptables-save": show.iptables_save,
            "conntrack -L": show.conntrack_list,
        }
        names = ", ".join([*views, "ip -d link show DEV", "ip route get ADDR [from SRC]", "subnet.env"])
        if not isinstance(what, str):
            raise ConfigError(f"view {what!r} must be a string, one of: {names}")
        words = what.split()
        route_get = words[:3] == ["ip", "route", "get"]
        if words[:4] == ["ip", "-d", "link", "show"] and len(words) == 5:
            return show.ip_link_details(self.netns(host), words[4])
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

    # breaking things (for the troubleshooting chapter) --------------------------------------
    # Each deletes one thing flanneld or the kernel set up, as the command in its docstring
    # would. Deleting what is gone already is an error, as it is for `ip` and `iptables`
    # (the message says so); break_forwarding, a sysctl write, may be repeated.
    def _node_and_peer(self, node: str, peer: str) -> tuple[Node, Node]:
        n, p = self._check_node_name(node), self._check_node_name(peer, "peer")
        if n is p:
            raise ConfigError(f"peer {peer!r} is {node!r} itself: name another node (flanneld programs {node} "
                              f"with a route, neighbour and FDB entry for each other node only)")
        return n, p

    def break_fdb(self, node: str, peer: str) -> None:
        """`bridge fdb del MAC dev flannel.1` on `node`: its FDB entry for `peer`'s VTEP MAC
        (vxlan backend). An error if the entry is gone already."""
        self._need_backend("vxlan", "break_fdb")
        n, p = self._node_and_peer(node, peer)
        dev = self.netns(n.name).devices["flannel.1"]
        mac = flannel.vtep_mac(p.name)
        if mac not in dev.fdb:
            raise ConfigError(f"break_fdb({node!r}, {peer!r}): already broken: {node}'s flannel.1 has no FDB entry "
                              f"for {peer}'s VTEP MAC {mac} (bridge fdb del: No such file or directory)")
        dev.fdb_delete(mac)

    def break_neighbour(self, node: str, peer: str) -> None:
        """`ip neigh del VTEP dev flannel.1` on `node`: its permanent entry for `peer`'s VTEP
        address (vxlan backend). An error if no entry is left."""
        self._need_backend("vxlan", "break_neighbour")
        n, p = self._node_and_peer(node, peer)
        neighbours = self.netns(n.name).neighbours
        vtep = p.lease.vtep_ip
        if neighbours.get("flannel.1", vtep) is None:
            raise ConfigError(f"break_neighbour({node!r}, {peer!r}): already broken: {node} has no neighbour entry "
                              f"for {peer}'s VTEP {vtep} on flannel.1 (ip neigh del: No such file or directory)")
        neighbours.delete("flannel.1", vtep)

    def break_forwarding(self, node: str) -> None:
        """`sysctl -w net.ipv4.ip_forward=0` on `node` (repeating it changes nothing)."""
        self.netns(self._check_node_name(node).name).set_sysctl("net.ipv4.ip_forward", 0)

    def break_masquerade(self, node: str) -> None:
        """`iptables -t nat -D FLANNEL-POSTRTG ...`: remove the pod-to-outside MASQUERADE rule on
        `node`. An error if it is gone already."""
        ns = self.netns(self._check_node_name(node).name)
        spec = f'-s {self.pod_cidr} ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully'
        try:
            ns.netfilter.delete("nat", "FLANNEL-POSTRTG", spec)
        except ValueError:
            raise ConfigError(f"break_masquerade({node!r}): already broken: FLANNEL-POSTRTG on {node} has no "
                              f"MASQUERADE rule for {self.pod_cidr} (iptables: Bad rule (does a matching rule "
                              f"exist in that chain?))") from None

    def break_route(self, node: str, peer: str) -> None:
        """`ip route del SUBNET` on `node`: its route to `peer`'s pod subnet (vxlan and host-gw;
        the udp backend has one route for the whole pod network). An error if it is gone."""
        if self.backend == "udp":
            raise ConfigError("break_route applies to the vxlan and host-gw backends; the udp backend routes the "
                              f"whole pod network {self.pod_cidr} to flannel0, with no route per node")
        n, p = self._node_and_peer(node, peer)
        self.netns(n.name).route_del(str(p.subnet))

    def set_mtu(self, host: str, dev: str, mtu: int) -> None:
        """`ip link set DEV mtu MTU` on any host, e.g. a pod's eth0 left at 1500."""
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not MIN_MTU <= mtu <= 65535:
            raise ConfigError(f"MTU {mtu!r} is out of range {MIN_MTU}..65535")
        if not isinstance(dev, str):
            raise ConfigError(f"device {dev!r} must be a device name such as 'eth0', not {type(dev).__name__}")
        self.netns(host).device(dev).mtu = mtu

    def _need_backend(self, backend: str, what: str) -> None:
        if self.backend != backend:
            raise ConfigError(f"{what} applies to the {backend} backend; this cluster uses {self.backend}")


def _listing(names: list[str], most: int = 12) -> str:
    """Names for an error message: all of them, or the first few and how many there are."""
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f", ... ({len(names)} in all)"


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
