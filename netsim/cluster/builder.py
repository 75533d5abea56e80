"""The cluster's namespaces, built from its description as kubelet, the CNI bridge plugin,
flanneld and kube-proxy program them.

The underlay is a switch (`sw0` in namespace `underlay`, bridge netfilter off) with one port
per node and one for the gateway; the gateway routes between the underlay and the external
network 203.0.113.0/24, without NAT. Its eth1 is cabled straight to the one external host, as
on the reference cluster. Each node runs the CNI bridge plugin (cni.py) for its pods,
flanneld (flannel.py) for the backend and masquerade rules and kube-proxy (kubeproxy.py) for
services.

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

from .. import cni, flannel
from ..addresses import derive_mac
from ..errors import ConfigError
from ..neighbour import PERMANENT, Neighbour
from ..packet import ARP_REQUEST, ETH_P_ARP
from ..route import Route
from ..stack import Network
from ..vxlan import VxlanDevice, VxlanFdbEntry
from .services import KubeProxy
from .spec import EXTERNAL_NET, GATEWAY_EXTERNAL_IP, ClusterSpec, External, Node, Pod, listing

EAGER_MAX_NODES = 16     # larger clusters are built lazily (see "Scale" above)


class _LazyNetwork(Network):
    """A Network that asks its cluster to build a node's or pod's namespace when it is named."""

    def __init__(self, builder: "Builder"):
        super().__init__()
        self._builder = builder

    def netns(self, name: str):
        ns = self.namespaces.get(name)
        if ns is None:
            self._builder.materialize(name)
        return super().netns(name)


class Builder:
    """Turns the cluster's description into namespaces: all at once, or (lazy) each node with
    its pods when something first reaches it."""

    def __init__(self, spec: ClusterSpec, lazy: bool):
        self.spec = spec
        self.lazy = lazy
        self.network = _LazyNetwork(self) if lazy else Network()
        self.kube_proxy = KubeProxy(spec, self.network)
        self._peers: dict[str, tuple] = {}        # node -> what every other node programs for it
        self._peer_lists: tuple | None = None
        self._route_bucket: tuple | None = None
        self._vtep_maps: tuple | None = None
        self._built_nodes = 0
        self._external_after: dict[str, int] = {}  # external host -> pods added before it
        self._build_underlay()
        for node in spec.nodes.values():
            self._peer_entries(node)     # the VTEP MAC is part of the lease flanneld publishes
        if self.lazy:
            # The switch's MAC is its lowest port MAC; with every port present that is fixed now.
            switch = self._switch
            switch.mac = min([switch.mac, *(derive_mac("underlay", f"p-{n}") for n in spec.nodes)],
                             key=lambda m: bytes.fromhex(m.replace(":", "")))
            self._switch_mac = switch.mac
            switch.flood_hook = self._underlay_flood
            self._peer_tables()
            if spec.backend in ("vxlan", "host-gw"):
                self._peer_route_bucket(0)       # the shared peer tables, paid for at build time
            if spec.backend == "vxlan":
                self._peer_vtep_maps()
        else:
            for node in spec.nodes.values():
                self._build_node(node)

    # building ---------------------------------------------------------------------------
    def _build_underlay(self) -> None:
        net = self.network
        net.add_netns("underlay")
        self._switch = net.bridge("underlay", "sw0", mtu=self.spec.underlay_mtu)
        net.netns("underlay").set_sysctl("net.bridge.bridge-nf-call-iptables", 0)
        gw = net.add_netns("gateway")
        gw.set_sysctl("net.ipv4.ip_forward", 1)
        self._cable("gateway", "eth0", "p-gw")
        gw.addr_add("eth0", f"{self.spec.gateway_ip}/{self.spec.underlay.prefixlen}")
        self._first_port_ifindex = self._switch.ports["p-gw"].dev.ifindex

    def _cable(self, host: str, dev: str, port: str) -> None:
        nic, switch_port = self.network.veth(host, dev, "underlay", port, mtu=self.spec.underlay_mtu, nic="a")
        self._switch.attach(switch_port)
        if self.lazy and host in self.spec.nodes:
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

    def _build_node(self, node: Node) -> None:
        """The node's namespace as it is once kubelet, flanneld and kube-proxy have run. In a
        lazy cluster its pods' namespaces are built when something reaches them; `cni0` (and
        its connected route) is there from the start if the node has pods."""
        net = self.network
        name = node.name
        ns = net.add_netns(name)
        ns.set_sysctl("net.ipv4.ip_forward", 1)
        self._cable(name, "eth0", f"p-{name}")
        ns.addr_add("eth0", f"{node.ip}/{self.spec.underlay.prefixlen}")
        ns.route_add("default", via=self.spec.gateway_ip, dev="eth0")
        flannel.setup_device(net, node.lease, self.spec.backend, self.spec.underlay_mtu)
        self._program_peers(node)
        self.kube_proxy.sync_rules(name)
        self._built_nodes += 1
        if self.lazy and node.pods:
            self.ensure_bridge(node)

    def ensure_bridge(self, node: Node):
        bridge = cni.ensure_bridge(self.network, node.name, node.subnet, self.spec.mtu)
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
            if self.spec.backend == "vxlan":
                mac, vtep = flannel.vtep_mac(node.name), lease.vtep_ip
                route = Route(lease.subnet, "flannel.1", via=vtep, onlink=True)
                route.slot
                entries = (route, vtep, mac, VxlanFdbEntry(mac, lease.public_ip, "flannel.1"))
            elif self.spec.backend == "host-gw":
                route = Route(lease.subnet, "eth0", via=lease.public_ip)
                route.slot
                entries = (route, None, None, None)
            else:
                entries = (None, None, None, None)
            self._peers[node.name] = entries
        return entries

    def _peer_tables(self) -> tuple[list, list, list]:
        """Every lease's route, (VTEP address, MAC) and (MAC, FDB entry), in lease order."""
        if self._peer_lists is None or len(self._peer_lists[0]) != len(self.spec.nodes):
            entries = [self._peers[name] for name in self.spec.nodes]
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
        if self.spec.backend in ("vxlan", "host-gw"):
            prefixlen, by_network, own_route = self._peer_route_bucket(i)
            ns.main_table.add_bucket(prefixlen, by_network, exclude=own_route)
        if self.spec.backend == "vxlan":
            shared, by_mac = self._peer_vtep_maps()
            vtep, mac = neighbours[i]
            ns.neighbours.add_shared(shared, exclude=("flannel.1", vtep))
            vxlan_dev = ns.devices["flannel.1"]
            assert isinstance(vxlan_dev, VxlanDevice)
            table = vxlan_dev.fdb
            table.update(by_mac)
            table.pop(mac, None)
        elif self.spec.backend == "udp":
            flannel.setup_udp_backend(self.network, node.lease, self.spec.pod_cidr,
                                      [n.lease for n in self.spec.nodes.values() if n is not node])

    def build_pod(self, pod: Pod) -> None:
        """CNI ADD for the pod sandbox: namespace, veth pair, address, routes, sockets."""
        node = self.spec.nodes[pod.node]
        ns = self.network.add_netns(pod.name)
        bridge = self.ensure_bridge(node)
        cni.add_pod(self.network, pod.node, pod.name, pod.ip, node.subnet, self.spec.pod_cidr, self.spec.mtu)
        for proto, port in pod.listen:
            ns.listen(proto, port)
        if self.lazy:
            # Built out of order: give the host end the ifindex and the place among cni0's
            # ports that creating every pod in order would have given it.
            rank = {self.spec.pods[name].host_veth: i for i, name in enumerate(node.pods)}
            node_ns = bridge.netns
            node_ns.devices[pod.host_veth].ifindex = bridge.ifindex + 1 + rank[pod.host_veth]
            ports = bridge.ports
            bridge.ports = {p: ports[p] for p in sorted(ports, key=rank.__getitem__)}
            node_ns.devices = dict(sorted(node_ns.devices.items(), key=lambda kv: kv[1].ifindex))

    def build_external(self, ext: External, listen: tuple[tuple[str, int], ...]) -> None:
        """The external host's namespace, cabled to the gateway's eth1."""
        net = self.network
        ns = net.add_netns(ext.name)
        net.veth("gateway", "eth1", ext.name, "eth0")
        net.netns("gateway").addr_add("eth1", f"{GATEWAY_EXTERNAL_IP}/{EXTERNAL_NET.prefixlen}")
        ns.addr_add("eth0", f"{ext.ip}/{EXTERNAL_NET.prefixlen}")
        ns.route_add("default", via=GATEWAY_EXTERNAL_IP, dev="eth0")
        for proto, port in listen:
            ns.listen(proto, port)
        self._external_after[ext.name] = len(self.spec.pods)

    def materialize(self, name: str, whole: bool = False) -> None:
        """Build the namespace `name` names, if it is a node or pod not built yet (for a node
        with `whole`, its pods' namespaces too)."""
        built = self.network.namespaces
        node = self.spec.nodes.get(name)
        pod = self.spec.pods.get(name) if node is None else None
        if pod is not None:
            node = self.spec.nodes[pod.node]
        if node is None:
            return
        if node.name not in built:
            self._build_node(node)
        if pod is not None and pod.name not in built:
            self.build_pod(pod)
        if whole:
            for other in node.pods:
                if other not in built:
                    self.build_pod(self.spec.pods[other])

    def materialize_all(self) -> None:
        """Build every namespace, in the order a fully built cluster has them (for views that
        draw the whole cluster and for the real-kernel lab). Costs O(nodes^2) with vxlan."""
        if not self.lazy:
            return
        spec = self.spec
        for node in spec.nodes.values():
            self.materialize(node.name, whole=True)
        pods = {name: i for i, name in enumerate(spec.pods)}

        def rank(name: str) -> tuple:
            if name in spec.nodes:
                return (1, int(name[4:]))
            if name in pods:
                return (2, pods[name])
            if name in self._external_after:
                return (2, self._external_after[name] - 0.5)
            return (0, ("underlay", "gateway").index(name) if name in ("underlay", "gateway") else 2)

        ns = self.network.namespaces
        self.network.namespaces = {name: ns[name] for name in sorted(ns, key=rank)}

    # the lazy cluster's floods ------------------------------------------------------------
    def _arp_target(self, frame) -> str | None:
        """The node or pod an ARP request asks for, if it is one of ours."""
        if frame.type != ETH_P_ARP or frame.payload.op != ARP_REQUEST:
            return None
        name = self.spec.owner_at(frame.payload.pdst)
        if name is None:
            return None
        owner = self.spec.nodes.get(name) or self.spec.pods.get(name)
        return name if owner is not None and owner.ip == frame.payload.pdst else None

    def _underlay_flood(self, frame, flow) -> None:
        """sw0 is about to flood `frame`: build the node an ARP request asks for, and say how
        many nodes the flood leaves out because they are not built."""
        target = self._arp_target(frame)
        if target is not None and target in self.spec.nodes:
            self.materialize(target)
        missing = len(self.spec.nodes) - self._built_nodes
        if missing:
            flow.note(f"{self._switch.name}: {missing} of {len(self.spec.nodes)} nodes are not built (lazy cluster) and "
                      f"are left out of the flood; their NICs would ignore it")

    def _bridge_flood(self, node: Node, frame, flow) -> None:
        """cni0 of `node` is about to flood `frame`: build the pod an ARP request asks for, and
        say how many of the node's pods the flood leaves out because they are not built."""
        target = self._arp_target(frame)
        if target is not None and target in self.spec.pods and self.spec.pods[target].node == node.name:
            self.materialize(target)
        built = self.network.namespaces
        missing = sum(1 for pod in node.pods if pod not in built)
        if missing:
            flow.note(f"cni0: {missing} of the {len(node.pods)} pods on {node.name} are not built (lazy cluster) and "
                      f"are left out of the flood; each would ignore it")

    # naming a host --------------------------------------------------------------------------
    def host(self, name: str):
        """The namespace of a node, pod, external host, `gateway` or `underlay` (in a lazy
        cluster, built now if it was not, a node with all its pods)."""
        if not isinstance(name, str):
            raise ConfigError(f"host {name!r} must be a name such as 'node1' or 'pod-a', not {type(name).__name__}")
        name = name.split("/")[0]
        spec = self.spec
        if self.lazy:
            if not (name in spec.nodes or name in spec.pods or name in self.network.namespaces):
                hosts = [*spec.nodes, *spec.pods, *spec.externals, "gateway", "underlay"]
                raise ConfigError(f"no host {name!r}; hosts are {listing(hosts)}")
            self.materialize(name, whole=True)
        return self.network.netns(name)

    @property
    def built(self) -> int:
        """How many namespaces exist so far (all of them unless the cluster is lazy)."""
        return len(self.network.namespaces)
