"""The NetworkPolicy example both sides use: namespaces, pods, a default-deny ingress policy and one
allow rule, and node2's side of a forwarded packet (tests/test_networkpolicy.py and
tests/test_lab_networkpolicy.py, which loads the same ruleset into a real namespace).

pod-a (namespace shop, team=shop, app=frontend) and pod-b (namespace default, app=frontend) on
node1; pod-c (namespace default, app=web) on node2, selected by both policies:
- default/default-deny: podSelector {} , policyTypes [Ingress], no ingress rules;
- default/allow-frontend: podSelector app=web, ingress from pods app=frontend in namespaces
  team=shop, TCP port 8080.
"""

from __future__ import annotations

from types import SimpleNamespace

from netsim.conntrack import Conntrack
from netsim.netfilter.nft import NftRuleset
from netsim.netfilter import Netfilter
from netsim.networkpolicy import (
    LabelSelector, Namespace, NetworkPolicy, PodInfo, PolicyEngine, PolicyPeer, PolicyPort, PolicyRule,
)
from netsim.skb import Skb

NAMESPACES = (Namespace("default", (("kubernetes.io/metadata.name", "default"),)),
              Namespace("shop", (("kubernetes.io/metadata.name", "shop"), ("team", "shop"))))
PODS = (PodInfo("pod-a", "shop", "10.244.0.2", (("app", "frontend"),), "node1"),
        PodInfo("pod-b", "default", "10.244.0.3", (("app", "frontend"),), "node1"),
        PodInfo("pod-c", "default", "10.244.1.3", (("app", "web"),), "node2"))
POLICIES = (
    NetworkPolicy("default-deny", "default"),
    NetworkPolicy("allow-frontend", "default", LabelSelector.of(app="web"), ingress=(
        PolicyRule((PolicyPeer(LabelSelector.of(app="frontend"), LabelSelector.of(team="shop")),),
                   (PolicyPort("TCP", 8080),)),)),
)
NODE2 = {"cni0": "10.244.1.1", "eth0": "192.168.50.12"}


def engine() -> PolicyEngine:
    return PolicyEngine(NAMESPACES, PODS, POLICIES)


def model_ruleset() -> NftRuleset:
    ruleset = NftRuleset()
    ruleset.run(engine().ruleset("node2"))
    return ruleset


class Node2:
    """What node2's Netfilter asks of its namespace."""

    name = "node2"
    sysctl = SimpleNamespace(ip_local_port_range=(32768, 60999))

    def __init__(self) -> None:
        self.conntrack = Conntrack(self)

    def is_local_address(self, addr: str) -> bool:
        return addr in NODE2.values() or addr.startswith("127.")

    def masquerade_source(self, outdev: str, nexthop: str | None) -> str:
        return NODE2[outdev]


def node2_netfilter() -> Netfilter:
    """node2's netfilter with the policy table as its nf_tables state and no iptables table."""
    nf = Netfilter(Node2())  # type: ignore[arg-type]
    nf.nftables = model_ruleset()
    return nf


def forward(hooks: Netfilter, packet, indev: str, outdev: str, skb: Skb | None = None):
    """A packet node2 forwards: PREROUTING, FORWARD, POSTROUTING; (verdict, decisions)."""
    skb = skb or Skb()
    decisions = []
    for hook, i, o in (("PREROUTING", indev, None), ("FORWARD", indev, outdev), ("POSTROUTING", None, outdev)):
        result = hooks.hook(hook, packet, skb, i, o)
        decisions += result.decisions
        if result.verdict != "ACCEPT":
            return result.verdict, decisions
        packet = result.packet
    return "ACCEPT", decisions


def rule_hits(decisions) -> list[tuple[str, int, str]]:
    """(chain, handle, verdict) of every nftables rule that matched, (chain, 0, policy) for a policy."""
    out = []
    for d in decisions:
        for ref in d.consulted:
            if type(ref).__name__ == "NftRuleRef" and d.function == "nft_do_chain":
                out.append((ref.chain, ref.handle, ref.verdict))
    return out
