"""A pod with a hostPort: the CNI portmap plugin's chains on its node (containernetworking/
plugins v1.1.1, plugins/meta/portmap) and the walks through them: from outside, from a pod on
another node, a pod on the same node (hairpin: marked and masqueraded), the node to its own
address and to 127.0.0.1 (localhost: marked and masqueraded). The kernel comparison is
tests/test_lab_portmap.py."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Interface

import pytest

import netsim
from netsim import portmap
from netsim.decision import FieldChange, Verdict

CID = hashlib.sha256(b"default/hostweb").hexdigest()
# MustFormatChainNameWithPrefix("cbr0", CID, "DN-"): "CNI-DN-" + sha512 hex, 28 characters
DN = "CNI-DN-" + hashlib.sha512(("cbr0" + CID).encode()).hexdigest()[:21]
NODE1 = "192.168.50.11"


def hostport_cluster(proxy_mode: str = "iptables") -> netsim.Cluster:
    c = netsim.reference_cluster(proxy_mode=proxy_mode)
    c.add_pod("hostweb", "node1", listen=(("tcp", 80),),
              host_ports=[{"container_port": 80, "host_port": 8080, "protocol": "tcp"}])
    return c


@pytest.fixture(scope="module")
def cluster():
    return hostport_cluster()


def test_the_chain_name_is_the_plugins_for_the_same_container_id():
    # measured with the Debian plugin (1.1.1+ds1-3): network cbr0, CNI_CONTAINERID abc123
    assert portmap.chain_name("cbr0", "abc123") == "CNI-DN-3e9a3d0f9583cdc0e7133"
    assert portmap.container_id("default", "hostweb") == CID and len(DN) == 28


def test_the_nat_table_gets_portmaps_rules_where_the_plugin_puts_them(cluster):
    lines = cluster.show("node1", "iptables-save").split("*nat\n")[1].split("COMMIT")[0].splitlines()
    rules = [line for line in lines if line.startswith("-A ")]
    chain = lambda name: [r for r in rules if r.startswith(f"-A {name} ")]   # noqa: E731
    # appended after kube-proxy's jump in PREROUTING and OUTPUT; inserted first in POSTROUTING
    assert chain("PREROUTING")[1] == "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"
    assert chain("OUTPUT")[1] == "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"
    assert [r.split(" -j ")[-1] for r in chain("POSTROUTING")] == ["CNI-HOSTPORT-MASQ", "KUBE-POSTROUTING",
                                                                   "FLANNEL-POSTRTG"]
    assert chain("POSTROUTING")[0] == ('-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" '
                                       '-j CNI-HOSTPORT-MASQ')
    assert chain(DN) == [
        f"-A {DN} -s 10.244.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
        f"-A {DN} -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
        f"-A {DN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.0.5:80"]
    assert chain("CNI-HOSTPORT-DNAT") == [
        f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: \\"{CID}\\"" '
        f'-m multiport --dports 8080 -j {DN}']
    assert chain("CNI-HOSTPORT-MASQ") == ["-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE"]
    assert chain("CNI-HOSTPORT-SETMARK") == ['-A CNI-HOSTPORT-SETMARK -m comment --comment '
                                             '"CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000']
    assert cluster.netns("node1").devices["cni0"].route_localnet is True
    assert cluster.netns("node2").devices["cni0"].route_localnet is False
    assert "CNI-HOSTPORT" not in cluster.show("node2", "iptables-save")


def test_a_second_pod_shares_the_summary_chains_and_a_service_sync_keeps_the_rules():
    c = hostport_cluster()
    c.add_pod("hostdns", "node1", listen=(("udp", 53), ("tcp", 53)),
              host_ports=[{"container_port": 53, "host_port": 5353, "protocol": "udp"},
                          {"container_port": 53, "host_port": 5353, "protocol": "tcp"}])
    dn2 = portmap.chain_name("cbr0", portmap.container_id("default", "hostdns"))
    save = c.show("node1", "iptables-save")
    assert save.count("-j CNI-HOSTPORT-DNAT\n") == 2 and save.count("-j CNI-HOSTPORT-MASQ\n") == 1
    entries = [line for line in save.splitlines() if line.startswith("-A CNI-HOSTPORT-DNAT ")]
    # one entry rule per protocol, protocols sorted (fillDnatRules)
    assert [e.split(" -p ")[1].split()[0] for e in entries] == ["tcp", "tcp", "udp"]
    assert [e.split(" -j ")[-1] for e in entries] == [DN, dn2, dn2]
    before = save
    c.add_service("hostsvc", port=80, target_port=8080, pods=["pod-c"])      # kube-proxy's full sync rewrites the tables
    after = c.show("node1", "iptables-save")
    assert [line for line in after.splitlines() if "CNI-" in line] == [
        line for line in before.splitlines() if "CNI-" in line]


def test_host_ports_are_checked():
    c = netsim.reference_cluster()
    with pytest.raises(netsim.ConfigError, match="protocol 'sctp' must be tcp or udp"):
        c.add_pod("p1", host_ports=[{"container_port": 80, "host_port": 80, "protocol": "sctp"}])
    with pytest.raises(netsim.ConfigError, match="host_port 70000 is out of range"):
        c.add_pod("p2", host_ports=[{"container_port": 80, "host_port": 70000}])
    with pytest.raises(netsim.ConfigError, match="needs container_port and host_port"):
        c.add_pod("p3", host_ports=[{"hostPort": 80}])
    c.add_pod("p4", host_ports=[{"container_port": 80, "host_port": 8080}])
    with pytest.raises(netsim.ConfigError, match="host port 8080/tcp is taken on node1 by pod p4"):
        c.add_pod("p5", host_ports=[{"container_port": 81, "host_port": 8080}])
    c.add_pod("p6", "node2", host_ports=[{"container_port": 81, "host_port": 8080}])   # another node: free


def test_the_dnat_chain_splits_ports_by_protocol_and_fifteen_at_a_time():
    entries = portmap.check_host_ports("p", [{"container_port": p, "host_port": 1000 + p} for p in range(1, 17)]
                                       + [{"container_port": 5, "host_port": 53, "protocol": "udp",
                                           "host_ip": "192.168.50.11"}])
    chain = portmap.dnat_chain("cbr0", "x", IPv4Interface("10.244.0.9/24"), entries)
    ports = [rule[rule.index("--destination-ports") + 1] for rule in chain.entry_rules]
    assert ports == [",".join(str(1000 + p) for p in range(1, 16)), "1016", "53"]
    assert len(chain.rules) == 3 * 17
    assert chain.rules[-1] == ("-p", "udp", "--dport", "53", "-d", "192.168.50.11", "-j", "DNAT",
                               "--to-destination", "10.244.0.9:5")


def _nat(trace, verdict):
    return [(h.where, d) for h in trace.request for d in h.decisions if d.verdict == verdict]


def test_from_outside_the_hostport_is_dnatted_in_the_pods_chain(cluster):
    t = cluster.send("ext", "node1", proto="tcp", dport=8080)
    assert t.outcome.kind.value == "connected" and t.outcome.peer == f"{NODE1}:8080"
    ((where, dnat),) = _nat(t, Verdict.DNAT)
    rule = dnat.consulted[0]
    assert where == "node1/eth0" and (rule.table, rule.hook, rule.chain, rule.rule) == ("nat", "PREROUTING", DN, 3)
    assert rule.path == ("PREROUTING", "CNI-HOSTPORT-DNAT", DN)
    assert rule.target_options == ("--to-destination", "10.244.0.5:80")
    assert dnat.changes == (FieldChange("ipv4", "dst", NODE1, "10.244.0.5"), FieldChange("tcp", "dport", 8080, 80))
    assert _nat(t, Verdict.MASQUERADE) == []                 # the client's address reaches the pod
    pod_rx = [h for h in t.request if h.where == "hostweb/eth0"][-1]
    assert (pod_rx.ip.src, pod_rx.ip.dst, pod_rx.packet.payload.dport) == ("203.0.113.10", "10.244.0.5", 80)
    # the reply is un-DNATed on node1 before it leaves: ext sees node1:8080 answer
    last = t.reply[-1]
    assert (last.where, last.ip.src, last.packet.payload.sport) == ("ext/eth0", NODE1, 8080)


def test_a_pod_on_another_node_reaches_the_hostport_behind_its_nodes_masquerade(cluster):
    t = cluster.send("pod-c", "node1", proto="tcp", dport=8080)
    assert t.outcome.kind.value == "connected"
    ((masq_at, masq),) = _nat(t, Verdict.MASQUERADE)
    assert masq_at.startswith("node2/") and masq.consulted[0].chain == "FLANNEL-POSTRTG"
    ((where, dnat),) = _nat(t, Verdict.DNAT)
    assert where == "node1/eth0" and (dnat.consulted[0].chain, dnat.consulted[0].rule) == (DN, 3)


def test_a_pod_on_the_same_node_is_marked_and_masqueraded_hairpin(cluster):
    t = cluster.send("pod-b", "node1", proto="tcp", dport=8080)
    assert t.outcome.kind.value == "connected"
    marks = [d for h in t.request for d in h.decisions
             if d.consulted and getattr(d.consulted[0], "chain", "") == "CNI-HOSTPORT-SETMARK"]
    (mark,) = marks
    assert mark.consulted[0].path == ("PREROUTING", "CNI-HOSTPORT-DNAT", DN, "CNI-HOSTPORT-SETMARK")
    assert mark.changes == (FieldChange("skb", "mark", 0, 0x2000),)
    ((_, masq),) = _nat(t, Verdict.MASQUERADE)
    assert (masq.consulted[0].chain, masq.consulted[0].rule) == ("CNI-HOSTPORT-MASQ", 1)
    assert masq.changes[0] == FieldChange("ipv4", "src", "10.244.0.3", "10.244.0.1")


def test_the_node_reaches_its_own_hostport_in_output(cluster):
    t = cluster.send("node1", "node1", proto="tcp", dport=8080)
    assert t.outcome.kind.value == "connected"
    ((_, dnat),) = _nat(t, Verdict.DNAT)
    assert dnat.consulted[0].path == ("OUTPUT", "CNI-HOSTPORT-DNAT", DN) and dnat.consulted[0].rule == 3
    assert _nat(t, Verdict.MASQUERADE) == []


def test_localhost_is_marked_and_masqueraded_to_cni0s_address(cluster):
    t = cluster.send("node1", "127.0.0.1", proto="tcp", dport=8080)
    assert t.outcome.kind.value == "connected" and t.outcome.peer == "127.0.0.1:8080"
    ((_, dnat),) = _nat(t, Verdict.DNAT)
    assert dnat.changes[0] == FieldChange("ipv4", "dst", "127.0.0.1", "10.244.0.5")
    ((_, masq),) = _nat(t, Verdict.MASQUERADE)
    assert masq.changes[0] == FieldChange("ipv4", "src", "127.0.0.1", "10.244.0.1")
    (mark,) = [d for h in t.request for d in h.decisions
               if d.consulted and getattr(d.consulted[0], "chain", "") == "CNI-HOSTPORT-SETMARK"]
    assert mark.consulted[0].path == ("OUTPUT", "CNI-HOSTPORT-DNAT", DN, "CNI-HOSTPORT-SETMARK")
    assert mark.changes == (FieldChange("skb", "mark", 0, 0x2000),)


def test_the_reference_cluster_has_no_portmap_rules():
    c = netsim.reference_cluster()
    assert all(not spec.host_ports for spec in c.spec.pods.values())
    assert "CNI-HOSTPORT" not in c.show("node1", "iptables-save")
