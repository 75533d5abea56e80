"""Headless Services and StatefulSet names: the slice the cluster keeps, the answers CoreDNS gives.

StatefulSet `web` (3 replicas, governing Service `web`, headless) in namespace `default`:
web-0 10.244.0.7 Ready, web-1 10.244.1.7 Ready, web-2 10.244.1.8 not Ready. Every expected
answer below follows the sources the module docstring names (no kube-apiserver runs here).
"""

from __future__ import annotations

import pytest

from netsim.errors import ConfigError, InvalidNameError
from netsim.programs.coredns import ClusterDns, CoreDnsServer, ServiceRecord
from netsim.programs.dig import Dig, parse_dig_args
from netsim.programs.dns import A, NOERROR, NXDOMAIN, PTR, TYPE_A, TYPE_PTR, TYPE_SOA, ResourceRecord, query
from netsim.programs.headless import (
    Pod, SliceEndpoint, coredns_service, endpoint_slice, should_set_hostname, statefulset_pods,
)
from netsim.programs.resolver import kubelet_resolv_conf
from netsim.programs.wire import DirectWire

IPS = ("10.244.0.7", "10.244.1.7", "10.244.1.8")
READY = (True, True, False)


def web_pods():
    return statefulset_pods("web", "default", "web", IPS, READY, nodes=("node1", "node2", "node2"))


def dns(*services: ServiceRecord) -> ClusterDns:
    return ClusterDns(services=services)


def ask(data: ClusterDns, name: str, qtype: int = TYPE_A):
    return data.answer(query(0x4242, name, qtype))


def test_statefulset_pods_have_ordinal_names_hostname_and_subdomain():
    pods = web_pods()
    assert [(p.name, p.hostname, p.subdomain, p.ip, p.ready, p.node) for p in pods] == [
        ("web-0", "web-0", "web", "10.244.0.7", True, "node1"),
        ("web-1", "web-1", "web", "10.244.1.7", True, "node2"),
        ("web-2", "web-2", "web", "10.244.1.8", False, "node2")]


def test_endpoint_slice_keeps_not_ready_pods_with_ready_false():
    assert endpoint_slice("web", "default", web_pods()) == (
        SliceEndpoint("10.244.0.7", True, "web-0", "web-0", "node1"),
        SliceEndpoint("10.244.1.7", True, "web-1", "web-1", "node2"),
        SliceEndpoint("10.244.1.8", False, "web-2", "web-2", "node2"))


def test_publish_not_ready_addresses_marks_every_endpoint_ready():
    assert [e.ready for e in endpoint_slice("web", "default", web_pods(), publish_not_ready=True)] == [True] * 3


def test_hostname_only_when_the_subdomain_names_this_service():
    pod = web_pods()[0]
    assert should_set_hostname(pod, "web", "default")
    assert not should_set_hostname(pod, "web-other", "default")       # another Service selecting the pod
    assert endpoint_slice("web-other", "default", (pod,))[0].hostname is None
    bare = Pod("api-7d4f", "default", "10.244.0.9")                   # a Deployment's pod: no hostname
    assert endpoint_slice("api", "default", (bare,))[0].hostname is None


def test_coredns_keeps_only_ready_endpoints():
    record = coredns_service("web", "default", endpoint_slice("web", "default", web_pods()))
    assert record == ServiceRecord("web", "default", None, ("10.244.0.7", "10.244.1.7"), ("web-0", "web-1"))


def test_headless_service_name_answers_one_a_record_per_ready_pod():
    data = dns(coredns_service("web", "default", endpoint_slice("web", "default", web_pods())))
    reply = ask(data, "web.default.svc.cluster.local")
    assert (reply.rcode, reply.aa) == (NOERROR, True)
    assert reply.answers == (ResourceRecord("web.default.svc.cluster.local.", TYPE_A, 5, A("10.244.0.7")),
                             ResourceRecord("web.default.svc.cluster.local.", TYPE_A, 5, A("10.244.1.7")))


def test_each_statefulset_pod_has_its_own_name():
    data = dns(coredns_service("web", "default", endpoint_slice("web", "default", web_pods())))
    assert ask(data, "web-1.web.default.svc.cluster.local").answers == (
        ResourceRecord("web-1.web.default.svc.cluster.local.", TYPE_A, 5, A("10.244.1.7")),)
    not_ready = ask(data, "web-2.web.default.svc.cluster.local")
    assert (not_ready.rcode, not_ready.answers, not_ready.authority[0].type) == (NXDOMAIN, (), TYPE_SOA)
    # a pod with a hostname is not found under its address with dashes
    assert ask(data, "10-244-1-7.web.default.svc.cluster.local").rcode == NXDOMAIN


def test_not_ready_pod_is_answered_when_the_service_publishes_not_ready_addresses():
    data = dns(coredns_service("web", "default", endpoint_slice("web", "default", web_pods(), True)))
    assert [rr.data for rr in ask(data, "web.default.svc.cluster.local").answers] == [A(ip) for ip in IPS]
    assert ask(data, "web-2.web.default.svc.cluster.local").answers[0].data == A("10.244.1.8")


def test_headless_service_with_no_ready_endpoint_is_nxdomain():
    pods = statefulset_pods("db", "default", "db", ("10.244.0.20",), (False,))
    reply = ask(dns(coredns_service("db", "default", endpoint_slice("db", "default", pods))),
                "db.default.svc.cluster.local")
    assert (reply.rcode, reply.answers, [rr.type for rr in reply.authority]) == (NXDOMAIN, (), [TYPE_SOA])


def test_pod_without_hostname_is_named_by_address_or_by_pod_name():
    bare = Pod("api-7d4f", "default", "10.244.0.9")
    eps = endpoint_slice("api", "default", (bare,))
    by_ip = dns(coredns_service("api", "default", eps))
    assert ask(by_ip, "10-244-0-9.api.default.svc.cluster.local").answers[0].data == A("10.244.0.9")
    by_name = dns(coredns_service("api", "default", eps, endpoint_pod_names=True))
    assert ask(by_name, "api-7d4f.api.default.svc.cluster.local").answers[0].data == A("10.244.0.9")
    assert ask(by_name, "10-244-0-9.api.default.svc.cluster.local").rcode == NXDOMAIN


def test_pod_address_reverses_to_its_statefulset_name():
    data = dns(coredns_service("web", "default", endpoint_slice("web", "default", web_pods())))
    reply = ask(data, "7.0.244.10.in-addr.arpa", TYPE_PTR)
    assert reply.answers == (ResourceRecord("7.0.244.10.in-addr.arpa.", TYPE_PTR, 5,
                                            PTR("web-0.web.default.svc.cluster.local.")),)


def test_a_service_with_a_cluster_ip_still_answers_its_cluster_ip():
    eps = endpoint_slice("web", "default", web_pods())
    data = dns(coredns_service("web", "default", eps, cluster_ip="10.96.0.50"))
    assert [rr.data for rr in ask(data, "web.default.svc.cluster.local").answers] == [A("10.96.0.50")]
    assert ask(data, "web-0.web.default.svc.cluster.local").answers[0].data == A("10.244.0.7")


def test_dig_from_a_pod_gets_the_pod_addresses_over_the_wire():
    wire = DirectWire()
    wire.add("10.96.0.10", CoreDnsServer(dns(coredns_service("web", "default",
                                                             endpoint_slice("web", "default", web_pods())))))
    dig = wire.add("10.244.0.2", Dig(parse_dig_args(["@10.96.0.10", "+short", "web.default.svc.cluster.local"]),
                                     kubelet_resolv_conf("default"), seed="pod-a", epoch=1796461480))
    wire.run()
    reply = dig.result.reply
    assert [rr.data for rr in reply.answers] == [A("10.244.0.7"), A("10.244.1.7")]
    udp = [d for d in wire.log if d.proto == "udp"]
    assert [(d.src, d.dst, d.dport) for d in udp] == [("10.244.0.2", "10.96.0.10", 53),
                                                      ("10.96.0.10", "10.244.0.2", udp[0].sport)]


def test_bad_names_and_addresses_are_refused():
    with pytest.raises(InvalidNameError, match="pod name 'Web-0'"):
        Pod("Web-0", "default", "10.244.0.7")
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        Pod("web-0", "default", "10.244.0.300")
    with pytest.raises(ConfigError, match="3 addresses but 2 readiness values"):
        statefulset_pods("web", "default", "web", IPS, (True, True))
    with pytest.raises(ConfigError, match="not in service web's namespace default"):
        endpoint_slice("web", "default", (Pod("web-0", "other", "10.244.0.7"),))
