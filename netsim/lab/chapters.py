"""Exchanges the chapters show beyond the six scenarios, each on the model and on the kernel.

The scenario family (netsim.lab.conformance) runs the six paths and two extras; the chapters
walk a few more: chapter 1's small networks of namespaces (a veth pair, a bridge, a router with
forwarding on, a DROP rule and a MASQUERADE rule), a pod calling its own address (chapter 2),
a NodePort with `externalTrafficPolicy: Local` entered through either node (chapter 7), and a
ClusterIP whose endpoint is on the client's own bridge with bridge-nf-call-iptables off
(chapter 13: the reply is bridged past the un-DNAT).
Each is a `LabCase` (netsim.lab.breakages) run by `run_case`: its network in a lab of its own,
frames and drop counters compared.

Chapter 1's networks are bare `netsim.Network`s, not clusters; `NetworkCluster` gives one the
little the lab asks of a cluster (its network, and what a name in `send()` stands for: a
namespace sends from its first address, an address is itself).
"""

from __future__ import annotations

from ..addresses import parse_address
from ..cluster import Cluster, reference_cluster
from ..cluster.endpoints import Endpoint
from ..errors import ConfigError
from ..programs.dns import query
from ..stack import Network
from ..trace import Trace
from .breakages import TCP_WAIT, LabCase


class NetworkCluster:
    """A bare Network as the lab drives a cluster: no backend, namespaces by name, addresses."""

    backend = "none"

    def __init__(self, network: Network):
        self.network = network

    def resolve(self, name: str, *, source: bool = False, from_ns: str | None = None) -> Endpoint:
        if name in self.network.namespaces:
            ns = self.network.namespaces[name]
            addrs = [a for d in ns.devices.values() if d.kind != "loopback" for a in d.addresses]
            if not addrs:
                raise ConfigError(f"namespace {name!r} has no address to send from")
            return Endpoint(name, str(addrs[0].ip))
        return Endpoint(None, str(parse_address(name, "destination")))

    def netns(self, name: str):
        return self.network.netns(name)

    def send(self, src: str, dst: str, proto: str | None = None, dport: int | None = None,
             payload: bytes | None = None) -> Trace:
        return self.network.send(src, dst, proto or "icmp", dport, payload=payload)


# chapter 1's networks, built as its cells build them ------------------------------------------

def cable() -> NetworkCluster:
    """Two namespaces on one veth pair, 10.0.0.0/24."""
    net = Network()
    for name in ("red", "blue"):
        net.add_netns(name)
    net.veth("red", "eth0", "blue", "eth0")
    net.netns("red").addr_add("eth0", "10.0.0.2/24")
    net.netns("blue").addr_add("eth0", "10.0.0.3/24")
    return NetworkCluster(net)


def bridged() -> NetworkCluster:
    """red and blue on ports of the bridge br0 in `host`."""
    net = Network()
    for name in ("red", "blue", "host"):
        net.add_netns(name)
    net.veth("red", "eth0", "host", "veth-red")
    net.veth("blue", "eth0", "host", "veth-blue")
    host = net.netns("host")
    br0 = net.bridge("host", "br0")
    br0.attach(host.device("veth-red"))
    br0.attach(host.device("veth-blue"))
    net.netns("red").addr_add("eth0", "10.0.0.2/24")
    net.netns("blue").addr_add("eth0", "10.0.0.3/24")
    return NetworkCluster(net)


def routed(forwarding: bool = True, rules: tuple[tuple[str, str, str], ...] = (),
           flushed: tuple[tuple[str, str], ...] = ()) -> NetworkCluster:
    """red (10.1.0.0/24) and blue (10.2.0.0/24) behind `router`; blue listens on TCP 80;
    `rules` are (table, chain, rule) appended on the router, after `flushed` (table, chain)
    were flushed."""
    net = Network()
    for name in ("red", "blue", "router"):
        net.add_netns(name)
    net.veth("red", "eth0", "router", "to-red")
    net.veth("blue", "eth0", "router", "to-blue")
    router = net.netns("router")
    router.addr_add("to-red", "10.1.0.1/24")
    router.addr_add("to-blue", "10.2.0.1/24")
    for name, addr, gw in (("red", "10.1.0.2/24", "10.1.0.1"), ("blue", "10.2.0.2/24", "10.2.0.1")):
        net.netns(name).addr_add("eth0", addr)
        net.netns(name).route_add("default", via=gw)
    router.set_sysctl("net.ipv4.ip_forward", 1 if forwarding else 0)
    net.netns("blue").listen("tcp", 80)
    for table, chain in flushed:
        router.netfilter.flush(table, chain)
    for table, chain, rule in rules:
        router.netfilter.append(table, chain, rule)
    return NetworkCluster(net)


# chapter 13's DNS query for web, sent to kube-dns (the coredns pod answers it)
DNS_QUERY = query(0x2A, "web.default.svc.cluster.local").to_bytes()


def _bridge_nf_off() -> Cluster:
    """node1 with net.bridge.bridge-nf-call-iptables 0: bridged frames skip iptables."""
    cluster = reference_cluster()
    cluster.netns("node1").set_sysctl("net.bridge.bridge-nf-call-iptables", 0)
    return cluster


def _local_policy() -> Cluster:
    cluster = reference_cluster()
    cluster.add_service("web-local", port=81, target_port=8080, pods=["pod-c"], node_port=30081,
                        external_traffic_policy="Local")
    return cluster


CASES = (
    LabCase("toolbox-cable", "chapter 1: a ping across a veth pair", cable, "red", "10.0.0.3"),
    LabCase("toolbox-bridge", "chapter 1: a ping through a bridge", bridged, "red", "10.0.0.3"),
    LabCase("toolbox-no-forwarding", "chapter 1: a router with ip_forward 0",
            lambda: routed(forwarding=False), "red", "10.2.0.2"),
    LabCase("toolbox-router", "chapter 1: a ping through a router", routed, "red", "10.2.0.2"),
    LabCase("toolbox-drop", "chapter 1: a FORWARD rule drops TCP to port 80",
            lambda: routed(rules=(("filter", "FORWARD", "-p tcp --dport 80 -j DROP"),)), "red", "10.2.0.2",
            "tcp", dport=80, wait=TCP_WAIT),
    LabCase("toolbox-masquerade", "chapter 1: MASQUERADE on the router",
            lambda: routed(rules=(("nat", "POSTROUTING", "-s 10.1.0.0/24 -o to-blue -j MASQUERADE"),),
                           flushed=(("filter", "FORWARD"),)),
            "red", "10.2.0.2", "tcp", dport=80, wait=TCP_WAIT),
    LabCase("own-address", "chapter 2: a pod connects to its own address", reference_cluster,
            "pod-a", "10.244.0.2:8080", "tcp"),
    LabCase("local-policy-node1", "chapter 7: NodePort with externalTrafficPolicy Local, no endpoint on node1",
            _local_policy, "ext", "192.168.50.11:30081", "tcp", wait=TCP_WAIT),
    LabCase("clusterip-same-node-brnf-off", "chapter 13: a ClusterIP whose endpoint shares the client's bridge, "
            "bridge-nf-call-iptables 0", _bridge_nf_off, "pod-b", "10.96.0.10:53", "udp", payload=DNS_QUERY),
    LabCase("clusterip-same-node-brnf-off-tcp", "chapter 13: the same over TCP: pod-b's kernel answers the "
            "un-DNATed SYN-ACK with a bare RST", _bridge_nf_off, "pod-b", "10.96.0.10:53", "tcp", wait=TCP_WAIT),
    LabCase("local-policy-node2", "chapter 7: NodePort with externalTrafficPolicy Local, endpoint on node2",
            _local_policy, "ext", "192.168.50.12:30081", "tcp"),
)
BY_KEY = {case.key: case for case in CASES}
