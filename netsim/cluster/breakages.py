"""Breaking things, for the troubleshooting chapter.

Each function deletes one thing flanneld or the kernel set up, as the command in its
docstring would. Deleting what is gone already is an error, as it is for `ip` and `iptables`
(the message says so); break_forwarding, a sysctl write, may be repeated.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from .. import flannel
from ..addresses import parse_address
from ..errors import ConfigError
from ..vxlan import VXLAN_DEFAULT_PORT, VxlanDevice
from .builder import Builder
from .spec import MIN_MTU, ClusterSpec, Node


def _node_and_peer(spec: ClusterSpec, node: str, peer: str) -> tuple[Node, Node]:
    n, p = spec.check_node_name(node), spec.check_node_name(peer, "peer")
    if n is p:
        raise ConfigError(f"peer {peer!r} is {node!r} itself: name another node (flanneld programs {node} "
                          f"with a route, neighbour and FDB entry for each other node only)")
    return n, p


def _need_backend(spec: ClusterSpec, backend: str, what: str) -> None:
    if spec.backend != backend:
        raise ConfigError(f"{what} applies to the {backend} backend; this cluster uses {spec.backend}")


def break_fdb(spec: ClusterSpec, builder: Builder, node: str, peer: str) -> None:
    """`bridge fdb del MAC dev flannel.1` on `node`."""
    _need_backend(spec, "vxlan", "break_fdb")
    n, p = _node_and_peer(spec, node, peer)
    dev = builder.host(n.name).devices["flannel.1"]
    assert isinstance(dev, VxlanDevice)
    mac = flannel.vtep_mac(p.name)
    if mac not in dev.fdb:
        raise ConfigError(f"break_fdb({node!r}, {peer!r}): already broken: {node}'s flannel.1 has no FDB entry "
                          f"for {peer}'s VTEP MAC {mac} (bridge fdb del: No such file or directory)")
    dev.fdb_delete(mac)


def break_neighbour(spec: ClusterSpec, builder: Builder, node: str, peer: str) -> None:
    """`ip neigh del VTEP dev flannel.1` on `node`."""
    _need_backend(spec, "vxlan", "break_neighbour")
    n, p = _node_and_peer(spec, node, peer)
    neighbours = builder.host(n.name).neighbours
    vtep = p.lease.vtep_ip
    if neighbours.get("flannel.1", vtep) is None:
        raise ConfigError(f"break_neighbour({node!r}, {peer!r}): already broken: {node} has no neighbour entry "
                          f"for {peer}'s VTEP {vtep} on flannel.1 (ip neigh del: No such file or directory)")
    neighbours.delete("flannel.1", vtep)


def break_forwarding(spec: ClusterSpec, builder: Builder, node: str) -> None:
    """`sysctl -w net.ipv4.ip_forward=0` on `node`."""
    builder.host(spec.check_node_name(node).name).set_sysctl("net.ipv4.ip_forward", 0)


def break_masquerade(spec: ClusterSpec, builder: Builder, node: str) -> None:
    """`iptables -t nat -D FLANNEL-POSTRTG ...` (the pod-to-outside MASQUERADE rule) on `node`;
    in flannel's nftables mode `nft delete rule ip flannel-ipv4 postrtg handle N`, N that
    rule's handle as `nft -a list ruleset` shows it."""
    ns = builder.host(spec.check_node_name(node).name)
    if spec.flannel_nftables:
        wanted = f"ip saddr {spec.pod_cidr} ip daddr != 224.0.0.0/4 masquerade fully-random"
        chain = ns.netfilter.nftables.table("ip", "flannel-ipv4").chains["postrtg"]
        handle = next((r.handle for r in chain.rules if r.text == wanted), None)
        if handle is None:
            raise ConfigError(f"break_masquerade({node!r}): already broken: chain postrtg of table ip flannel-ipv4 "
                              f"on {node} has no rule '{wanted}'")
        ns.netfilter.nftables.run(f"delete rule ip flannel-ipv4 postrtg handle {handle}\n")
        return
    spec_text = f'-s {spec.pod_cidr} ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully'
    try:
        ns.netfilter.delete("nat", "FLANNEL-POSTRTG", spec_text)
    except ValueError:
        raise ConfigError(f"break_masquerade({node!r}): already broken: FLANNEL-POSTRTG on {node} has no "
                          f"MASQUERADE rule for {spec.pod_cidr} (iptables: Bad rule (does a matching rule "
                          f"exist in that chain?))") from None


def break_route(spec: ClusterSpec, builder: Builder, node: str, peer: str) -> None:
    """`ip route del SUBNET` on `node` (vxlan and host-gw)."""
    if spec.backend == "udp":
        raise ConfigError("break_route applies to the vxlan and host-gw backends; the udp backend routes the "
                          f"whole pod network {spec.pod_cidr} to flannel0, with no route per node")
    n, p = _node_and_peer(spec, node, peer)
    builder.host(n.name).route_del(str(p.subnet))


BACKEND_PORTS = {"vxlan": VXLAN_DEFAULT_PORT, "udp": flannel.UDP_PORT}


def backend_port_rule(spec: ClusterSpec) -> str:
    """The rule `break_backend_port` appends: the backend's UDP port dropped on arrival."""
    return f"-p udp -m udp --dport {BACKEND_PORTS[spec.backend]} -j DROP"


def break_backend_port(spec: ClusterSpec, builder: Builder, node: str) -> None:
    """`iptables -A INPUT -p udp -m udp --dport 8472 -j DROP` on `node`: a host firewall that
    lets no tunnelled packet in (8472 for vxlan, the kernel's default VXLAN port; 8285 for udp,
    flanneld's; flannel Documentation/troubleshooting.md "Firewalls")."""
    if spec.backend not in BACKEND_PORTS:
        raise ConfigError(f"break_backend_port applies to the vxlan and udp backends, which tunnel through a UDP "
                          f"port; this cluster uses {spec.backend}, which sends pod packets unencapsulated")
    ns = builder.host(spec.check_node_name(node).name)
    rule = backend_port_rule(spec)
    if rule in ns.netfilter.save("filter"):
        raise ConfigError(f"break_backend_port({node!r}): already broken: INPUT on {node} drops UDP port "
                          f"{BACKEND_PORTS[spec.backend]} already")
    ns.netfilter.append("filter", "INPUT", rule)


def break_public_ip(spec: ClusterSpec, builder: Builder, node: str, address: str) -> None:
    """flanneld on `node` chose the wrong interface (no `--iface`, or the wrong one): its
    `flannel.alpha.coreos.com/public-ip` annotation says `address`, and every other node's
    flanneld programs that address as `node`'s VTEP, `bridge fdb replace <VTEP MAC> dev
    flannel.1 dst ADDRESS` (handleSubnetEvents, pkg/backend/vxlan/vxlan_network.go). `node`'s
    own flannel.1 is left as it was (vxlan backend)."""
    _need_backend(spec, "vxlan", "break_public_ip")
    n = spec.check_node_name(node)
    addr = parse_address(address, "public IP")
    if str(addr) == n.lease.public_ip:
        raise ConfigError(f"break_public_ip({node!r}, {address!r}): {address} is {node}'s own address already; "
                          f"name an address its peers cannot reach it at (Vagrant's NAT address 10.0.2.15, say)")
    if addr.is_multicast or addr.is_unspecified or addr == IPv4Address("255.255.255.255") or addr.is_loopback:
        raise ConfigError(f"public IP {address!r} must be a unicast address, not multicast, loopback or unspecified")
    builder.materialize_all()             # every peer programs the address now
    mac = flannel.vtep_mac(n.name)
    for peer in spec.node_list:
        if peer is n:
            continue
        dev = builder.host(peer.name).devices["flannel.1"]
        assert isinstance(dev, VxlanDevice)
        dev.fdb_append(mac, str(addr))
    n.lease = replace(n.lease, public_ip=str(addr))


def set_mtu(builder: Builder, host: str, dev: str, mtu: int) -> None:
    """`ip link set DEV mtu MTU` on any host."""
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not MIN_MTU <= mtu <= 65535:
        raise ConfigError(f"MTU {mtu!r} is out of range {MIN_MTU}..65535")
    if not isinstance(dev, str):
        raise ConfigError(f"device {dev!r} must be a device name such as 'eth0', not {type(dev).__name__}")
    builder.host(host).device(dev).mtu = mtu
