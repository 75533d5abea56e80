"""The node the nftables tests use, on both sides: the Services and node settings kube-proxy
and flannel are given, the node's addresses and routes, and netsim's side of a packet passing
through it (tests/test_nft.py, and tests/test_lab_nft.py which builds the same node in real
namespaces)."""

from __future__ import annotations

from ipaddress import IPv4Network
from types import SimpleNamespace

from netsim import flannel_nft, kubeproxy_nft
from netsim.conntrack import Conntrack
from netsim.decision import NftRuleRef
from netsim.kubeproxy import Service
from netsim.netfilter.nft import NftRuleset
from netsim.netfilter import Netfilter
from netsim.skb import Skb

CLUSTER = IPv4Network("10.244.0.0/16")
SUBNET = IPv4Network("10.244.0.0/24")
NODE_ADDRS = {"cni0": "10.244.0.1", "eth0": "192.168.50.11", "eth1": "203.0.113.1"}
HOSTS = {"pod-a": "10.244.0.2", "pod-b": "10.244.0.3", "remote": "10.244.1.2", "ext": "203.0.113.10"}
SERVICES = [
    Service.single("web", "10.96.0.100", 80, 8080, "tcp", 30080, "Cluster", [("pod-c", "10.244.1.2")]),
    Service.single("near", "10.96.0.101", 80, 8080, "tcp", None, "Cluster", [("pod-a", "10.244.0.2")]),
    Service.single("local", "10.96.0.102", 80, 8080, "tcp", 30081, "Local", [("pod-a", "10.244.0.2")]),
    Service.single("remote-local", "10.96.0.103", 80, 8080, "tcp", 30082, "Local", [("pod-c", "10.244.1.2")]),
    Service.single("empty", "10.96.0.104", 80, 8080, "tcp", 30083, "Cluster", []),
    Service.single("both", "10.96.0.105", 53, 53, "udp", None, "Cluster", [("pod-a", "10.244.0.2"), ("pod-c", "10.244.1.2")]),
]
NODE = kubeproxy_nft.NodeConfig(str(CLUSTER), ("10.96.0.0/12",), (NODE_ADDRS["eth0"],),
                                frozenset({"pod-a", "pod-b"}))

def batches(nodeport_addresses: str = "primary") -> list[tuple[str, bool]]:
    node = NODE if nodeport_addresses == "primary" else \
        kubeproxy_nft.NodeConfig(NODE.cluster_cidr, NODE.service_cidrs, NODE.node_ips, NODE.local_pods, "all")
    return [(kubeproxy_nft.transaction(SERVICES, node), False)] + flannel_nft.batches(CLUSTER, SUBNET)


def model_ruleset(nodeport_addresses: str = "primary") -> NftRuleset:
    ruleset = NftRuleset()
    for text, check in batches(nodeport_addresses):
        (ruleset.check if check else ruleset.run)(text)
    return ruleset


class ModelNode:
    """What the node's Netfilter asks of its namespace."""

    name = "node"
    sysctl = SimpleNamespace(ip_local_port_range=(32768, 60999))

    def __init__(self) -> None:
        self.conntrack = Conntrack(self)

    def is_local_address(self, addr: str) -> bool:
        return addr in NODE_ADDRS.values() or addr.startswith("127.")

    def masquerade_source(self, outdev: str, nexthop: str | None) -> str:
        return NODE_ADDRS[outdev]


def route(dst: str) -> tuple[str | None, str | None]:
    """The node's routes: (output device, next hop); (None, None) for a local address."""
    if dst in NODE_ADDRS.values():
        return None, None
    if dst.startswith("10.244.0."):
        return "cni0", None
    if dst.startswith("203.0.113."):
        return "eth1", None
    return "eth0", "192.168.50.12"


def node_netfilter(ruleset: NftRuleset) -> Netfilter:
    """The node's netfilter with `ruleset` as its nf_tables state and no iptables table."""
    nf = Netfilter(ModelNode())
    nf.nftables = ruleset
    return nf


def model_pass(hooks: Netfilter, packet, indev: str):
    """One packet arriving on `indev`: PREROUTING, then INPUT or FORWARD and POSTROUTING."""
    skb = Skb()
    events = []
    result = hooks.hook("PREROUTING", packet, skb, indev, None)
    events += result.decisions
    if result.verdict != "ACCEPT":
        return result.verdict, result.packet, events
    outdev, nexthop = route(result.packet.dst)
    if outdev is None:
        result = hooks.hook("INPUT", result.packet, skb, indev, None)
        return result.verdict, result.packet, events + result.decisions
    result = hooks.hook("FORWARD", result.packet, skb, indev, outdev)
    events += result.decisions
    if result.verdict != "ACCEPT":
        return result.verdict, result.packet, events
    result = hooks.hook("POSTROUTING", result.packet, skb, None, outdev, nexthop)
    return result.verdict, result.packet, events + result.decisions


def model_events(decisions) -> list[tuple[str, str, int, str]]:
    """(table, chain, handle, verdict) per rule that matched, (table, chain, 0, "policy P") per policy."""
    out = []
    for d in decisions:
        for ref in d.consulted:
            if isinstance(ref, NftRuleRef) and d.function == "nft_do_chain":
                out.append((ref.table, ref.chain, ref.handle, ref.verdict if ref.handle else ref.text))
    return out
