"""Services with several named ports (kube-dns), as kube-apiserver checks them and kube-proxy
programs them in both its modes, and the Service API's older one-port form.

The chain names are checked against what kube-proxy wrote on real clusters, not against the
hash netsim computes: every kubeadm cluster's `iptables-save` carries KUBE-SVC-TCOU7JCQXEZGVUNU
for kube-dns's port `dns` (UDP), KUBE-SVC-ERIFXISQEP7F7OF4 for `dns-tcp` and
KUBE-SVC-JD5MR3NA4I4DYORP for `metrics`, and a CoreDNS pod at 10.244.0.4 gets
KUBE-SEP-WXWGHGKZOCNYRYI7 (published listings, e.g. the kube-proxy walk-throughs the search
index holds); nftables mode's listings show `service-FY5PMXPG-kube-system/kube-dns/udp/dns` and
`service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp` (a kubeadm cluster switched to nftables
mode, and others)."""

from __future__ import annotations

import pytest

import netsim
from netsim import ConfigError
from netsim.decision import Verdict
from netsim.kubeproxy import ServicePort
from netsim.kubeproxy_nft import endpoint_chain, service_chain

KUBE_DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "udp"},
                  {"name": "dns-tcp", "port": 53, "protocol": "tcp"},
                  {"name": "metrics", "port": 9153, "protocol": "tcp"}]


def dns_cluster(proxy_mode: str = "iptables") -> netsim.Cluster:
    c = netsim.Cluster(proxy_mode=proxy_mode)
    c.add_pod("pod-a", node="node1")
    c.add_pod("pod-b", node="node1")
    c.add_pod("coredns", node="node1", namespace="kube-system", listen=(("udp", 53), ("tcp", 53), ("tcp", 9153)))
    c.add_pod("pod-c", node="node2")
    c.add_service("kube-dns", namespace="kube-system", cluster_ip="10.96.0.10", pods=["coredns"],
                  ports=KUBE_DNS_PORTS)
    return c


@pytest.fixture(scope="module")
def cluster() -> netsim.Cluster:
    return dns_cluster()


def test_one_cluster_ip_three_ports(cluster):
    svc = cluster.services["kube-dns"]
    assert (svc.cluster_ip, svc.namespace, svc.type) == ("10.96.0.10", "kube-system", "ClusterIP")
    assert svc.ports == (ServicePort("dns", 53, 53, "udp"), ServicePort("dns-tcp", 53, 53, "tcp"),
                         ServicePort("metrics", 9153, 9153, "tcp"))
    assert [p.port_name for p in svc.ports_info()] == [
        "kube-system/kube-dns:dns", "kube-system/kube-dns:dns-tcp", "kube-system/kube-dns:metrics"]
    assert svc.endpoints == [("coredns", "10.244.0.4")]


def test_iptables_mode_a_chain_per_port_named_as_on_real_clusters(cluster):
    nat = cluster.show("node2", "iptables-save").split("*nat\n")[1].splitlines()
    assert [line for line in nat if line.startswith("-A KUBE-SERVICES -d 10.96.0.10/32")] == [
        '-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" '
        '-m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU',
        '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" '
        '-m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4',
        '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:metrics cluster IP" '
        '-m tcp --dport 9153 -j KUBE-SVC-JD5MR3NA4I4DYORP']
    assert [line for line in nat if line.startswith("-A KUBE-SVC-TCOU7JCQXEZGVUNU")] == [
        '-A KUBE-SVC-TCOU7JCQXEZGVUNU ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p udp -m comment --comment '
        '"kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ',
        '-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment "kube-system/kube-dns:dns -> 10.244.0.4:53" '
        '-j KUBE-SEP-WXWGHGKZOCNYRYI7']
    assert [line for line in nat if line.startswith("-A KUBE-SEP-WXWGHGKZOCNYRYI7")] == [
        '-A KUBE-SEP-WXWGHGKZOCNYRYI7 -s 10.244.0.4/32 -m comment --comment "kube-system/kube-dns:dns" '
        '-j KUBE-MARK-MASQ',
        '-A KUBE-SEP-WXWGHGKZOCNYRYI7 -p udp -m comment --comment "kube-system/kube-dns:dns" -m udp -j DNAT '
        '--to-destination 10.244.0.4:53']
    # one endpoint chain per port: the same pod address, three chains
    assert sorted(line.split()[0] for line in nat if line.startswith(":KUBE-SEP-")) == sorted(
        [":" + p.sep_chain("10.244.0.4") for p in cluster.services["kube-dns"].ports_info()])
    assert len({p.sep_chain("10.244.0.4") for p in cluster.services["kube-dns"].ports_info()}) == 3


def test_nftables_mode_a_map_element_and_chains_per_port():
    c = dns_cluster("nftables")
    listing = c.show("node2", "nft list ruleset")
    assert ("10.96.0.10 . tcp . 53 : goto service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp" in listing
            and "10.96.0.10 . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns" in listing)
    info = c.services["kube-dns"].ports_info()
    assert [service_chain(p) for p in info] == [
        "service-FY5PMXPG-kube-system/kube-dns/udp/dns", "service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp",
        "service-" + netsim.kubeproxy_nft.hash_and_truncate("kube-system/kube-dns/tcp/metrics")]
    assert endpoint_chain(info[0], "10.244.0.4").endswith("-kube-system/kube-dns/udp/dns__10.244.0.4/53")
    assert "\t\tmeta l4proto udp dnat to 10.244.0.4:53\n" in listing
    assert "\t\tmeta l4proto tcp dnat to 10.244.0.4:9153\n" in listing


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
@pytest.mark.parametrize("proto, port, chain_hash", [("udp", 53, "TCOU7JCQXEZGVUNU"), ("tcp", 53, "ERIFXISQEP7F7OF4"),
                                                     ("tcp", 9153, "JD5MR3NA4I4DYORP")])
def test_each_port_is_dnated_to_its_own_target(proxy_mode, proto, port, chain_hash):
    """pod-c on node2 to 10.96.0.10: the port (and protocol) picks the chain; the DNAT keeps the
    port (targetPort defaults to port) and the answer comes from the ClusterIP."""
    c = dns_cluster(proxy_mode)
    trace = c.send("pod-c", "10.96.0.10", proto=proto, dport=port)
    assert trace.outcome.kind == ("answered" if proto == "udp" else "connected")
    assert trace.outcome.peer == f"10.96.0.10:{port}"
    dnats = [d for hop in trace.request for d in hop.decisions if d.verdict == Verdict.DNAT]
    assert len(dnats) == 1 and dnats[0].changes[0].new == "10.244.0.4"
    rule = dnats[0].consulted[0]
    if proxy_mode == "iptables":
        assert rule.path[:3] == ("OUTPUT", "KUBE-SERVICES", f"KUBE-SVC-{chain_hash}") or \
            rule.path[:3] == ("PREROUTING", "KUBE-SERVICES", f"KUBE-SVC-{chain_hash}")
        assert rule.target_options == ("--to-destination", f"10.244.0.4:{port}")
    else:
        assert rule.chain.startswith("endpoint-") and rule.chain.endswith(f"__10.244.0.4/{port}")
    delivered = trace.request[-1]
    assert (delivered.where, delivered.ip.dst) == ("coredns/eth0", "10.244.0.4")


def test_the_one_port_call_still_works_and_names_its_port_by_the_service_alone(cluster):
    c = dns_cluster()
    svc = c.add_service("web", 80, 8080, pods=["pod-c"], node_port=30080)
    assert svc.ports == (ServicePort("", 80, 8080, "tcp", 30080),) and svc.type == "NodePort"
    assert (svc.port, svc.target_port, svc.protocol, svc.node_port, svc.port_name) == (
        80, 8080, "tcp", 30080, "default/web")


@pytest.mark.parametrize("kwargs, message", [
    (dict(ports=[{"port": 53, "protocol": "udp"}, {"name": "dns-tcp", "port": 53}]),
     "spec.ports[0].name: Required value"),
    (dict(ports=[{"name": "dns", "port": 53, "protocol": "udp"}, {"name": "dns", "port": 53}]),
     "spec.ports[1].name: Duplicate value: 'dns'"),
    (dict(ports=[{"name": "a", "port": 53, "protocol": "udp"}, {"name": "b", "port": 53, "protocol": "udp"}]),
     "spec.ports[1]: Duplicate value: protocol UDP port 53"),
    (dict(ports=[{"name": "a", "port": 80, "node_port": 30100}, {"name": "b", "port": 81, "node_port": 30100}]),
     "spec.ports[1].nodePort: Duplicate value: 30100"),
    (dict(ports=[{"name": "Dns", "port": 53}]), "service port name 'Dns' is not a DNS-1123 label"),
    (dict(ports=[{"name": "a", "port": 53, "protocol": "sctp"}]), "service protocol must be tcp or udp, not 'sctp'"),
    (dict(ports=[{"name": "a", "port": 0}]), "spec.ports[0].port 0 is out of range"),
    (dict(ports=[{"name": "a", "port": 53, "proto": "udp"}]), "unknown keys ['proto']"),
    (dict(ports=[]), "spec.ports: Required value"),
    (dict(ports="53"), "must be a list of ports"),
    (dict(port=53, ports=[{"name": "a", "port": 53}]), "either port=/target_port=/node_port= or ports=[...]"),
    (dict(ports=[{"name": "a", "port": 53, "node_port": 30100}], type="ClusterIP"),
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    (dict(), "spec.ports: Required value"),
])
def test_port_lists_the_api_server_refuses(cluster, kwargs, message):
    with pytest.raises(ConfigError) as err:
        cluster.add_service("dns2", pods=["coredns"], namespace="kube-system", **kwargs)
    assert message in str(err.value)
    assert "dns2" not in cluster.services


def test_a_service_selects_pods_of_its_own_namespace_only(cluster):
    with pytest.raises(ConfigError, match="pod coredns is in namespace kube-system, not default"):
        cluster.add_service("dns3", 53, 53, pods=["coredns"])


def test_missing_node_ports_are_allocated_from_the_upper_band():
    c = dns_cluster()
    svc = c.add_service("np", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "node_port": 30086}],
                        type="NodePort", pods=["pod-c"])
    assert [p.node_port for p in svc.ports] == [30087, 30086]      # 30086 is taken by port b
