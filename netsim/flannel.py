"""What flanneld programs on each node, backend by backend, and its udp-backend proxy.

Facts (flannel-kubernetes-facts.md sections A, C, D, E, F):
- vxlan: `flannel.1` (VNI 1, kernel default port 8472, `local <node IP> dev eth0
  nolearning`, MTU underlay-50, address `<subnet>.0/32`); per remote node, in this order, a
  PERMANENT neighbour entry for the remote `.0`, an FDB entry `<VTEP MAC> dst <node IP>`, and
  the route `<subnet> via <subnet>.0 dev flannel.1 onlink`. The kernel encapsulates.
- host-gw: one route per remote node, `<subnet> via <node IP> dev eth0`; MTU = underlay MTU.
- udp: TUN `flannel0` (MTU underlay-28, address `<subnet>.0/32`, route `<cluster CIDR> dev
  flannel0`); flanneld itself reads each packet, decrements its TTL, and sends the bare IP
  packet in UDP to the peer's port 8285; the receiving flanneld decrements the TTL again.
- masquerade (`--ip-masq`): FLANNEL-POSTRTG's six rules in order; FLANNEL-FWD accepts
  cluster traffic in FORWARD.
VTEP MACs are random in flanneld (locally administered); netsim derives them from names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Sequence

from .addresses import derive_mac
from .decision import Decision, FlannelReason, Subsystem, Verdict, field_change
from .errors import ConfigError
from .packet import IPPROTO_UDP, IPv4, UDP
from .neighbour import PERMANENT
from .route import FrozenRoutes, Route, address_int
from .skb import Flow, Skb
from .tun import Tun
from .vxlan import VXLAN_OVERHEAD, VxlanDevice, VxlanFdbEntry

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .netns import Namespace

BACKENDS = ("vxlan", "host-gw", "udp")
VXLAN_VNI = 1
UDP_PORT = 8285
UDP_OVERHEAD = 28
OVERHEAD = {"vxlan": VXLAN_OVERHEAD, "host-gw": 0, "udp": UDP_OVERHEAD}


def flannel_mtu(backend: str, underlay_mtu: int) -> int:
    return underlay_mtu - OVERHEAD[backend]


def vtep_mac(node: str) -> str:
    return derive_mac(node, "flannel.1")


@dataclass(frozen=True)
class Lease:
    """A node's subnet lease, as flanneld records it (kube subnet manager: node.spec.podCIDR)."""

    node: str
    subnet: IPv4Network
    public_ip: str
    backend: str

    @property
    def vtep_ip(self) -> str:
        return str(self.subnet.network_address)


ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"    # main.go: --kube-annotation-prefix's default


def node_annotations(lease: Lease, backend: str) -> dict[str, str]:
    """The annotations flanneld (kube subnet manager) writes on its own Node object, which every
    other node's flanneld reads back as that node's lease (pkg/subnet/kube/kube.go
    AcquireLease and nodeToLease; the names in pkg/subnet/kube/annotations.go, flannel
    v0.28.9). `backend-data` is the backend's JSON: for vxlan `{"VNI":1,"VtepMAC":"..."}`
    (vxlanLeaseAttrs, pkg/backend/vxlan/vxlan.go newSubnetAttrs), the MAC the peers put in
    their neighbour and FDB entries; `null` for host-gw and udp, which send none. `public-ip`
    is the address of the interface flanneld chose (`--iface`, else the default route's), the
    FDB entry's `dst` (vxlan) or the route's gateway (host-gw) on every peer."""
    data = (f'{{"VNI":{VXLAN_VNI},"VtepMAC":"{vtep_mac(lease.node)}"}}' if backend == "vxlan" else "null")
    return {f"{ANNOTATION_PREFIX}backend-data": data, f"{ANNOTATION_PREFIX}backend-type": backend,
            f"{ANNOTATION_PREFIX}kube-subnet-manager": "true", f"{ANNOTATION_PREFIX}public-ip": lease.public_ip}


def subnet_env(network: IPv4Network, lease: Lease, mtu: int, ipmasq: bool = True) -> str:
    """/run/flannel/subnet.env as flanneld writes it."""
    first = lease.subnet.network_address + 1
    return (f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={first}/{lease.subnet.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n")


def setup_device(network, lease: Lease, backend: str, underlay_mtu: int) -> None:
    """Create the backend's device on the node (flannel.1 or flannel0)."""
    ns = network.netns(lease.node)
    if backend == "vxlan":
        dev = VxlanDevice("flannel.1", vtep_mac(lease.node), VXLAN_VNI, lease.public_ip, "eth0",
                          mtu=underlay_mtu - VXLAN_OVERHEAD)
        dev.qlen = 0      # pkg/backend/vxlan/device.go: netlink.Vxlan{LinkAttrs{Name, HardwareAddr, MTU}}, no TxQLen
        ns.add_device(dev)
        ns.addr_add("flannel.1", f"{lease.vtep_ip}/32")
    elif backend == "udp":
        tun = Tun("flannel0", mtu=underlay_mtu - UDP_OVERHEAD)
        ns.add_device(tun)
        ns.addr_add("flannel0", f"{lease.vtep_ip}/32")


@dataclass(frozen=True)
class PeerTables:
    """What flanneld on any node programs for the cluster's leases, built once as immutable
    values: per lease, in lease order, its route (vxlan, host-gw), its VTEP's PERMANENT
    neighbour (address, MAC) and its FDB entry (vxlan). `add_peers` gives a node all of them
    but its own lease's; a node's tables copy what they load, and the records in them (routes,
    FDB entries) never change, so nothing a node does reaches another."""

    backend: str
    leases: tuple[Lease, ...]
    routes: tuple[Route, ...] = ()                 # one per lease (vxlan, host-gw)
    frozen_routes: FrozenRoutes | None = None      # the same, as a table loads them
    vteps: tuple[tuple[str, str], ...] = ()        # (VTEP address, VTEP MAC) per lease (vxlan)
    fdb: tuple[VxlanFdbEntry, ...] = ()            # per lease (vxlan)

    @classmethod
    def of(cls, leases: Sequence[Lease], backend: str) -> "PeerTables":
        leases = tuple(leases)
        if backend == "vxlan":
            vteps = tuple((lease.vtep_ip, vtep_mac(lease.node)) for lease in leases)
            routes = tuple(Route(lease.subnet, "flannel.1", via=lease.vtep_ip, onlink=True) for lease in leases)
            fdb = tuple(VxlanFdbEntry(mac, lease.public_ip, "flannel.1") for lease, (_, mac) in zip(leases, vteps))
            return cls(backend, leases, routes, FrozenRoutes(routes), vteps, fdb)
        if backend == "host-gw":
            routes = tuple(Route(lease.subnet, "eth0", via=lease.public_ip) for lease in leases)
            return cls(backend, leases, routes, FrozenRoutes(routes))
        return cls(backend, leases)


def add_peers(network, tables: PeerTables, index: int, cluster_cidr: IPv4Network) -> None:
    """What flanneld programs on the node of lease `index` for every other lease, in lease
    order: per peer a PERMANENT neighbour for its VTEP, an FDB entry `<VTEP MAC> dst <node IP>`
    and the route `<subnet> via <subnet>.0 dev flannel.1 onlink` (vxlan), the route `<subnet>
    via <node IP> dev eth0` (host-gw), or the udp proxy's table (udp)."""
    lease = tables.leases[index]
    ns = network.netns(lease.node)
    if tables.frozen_routes is not None:
        ns.main_table.load(tables.frozen_routes, without=tables.routes[index])
    if tables.backend == "vxlan":
        ns.neighbours.set_many("flannel.1", tables.vteps[:index] + tables.vteps[index + 1:], PERMANENT)
        ns.devices["flannel.1"].fdb_load(tables.fdb[:index] + tables.fdb[index + 1:])
    elif tables.backend == "udp":
        setup_udp_backend(network, lease, cluster_cidr, [*tables.leases[:index], *tables.leases[index + 1:]])


def setup_udp_backend(network, lease: Lease, cluster_cidr: IPv4Network, peers: list[Lease]) -> "UdpProxy":
    ns = network.netns(lease.node)
    # configureIface (pkg/backend/udp/udp_network_amd64.go) adds the route itself with
    # netlink.SCOPE_UNIVERSE, so `ip route` prints no "scope link" for it
    ns.route_add(str(cluster_cidr), dev="flannel0", scope="universe")
    proxy = UdpProxy(lease.node, lease.public_ip, {p.subnet: p.public_ip for p in peers})
    ns.devices["flannel0"].program = proxy
    network.udp_programs[(lease.node, UDP_PORT)] = proxy
    return proxy


def masquerade_rules(netfilter, cluster_cidr: IPv4Network, subnet: IPv4Network) -> None:
    """flanneld --ip-masq: FLANNEL-POSTRTG in order, and FLANNEL-FWD (iptables mode)."""
    c, s = str(cluster_cidr), str(subnet)
    comment = '-m comment --comment "flanneld masq"'
    netfilter.new_chain("nat", "FLANNEL-POSTRTG")
    netfilter.append("nat", "POSTROUTING", f'{comment} -j FLANNEL-POSTRTG')
    netfilter.append("nat", "FLANNEL-POSTRTG", f"-m mark --mark 0x4000/0x4000 {comment} -j RETURN")
    netfilter.append("nat", "FLANNEL-POSTRTG", f"-s {s} -d {c} {comment} -j RETURN")
    netfilter.append("nat", "FLANNEL-POSTRTG", f"-s {c} -d {s} {comment} -j RETURN")
    netfilter.append("nat", "FLANNEL-POSTRTG", f"! -s {c} -d {s} {comment} -j RETURN")
    netfilter.append("nat", "FLANNEL-POSTRTG", f"-s {c} ! -d 224.0.0.0/4 {comment} -j MASQUERADE --random-fully")
    netfilter.append("nat", "FLANNEL-POSTRTG", f"! -s {c} -d {c} {comment} -j MASQUERADE --random-fully")
    fwd = '-m comment --comment "flanneld forward"'
    netfilter.new_chain("filter", "FLANNEL-FWD")
    netfilter.append("filter", "FORWARD", f"{fwd} -j FLANNEL-FWD")
    netfilter.append("filter", "FLANNEL-FWD", f"-s {c} {fwd} -j ACCEPT")
    netfilter.append("filter", "FLANNEL-FWD", f"-d {c} {fwd} -j ACCEPT")


class UdpProxy:
    """flanneld's C proxy (udp backend): tun_to_udp and udp_to_tun (proxy_amd64.c)."""

    def __init__(self, node: str, public_ip: str, routes: dict[IPv4Network, str]):
        self.node = node
        self.public_ip = public_ip
        self.routes = routes
        self._by_len: dict[int, dict[int, str]] = {}
        for net, peer in routes.items():
            self._by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = peer
        self._lengths = sorted(self._by_len, reverse=True)

    def lookup(self, dst: str) -> str | None:
        addr = address_int(dst)
        for plen in self._lengths:
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            peer = self._by_len[plen].get(addr & mask)
            if peer is not None:
                return peer
        return None

    def from_tun(self, k: Kernel, tun: Tun, ip: IPv4, flow: Flow) -> None:
        """tun_to_udp: read a packet from flannel0 and send it in UDP to the peer's flanneld."""
        ns: Namespace = tun.netns
        peer = self.lookup(ip.dst)
        if peer is None:
            flow.end("dropped", Decision(Subsystem.FLANNEL, "tun_to_udp", FlannelReason.NO_ROUTE, Verdict.DROP,
                                         dst=ip.dst))
            k.icmp_send(ns, ip, 3, 0, flow)
            return
        inner = _decrement_ttl(ip, flow)
        if inner is None:
            return
        flow.end("delivered", Decision(Subsystem.FLANNEL, "tun_to_udp", FlannelReason.ENCAPSULATED, Verdict.ENCAPSULATE,
                                       changes=(field_change("ipv4", "ttl", ip.ttl, inner.ttl),
                                                field_change("outer-ipv4", "src", "", self.public_ip),
                                                field_change("outer-ipv4", "dst", "", peer)),
                                       tun=tun.name, peer=peer, port=UDP_PORT))
        outer = IPv4(self.public_ip, peer, IPPROTO_UDP, UDP(UDP_PORT, UDP_PORT, inner), ttl=ns.sysctl.ip_default_ttl,
                     id=0, df=True)
        out = flow.copy(Skb())
        out.note(Decision(Subsystem.FLANNEL, "sendto", FlannelReason.SEND, Verdict.SEND, src=self.public_ip, peer=peer,
                          port=UDP_PORT))
        k.ip_local_out(ns, outer, out)

    def udp_rcv(self, k: Kernel, ns: Namespace, outer: IPv4, flow: Flow) -> None:
        """udp_to_tun: a datagram on flanneld's socket (8285) is written to flannel0."""
        udp = outer.payload
        inner = udp.payload if isinstance(udp, UDP) else None
        if not isinstance(inner, IPv4):
            flow.end("dropped", Decision(Subsystem.FLANNEL, "udp_to_tun", FlannelReason.NOT_IPV4, Verdict.DROP))
            return
        inner = _decrement_ttl(inner, flow)
        if inner is None:
            return
        tun = ns.devices["flannel0"]
        flow.end("delivered", Decision(Subsystem.FLANNEL, "udp_to_tun", FlannelReason.DECAPSULATED, Verdict.DECAPSULATE,
                                       changes=(field_change("ipv4", "ttl", inner.ttl + 1, inner.ttl),),
                                       port=UDP_PORT, tun=tun.name))
        k.netif_receive_skb(tun, inner, flow.copy(Skb()))


def _decrement_ttl(ip: IPv4, flow: Flow) -> IPv4 | None:
    """proxy_amd64.c decrement_ttl: flanneld lowers the TTL itself and discards at 0."""
    if ip.ttl <= 1:
        flow.end("dropped", Decision(Subsystem.FLANNEL, "decrement_ttl", FlannelReason.TTL_ZERO, Verdict.DROP,
                                     ttl=ip.ttl))
        return None
    return replace(ip, ttl=ip.ttl - 1)
