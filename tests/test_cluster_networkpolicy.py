"""NetworkPolicy objects in the Cluster (tests/netpol_cluster.py): the objects as the API keeps
them, kube-network-policies' table on each node's nf_tables state (the form netsim and this
kernel run: the agent's verdicts in chain nfqueue-100, netsim.networkpolicy), and `send()`
from an allowed and a denied pod, with the rule that decided, in both kube-proxy modes.
tests/test_lab_cluster_networkpolicy.py runs the same on the kernel."""

from __future__ import annotations

import pytest

import netsim
from netsim import ConfigError
from netsim.decision import NftRuleRef, Verdict
from netsim.networkpolicy import LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule
from netsim.views import outcome_text
from tests.netpol_cluster import netpol_cluster


def test_the_objects_as_the_api_keeps_them():
    c = netpol_cluster()
    assert c.spec.network_policies[("default", "allow-frontend")] == NetworkPolicy(
        "allow-frontend", "default", LabelSelector.of(app="web"), ("Ingress",), ingress=(PolicyRule(
            (PolicyPeer(LabelSelector.of(app="frontend"), LabelSelector.of(team="shop")),), (PolicyPort("TCP", 8080),)),))
    assert c.spec.network_policies[("default", "default-deny")] == NetworkPolicy("default-deny", "default")
    from netsim.cluster.policies import namespaces
    assert [(n.name, n.labels) for n in namespaces(c.spec)] == [
        ("default", (("kubernetes.io/metadata.name", "default"),)),
        ("kube-system", (("kubernetes.io/metadata.name", "kube-system"),)),
        ("shop", (("kubernetes.io/metadata.name", "shop"), ("team", "shop")))]


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_each_node_holds_the_agents_table_for_its_own_pods(proxy_mode):
    c = netpol_cluster(proxy_mode)
    node2 = c.show("node2", "nft list ruleset")
    assert node2.count("table ip kube-network-policies {") == 1
    assert "\t\telements = { 10.244.1.2 }" in node2.split("table ip kube-network-policies")[1]
    assert ('\t\tip daddr 10.244.1.2 ip saddr 10.244.0.2 tcp dport 8080 counter packets 0 bytes 0 accept comment '
            '"default/allow-frontend ingress rule 0"') in node2
    node1 = c.show("node1", "nft list ruleset").split("table ip kube-network-policies")[1]
    assert "\t\telements = { 10.244.0.3 }" in node1            # pod-b: default-deny selects it; pod-a is in shop
    assert 'ip daddr 10.244.0.3 counter packets 0 bytes 0 drop comment "default/pod-b isolated for ingress"' in node1


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_a_denied_syn_is_dropped_on_the_destinations_node_by_the_agents_answer(proxy_mode):
    c = netpol_cluster(proxy_mode)
    trace = c.send("pod-b", "pod-c", proto="tcp")
    assert outcome_text(trace.outcome) == "no answer reached the sender"
    (dropped,) = [h for h in trace.request if h.reason is not None and h.reason.verdict == Verdict.DROP]
    assert (dropped.where, dropped.direction) == ("node2/flannel.1", "rx")        # forwarded: POSTROUTING
    rules = [d.consulted[0] for d in dropped.decisions if d.consulted and isinstance(d.consulted[0], NftRuleRef)
             and d.consulted[0].table == "kube-network-policies"]
    assert [(r.hook, r.chain, r.handle, r.verdict) for r in rules] == [
        ("POSTROUTING", "postrouting", 7, "goto nfqueue-100"), ("POSTROUTING", "nfqueue-100", 11, "drop")]
    assert rules[1].comment == "default/pod-c isolated for ingress"
    assert dropped.reason.verdict == Verdict.DROP


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_an_allowed_syn_passes_by_the_allow_rule_and_its_reply_as_established(proxy_mode):
    c = netpol_cluster(proxy_mode)
    trace = c.send("pod-a", "pod-c", proto="tcp")
    assert outcome_text(trace.outcome) == "connected to 10.244.1.2:8080 (SYN-ACK)"
    hits = [(h.where, h.role, d.consulted[0].chain, d.consulted[0].handle, d.consulted[0].verdict)
            for h in trace.hops for d in h.decisions
            if d.consulted and isinstance(d.consulted[0], NftRuleRef) and d.consulted[0].table == "kube-network-policies"
            and d.consulted[0].handle]          # rules only, not the base chains' policies
    assert hits == [("node2/flannel.1", "request", "postrouting", 7, "goto nfqueue-100"),
                    ("node2/flannel.1", "request", "nfqueue-100", 10, "accept"),       # the agent's NF_ACCEPT
                    ("node2/cni0", "reply", "postrouting", 5, "accept"),               # established: no queue
                    ("node1/flannel.1", "reply", "postrouting", 5, "accept")]
    assert outcome_text(c.send("pod-a", "pod-c", proto="udp").outcome) == "no answer reached the sender"


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="x", egress=[]), "policyTypes Egress is not written into netsim's table"),
    (dict(name="x", ingress=[{"from": [{"pod_selector": {"app": "a"}}], "port": []}]), "takes only the keys 'from'"),
    (dict(name="x", ingress=[{"from": [{}]}]), "takes pod_selector, namespace_selector or ip_block"),
    (dict(name="x", ingress=[{"from": [{"ip_block": "10.0.0.0/33"}]}]), "ipBlock '10.0.0.0/33' is not an IPv4 CIDR"),
    (dict(name="x", ingress=[{"ports": [{"protocol": "ICMP"}]}]), "protocol 'ICMP' is not one of TCP, UDP, SCTP"),
    (dict(name="X"), "pod name 'X'"),
    (dict(name="x", pod_selector={"app": "a b"}), "label app='a b'"),
    (dict(name="x", ingress="all"), "must be a list of dicts"),
    (dict(name="default-deny"), "networkpolicy default/default-deny exists already"),
])
def test_refusals(kwargs, message):
    c = netpol_cluster()
    with pytest.raises(ConfigError) as err:
        c.add_network_policy(**kwargs)
    assert message in str(err.value)


def test_without_a_policy_no_table_is_written():
    c = netsim.reference_cluster()
    assert "kube-network-policies" not in c.show("node2", "nft list ruleset")
