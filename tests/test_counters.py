"""The counters a drop moves (netsim.counters), for each of the troubleshooting chapter's broken
clusters, and the breakers that make them.

KERNEL_COUNTERS is what Linux 6.18 moved for each exchange in the lab (netsim.lab.breakages,
measured with `/proc/net/snmp`, `/proc/net/netstat`, `ip -s -j link` and `iptables-save -c`
before and after); tests/test_lab_breakages.py measures it again on the running kernel.
"""

from __future__ import annotations

import pytest

import netsim
from netsim import views
from netsim.counters import CounterKey, counters, totals
from netsim.errors import ConfigError
from netsim.lab.breakages import BY_KEY, CASES

HOST_VETH = "{host_veth}"       # pod-a's host veth, named by the cluster

KERNEL_COUNTERS: dict[str, dict[tuple[str, str, str], int]] = {
    "fdb": {("node1", "ip -s link", "flannel.1 TX dropped"): 1},
    "fdb-back": {("node2", "ip -s link", "flannel.1 TX dropped"): 1},
    "neighbour": {("node1", "ip -s link", "flannel.1 TX dropped"): 3, ("node1", "nstat", "IcmpOutDestUnreachs"): 1,
                  ("pod-a", "nstat", "IcmpInDestUnreachs"): 1},
    "forwarding": {("node1", "nstat", "IpInAddrErrors"): 1},
    "forwarding-same-node": {},
    "masquerade": {("gateway", "nstat", "IpExtInNoRoutes"): 1, ("gateway", "nstat", "IcmpOutDestUnreachs"): 1,
                   ("ext", "nstat", "IcmpInDestUnreachs"): 1},
    "route": {("gateway", "nstat", "IpExtInNoRoutes"): 1},
    "route-tcp": {("gateway", "nstat", "IpExtInNoRoutes"): 1},
    "pod-mtu": {("node1", "ip -s link", f"{HOST_VETH} RX dropped"): 1, ("pod-a", "ip -s link", "eth0 TX dropped"): 1},
    "underlay-1400": {("node1", "nstat", "IpFragOKs"): 1, ("node1", "nstat", "IpFragCreates"): 2,
                      ("node2", "nstat", "IpReasmReqds"): 2, ("node2", "nstat", "IpReasmOKs"): 1},
    "backend-port": {("node2", "iptables -L -v", "filter INPUT rule 5 pkts"): 1},
    "public-ip": {("gateway", "nstat", "IpExtInNoRoutes"): 1, ("gateway", "nstat", "IcmpOutDestUnreachs"): 1,
                  ("node1", "nstat", "IcmpInDestUnreachs"): 1},
    "no-endpoints": {("node1", "iptables -L -v", "filter KUBE-SERVICES rule 1 pkts"): 1,
                     ("node1", "nstat", "IcmpOutDestUnreachs"): 1, ("pod-a", "nstat", "IcmpInDestUnreachs"): 1},
    "pod-network-1500": {("node1", "nstat", "IpFragFails"): 1, ("node1", "nstat", "IcmpOutDestUnreachs"): 1,
                         ("pod-a", "nstat", "IcmpInDestUnreachs"): 1},
}

# Where each exchange dies, as records: (capture point, direction, role, function, reason), and
# the errno the client gets.
DROPS: dict[str, tuple[list[tuple[str, str, str, str, str]], str]] = {
    "fdb": ([("node1/flannel.1", "tx", "request", "vxlan_xmit", "no-fdb")], "ETIMEDOUT"),
    "fdb-back": ([("node2/flannel.1", "tx", "reply", "vxlan_xmit", "no-fdb")], "ETIMEDOUT"),
    "neighbour": ([("node1/cni0", "rx", "request", "neigh_invalidate", "failed")], "EHOSTUNREACH"),
    "forwarding": ([("node1/cni0", "rx", "request", "ip_route_input_slow", "not-forwarding")], "ETIMEDOUT"),
    "forwarding-same-node": ([], ""),
    # ext's SYN-ACK dies at the gateway; the gateway's net unreachable reaches ext's half-open
    # connection as a soft error (tcp_req_err), not a drop
    "masquerade": ([("gateway/eth1", "rx", "reply", "ip_error", "no-route")], "ETIMEDOUT"),
    "route": ([("gateway/eth0", "rx", "request", "ip_error", "no-route")], "ETIMEDOUT"),
    "route-tcp": ([("gateway/eth0", "rx", "request", "ip_error", "no-route")], "ETIMEDOUT"),
    "pod-mtu": ([("pod-a/eth0", "tx", "request", "is_skb_forwardable", "too-big")], "ETIMEDOUT"),
    "underlay-1400": ([], ""),
    "backend-port": ([("node2/eth0", "rx", "request", "nf_hook_slow", "hook-verdict")], "ETIMEDOUT"),
    "public-ip": ([("gateway/eth0", "rx", "request", "ip_error", "no-route"),
                   ("node1/eth0", "rx", "error", "icmp_rcv", "icmp-no-socket")], "ETIMEDOUT"),
    "no-endpoints": ([("node1/cni0", "rx", "request", "nf_hook_slow", "hook-verdict")], "ECONNREFUSED"),
    "pod-network-1500": ([("node1/cni0", "rx", "request", "ip_forward", "frag-needed")], "EMSGSIZE"),
}


def expected(key: str, cluster) -> dict[CounterKey, int]:
    veth = cluster.pods["pod-a"].host_veth
    return {CounterKey(h, t, n.replace(HOST_VETH, veth)): v for (h, t, n), v in KERNEL_COUNTERS[key].items()}


def test_every_case_has_its_kernel_counters_and_drops():
    assert set(KERNEL_COUNTERS) == set(DROPS) == {c.key for c in CASES}


@pytest.mark.parametrize("key", [c.key for c in CASES])
def test_the_model_moves_the_counters_the_kernel_moved(key):
    case = BY_KEY[key]
    cluster = case.build()
    assert totals(counters(case.send(cluster))) == expected(key, cluster)


@pytest.mark.parametrize("key", [c.key for c in CASES])
def test_each_case_dies_where_and_why_the_chapter_says(key):
    case = BY_KEY[key]
    trace = case.send(case.build())
    drops = [(h.where, h.direction, h.role, h.decisions[-1].function, h.decisions[-1].reason.value)
             for h in trace.hops if h.verdict == "dropped" and h.role != "arp"]
    assert (drops, trace.outcome.errno) == DROPS[key]


def test_a_firewall_on_node2_drops_vxlan_at_its_input_rule_and_counts_it_there():
    cluster = netsim.reference_cluster()
    cluster.break_backend_port("node2")
    assert "-A INPUT -p udp -m udp --dport 8472 -j DROP" in cluster.show("node2", "iptables-save").splitlines()
    trace = cluster.send("pod-a", "pod-c")
    hop = trace.drops[-1]
    rule = next(d for d in hop.decisions if d.function == "ipt_do_table").consulted[0]
    assert (hop.where, rule.table, rule.chain, rule.rule, rule.target) == ("node2/eth0", "filter", "INPUT", 5, "DROP")
    [move] = counters(trace)
    assert (move.key, move.delta, move.hop) == (CounterKey("node2", "iptables -L -v", "filter INPUT rule 5 pkts"), 1,
                                                hop.index)
    # the way back is blocked too, on node2's own input: pod-c reaches pod-a, pod-a's answer dies
    back = cluster.send("pod-c", "pod-a")
    assert back.drops[-1].where == "node2/eth0" and back.drops[-1].role == "reply"


def test_the_udp_backend_blocks_its_own_port_and_host_gw_has_none():
    udp = netsim.reference_cluster("udp")
    udp.break_backend_port("node2")
    assert "-A INPUT -p udp -m udp --dport 8285 -j DROP" in udp.show("node2", "iptables-save")
    with pytest.raises(ConfigError, match="already broken"):
        udp.break_backend_port("node2")
    with pytest.raises(ConfigError, match="host-gw"):
        netsim.reference_cluster("host-gw").break_backend_port("node2")


def test_a_wrong_public_ip_is_what_every_peer_programs_as_the_vtep():
    cluster = netsim.Cluster(nodes=3)
    cluster.break_public_ip("node2", "10.0.2.15")
    mac = netsim.flannel.vtep_mac("node2")
    for peer in ("node1", "node3"):
        assert f"{mac} dev flannel.1 dst 10.0.2.15 self permanent" in cluster.show(peer, "bridge fdb").splitlines()
    assert "flannel.alpha.coreos.com/public-ip: 10.0.2.15" in cluster.show("node2", "node annotations")
    assert "local 192.168.50.12 dev eth0" in cluster.show("node2", "ip -d link show flannel.1")


@pytest.mark.parametrize("address, match", [("192.168.50.12", "own address"), ("224.0.0.1", "unicast"),
                                            ("10.0.2", "public IP"), ("0.0.0.0", "unicast")])
def test_break_public_ip_refuses_what_is_no_fault(address, match):
    with pytest.raises(ConfigError, match=match):
        netsim.reference_cluster().break_public_ip("node2", address)


def test_break_public_ip_is_a_vxlan_fault():
    with pytest.raises(ConfigError, match="vxlan"):
        netsim.reference_cluster("host-gw").break_public_ip("node2", "10.0.2.15")


def test_the_counters_view_names_the_command_on_each_host():
    cluster = netsim.reference_cluster()
    cluster.set_mtu("pod-a", "eth0", 1500)
    text = views.counters(cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(1460))).splitlines()
    veth = cluster.pods["pod-a"].host_veth
    assert [line.split("  counted by ")[0].split() for line in text] == [
        ["node1$", "ip", "-s", "link", "show", veth, "RX", "dropped", "+1"],
        ["pod-a$", "ip", "-s", "link", "show", "eth0", "TX", "dropped", "+1"]]
    assert views.counters(netsim.reference_cluster().send("pod-a", "pod-c")).startswith("no watched counter moved")
