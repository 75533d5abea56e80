"""DNS in the cluster: the message codec, CoreDNS's answers, kubelet's resolv.conf, glibc's lookups.

The query sequences below are the ones measured on this machine with glibc 2.36's getaddrinfo
(AF_UNSPEC, no flags) against a stub server in a network namespace, captured with tcpdump:
- `web`: A and AAAA for web.default.svc.cluster.local, back to back from one UDP port; done.
- `nosuch`: four names (three search domains, then the name), a new source port for each.
- SERVFAIL for every name: each pair sent twice from the same port, then the next name; EAI_AGAIN.
- REFUSED: the first name twice, then the name as it is twice; EAI_AGAIN.
- no answer (options timeout:1 attempts:2): the first name at 0 s and 1 s, the name as it is at
  2 s and 3 s, EAI_AGAIN after 4 s.
- ICMP port unreachable: the pair from one port, again from a new port, then EAI_AGAIN.
- TC on the A reply: both queries again over one TCP connection.
"""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS

from netsim.errors import ConfigError, InvalidNameError
from netsim.programs.coredns import ClusterDns, CoreDnsServer, CorefileConfig, PodRecord, ServiceRecord, Upstream
from netsim.programs.dns import (
    A, CNAME, NOERROR, NXDOMAIN, PTR, REFUSED, SERVFAIL, SOA, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_OPT, TYPE_PTR,
    TYPE_SOA, TYPE_TXT, DnsFormatError, EdnsOption, Message, ResourceRecord, opt_record, query, tcp_frame,
    tcp_unframe,
)
from netsim.programs.events import DatagramReceived, Listen, Open, Program, SendTo, Started
from netsim.programs.resolver import ResolvConf, Resolve, kubelet_resolv_conf, search_names
from netsim.programs.wire import DirectWire

ZONE_SOA = SOA("ns.dns.cluster.local.", "hostmaster.cluster.local.", 1700000000, 7200, 1800, 86400, 5)
WEB = "web.default.svc.cluster.local."


def cluster(**config) -> ClusterDns:
    return ClusterDns(
        services=(ServiceRecord("web", "default", "10.96.0.100", ("10.244.1.2",)),
                  ServiceRecord("kube-dns", "kube-system", "10.96.0.10", ("10.244.0.5",)),
                  ServiceRecord("db", "default", None, ("10.244.0.3", "10.244.1.4"), ("", "db-0")),
                  ServiceRecord("ext", "default", external_name="example.com")),
        pods=(PodRecord("10.244.1.2", "default"),),
        config=CorefileConfig(**config),
        upstream=Upstream((ResourceRecord("example.com.", TYPE_A, 300, A("93.184.216.34")),)))


def ask(data: ClusterDns, name: str, qtype: int = TYPE_A, **kw) -> Message:
    return data.answer(query(0x1234, name, qtype, **kw))


# ------------------------------------------------------------------------------ the codec

def test_dig_query_bytes_are_what_dig_sent():
    # dig 9.18 on this machine, captured: RD and AD, OPT udp 1232 with an 8-byte client cookie
    captured = bytes.fromhex("c09d01200001000000000001037765620764656661756c740373766307636c7573746572056c6f63616c"
                             "000001000100002904d000000000000c000a00083e76b71336581c62")
    built = query(0xC09D, "web.default.svc.cluster.local", ad=True,
                  edns=opt_record(1232, bytes.fromhex("3e76b71336581c62")))
    assert built.to_bytes() == captured
    assert Message.from_bytes(captured) == built


def test_glibc_query_bytes_have_rd_only_and_no_edns():
    # getaddrinfo's A query, captured: flags 0x0100, one question, no additional record
    captured = bytes.fromhex("b0d001000001000000000000076578616d706c6503636f6d0000010001")
    assert query(0xB0D0, "example.com").to_bytes() == captured


def test_compressed_reply_parses_as_scapy_reads_it():
    reply = ask(cluster(), "db.default.svc.cluster.local")
    raw = reply.to_bytes(compress=True)
    assert len(raw) < len(reply.to_bytes())
    assert Message.from_bytes(raw) == reply
    theirs = DNS(raw)
    assert (theirs.id, theirs.ancount, theirs.aa, theirs.ra) == (0x1234, 2, 1, 0)
    assert [theirs.an[i].rdata for i in range(2)] == ["10.244.0.3", "10.244.1.4"]


def test_uncompressed_reply_matches_scapy_field_by_field():
    raw = ask(cluster(), "nosuch.default.svc.cluster.local").to_bytes()
    theirs = DNS(raw)
    assert (theirs.rcode, theirs.aa, theirs.nscount) == (3, 1, 1)
    soa = theirs.ns[0]
    assert (soa.rrname, soa.ttl, soa.mname, soa.rname, soa.serial, soa.refresh, soa.retry, soa.expire,
            soa.minimum) == (b"cluster.local.", 5, b"ns.dns.cluster.local.", b"hostmaster.cluster.local.",
                             1700000000, 7200, 1800, 86400, 5)


def test_compression_pointer_loop_is_refused():
    raw = bytes.fromhex("000001000001000000000000") + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(DnsFormatError, match="loops or points forward"):
        Message.from_bytes(raw)


def test_bad_names_are_refused():
    with pytest.raises(ConfigError, match="empty label"):
        query(1, "a..b")
    with pytest.raises(ConfigError, match="over 63 octets"):
        query(1, "x" * 64 + ".svc")


def test_forty_records_over_udp_without_edns_are_cut_to_29_with_tc():
    big = ClusterDns(services=(ServiceRecord("big", "default", None,
                                             tuple(f"10.244.0.{i}" for i in range(2, 42))),))
    reply = ask(big, "big.default.svc.cluster.local")
    # 12 header + 35 question = 47 bytes; each A record compressed is 16: (512 - 47) // 16 = 29
    assert (reply.tc, len(reply.answers)) == (True, 29)
    assert len(reply.to_bytes(compress=True)) == 47 + 29 * 16
    # over TCP all 40, uncompressed (it fits 65535): 47 + 40 * 45
    full = big.answer(query(1, "big.default.svc.cluster.local"), "tcp")
    assert (full.tc, len(full.answers), full.length()) == (False, 40, 1847)
    # with EDNS (1232) the 1847 bytes do not fit uncompressed, but all 40 do compressed
    edns = big.answer(query(1, "big.default.svc.cluster.local", edns=opt_record(1232)))
    assert (edns.tc, len(edns.answers)) == (False, 40)


def test_tcp_framing_is_a_two_byte_length():
    raw = query(7, "web").to_bytes()
    framed = tcp_frame(raw) + tcp_frame(raw)[:5]
    assert framed[:2] == len(raw).to_bytes(2, "big")
    assert tcp_unframe(framed) == ([raw], tcp_frame(raw)[:5])


# ------------------------------------------------------------------------------ CoreDNS's answers

def test_service_name_answers_its_cluster_ip_authoritatively_without_ra():
    reply = ask(cluster(), WEB)
    assert (reply.rcode, reply.aa, reply.ra, reply.rd) == (NOERROR, True, False, True)
    assert reply.answers == (ResourceRecord(WEB, TYPE_A, 5, A("10.96.0.100")),)


def test_ttl_follows_the_corefile():
    assert ask(cluster(ttl=30), WEB).answers[0].ttl == 30          # kubeadm's Corefile: ttl 30


def test_aaaa_of_an_ipv4_service_is_no_data_with_the_soa():
    reply = ask(cluster(), WEB, TYPE_AAAA)
    assert (reply.rcode, reply.aa, reply.answers) == (NOERROR, True, ())
    assert reply.authority == (ResourceRecord("cluster.local.", TYPE_SOA, 5, ZONE_SOA),)


@pytest.mark.parametrize("name, rcode", [
    ("nosuch.default.svc.cluster.local", NXDOMAIN),        # no such service
    ("web.svc.cluster.local", NXDOMAIN),                   # the search list's second try: no namespace "web"
    ("web.cluster.local", NXDOMAIN),                       # third: "web" is neither svc nor pod
    ("example.com.cluster.local", NXDOMAIN),
    ("a.b.web.default.svc.cluster.local", NXDOMAIN),       # too long
    ("default.svc.cluster.local", NOERROR),                # a namespace: exists, no data
    ("svc.cluster.local", NOERROR),
    ("cluster.local", NOERROR),                            # the apex has no A
    ("nosuchns.svc.cluster.local", NXDOMAIN),
])
def test_names_in_the_zone_without_an_address(name, rcode):
    reply = ask(cluster(), name)
    assert (reply.rcode, reply.aa, reply.answers) == (rcode, True, ())
    assert reply.authority == (ResourceRecord("cluster.local.", TYPE_SOA, 5, ZONE_SOA),)


def test_other_types_tell_nxdomain_from_no_data_by_an_a_lookup():
    assert ask(cluster(), WEB, TYPE_TXT).rcode == NOERROR
    assert ask(cluster(), "nosuch.default.svc.cluster.local", TYPE_TXT).rcode == NXDOMAIN


def test_zone_apex_soa():
    assert ask(cluster(), "cluster.local", TYPE_SOA).answers == (
        ResourceRecord("cluster.local.", TYPE_SOA, 5, ZONE_SOA),)


def test_headless_service_and_its_endpoints():
    data = cluster()
    assert [rr.data for rr in ask(data, "db.default.svc.cluster.local").answers] == [A("10.244.0.3"),
                                                                                    A("10.244.1.4")]
    assert ask(data, "10-244-0-3.db.default.svc.cluster.local").answers[0].data == A("10.244.0.3")
    assert ask(data, "db-0.db.default.svc.cluster.local").answers[0].data == A("10.244.1.4")
    assert ask(data, "10-244-1-4.db.default.svc.cluster.local").rcode == NXDOMAIN   # it has a hostname


def test_pod_names_by_pods_mode():
    name = "10-244-1-2.default.pod.cluster.local"
    assert ask(cluster(pods="insecure"), name).answers[0].data == A("10.244.1.2")
    assert ask(cluster(pods="insecure"), "10-9-9-9.default.pod.cluster.local").answers[0].data == A("10.9.9.9")
    assert ask(cluster(pods="verified"), "10-9-9-9.default.pod.cluster.local").rcode == NXDOMAIN
    assert ask(cluster(pods="verified"), name).rcode == NOERROR
    assert ask(cluster(pods="disabled"), name).rcode == NXDOMAIN
    assert ask(cluster(), "10-244-1-2.nosuchns.pod.cluster.local").rcode == NXDOMAIN


def test_external_name_is_a_cname_then_the_upstream_address():
    reply = ask(cluster(), "ext.default.svc.cluster.local")
    assert reply.answers == (ResourceRecord("ext.default.svc.cluster.local.", TYPE_CNAME, 5, CNAME("example.com.")),
                             ResourceRecord("example.com.", TYPE_A, 300, A("93.184.216.34")))


def test_names_outside_the_zone_are_forwarded():
    reply = ask(cluster(), "example.com")
    assert (reply.rcode, reply.aa, reply.ra, reply.answers) == (
        NOERROR, False, True, (ResourceRecord("example.com.", TYPE_A, 300, A("93.184.216.34")),))
    assert (ask(cluster(), "nosuch.example").rcode, ask(cluster(), "nosuch.example").ra) == (NXDOMAIN, True)


def test_upstream_failures():
    base = cluster()
    servfail = ClusterDns(base.services, base.pods, upstream=Upstream(rcode=SERVFAIL))
    refused = ClusterDns(base.services, base.pods, upstream=Upstream(rcode=REFUSED))
    gone = ClusterDns(base.services, base.pods, upstream=Upstream(reachable=False))
    assert ask(servfail, "nosuch.example").rcode == SERVFAIL
    assert ask(refused, "nosuch.example").rcode == REFUSED
    assert (ask(gone, "example.com").rcode, ask(gone, "example.com").ra) == (SERVFAIL, False)
    assert ask(gone, WEB).rcode == NOERROR                  # the cluster zone needs no upstream


def test_reverse_lookups():
    data = cluster()
    assert ask(data, "100.0.96.10.in-addr.arpa", TYPE_PTR).answers == (
        ResourceRecord("100.0.96.10.in-addr.arpa.", TYPE_PTR, 5, PTR(WEB)),)
    assert ask(data, "4.1.244.10.in-addr.arpa", TYPE_PTR).answers[0].data == PTR("db-0.db.default.svc.cluster.local.")
    outside = ask(data, "1.1.168.192.in-addr.arpa", TYPE_PTR)
    assert (outside.rcode, outside.ra) == (NXDOMAIN, True)  # fallthrough to forward


def test_edns_is_echoed_with_the_cookie():
    cookie = bytes.fromhex("3e76b71336581c62")
    reply = ask(cluster(), WEB, edns=opt_record(1232, cookie, do=True))
    edns = reply.edns
    assert edns is not None
    assert (edns.udp_size, edns.do, edns.version, edns.options) == (1232, True, 0, (EdnsOption(10, cookie),))
    assert [rr.type for rr in reply.additional] == [TYPE_OPT]
    assert reply.length() == 115                            # what dig printed as MSG SIZE for this reply


def test_unsupported_edns_version_is_badvers():
    request = Message(5, questions=query(5, WEB).questions,
                      additional=(ResourceRecord(".", TYPE_OPT, 1 << 16, opt_record().data, 1232),))
    reply = cluster().answer(request)
    assert reply.edns is not None and reply.edns.ext_rcode == 1


def test_server_program_answers_udp_and_tcp():
    server = CoreDnsServer(cluster())
    assert server.start() == [Open("udp", "udp"), Listen("udp", 53), Open("tcp", "tcp"), Listen("tcp", 53)]
    raw = query(9, "web.default.svc.cluster.local").to_bytes()
    (send,) = server.handle(DatagramReceived("udp", raw, "10.244.0.2", 40000))
    assert isinstance(send, SendTo) and (send.dst, send.dport) == ("10.244.0.2", 40000)
    assert Message.from_bytes(send.data).answers[0].data == A("10.96.0.100")
    assert server.handle(DatagramReceived("udp", b"\x00\x01", "10.244.0.2", 40000)) == []   # not a message


# ------------------------------------------------------------------------------ resolv.conf

def test_kubelet_resolv_conf_for_a_cluster_first_pod():
    assert kubelet_resolv_conf("default").text() == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n")


def test_kubelet_appends_the_node_search_list_without_duplicates():
    conf = kubelet_resolv_conf("shop", host_search=("example.internal", "cluster.local"))
    assert conf.search == ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.internal")


def test_bad_namespace_is_refused():
    with pytest.raises(InvalidNameError, match="'Default'"):
        kubelet_resolv_conf("Default")


def test_resolv_conf_parse_and_options():
    conf = ResolvConf.parse("nameserver 10.96.0.10\nsearch a.local b.local.\noptions ndots:5 timeout:1 attempts:3\n")
    assert (conf.nameservers, conf.search, conf.ndots, conf.timeout, conf.attempts) == (
        ("10.96.0.10",), ("a.local", "b.local"), 5, 1, 3)
    assert (ResolvConf().ndots, ResolvConf().timeout, ResolvConf().attempts) == (1, 5, 2)


@pytest.mark.parametrize("name, names", [
    ("web", [WEB, "web.svc.cluster.local.", "web.cluster.local.", "web."]),
    ("example.com", ["example.com.default.svc.cluster.local.", "example.com.svc.cluster.local.",
                     "example.com.cluster.local.", "example.com."]),
    ("a.b.c.d.e.f", ["a.b.c.d.e.f.", "a.b.c.d.e.f.default.svc.cluster.local.", "a.b.c.d.e.f.svc.cluster.local.",
                     "a.b.c.d.e.f.cluster.local."]),
    ("web.", ["web."]),
])
def test_search_order_by_ndots(name, names):
    assert search_names(name, kubelet_resolv_conf("default")) == names


# ------------------------------------------------------------------------------ glibc's lookups

def lookup(name: str, data: ClusterDns | None = None, server: Program | None = None,
           conf: ResolvConf | None = None) -> tuple[Resolve, DirectWire]:
    wire = DirectWire()
    if server is not None:
        wire.add("10.96.0.10", server)
    elif data is not None:
        wire.add("10.96.0.10", CoreDnsServer(data))
    client = Resolve(name, conf or kubelet_resolv_conf("default"), seed="pod-a")
    wire.add("10.244.0.2", client)
    wire.run()
    return client, wire


def queries(wire: DirectWire) -> list[tuple[str, int, str, str, int]]:
    """(proto, source port, name, type, time in ms) of every query on the wire, in order."""
    out = []
    for d in wire.log:
        if d.dport != 53 or d.src != "10.244.0.2":
            continue
        payloads = [d.payload] if d.proto == "udp" else tcp_unframe(getattr(d.payload, "payload", b""))[0]
        for raw in payloads:
            if isinstance(raw, bytes) and raw:
                q = Message.from_bytes(raw).question
                out.append((d.proto, d.sport, q.name, {TYPE_A: "A", TYPE_AAAA: "AAAA"}[q.qtype], d.at // 1000))
    return out


def test_web_is_one_a_and_aaaa_pair_from_one_port():
    client, wire = lookup("web", cluster())
    assert client.result.addresses == ("10.96.0.100",) and client.result.error == ""
    sent = queries(wire)
    assert [(name, qtype) for _p, _port, name, qtype, _t in sent] == [(WEB, "A"), (WEB, "AAAA")]
    assert len({port for _p, port, *_ in sent}) == 1
    ids = [q.ident for q in client.result.queries]
    assert ids == [q.ident for q in lookup("web", cluster())[0].result.queries]      # deterministic
    assert ids[0] != ids[1]


def test_example_com_tries_the_search_list_first_each_name_from_a_new_port():
    client, wire = lookup("example.com", cluster())
    assert client.result.addresses == ("93.184.216.34",)
    sent = queries(wire)
    names = ["example.com.default.svc.cluster.local.", "example.com.svc.cluster.local.",
             "example.com.cluster.local.", "example.com."]
    assert [(name, qtype) for _p, _port, name, qtype, _t in sent] == [(n, t) for n in names for t in ("A", "AAAA")]
    ports = [port for _p, port, *_ in sent]
    assert ports[0::2] == ports[1::2] and len(set(ports)) == 4


def test_a_name_that_exists_nowhere_is_eai_noname():
    client, wire = lookup("nosuch", cluster())
    assert (client.result.error, client.result.message) == ("EAI_NONAME", "Name or service not known")
    assert len(queries(wire)) == 8


class Answering(Program):
    """A server answering every query with one rcode (or not at all)."""

    def __init__(self, rcode: int | None) -> None:
        super().__init__()
        self.rcode = rcode

    def on_event(self, event):
        if isinstance(event, Started):
            return [Open("udp", "udp"), Listen("udp", 53)]
        if isinstance(event, DatagramReceived) and self.rcode is not None:
            reply = Message.from_bytes(event.data).reply(rcode=self.rcode, ra=True)
            return [SendTo("udp", reply.to_bytes(), event.src, event.sport)]
        return []


def test_servfail_sends_each_pair_twice_then_moves_on():
    client, wire = lookup("fail", server=Answering(SERVFAIL))
    sent = queries(wire)
    names = ["fail.default.svc.cluster.local.", "fail.svc.cluster.local.", "fail.cluster.local.", "fail."]
    assert [(name, qtype) for _p, _port, name, qtype, _t in sent] == [
        (n, t) for n in names for _try in (1, 2) for t in ("A", "AAAA")]
    ports = [port for _p, port, *_ in sent]
    assert [len(set(ports[i:i + 4])) for i in range(0, 16, 4)] == [1, 1, 1, 1]      # both tries, one socket
    assert client.result.error == "EAI_AGAIN"


def test_refused_stops_the_search_list_but_tries_the_name_itself():
    client, wire = lookup("refuse.example", server=Answering(REFUSED))
    names = [name for _p, _port, name, _qt, _t in queries(wire)]
    assert names == ["refuse.example.default.svc.cluster.local."] * 4 + ["refuse.example."] * 4
    assert client.result.error == "EAI_AGAIN"


def test_silent_server_times_out_per_try_then_tries_the_name_itself():
    conf = ResolvConf(("10.96.0.10",), ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"),
                      ("ndots:5", "timeout:1", "attempts:2"))
    client, wire = lookup("silent", server=Answering(None), conf=conf)
    sent = [(name, qtype, t) for _p, _port, name, qtype, t in queries(wire)]
    first = "silent.default.svc.cluster.local."
    assert sent == [(first, "A", 0), (first, "AAAA", 0), (first, "A", 1000), (first, "AAAA", 1000),
                    ("silent.", "A", 2000), ("silent.", "AAAA", 2000), ("silent.", "A", 3000),
                    ("silent.", "AAAA", 3000)]
    assert client.result.error == "EAI_AGAIN"
    assert wire.now == 4_000_000


def test_port_unreachable_retries_from_a_new_socket_then_gives_up():
    client, wire = lookup("web", server=None)         # nothing at 10.96.0.10: ICMP port unreachable
    sent = queries(wire)
    assert [(name, qtype) for _p, _port, name, qtype, _t in sent] == [(WEB, "A"), (WEB, "AAAA")] * 2
    assert sent[0][1] == sent[1][1] != sent[2][1] == sent[3][1]
    assert client.result.error == "EAI_AGAIN"


def test_truncated_reply_is_asked_again_over_tcp_both_queries_on_one_connection():
    big = ClusterDns(services=(ServiceRecord("big", "default", None,
                                             tuple(f"10.244.0.{i}" for i in range(2, 42))),))
    client, wire = lookup("big", big)
    sent = queries(wire)
    assert [(proto, name, qtype) for proto, _port, name, qtype, _t in sent] == [
        ("udp", "big.default.svc.cluster.local.", "A"), ("udp", "big.default.svc.cluster.local.", "AAAA"),
        ("tcp", "big.default.svc.cluster.local.", "A"), ("tcp", "big.default.svc.cluster.local.", "AAAA")]
    assert len(client.result.addresses) == 40
