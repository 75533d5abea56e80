"""NetworkPolicy with kube-network-policies beside Flannel: the agent's verdicts, the table it
programs, and netsim's nftables model running that table on node2 (tests/npol_topology.py)."""

from __future__ import annotations

import pytest

from netsim.endpoints import tcp_syn, tcp_synack
from netsim.errors import ConfigError, InvalidNameError
from netsim.networkpolicy import (
    ALLOWED, NO_RULE, NOT_SELECTED, LabelSelector, NetworkPolicy, PodInfo, PolicyDecision, PolicyEngine,
    PolicyPeer, PolicyPort, PolicyRule,
)
from netsim.skb import Skb
from tests.npol_topology import NAMESPACES, PODS, POLICIES, engine, forward, model_ruleset, node2_netfilter, rule_hits

BOTH = ("default/default-deny", "default/allow-frontend")


def test_the_agent_allows_pod_a_by_the_allow_rule():
    assert engine().evaluate("10.244.0.2", "10.244.1.3", "TCP", 8080) == PolicyDecision(
        "accept", ALLOWED, "ingress", "default/pod-c", BOTH, "default/allow-frontend", 0)


def test_the_agent_drops_pod_b_whose_namespace_is_not_selected():
    assert engine().evaluate("10.244.0.3", "10.244.1.3", "TCP", 8080) == PolicyDecision(
        "drop", NO_RULE, "ingress", "default/pod-c", BOTH)


@pytest.mark.parametrize("src, dst, proto, port, verdict, reason", [
    ("10.244.0.2", "10.244.1.3", "TCP", 9090, "drop", NO_RULE),        # the port is not in the rule
    ("10.244.0.2", "10.244.1.3", "UDP", 8080, "drop", NO_RULE),        # nor the protocol
    ("203.0.113.10", "10.244.1.3", "TCP", 8080, "drop", NO_RULE),      # no pod: selectors never match
    ("10.244.1.3", "10.244.0.2", "TCP", 8080, "accept", NOT_SELECTED),  # pod-a is selected by nothing
    ("10.244.0.3", "10.244.0.2", "TCP", 80, "accept", NOT_SELECTED),
])
def test_the_agent_verdicts(src, dst, proto, port, verdict, reason):
    decision = engine().evaluate(src, dst, proto, port)
    assert (decision.verdict, decision.reason) == (verdict, reason)


def test_egress_is_evaluated_first_and_an_empty_rule_list_allows_all():
    egress = NetworkPolicy("no-egress", "shop", LabelSelector.of(app="frontend"), ("Egress",))
    allow_all = NetworkPolicy("open", "default", LabelSelector.of(app="web"), ingress=())
    eng = PolicyEngine(NAMESPACES, PODS, (egress, allow_all))
    assert eng.evaluate("10.244.0.2", "10.244.1.3", "TCP", 8080) == PolicyDecision(
        "drop", NO_RULE, "egress", "shop/pod-a", ("shop/no-egress",))
    assert eng.evaluate("10.244.0.3", "10.244.1.3", "TCP", 1) == PolicyDecision(
        "accept", ALLOWED, "ingress", "default/pod-c", ("default/open",), "default/open")


def test_peer_semantics_pod_selector_alone_means_the_policys_namespace():
    eng = PolicyEngine(NAMESPACES, PODS, (NetworkPolicy("same-ns", "default", LabelSelector.of(app="web"), ingress=(
        PolicyRule((PolicyPeer(LabelSelector.of(app="frontend")),)),)),))
    assert eng.evaluate("10.244.0.3", "10.244.1.3", "TCP", 8080).verdict == "accept"   # default/pod-b
    assert eng.evaluate("10.244.0.2", "10.244.1.3", "TCP", 8080).verdict == "drop"     # shop/pod-a
    block = PolicyEngine(NAMESPACES, PODS, (NetworkPolicy("cidr", "default", ingress=(
        PolicyRule((PolicyPeer(ip_block="203.0.113.0/24"),)),)),))
    assert block.evaluate("203.0.113.10", "10.244.1.3", "TCP", 8080).verdict == "accept"
    assert block.evaluate("10.244.0.3", "10.244.1.3", "TCP", 8080).verdict == "drop"


def test_managed_ips_are_the_nodes_own_selected_pods():
    assert engine().managed_ips("node2") == ("10.244.1.3",)
    assert engine().managed_ips("node1") == ("10.244.0.3",)   # default-deny selects pod-b too; pod-a is in shop


def test_kube_network_policies_own_table_text():
    assert engine().ruleset("node2", real=True).splitlines() == [
        "add table inet kube-network-policies",
        "delete table inet kube-network-policies",
        "add table inet kube-network-policies",
        "add set inet kube-network-policies podips-v4 { type ipv4_addr ; }",
        "add set inet kube-network-policies podips-v6 { type ipv6_addr ; }",
        "add chain inet kube-network-policies postrouting { type filter hook postrouting priority 95 ; }",
    ] + [f"add rule inet kube-network-policies postrouting meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type "
         f"{t} accept" for t in ("nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit",
                                 "nd-neighbor-advert", "nd-redirect")] + [
        "add rule inet kube-network-policies postrouting meta skuid 0 counter accept",
        "add rule inet kube-network-policies postrouting ct label 100 ct state established,related counter accept",
        "add rule inet kube-network-policies postrouting meta nfproto ipv4 ip saddr @podips-v4 queue to 100",
        "add rule inet kube-network-policies postrouting meta nfproto ipv4 ip daddr @podips-v4 queue to 100",
        "add rule inet kube-network-policies postrouting meta nfproto ipv6 ip6 saddr @podips-v6 queue to 100",
        "add rule inet kube-network-policies postrouting meta nfproto ipv6 ip6 daddr @podips-v6 queue to 100",
        "add rule inet kube-network-policies postrouting ct label set 100",
        "add chain inet kube-network-policies input { type filter hook input priority 101 ; }",
        'add rule inet kube-network-policies input iifname "lo" accept',
        "add rule inet kube-network-policies input meta nfproto ipv4 ip saddr @podips-v4 ct state new queue to 100",
        "add rule inet kube-network-policies input meta nfproto ipv6 ip6 saddr @podips-v6 ct state new queue to 100",
        "add element inet kube-network-policies podips-v4 { 10.244.1.3 }",
    ]
    assert "queue flags bypass to 100" in engine().ruleset("node2", real=True, fail_open=True)


def test_version_1_0_0_the_flannel_charts_pin_has_no_input_chain():
    old = engine().ruleset("node2", real=True, version="v1.0.0").splitlines()
    new = engine().ruleset("node2", real=True).splitlines()
    assert [line for line in new if line not in old] == [
        "add chain inet kube-network-policies input { type filter hook input priority 101 ; }",
        'add rule inet kube-network-policies input iifname "lo" accept',
        "add rule inet kube-network-policies input meta nfproto ipv4 ip saddr @podips-v4 ct state new queue to 100",
        "add rule inet kube-network-policies input meta nfproto ipv6 ip6 saddr @podips-v6 ct state new queue to 100"]
    with pytest.raises(ConfigError, match="version 'v0.9.0' is not modelled"):
        engine().ruleset("node2", version="v0.9.0")


def test_the_model_table_as_netsim_lists_it():
    assert model_ruleset().list_ruleset(handles=True).splitlines()[1:] == [
        "\tset podips-v4 { # handle 1",
        "\t\ttype ipv4_addr",
        "\t\telements = { 10.244.1.3 }",
        "\t}",
        "",
        "\tchain postrouting { # handle 2",
        "\t\ttype filter hook postrouting priority srcnat - 5; policy accept;",
        "\t\tct state established,related accept # handle 5",
        "\t\tip saddr @podips-v4 goto nfqueue-100 # handle 6",
        "\t\tip daddr @podips-v4 goto nfqueue-100 # handle 7",
        "\t}",
        "",
        "\tchain input { # handle 3",
        "\t\ttype filter hook input priority 101; policy accept;",
        '\t\tiifname "lo" accept # handle 8',
        "\t\tip saddr @podips-v4 ct state new goto nfqueue-100 # handle 9",
        "\t}",
        "",
        "\tchain nfqueue-100 { # handle 4",
        '\t\tip daddr 10.244.1.3 ip saddr 10.244.0.2 tcp dport 8080 counter packets 0 bytes 0 accept comment '
        '"default/allow-frontend ingress rule 0" # handle 10',
        '\t\tip daddr 10.244.1.3 counter packets 0 bytes 0 drop comment "default/pod-c isolated for ingress" '
        '# handle 11',
        "\t\taccept # handle 12",
        "\t}",
        "}",
    ]


def test_a_syn_from_pod_b_is_dropped_by_the_agents_answer():
    hooks = node2_netfilter()
    verdict, decisions = forward(hooks, tcp_syn("10.244.0.3", "10.244.1.3", 40000, 8080, 1410, 63, 1),
                                 "flannel.1", "cni0")
    assert verdict == "DROP"
    assert rule_hits(decisions) == [("postrouting", 7, "goto nfqueue-100"), ("nfqueue-100", 11, "drop")]
    assert engine().evaluate("10.244.0.3", "10.244.1.3", "TCP", 8080).verdict == "drop"


def test_a_syn_from_pod_a_is_accepted_and_its_reply_passes_as_established():
    hooks = node2_netfilter()
    syn = tcp_syn("10.244.0.2", "10.244.1.3", 40001, 8080, 1410, 63, 1)
    verdict, decisions = forward(hooks, syn, "flannel.1", "cni0")
    assert verdict == "ACCEPT"
    assert rule_hits(decisions) == [("postrouting", 7, "goto nfqueue-100"), ("nfqueue-100", 10, "accept")]
    verdict, decisions = forward(hooks, tcp_synack(syn, 1410, 64), "cni0", "flannel.1")
    assert (verdict, rule_hits(decisions)) == ("ACCEPT", [("postrouting", 5, "accept")])


def test_the_chain_agrees_with_the_agent_on_every_packet():
    sources = [p.ip for p in PODS] + ["203.0.113.10"]
    for src in sources:
        for proto, port in (("TCP", 8080), ("TCP", 9090), ("UDP", 8080)):
            if src == "10.244.1.3":
                continue
            hooks = node2_netfilter()
            from netsim.endpoints import udp_datagram
            packet = (tcp_syn(src, "10.244.1.3", 40000, port, 1410, 63, 1) if proto == "TCP"
                      else udp_datagram(src, "10.244.1.3", 40000, port, b"x", 63, 1))
            verdict, _ = forward(hooks, packet, "flannel.1", "cni0")
            expected = engine().evaluate(src, "10.244.1.3", proto, port).verdict
            assert (src, proto, port, verdict) == (src, proto, port, expected.upper())


def test_node1s_table_isolates_pod_b_and_a_node_without_selected_pods_queues_nothing():
    assert [line for line in engine().ruleset("node1").splitlines() if "nfqueue-100 ip" in line or "element" in line] == [
        'add rule ip kube-network-policies nfqueue-100 ip daddr 10.244.0.3 counter drop comment '
        '"default/pod-b isolated for ingress"',
        "add element ip kube-network-policies podips-v4 { 10.244.0.3 }"]
    text = engine().ruleset("node3")
    assert "add element" not in text and "nfqueue-100 ip daddr" not in text


def test_bad_policies_are_refused():
    with pytest.raises(ConfigError, match="needs a podSelector, a namespaceSelector or an ipBlock"):
        PolicyPeer()
    with pytest.raises(ConfigError, match="ipBlock '10.0.0.0/33'"):
        PolicyPeer(ip_block="10.0.0.0/33")
    with pytest.raises(ConfigError, match="protocol 'ICMP'"):
        PolicyPort("ICMP")
    with pytest.raises(ConfigError, match="policyType 'Both'"):
        NetworkPolicy("x", "default", policy_types=("Both",))
    with pytest.raises(InvalidNameError):
        PodInfo("Pod_A", "default", "10.244.0.2")
    with pytest.raises(ConfigError, match="namespace 'nosuch'"):
        PolicyEngine(NAMESPACES, (PodInfo("pod-x", "nosuch", "10.244.0.9"),), POLICIES)
    egress = NetworkPolicy("no-egress", "default", LabelSelector.of(app="web"), ("Egress",))
    with pytest.raises(ConfigError, match="egress policies are evaluated"):
        PolicyEngine(NAMESPACES, PODS, (egress,)).ruleset("node2")
