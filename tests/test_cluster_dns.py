"""DNS served for real in the reference cluster: the coredns pod (kube-system, node1, 10.244.0.4)
runs the CoreDNS-role server behind kube-dns (10.96.0.10), every pod's resolv.conf names the
ClusterIP, and the tools' lookups walk through the DNAT to coredns and the un-DNAT of the
answer. A cluster built by hand without a DNS server resolves names itself (no DNS traffic)."""

from __future__ import annotations

import pytest

from netsim import Cluster, UnknownHostError, reference_cluster
from netsim.packet import UDP
from netsim.programs.dns import NOERROR, NXDOMAIN, TYPE_A, TYPE_AAAA, Message, tcp_unframe

KUBE_DNS, COREDNS = "10.96.0.10", "10.244.0.4"


def udp_dns(trace, where, direction):
    """The DNS messages in UDP datagrams to or from port 53 at one capture point."""
    out = []
    for h in trace.hops:
        ip = h.ip
        if h.where == where and h.direction == direction and ip is not None and isinstance(ip.payload, UDP) \
                and 53 in (ip.payload.sport, ip.payload.dport) and isinstance(ip.payload.payload, bytes):
            out.append((ip.src, ip.dst, Message.from_bytes(ip.payload.payload)))
    return out


def questions(messages):
    return [(m.question.name, m.question.qtype) for _s, _d, m in messages]


def test_every_pod_names_the_kube_dns_clusterip_in_kubelets_resolv_conf():
    cluster = reference_cluster()
    assert cluster.resolv_conf("pod-a") == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                            "nameserver 10.96.0.10\noptions ndots:5\n")
    assert cluster.resolv_conf("coredns") == ("search kube-system.svc.cluster.local svc.cluster.local cluster.local\n"
                                              "nameserver 10.96.0.10\noptions ndots:5\n")
    assert (cluster.dns.pod, cluster.dns.nameserver) == ("coredns", KUBE_DNS)


@pytest.mark.parametrize("src, cross", [("pod-a", False), ("pod-b", False), ("pod-c", True)])
def test_dig_walks_through_the_clusterip_to_coredns_and_back_over_udp(src, cross):
    cluster = reference_cluster()
    run = cluster.dig(src, "web.default.svc.cluster.local")
    src_ip = cluster.pods[src].ip
    sent = udp_dns(run.trace, f"{src}/eth0", "tx")
    arrived = udp_dns(run.trace, "coredns/eth0", "rx")
    answered = udp_dns(run.trace, "coredns/eth0", "tx")
    back = udp_dns(run.trace, f"{src}/eth0", "rx")
    assert [(s, d) for s, d, _ in sent] == [(src_ip, KUBE_DNS)]
    assert [(s, d) for s, d, _ in arrived] == [(src_ip, COREDNS)]        # DNAT to the endpoint
    assert [(s, d) for s, d, _ in answered] == [(COREDNS, src_ip)]
    assert [(s, d) for s, d, _ in back] == [(KUBE_DNS, src_ip)]          # the answer un-DNATed
    reply = back[0][2]
    assert (reply.id, reply.rcode, reply.aa) == (sent[0][2].id, NOERROR, True)
    assert [(rr.name, rr.type, rr.ttl, rr.data.address) for rr in reply.answers] == [
        ("web.default.svc.cluster.local.", TYPE_A, 30, "10.96.0.100")]
    dnat_node = "node2" if cross else "node1"
    dnat = [h for h in run.trace.hops if h.netns == dnat_node and any(d.function == "nf_nat_inet_fn"
                                                                      for d in h.decisions)]
    assert dnat, "the DNAT to coredns happens on the client's node"
    if cross:
        assert any(h.where == "node2/flannel.1" and h.direction == "tx" for h in run.trace.hops)
    assert run.status == 0 and "web.default.svc.cluster.local. 30 IN\tA\t10.96.0.100" in run.stdout
    assert f";; SERVER: {KUBE_DNS}#53({KUBE_DNS}) (UDP)" in run.stdout


@pytest.mark.parametrize("src", ["pod-a", "pod-c"])
def test_dig_tcp_walks_a_connection_through_the_clusterip(src):
    run = reference_cluster().dig(src, "web.default.svc.cluster.local", tcp=True)
    src_ip = {"pod-a": "10.244.0.2", "pod-c": "10.244.1.2"}[src]
    tcp_at = {(h.ip.src, h.ip.dst, h.ip.payload.flags) for h in run.trace.hops if h.where == "coredns/eth0"
              and h.direction == "rx" and h.ip is not None and h.ip.proto == 6}
    assert (src_ip, COREDNS, "S") in tcp_at
    data = [h.ip.payload.payload for h in run.trace.hops if h.where == f"{src}/eth0" and h.direction == "rx"
            and h.ip is not None and h.ip.proto == 6 and h.ip.payload.payload]
    assert all(h.ip.src == KUBE_DNS for h in run.trace.hops if h.where == f"{src}/eth0" and h.direction == "rx"
               and h.ip is not None and h.ip.proto == 6)
    messages, rest = tcp_unframe(b"".join(data))
    assert rest == b"" and len(messages) == 1
    reply = Message.from_bytes(messages[0])
    assert [rr.data.address for rr in reply.answers] == ["10.96.0.100"]
    assert f";; SERVER: {KUBE_DNS}#53({KUBE_DNS}) (TCP)" in run.stdout


def test_a_short_name_tries_the_search_list_in_order_and_stops_at_the_first_answer():
    cluster = reference_cluster()
    run = cluster.fetch("pod-c", "http://web")
    lookup, transfer = run.traces
    assert questions(udp_dns(lookup, "coredns/eth0", "rx")) == [
        ("web.default.svc.cluster.local.", TYPE_A), ("web.default.svc.cluster.local.", TYPE_AAAA)]
    answers = udp_dns(lookup, "pod-c/eth0", "rx")
    assert [(m.rcode, [rr.type for rr in m.answers]) for _s, _d, m in answers] == [(NOERROR, [TYPE_A]),
                                                                                  (NOERROR, [])]
    assert (run.resolution.how, run.resolution.address, run.resolution.fqdn) == (
        "dns", "10.96.0.100", "web.default.svc.cluster.local")
    assert run.status == 0 and run.stdout == "rrr"


def test_ping_by_name_looks_the_name_up_first():
    run = reference_cluster().ping("pod-a", "web")
    assert len(run.traces) == 2 and (run.resolution.how, run.resolution.address) == ("dns", "10.96.0.100")
    assert questions(udp_dns(run.traces[0], "pod-a/eth0", "tx"))[0] == ("web.default.svc.cluster.local.", TYPE_A)
    assert run.stdout.startswith("PING web.default.svc.cluster.local (10.96.0.100) 56(84) bytes of data.")


def test_a_name_outside_the_cluster_makes_glibcs_queries_and_is_an_unknown_host():
    """example.com has one dot, fewer than ndots:5: the three search domains first, then the
    name as it is (res_query.c __res_context_search), A and AAAA for each; the cluster zone's
    names are NXDOMAIN with AA, example.com. is NXDOMAIN with RA (netsim's upstream knows no
    name). Every name NXDOMAIN: netsim's UnknownHostError naming it, with the lookup's walk."""
    cluster = reference_cluster()
    with pytest.raises(UnknownHostError) as caught:
        cluster.ping("pod-a", "example.com")
    assert "'example.com'" in str(caught.value) and "example.com.cluster.local" in str(caught.value)
    (trace,) = caught.value.traces
    names = ["example.com.default.svc.cluster.local.", "example.com.svc.cluster.local.",
             "example.com.cluster.local.", "example.com."]
    assert questions(udp_dns(trace, "coredns/eth0", "rx")) == [(n, t) for n in names for t in (TYPE_A, TYPE_AAAA)]
    replies = udp_dns(trace, "pod-a/eth0", "rx")
    assert [(m.question.name, m.rcode, m.aa, m.ra) for _s, _d, m in replies] == [
        (n, NXDOMAIN, n != "example.com.", n == "example.com.") for n in names for _t in (1, 2)]
    assert {s for s, _d, _m in replies} == {KUBE_DNS}


def test_unknown_names_are_netsims_error_for_each_tool():
    cluster = reference_cluster()
    for call in (lambda: cluster.fetch("pod-a", "http://nosuch/"), lambda: cluster.nc("pod-a", "nosuch", 80),
                 lambda: cluster.traceroute("pod-a", "nosuch"), lambda: cluster.ping("pod-b", "nosuch")):
        with pytest.raises(UnknownHostError) as caught:
            call()
        assert "'nosuch'" in str(caught.value) and "nosuch.default.svc.cluster.local" in str(caught.value)


def test_the_server_answers_from_dns_records_headless_and_statefulset_names():
    cluster = reference_cluster()
    cluster.add_statefulset("db", "db", 2, nodes=["node1", "node2"], labels={"app": "db"})
    cluster.add_service("db", port=5432, target_port=5432, pods=["db-0", "db-1"], cluster_ip=None)
    run = cluster.dig("pod-a", "db-1.db.default.svc.cluster.local", short=True)
    assert (run.status, run.stdout) == (0, f"{cluster.pods['db-1'].ip}\n")
    records = cluster.dns_records()
    rcode, answers = records.lookup("db-1.db.default.svc.cluster.local.", TYPE_A)
    assert (rcode, [rr.data.address for rr in answers]) == (NOERROR, [cluster.pods["db-1"].ip])


def test_a_lazy_reference_cluster_starts_coredns_with_its_node():
    cluster = reference_cluster(lazy=True)
    assert cluster.built < 10
    run = cluster.dig("pod-c", "kube-dns.kube-system.svc.cluster.local", short=True)
    assert (run.status, run.stdout) == (0, "10.96.0.10\n")


def test_a_cluster_without_a_dns_pod_resolves_names_itself():
    cluster = Cluster()
    cluster.add_pod("pod-a", node="node1")
    cluster.add_pod("pod-c", node="node2")
    cluster.add_service("web", port=80, target_port=8080, pods=["pod-c"])
    run = cluster.fetch("pod-a", "web", size=5)
    assert run.stdout == "rrrrr"
    assert (run.resolution.how, run.resolution.address, run.resolution.fqdn) == (
        "records", "10.96.0.100", "web.default.svc.cluster.local")
    assert len(run.traces) == 1 and not udp_dns(run.trace, "pod-a/eth0", "tx")
    assert cluster.resolv_conf("pod-a").splitlines()[1] == "nameserver 10.96.0.10"
    with pytest.raises(UnknownHostError) as caught:
        cluster.ping("pod-a", "nosuch")
    assert "'nosuch'" in str(caught.value) and caught.value.traces == ()


def test_a_service_added_between_two_digs_is_answered_the_second_time():
    """The server's reply bytes are remembered for the same data and query: a Service added is
    other data, so the same query is answered anew."""
    cluster = reference_cluster()
    before = [cluster.dig("pod-a", "api.default.svc.cluster.local") for _ in range(2)]
    assert [run.result.reply.rcode for run in before] == [NXDOMAIN, NXDOMAIN]
    cluster.add_service("api", port=80, target_port=8080, pods=["pod-c"])
    after = cluster.dig("pod-a", "api.default.svc.cluster.local")
    address = cluster.services["api"].cluster_ip
    assert after.result.reply.rcode == NOERROR
    assert [rr.data.address for rr in after.result.reply.answers] == [address]
    assert after.stdout.count(address) == 1 and before[1].stdout == before[0].stdout
