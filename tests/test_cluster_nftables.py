"""A cluster whose kube-proxy runs in nftables mode (`Cluster(proxy_mode="nftables")`) and whose
flanneld writes its rules with nftables (`flannel_nftables=True`): the rulesets on the nodes,
`nft list ruleset`, the decisions a NodePort SYN and its reply meet on the node, and the
refusals. tests/test_lab_cluster_nftables.py runs the same clusters on the kernel."""

from __future__ import annotations

import pytest

from netsim import Cluster, ConfigError
from netsim.decision import NatReason, NetfilterReason, NftRuleRef, Verdict
from netsim.kubeproxy_nft import endpoint_chain, external_chain, service_chain
from netsim.views import outcome_text


def nft_cluster(flannel_nftables: bool = True, **kwargs) -> Cluster:
    c = Cluster(proxy_mode="nftables", flannel_nftables=flannel_nftables, **kwargs)
    c.add_pod("pod-a", node="node1")
    c.add_pod("pod-b", node="node1")
    c.add_pod("pod-c", node="node2")
    c.add_external("ext", ip="203.0.113.10")
    c.add_service("web", port=80, target_port=8080, pods=["pod-c"], node_port=30080)
    return c


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return nft_cluster()


def test_the_modes_are_checked():
    with pytest.raises(ConfigError, match="proxy_mode 'ipvs' is not one of iptables, nftables"):
        Cluster(proxy_mode="ipvs")
    with pytest.raises(ConfigError, match="flannel_nftables must be True or False"):
        Cluster(flannel_nftables="yes")


def test_a_node_has_kube_proxys_and_flannels_tables_and_no_iptables_rule(cluster):
    listing = cluster.show("node1", "nft list ruleset")
    heads = [line for line in listing.splitlines() if line.startswith("table ")]
    assert heads == ["table ip kube-proxy {", "table ip flannel-ipv4 {", "table ip6 flannel-ipv6 {"]
    assert "\t\telements = { 192.168.50.11 }" in listing                 # nodeport-ips: the node's own address
    assert f"\t\telements = {{ tcp . 30080 : goto {external_chain(cluster.services['web'])} }}" in listing
    assert cluster.show("node1", "iptables-save") == ""
    handles = cluster.show("node1", "nft -a list ruleset")
    assert "table ip kube-proxy { # handle 1" in handles and "table ip flannel-ipv4 { # handle 2" in handles
    assert cluster.show("pod-a", "nft list ruleset") == ""


def test_flannel_in_iptables_mode_beside_kube_proxy_in_nftables_mode():
    c = nft_cluster(flannel_nftables=False)
    assert "-A FLANNEL-POSTRTG" in c.show("node1", "iptables-save")
    assert "flannel" not in c.show("node1", "nft list ruleset")
    trace = c.send("ext", "192.168.50.11:30080")
    assert outcome_text(trace.outcome) == "connected to 192.168.50.11:30080 (SYN-ACK)"


def _node1(trace, role, device):
    """The decisions of node1's hop on `device` (rx) for the packet of `role`: the inner packet's."""
    (hop,) = trace.where(f"node1/{device}", "rx", role)
    return list(hop.decisions)


def test_a_nodeport_syn_on_the_node_rule_by_rule(cluster):
    """ext -> node1:30080: kube-proxy's rules DNAT it to pod-c and mark it, flannel's forward
    chain accepts it, flannel's postrtg returns for the mark and kube-proxy masquerades it. The
    handles are the kernel's: tests/test_lab_cluster_nftables.py finds `nft -a list ruleset` of
    this cluster's nodes byte for byte in the lab."""
    web = cluster.services["web"]
    trace = cluster.send("ext", "192.168.50.11:30080", proto="tcp")
    assert outcome_text(trace.outcome) == "connected to 192.168.50.11:30080 (SYN-ACK)"
    rules = [d for d in _node1(trace, "request", "eth0") if d.function == "nft_do_chain"]
    refs = [d.consulted[0] for d in rules]
    assert all(isinstance(r, NftRuleRef) for r in refs)
    assert [(r.table, r.hook, r.chain, r.handle, r.verdict) for r in refs] == [
        ("kube-proxy", "PREROUTING", "filter-prerouting-pre-dnat", 24, "jump firewall-check"),
        ("kube-proxy", "PREROUTING", "filter-prerouting-pre-dnat", 0, "accept"),
        ("kube-proxy", "PREROUTING", "nat-prerouting", 28, "jump services"),
        ("kube-proxy", "PREROUTING", "services", 54, f"goto {external_chain(web)}"),
        ("kube-proxy", "PREROUTING", external_chain(web), 59, "jump mark-for-masquerade"),
        ("kube-proxy", "PREROUTING", "mark-for-masquerade", 35, "continue"),
        ("kube-proxy", "PREROUTING", external_chain(web), 60, f"goto {service_chain(web)}"),
        ("kube-proxy", "PREROUTING", service_chain(web), 62, f"goto {endpoint_chain(web, '10.244.1.2')}"),
        ("kube-proxy", "PREROUTING", endpoint_chain(web, "10.244.1.2"), 64, "accept"),
        ("flannel-ipv4", "FORWARD", "forward", 12, "accept"),
        ("kube-proxy", "FORWARD", "filter-forward", 21, "jump service-endpoints-check"),
        ("kube-proxy", "FORWARD", "filter-forward", 32, "jump cluster-ips-check"),
        ("kube-proxy", "FORWARD", "filter-forward", 0, "accept"),
        ("flannel-ipv4", "POSTROUTING", "postrtg", 4, "return"),
        ("flannel-ipv4", "POSTROUTING", "postrtg", 0, "accept"),
        ("kube-proxy", "POSTROUTING", "nat-postrouting", 30, "jump masquerading"),
        ("kube-proxy", "POSTROUTING", "masquerading", 37, "continue"),
        ("kube-proxy", "POSTROUTING", "masquerading", 38, "accept"),
    ]
    assert [(d.reason, d.verdict) for d in rules][3:6] == [
        (NetfilterReason.RULE, Verdict.GOTO), (NetfilterReason.RULE, Verdict.JUMP), (NetfilterReason.MARK, Verdict.CONTINUE)]
    assert refs[3].set_name == "service-nodeports" and refs[3].element == f"tcp . 30080 : goto {external_chain(web)}"
    nat = [d for d in _node1(trace, "request", "eth0") if d.reason is NatReason.BINDING]
    assert [(d.function, d.verdict, d.fact("manip"), d.fact("old")) for d in nat] == [
        ("nft_nat_eval", Verdict.DNAT, "DST", "192.168.50.11:30080"),
        ("nf_nat_masquerade_ipv4", Verdict.MASQUERADE, "SRC", "203.0.113.10:" + str(trace.request[0].ip.payload.sport))]
    assert nat[0].fact("new") == "10.244.1.2:8080" and nat[1].fact("new").startswith("10.244.0.0:")


def test_the_reply_meets_only_the_filter_chains_and_conntrack_undoes_the_nat(cluster):
    trace = cluster.send("ext", "192.168.50.11:30080", proto="tcp")
    decisions = _node1(trace, "reply", "flannel.1")
    rules = [(d.consulted[0].table, d.consulted[0].chain, d.consulted[0].handle, d.verdict)
             for d in decisions if d.function == "nft_do_chain"]
    assert rules == [("kube-proxy", "filter-prerouting-pre-dnat", 0, Verdict.ACCEPT),
                     ("flannel-ipv4", "forward", 11, Verdict.ACCEPT),
                     ("kube-proxy", "filter-forward", 0, Verdict.ACCEPT)]
    nat = [(d.function, d.reason, d.fact("manip"), d.fact("to")) for d in decisions if d.function == "nf_nat_packet"]
    assert nat == [("nf_nat_packet", NatReason.REWRITE, "DST", f"203.0.113.10:{trace.request[0].ip.payload.sport}"),
                   ("nf_nat_packet", NatReason.REWRITE, "SRC", "192.168.50.11:30080")]


def test_a_service_without_endpoints_is_rejected_by_kube_proxys_reject_chain():
    c = nft_cluster()
    c.add_service("empty", port=80, target_port=8080, node_port=30083)
    trace = c.send("pod-a", "empty", proto="tcp")
    assert (trace.outcome.errno, trace.outcome.icmp, trace.outcome.peer) == ("ECONNREFUSED", (3, 3), "10.244.0.1")
    (reject,) = [d for h in trace.hops for d in h.decisions if d.reason is NetfilterReason.REJECT]
    assert (reject.consulted[0].chain, reject.consulted[0].path) == (
        "reject-chain", ("filter-forward", "service-endpoints-check", "reject-chain"))


def test_break_masquerade_deletes_flannels_nft_rule_by_handle():
    c = nft_cluster()
    assert "ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random # handle 8" in \
        c.show("node1", "nft -a list ruleset")
    c.break_masquerade("node1")
    assert "ip daddr != 224.0.0.0/4" not in c.show("node1", "nft list ruleset")
    assert c.netns("node1").netfilter.nftables.journal[-1] == ("delete rule ip flannel-ipv4 postrtg handle 8\n", False)
    with pytest.raises(ConfigError, match="already broken"):
        c.break_masquerade("node1")
    trace = c.send("pod-a", "ext", proto="tcp")      # leaves with the pod's address: the gateway has no route back
    assert (trace.outcome.errno, trace.request[-1].ip.src) == ("ETIMEDOUT", "10.244.0.2")
