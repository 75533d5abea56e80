"""LoadBalancer Services as a bare-metal cluster has them: an address from MetalLB's pool in
status.loadBalancer.ingress, kube-proxy's rules for it in both modes (the loadbalancer IP rule
to KUBE-EXT-, KUBE-FW- and KUBE-PROXY-FIREWALL for loadBalancerSourceRanges, the
healthCheckNodePort's ACCEPT; service-ips and firewall-ips elements and the firewall chain in
nftables mode) and the speaker that answers ARP for it from the elected node
(tests/lb_topology.py). tests/test_lab_loadbalancer.py runs the same on the kernel."""

from __future__ import annotations

import hashlib

import pytest

import netsim
from netsim import ConfigError
from netsim.cluster.metallb import election
from netsim.decision import MetallbReason, Verdict
from netsim.kubeproxy_nft import external_chain, firewall_chain
from netsim.views import outcome_text, sentence
from tests.lb_topology import LB, lb_cluster


@pytest.fixture(scope="module")
def cluster() -> netsim.Cluster:
    return lb_cluster()


def test_the_service_gets_an_address_from_the_pool_and_node_ports(cluster):
    web = cluster.services["web-lb"]
    assert (web.type, web.load_balancer_ips, web.cluster_ip) == ("LoadBalancer", ("192.168.50.200",), "10.96.0.101")
    assert [p.node_port for p in web.ports] == [30086]                 # allocated: a LoadBalancer is a NodePort
    local = cluster.services["local-lb"]
    assert (local.load_balancer_ips, local.ports[0].node_port, local.health_check_node_port) == (
        ("192.168.50.201",), 30087, 30088)
    assert web.health_check_node_port is None
    c = lb_cluster()
    asked = c.add_service("asked", port=443, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                          load_balancer_ip="192.168.50.240", ports=None)
    assert asked.load_balancer_ips == ("192.168.50.240",)


def test_the_election_is_sha256_of_node_and_address():
    """ShouldAnnounce (metallb speaker/layer2_controller.go): sorted by sha256(node#ip)."""
    key = {n: hashlib.sha256(f"{n}#192.168.50.203".encode()).hexdigest() for n in ("node1", "node2")}
    assert key["node2"] < key["node1"] and election(["node1", "node2"], "192.168.50.203") == ["node2", "node1"]
    assert election(["node1", "node2"], "192.168.50.200") == ["node1", "node2"]


def test_who_announces(cluster):
    assert [cluster.l2_announcer(n) for n in LB] == ["node1", "node2", "node1", "node2"]
    c = lb_cluster()
    c.set_ready("pod-c", False)                 # no ready endpoint: nobody announces
    assert c.l2_announcer("web-lb") is None
    with pytest.raises(ConfigError, match="service web is of type NodePort: only a LoadBalancer"):
        c.l2_announcer("web")


@pytest.mark.parametrize("kwargs, message", [
    (dict(load_balancer_ip="192.168.50.100"), "load_balancer_ip 192.168.50.100 is not in the address pool "
                                              "192.168.50.200-192.168.50.250"),
    (dict(load_balancer_ip="192.168.50.200"), "is already assigned to service web-lb"),
    (dict(load_balancer_ip="bogus"), "'bogus'"),
    (dict(type="ClusterIP", load_balancer_ip="192.168.50.210"), "needs type='LoadBalancer'"),
    (dict(type="NodePort", load_balancer_source_ranges=["10.0.0.0/8"]),
     "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    (dict(load_balancer_source_ranges=["10.0.0.0/33"]), "Invalid value: '10.0.0.0/33': must be a list of IP ranges"),
    (dict(load_balancer_source_ranges="10.0.0.0/8"), "must be a list of CIDRs"),
    (dict(health_check_node_port=30300), "HealthCheckNodePort can only be set on LoadBalancer service with "
                                         "ExternalTrafficPolicy=Local"),
    (dict(cluster_ip=None), "spec.clusterIP: Invalid value: 'None': may not be set to 'None' for LoadBalancer"),
    (dict(type="ExternalName"), "spec.type: Unsupported value: 'ExternalName'"),
])
def test_refusals(kwargs, message):
    c = lb_cluster()
    args = dict(port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer")
    args.update(kwargs)
    with pytest.raises(ConfigError) as err:
        c.add_service("bad", **args)
    assert message in str(err.value)
    assert "bad" not in c.services


def _lines(cluster, node, text):
    return [line for line in cluster.show(node, "iptables-save").splitlines() if text in line]


def test_iptables_mode_rules_for_the_load_balancer_address(cluster):
    web, local, shut = (cluster.services[n].first for n in ("web-lb", "local-lb", "shut-lb"))
    assert _lines(cluster, "node1", "loadbalancer IP\" -m tcp --dport 80 -j KUBE-EXT") == [
        f'-A KUBE-SERVICES -d 192.168.50.200/32 -p tcp -m comment --comment "default/web-lb loadbalancer IP" '
        f'-m tcp --dport 80 -j {web.ext_chain}',
        f'-A KUBE-SERVICES -d 192.168.50.201/32 -p tcp -m comment --comment "default/local-lb loadbalancer IP" '
        f'-m tcp --dport 80 -j {local.ext_chain}']
    # loadBalancerSourceRanges: KUBE-FW- lets the ranges on to KUBE-EXT-; the rest is not DNATed
    # and meets KUBE-PROXY-FIREWALL's drop in filter
    assert _lines(cluster, "node1", f"-A {shut.fw_chain}") == [
        f'-A {shut.fw_chain} -s 198.51.100.0/24 -m comment --comment "default/shut-lb loadbalancer IP" '
        f'-j {shut.ext_chain}',
        f'-A {shut.fw_chain} -m comment --comment "other traffic to default/shut-lb will be dropped by '
        f'KUBE-PROXY-FIREWALL"']
    assert _lines(cluster, "node1", "-A KUBE-PROXY-FIREWALL -d 192.168.50.203") == [
        f'-A KUBE-PROXY-FIREWALL -d 192.168.50.203/32 -p tcp -m comment --comment "default/shut-lb traffic not '
        f'accepted by {shut.fw_chain}" -m tcp --dport 80 -j DROP']
    # externalTrafficPolicy Local: the health-check port on every node; node1 has no endpoint
    for node in ("node1", "node2"):
        assert _lines(cluster, node, "health check node port") == [
            '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/local-lb health check node port" -m tcp '
            '--dport 30088 -j ACCEPT']
        assert ("tcp", 30088) in cluster.netns(node).listeners          # kube-proxy's health server
    assert _lines(cluster, "node1", "-A KUBE-EXTERNAL-SERVICES -d 192.168.50.201") == [
        '-A KUBE-EXTERNAL-SERVICES -d 192.168.50.201/32 -p tcp -m comment --comment "default/local-lb has no local '
        'endpoints" -m tcp --dport 80 -j DROP']
    assert _lines(cluster, "node2", "-A KUBE-EXTERNAL-SERVICES -d 192.168.50.201") == []
    assert _lines(cluster, "node2", f"-A {local.ext_chain} -j {local.svl_chain}") == [
        f"-A {local.ext_chain} -j {local.svl_chain}"]
    assert _lines(cluster, "node1", local.svl_chain) == []                 # no local endpoint, no KUBE-SVL-


def test_nftables_mode_elements_and_the_firewall_chain():
    c = lb_cluster("nftables")
    web, shut = c.services["web-lb"], c.services["shut-lb"]
    listing = c.show("node1", "nft list ruleset")
    assert f"192.168.50.200 . tcp . 80 : goto {external_chain(web)}," in listing
    assert f"192.168.50.203 . tcp . 80 : goto {firewall_chain(shut)} }}" in listing
    assert f"\tchain {firewall_chain(shut)} {{\n\t\tip saddr != 198.51.100.0/24 drop\n\t}}" in listing
    assert '192.168.50.201 . tcp . 80 comment "default/local-lb" : drop' in listing
    assert "30088" not in listing                 # no rule for the health-check port in this mode
    assert '192.168.50.201 . tcp . 80 comment "default/local-lb" : drop' not in c.show("node2", "nft list ruleset")


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_from_the_outside_to_a_pod_on_another_node(proxy_mode):
    """ext -> 192.168.50.200:80: the gateway ARPs for the address on the nodes' network; node1's
    speaker answers, its kernel ignores the request; node1 DNATs to pod-c on node2 and
    masquerades (policy Cluster)."""
    c = lb_cluster(proxy_mode)
    trace = c.send("ext", "192.168.50.200:80", proto="tcp")
    assert outcome_text(trace.outcome) == "connected to 192.168.50.200:80 (SYN-ACK)"
    who_has = [h for h in trace.arp if h.frame.payload.op == 1 and h.frame.payload.pdst == "192.168.50.200"]
    (at_node1,) = [h for h in who_has if h.where == "node1/eth0"]
    (at_node2,) = [h for h in who_has if h.where == "node2/eth0"]
    ignored, answered = at_node1.decisions[-2:]
    assert (ignored.function, ignored.verdict) == ("arp_process", Verdict.IGNORE)
    assert (answered.subsystem, answered.reason, answered.verdict) == ("metallb", MetallbReason.ANNOUNCE, Verdict.REPLY)
    assert (answered.fact("vip"), answered.fact("node"), answered.fact("service")) == (
        "192.168.50.200", "node1", "web-lb")
    assert [d.function for d in at_node2.decisions][-1] == "arp_process"        # node2's speaker lost
    node1_mac = c.netns("node1").devices["eth0"].mac
    (reply,) = [h for h in trace.arp if h.where == "gateway/eth0" and h.direction == "rx"
                and h.frame.payload.op == 2 and h.frame.payload.psrc == "192.168.50.200"]
    assert (reply.frame.src, reply.frame.dst, reply.frame.payload.hwsrc) == (
        node1_mac, c.netns("gateway").devices["eth0"].mac, node1_mac)
    assert len(reply.frame.to_bytes()) == 60                                     # padded as mdlayher/ethernet does
    path = [(h.where, h.direction) for h in trace.request if not h.where.startswith("underlay")]
    assert path == [("ext/eth0", "tx"), ("gateway/eth1", "rx"), ("gateway/eth0", "tx"), ("node1/eth0", "rx"),
                    ("node1/flannel.1", "tx"), ("node1/eth0", "tx"), ("node2/eth0", "rx"), ("node2/flannel.1", "rx"),
                    ("node2/cni0", "tx"), ("node2/veth4bd4e613", "tx"), ("pod-c/eth0", "rx")]
    last = trace.request[-1]
    assert (last.ip.src, last.ip.dst, last.ip.payload.dport) == ("10.244.0.0", "10.244.1.2", 8080)
    assert "192.168.50.200 dev eth0 lladdr " + node1_mac in c.show("gateway", "ip neigh")


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_policy_local_enters_where_the_pod_is_and_keeps_the_client_address(proxy_mode):
    c = lb_cluster(proxy_mode)
    trace = c.send("ext", "192.168.50.201:80", proto="tcp")
    assert outcome_text(trace.outcome) == "connected to 192.168.50.201:80 (SYN-ACK)"
    assert [(h.where, h.direction) for h in trace.request if not h.where.startswith("underlay")] == [
        ("ext/eth0", "tx"), ("gateway/eth1", "rx"), ("gateway/eth0", "tx"), ("node2/eth0", "rx"), ("node2/cni0", "tx"),
        ("node2/veth4bd4e613", "tx"), ("pod-c/eth0", "rx")]
    assert trace.request[-1].ip.src == "203.0.113.10"


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_source_ranges(proxy_mode):
    c = lb_cluster(proxy_mode)
    assert outcome_text(c.send("ext", "192.168.50.202:80", proto="tcp").outcome) == \
        "connected to 192.168.50.202:80 (SYN-ACK)"
    trace = c.send("ext", "192.168.50.203:80", proto="tcp")
    assert outcome_text(trace.outcome) == "no answer reached the sender"
    (dropped,) = [h for h in trace.request if h.reason is not None]
    assert (dropped.where, dropped.direction) == ("node2/eth0", "rx")
    (rule,) = [d.consulted[0] for d in dropped.decisions if d.verdict == Verdict.DROP and d.consulted]
    if proxy_mode == "iptables":     # not DNATed: routed back towards eth0, dropped in FORWARD
        assert (rule.table, rule.hook, rule.chain, rule.rule) == ("filter", "FORWARD", "KUBE-PROXY-FIREWALL", 2)
        fw = c.services["shut-lb"].first.fw_chain
        (passed,) = [d for d in dropped.decisions if d.verdict == Verdict.CONTINUE]     # KUBE-FW-'s comment rule
        assert (passed.consulted[0].chain, passed.consulted[0].rule, passed.consulted[0].target) == (fw, 2, "")
        assert sentence(passed) == f"nat PREROUTING: KUBE-SERVICES -> {fw} rule 2 \"other traffic to default/shut-lb " \
                                   f"will be dropped by KUBE-PROXY-FIREWALL\": matches, has no target: the next rule is " \
                                   f"tested"
    else:                            # dropped before DNAT, at priority -110
        assert (rule.hook, rule.chain, rule.text) == (
            "PREROUTING", firewall_chain(c.services["shut-lb"]), "ip saddr != 198.51.100.0/24 drop")


def test_the_health_check_port_answers_on_every_node(cluster):
    for node in ("192.168.50.11", "192.168.50.12"):
        assert outcome_text(cluster.send("ext", f"{node}:30088", proto="tcp").outcome) == \
            f"connected to {node}:30088 (SYN-ACK)"


def test_a_lazy_cluster_builds_the_announcing_node_when_the_gateway_asks_for_the_address():
    """A 40-node lazy cluster: the who-has for the load-balancer address builds the node whose
    speaker wins (as a request for a node's own address builds that node), and the exchange
    connects as in an eager cluster."""
    c = netsim.Cluster(nodes=40, lazy=True)
    c.add_pod("p30", node="node30")
    c.add_external("ext")
    svc = c.add_service("lb", port=80, target_port=8080, pods=["p30"], type="LoadBalancer")
    winner = c.l2_announcer("lb")
    assert winner == election(list(c.nodes), "192.168.50.200")[0] == "node1"
    built_before = set(c.network.namespaces)
    trace = c.send("ext", "192.168.50.200:80", proto="tcp")
    assert outcome_text(trace.outcome) == "connected to 192.168.50.200:80 (SYN-ACK)"
    assert "node1" not in built_before and {"node1", "node30", "p30"} <= set(c.network.namespaces)
    (answered,) = [d for h in trace.arp for d in h.decisions if d.subsystem == "metallb"]
    assert answered.fact("node") == "node1" and svc.load_balancer_ips == ("192.168.50.200",)
