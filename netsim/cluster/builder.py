"""The cluster's namespaces, built from its description as kubelet, the CNI bridge plugin,
flanneld and kube-proxy program them.

The underlay is a switch (`sw0` in namespace `underlay`, bridge netfilter off) with one port
per node and one for the gateway; the gateway routes between the underlay and the external
network 203.0.113.0/24, without NAT. Its eth1 is cabled straight to the one external host, as
on the reference cluster. A node runs the CNI bridge plugin (cni.py) for its pods, flanneld
(flannel.py) for the backend and masquerade rules and kube-proxy (services.py, kubeproxy.py)
for services.

One builder, two schedules. Every switch port exists from the start, in node order, with its
cable unplugged (no link: the switch neither floods nor forwards to it). `build_node` makes a
node's namespace as it is once kubelet, flanneld and kube-proxy have run, plugs its cable and
runs CNI ADD for each of its pods in the order they were added; a pod added to a built node is
built at once. What flanneld programs for the other leases comes from tables built once for
the whole cluster (flannel.PeerTables: immutable routes, VTEP neighbours and FDB entries),
which each node loads all but its own lease of. A node's namespace therefore holds the same
devices, ifindexes, tables and rules whenever it is built, before or after its peers.

- A cluster of up to EAGER_MAX_NODES nodes builds every node at once (eager).
- A larger one (or any built with `lazy=True`) builds a node, with all its pods, on first use:
  when a trace or `resolve()` reaches it, when `netns()`, `show()` or a `break_*` method names
  it, or on `materialize_all()` (for views and the real-kernel lab, which need every
  namespace). It keeps only records (name, addresses, lease, IPAM) for the others.
One consequence is visible: a broadcast on the underlay switch reaches the gateway and the
nodes built so far. The node an ARP request asks for is built first, so it answers exactly as
in a fully built cluster; the others would only have ignored the request, and the switch's
hop says how many were left out. `network.namespaces` lists namespaces in the order they
were built, which in a lazy cluster is the order traces reached them.
"""

from __future__ import annotations

from .. import cni, flannel, portmap
from ..device import Veth
from ..decision import BridgeReason, Decision, Subsystem, Verdict
from ..errors import ConfigError
from ..netns import Namespace
from ..packet import ARP_REQUEST, ETH_P_ARP
from ..stack import Network
from . import metallb
from .services import KubeProxy
from .spec import EXTERNAL_NET, GATEWAY_EXTERNAL_IP, ClusterSpec, External, Node, Pod, listing

EAGER_MAX_NODES = 16     # larger clusters are built lazily (see above)


class _ClusterNetwork(Network):
    """A Network that asks its builder for a node's or pod's namespace when one is named and
    not built yet (only ever the case in a lazy cluster)."""

    def __init__(self, builder: "Builder"):
        super().__init__()
        self._builder = builder

    def netns(self, name: str) -> Namespace:
        if name not in self.namespaces:
            self._builder.materialize(name)
        return super().netns(name)

    def before_walk(self) -> None:
        """kube-proxy's syncs held back by Cluster.batch() run before a packet moves."""
        self._builder.kube_proxy.sync_waiting()


class Builder:
    """Turns the cluster's description into namespaces: every node at once, or (lazy) each
    node with its pods when something first reaches it; the same code either way."""

    def __init__(self, spec: ClusterSpec, lazy: bool):
        self.spec = spec
        self.lazy = lazy
        self.network = _ClusterNetwork(self)
        self.kube_proxy = KubeProxy(spec, self.network)
        self.peers = flannel.PeerTables.of([node.lease for node in spec.node_list], spec.backend)
        self._ports: dict[str, Veth] = {}        # node -> its port on the underlay switch
        self._built: set[str] = set()             # the nodes built so far
        self._build_underlay()
        if not lazy:
            for node in spec.node_list:
                self.build_node(node)

    # building ---------------------------------------------------------------------------
    def _build_underlay(self) -> None:
        """The switch with a port for the gateway (cabled) and one per node (unplugged until
        the node is built), and the gateway."""
        net, spec = self.network, self.spec
        net.add_netns("underlay")
        switch = self._switch = net.bridge("underlay", "sw0", mtu=spec.underlay_mtu)
        net.netns("underlay").set_sysctl("net.bridge.bridge-nf-call-iptables", 0)
        gw = net.add_netns("gateway")
        gw.set_sysctl("net.ipv4.ip_forward", 1)
        _, port = net.veth("gateway", "eth0", "underlay", "p-gw", mtu=spec.underlay_mtu, nic="a")
        switch.attach(port)
        gw.addr_add("eth0", f"{spec.gateway_ip}/{spec.underlay.prefixlen}")
        for node in spec.node_list:
            port = self._ports[node.name] = net.switch_port("underlay", f"p-{node.name}", mtu=spec.underlay_mtu)
            switch.attach(port)
        switch.flood_hook = self._underlay_flood

    def build_node(self, node: Node) -> None:
        """The node's namespace as it is once kubelet, flanneld and kube-proxy have run, its
        cable plugged into the switch, and each of its pods (CNI ADD, in the order added)."""
        net, spec = self.network, self.spec
        name = node.name
        ns = net.add_netns(name)
        ns.set_sysctl("net.ipv4.ip_forward", 1)
        net.plug(name, "eth0", self._ports[name], mtu=spec.underlay_mtu)
        ns.addr_add("eth0", f"{node.ip}/{spec.underlay.prefixlen}")
        ns.route_add("default", via=spec.gateway_ip, dev="eth0")
        flannel.setup_device(net, node.lease, spec.backend, spec.underlay_mtu)
        flannel.add_peers(net, self.peers, node.index, spec.pod_cidr)
        self.kube_proxy.sync_rules(name)
        self._built.add(name)
        for pod in node.pods:
            self.build_pod(spec.pods[pod])

    def build_pod(self, pod: Pod) -> None:
        """CNI ADD for the pod sandbox: namespace, veth pair, address, routes, sockets (and
        cni0 on the node's first pod)."""
        spec = self.spec
        node = spec.nodes[pod.node]
        ns = self.network.add_netns(pod.name)
        cni.add_pod(self.network, pod.node, pod.name, pod.ip, node.subnet, spec.pod_cidr, spec.mtu)
        self.kube_proxy.portmap(pod)
        for proto, port in pod.listen:
            ns.listen(proto, port)
        for (proto, port), factory in spec.servers.get(pod.name, {}).items():
            ns.listen(proto, port, factory)

    def pod_added(self, pod: Pod) -> None:
        """A new pod record: built now if its node is (else with its node)."""
        if pod.node in self._built:
            self.build_pod(pod)

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

    def materialize(self, name: str) -> None:
        """Build the node `name` names (a node, or a pod on it), with all its pods, if it is
        not built yet."""
        spec = self.spec
        node = spec.nodes.get(name)
        if node is None:
            pod = spec.pods.get(name)
            if pod is None:
                return
            node = spec.nodes[pod.node]
        if node.name not in self._built:
            self.build_node(node)

    def materialize_all(self) -> None:
        """Build every node not built yet, in node order (for views that draw the whole
        cluster and for the real-kernel lab). Costs O(nodes^2) with vxlan."""
        for node in self.spec.node_list:
            self.materialize(node.name)

    # naming a host --------------------------------------------------------------------------
    def host(self, name: str) -> Namespace:
        """The namespace of a node, pod, external host, `gateway` or `underlay` (in a lazy
        cluster, built now if it was not, a node with all its pods)."""
        if not isinstance(name, str):
            raise ConfigError(f"host {name!r} must be a name such as 'node1' or 'pod-a', not {type(name).__name__}")
        name = name.split("/")[0]
        spec = self.spec
        if self.lazy and not (name in spec.nodes or name in spec.pods or name in self.network.namespaces):
            hosts = [*spec.nodes, *spec.pods, *spec.externals, "gateway", "underlay"]
            raise ConfigError(f"no host {name!r}; hosts are {listing(hosts)}")
        self.materialize(name)
        return self.network.netns(name)

    @property
    def built(self) -> int:
        """How many namespaces exist so far (all of them unless the cluster is lazy)."""
        return len(self.network.namespaces)

    # the switch's floods -----------------------------------------------------------------
    def _arp_target(self, frame) -> str | None:
        """The node an ARP request asks for, if it is one of ours: the node with that address,
        or the one whose MetalLB speaker answers for a load-balancer address."""
        if frame.type != ETH_P_ARP or frame.payload.op != ARP_REQUEST:
            return None
        pdst = frame.payload.pdst
        name = self.spec.owner_at(pdst)
        node = self.spec.nodes.get(name) if name is not None else None
        if node is not None and node.ip == pdst:
            return name
        for svc in self.spec.services.values():
            if pdst in svc.load_balancer_ips:
                return metallb.announcer(self.spec, svc, pdst)
        return None

    def _underlay_flood(self, frame, flow) -> None:
        """sw0 is about to flood `frame`: build the node an ARP request asks for, and say how
        many nodes the flood leaves out because they are not built."""
        target = self._arp_target(frame)
        if target is not None:
            self.materialize(target)
        missing = len(self.spec.nodes) - len(self._built)
        if missing:
            flow.note(Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.LAZY_NODES, Verdict.FLOOD,
                               bridge=self._switch.name, missing=missing, nodes=len(self.spec.nodes)))
