"""The socket layer in the walk: programs on sockets, TCP as a stream, the errors sockets see,
the PMTU cache, the tools' output; exact values, read off the records (traces, results)."""

from __future__ import annotations

import pytest

import netsim
from netsim import reference_cluster
from netsim.errors import ConfigError, UsageError
from netsim.packet import ICMP, IPPROTO_ICMP, TCP, UDP
from netsim.programs.echo import UdpAnswerServer
from netsim.programs.http import Fetch, HttpEchoServer
from netsim.programs.nc import Nc
from netsim.sockets import SocketLayer
from netsim.walk import Walk

POD_C = "10.244.1.2"


def tcp_from(trace, where: str, direction: str, src: str) -> list[TCP]:
    return [h.ip.payload for h in trace.hops if h.where == where and h.direction == direction and h.ip is not None
            and h.ip.src == src and isinstance(h.ip.payload, TCP)]


def echo_requests(trace, where: str) -> list:
    return [h.ip for h in trace.hops if h.where == where and h.direction == "tx" and h.ip is not None
            and isinstance(h.ip.payload, ICMP) and h.ip.payload.type == 8]


# ------------------------------------------------------------------------------ TCP as a stream

@pytest.mark.parametrize("backend, mss", [("vxlan", 1398), ("host-gw", 1448)])
@pytest.mark.parametrize("size", [6000, 100000])
def test_a_response_across_nodes_arrives_whole_in_segments_of_the_effective_mss(backend, mss, size):
    cluster = reference_cluster(backend)
    run = cluster.fetch("pod-a", "pod-c", size=size)
    assert (run.status, run.stdout, run.stderr) == (0, "r" * size, "")
    assert run.result.status_line == "HTTP/1.1 200 OK"
    data = [len(s.payload) for s in tcp_from(run.trace, "pod-c/eth0", "tx", POD_C) if s.payload]
    head = len(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n")
    full, rest = divmod(head + size, mss)
    assert data == [mss] * full + [rest]
    # the teardown: one FIN each way once the data is out, each acknowledged (whose close comes
    # first is the programs' race: curl closes once it has the body, the server once its write
    # has returned)
    server = tcp_from(run.trace, "pod-c/eth0", "tx", POD_C)
    client = tcp_from(run.trace, "pod-a/eth0", "tx", "10.244.0.2")
    assert [s.flags for s in server].count("FA") == [s.flags for s in client].count("FA") == 1
    server_fin = next(s for s in server if "F" in s.flags)
    client_fin = next(s for s in client if "F" in s.flags)
    assert server_fin.seq - server[0].seq == 1 + head + size            # after every byte of the response
    assert client[-1].ack == (server_fin.seq + 1) % (1 << 32) or client_fin.ack == (server_fin.seq + 1) % (1 << 32)
    assert server[-1].ack == (client_fin.seq + 1) % (1 << 32) or server_fin.ack == (client_fin.seq + 1) % (1 << 32)
    # the programs: the server one request, the client every byte
    assert run.result.received == head + size


def test_the_transfer_is_one_walk_on_the_walks_clock():
    cluster = reference_cluster()
    start = cluster.network.clock.us
    run = cluster.fetch("pod-a", "pod-c", size=6000)
    # HOP_US per capture point (clock.py); no timer fired: nothing waited
    assert cluster.network.clock.us - start == 2 * len(run.trace)


def test_a_100000_byte_upload_is_received_whole_by_the_server_program():
    cluster = reference_cluster()
    request = b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
    run = cluster.nc("pod-a", "pod-c", 8080, request)
    assert run.status == 0 and run.stdout.startswith("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n")
    sent = [len(s.payload) for s in tcp_from(run.trace, "pod-a/eth0", "tx", "10.244.0.2") if s.payload]
    assert sum(sent) == len(request) and max(sent) == 1398


def test_several_programs_in_one_walk():
    """Two clients in two pods and the servers they reach, in one walk until nothing is pending."""
    cluster = reference_cluster()
    fetch = Fetch(f"http://{POD_C}:8080/10")
    nc = Nc("10.244.0.3", 9090, b"hi", udp=True, wait_s=1)
    trace = cluster.network.run([("pod-a", fetch), ("pod-c", nc)], cold=True)
    assert fetch.result.body == b"r" * 10 and nc.result.received == b"RSP"
    assert {h.netns for h in trace.hops} >= {"pod-a", "pod-b", "pod-c", "node1", "node2"}


def test_a_program_attached_to_a_port_serves_it():
    cluster = reference_cluster()
    cluster.netns("pod-c").listen("tcp", 8080, lambda: HttpEchoServer(8080, response_size=7))
    cluster.netns("pod-c").listen("udp", 9090, lambda: UdpAnswerServer(9090, reply=None))
    assert cluster.fetch("pod-a", "pod-c").stdout == "r" * 7
    assert cluster.nc("pod-a", "pod-c", 9090, b"echo me", udp=True, wait=1).stdout == "echo me"


# ------------------------------------------------------------------------------ errors as Linux reports them

def test_econnrefused_from_an_rst():
    run = reference_cluster().fetch("pod-a", "pod-c:9999")
    assert (run.status, run.stderr) == (7, "curl: (7) Failed to connect to pod-c port 9999 after 0 ms: Couldn't "
                                           "connect to server\n")
    rst = [s for s in tcp_from(run.trace, "pod-c/eth0", "tx", POD_C)]
    assert [s.flags for s in rst] == ["RA"]
    reply = [h for h in run.trace.hops if h.where == "pod-c/eth0" and h.direction == "rx"][-1]
    assert reply.reason.function == "tcp_v4_send_reset"


def test_econnrefused_from_a_port_unreachable_for_a_connected_udp_socket():
    run = reference_cluster().nc("pod-a", "pod-c", 9999, b"x", udp=True, wait=1)
    # netcat-openbsd ends quietly with status 0 on it (tests/test_lab_nc_udp.py measures it)
    assert (run.status, run.stdout, run.stderr) == (0, "", "")
    assert run.program.stderr == "" and run.result.status == 0
    error = [h for h in run.trace.hops if h.role == "error" and h.where == "pod-a/eth0"][0]
    assert (error.ip.payload.type, error.ip.payload.code) == (3, 3)
    assert error.reason.function == "icmp_unreach" and error.reason.fact("type") == 3


def test_ehostunreach_when_arp_fails_is_reported_from_the_senders_own_address():
    run = reference_cluster().ping("pod-a", "10.244.0.99")
    assert run.stdout.splitlines()[1] == "From 10.244.0.2 icmp_seq=1 Destination Host Unreachable"
    assert "+1 errors, 100% packet loss, time 3000ms" in run.stdout       # three ARP requests, a second apart
    assert run.status == 1


def test_enetunreach_without_a_route():
    cluster = reference_cluster()
    cluster.netns("pod-a").route_del("0.0.0.0/0")
    run = cluster.ping("pod-a", "198.51.100.1")
    assert (run.status, run.text) == (2, "ping: connect: Network is unreachable\n")
    assert cluster.fetch("pod-a", "198.51.100.1:80").stderr.startswith("curl: (7) Failed to connect to 198.51.100.1")


def test_etimedout_after_the_syn_retries():
    cluster = reference_cluster()
    cluster.break_forwarding("node1")
    run = cluster.fetch("pod-a", "pod-c")
    assert run.status == 28
    assert run.stderr == "curl: (28) Failed to connect to pod-c port 8080 after 127000 ms: Couldn't connect to server\n"
    syns = tcp_from(run.trace, "pod-a/eth0", "tx", "10.244.0.2")
    assert [s.flags for s in syns] == ["S"] * 7                   # the SYN and tcp_syn_retries (6) more
    assert len({s.seq for s in syns}) == 1


def test_emsgsize_locally_for_a_df_probe_over_the_route_mtu():
    run = reference_cluster().ping("pod-a", POD_C, size=1423, pmtudisc="do")
    assert run.stderr == "ping: local error: message too long, mtu=1450\n"
    assert not echo_requests(run.trace, "pod-a/eth0")
    refused = run.trace.ended[0].reason
    assert (refused.function, refused.fact("size"), refused.fact("mtu")) == ("__ip_append_data", 1451, 1450)


def test_enobufs_when_the_veth_peer_drops_an_oversize_frame():
    cluster = reference_cluster()
    cluster.set_mtu("pod-a", "eth0", 1500)
    run = cluster.ping("pod-a", POD_C, count=2, size=1472, pmtudisc="do")
    assert run.stderr == "ping: sendmsg: No buffer space available\n"
    assert "2 packets transmitted, 0 received, 100% packet loss" in run.stdout
    assert [ip.payload.seq for ip in echo_requests(run.trace, "pod-a/eth0")] == [1] + [2] * 20
    dropped = [h.reason for h in run.trace.hops if h.where == "pod-a/eth0" and h.verdict == "dropped"
               and h.ip is not None]
    assert [d.function for d in dropped] == ["is_skb_forwardable"] * 21


# ------------------------------------------------------------------------------ the PMTU cache

def pmtu_cluster() -> netsim.Cluster:
    cluster = reference_cluster()
    for host, dev in (("pod-a", "eth0"), ("node1", cluster.pods["pod-a"].host_veth), ("node1", "cni0")):
        cluster.set_mtu(host, dev, 1500)
    return cluster


def test_frag_needed_stores_a_route_exception_with_its_expiry():
    cluster = pmtu_cluster()
    run = cluster.ping("pod-a", POD_C, size=1472, pmtudisc="do")
    assert "From 10.244.0.1 icmp_seq=1 Frag needed and DF set (mtu = 1450)" in run.stdout
    learned = [d for h in run.trace.hops for d in h.decisions if d.function == "__ip_rt_update_pmtu"]
    assert [(d.fact("dst"), d.fact("was"), d.fact("mtu"), d.fact("expires")) for d in learned] == [
        (POD_C, 1500, 1450, 600)]
    assert cluster.show("pod-a", f"ip route get {POD_C}") == (
        f"{POD_C} via 10.244.0.1 dev eth0 src 10.244.0.2 uid 0\n    cache expires 600sec mtu 1450")
    # the next DF probe is refused by pod-a's own stack, a probe without DF leaves in fragments
    assert cluster.ping("pod-a", POD_C, size=1472, pmtudisc="do").stderr == (
        "ping: local error: message too long, mtu=1450\n")
    want = cluster.ping("pod-a", POD_C, size=1472, pmtudisc="want")
    assert want.status == 0
    assert [(ip.length(), ip.mf, ip.frag) for ip in [h.ip for h in want.trace.hops if h.where == "pod-a/eth0"
            and h.direction == "tx" and h.ip is not None and h.ip.proto == IPPROTO_ICMP]] == [(1444, True, 0),
                                                                                                (76, False, 178)]


def test_the_route_exception_expires_with_mtu_expires():
    cluster = pmtu_cluster()
    cluster.netns("pod-a").set_sysctl("net.ipv4.route.mtu_expires", 2)
    cluster.ping("pod-a", POD_C, size=1472, pmtudisc="do")
    assert cluster.show("pod-a", f"ip route get {POD_C}").endswith("cache expires 2sec mtu 1450")
    cluster.ping("pod-a", "10.244.0.3", count=3)          # three seconds pass on the network's clock
    assert cluster.show("pod-a", f"ip route get {POD_C}").splitlines()[1] == "    cache"


def both_pods_at_1500() -> netsim.Cluster:
    """Both pods, their host veths and cni0 at 1500: each end offers MSS 1460, and node1 meets
    flannel.1's 1450 on the way."""
    cluster = pmtu_cluster()
    cluster.set_mtu("pod-c", "eth0", 1500)
    cluster.set_mtu("node2", cluster.pods["pod-c"].host_veth, 1500)
    cluster.set_mtu("node2", "cni0", 1500)
    return cluster


UPLOAD = b"POST / HTTP/1.1\r\nContent-Length: 6000\r\n\r\n" + b"x" * 6000


def test_a_tcp_connection_lowers_its_mss_on_frag_needed_and_resends_cut_to_size():
    cluster = both_pods_at_1500()
    run = cluster.nc("pod-a", "pod-c", 8080, UPLOAD)
    assert run.status == 0 and run.stdout.startswith("HTTP/1.1 200 OK")
    segs = tcp_from(run.trace, "pod-a/eth0", "tx", "10.244.0.2")
    isn = segs[0].seq
    sent = [(s.flags, (s.seq - isn) % (1 << 32), len(s.payload)) for s in segs if s.payload or "F" in s.flags]
    # 4 x 1448 and the rest (MSS 1460 - 12 of timestamps); node1 answers each 1500-byte one with
    # frag needed (mtu 1450); the 5792 bytes go again cut at 1398 (1450 - 40 - 12), the 249
    # that fitted are not sent again; nc's FIN follows (test_lab_sockets has the kernel's)
    assert sent == [("A", 1, 1448), ("A", 1449, 1448), ("A", 2897, 1448), ("A", 4345, 1448), ("PA", 5793, 249),
                    ("A", 1, 1398), ("A", 1399, 1398), ("A", 2797, 1398), ("A", 4195, 1398), ("PA", 5593, 200),
                    ("FA", 6042, 0)]
    reduced = [d for h in run.trace.hops for d in h.decisions if d.function == "tcp_v4_mtu_reduced"]
    assert [(d.fact("mtu"), d.fact("mss")) for d in reduced] == [(1450, 1398)] * 4
    assert cluster.show("pod-a", f"ip route get {POD_C}").endswith("mtu 1450")
    # the next connection's SYN already offers the learned path's MSS
    again = cluster.nc("pod-a", "pod-c", 8080, UPLOAD, cold=False)
    syn = tcp_from(again.trace, "pod-a/eth0", "tx", "10.244.0.2")[0]
    assert syn.flags == "S" and syn.option_list[0].values == (1410,)


# ------------------------------------------------------------------------------ the tools' input

@pytest.mark.parametrize("call, words", [
    (lambda c: c.ping("pod-a", "pod-c", size=65508), ("65508", "65507")),
    (lambda c: c.ping("pod-a", "pod-c", count=0), ("count 0",)),
    (lambda c: c.ping("pod-a", "pod-c", pmtudisc="probe"), ("'probe'",)),
    (lambda c: c.ping("pod-a", "nosuch"), ("'nosuch'", "nosuch.default.svc.cluster.local")),
    (lambda c: c.ping("web", "pod-c"), ("'web'", "not a host")),
    (lambda c: c.traceroute("pod-a", "pod-c", mode="gre"), ("'gre'",)),
    (lambda c: c.traceroute("pod-a", "pod-c", queries=11), ("queries 11",)),
    (lambda c: c.fetch("pod-a", "ftp://pod-c/"), ("ftp://pod-c/",)),
    (lambda c: c.fetch("pod-a", "pod-c:http"), ("'http'",)),
    (lambda c: c.nc("pod-a", "pod-c", 70000), ("70000",)),
    (lambda c: c.dig("node1", "web.default.svc.cluster.local"), ("node1", "server")),
])
def test_bad_input_is_netsims_own_error_naming_the_value(call, words):
    with pytest.raises((ConfigError, UsageError)) as caught:
        call(reference_cluster())
    assert all(w in str(caught.value) for w in words), str(caught.value)


def test_an_attached_dns_server_answers_the_pods_resolver():
    cluster = reference_cluster()
    cluster.set_dns("pod-b")
    assert cluster.resolv_conf("pod-a") == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                            "nameserver 10.244.0.3\noptions ndots:5\n")
    run = cluster.ping("pod-a", "web")
    lookup, ping = run.traces
    queries = [h.ip.payload for h in lookup.hops if h.where == "pod-a/eth0" and h.direction == "tx"
               and h.ip is not None and isinstance(h.ip.payload, UDP)]
    assert queries and all(q.dport == 53 for q in queries)
    assert (run.resolution.how, run.resolution.address) == ("dns", "10.96.0.100")
    assert run.stdout.startswith("PING web.default.svc.cluster.local (10.96.0.100) 56(84) bytes of data.")
    dig = cluster.dig("pod-a", "web.default.svc.cluster.local", short=True)
    assert (dig.status, dig.stdout) == (0, "10.96.0.100\n")


def test_the_socket_layer_is_per_walk_state():
    walk = Walk({})
    assert walk.state(SocketLayer) is walk.state(SocketLayer)
    assert Walk({}).state(SocketLayer) is not walk.state(SocketLayer)


# ------------------------------------------------------------------------------ traceroute


def test_traceroute_to_a_nodeport_sees_the_errors_un_dnated():
    """-T probes to node1's NodePort are DNATed to pod-c; node1's time exceeded about one (its
    entry never confirmed: dropped before POSTROUTING) carries the entry by nf_ct_attach, node2's
    is matched by conntrack on its way back through node1: both quote 192.168.50.11:30080."""
    from netsim.sockets.input import quoted_probe
    run = reference_cluster().traceroute("ext", "192.168.50.11", mode="tcp", port=30080, queries=1, numeric=True)
    assert [line.split()[:2] for line in run.stdout.splitlines()[1:]] == [
        ["1", "203.0.113.1"], ["2", "192.168.50.11"], ["3", "192.168.50.11"], ["4", "192.168.50.11"]]
    errors = [h.ip for h in run.trace.hops if h.where == "ext/eth0" and h.direction == "rx" and h.ip is not None
              and isinstance(h.ip.payload, ICMP) and h.ip.payload.type == 11]
    assert [(ip.src, quoted_probe(ip.payload.data)[2].dst, quoted_probe(ip.payload.data)[2].dport) for ip in errors] == [
        ("203.0.113.1", "192.168.50.11", 30080), ("192.168.50.11", "192.168.50.11", 30080),
        ("192.168.50.11", "192.168.50.11", 30080)]
    # node1's error carries the NodePort connection (DNAT and SNAT to undo); node2's, about the
    # packet node1 forwarded, carries node2's own fresh entry (nothing to undo there)
    attached = {(h.netns, d.fact("src")) for h in run.trace.hops for d in h.decisions if d.function == "nf_ct_attach"}
    assert attached == {("node1", "192.168.50.11"), ("node2", "10.244.1.0")}


def test_repeated_traceroutes_meet_the_icmp_rate_limit():
    """A traceroute's probes with TTL 3 and more all reach pod-c: 10 of the first 16, and 6
    more it sends as the first hops answer (in netsim's walk every reply is read as it comes):
    the first 6 port unreachables go (a full bucket), the next 10 are limited (icmp_ratelimit
    1000 ms); a second run at once (cold=False: no quiet gap) finds pod-c's bucket empty: '*'
    until tokens come back. A cold run starts after the cluster was quiet: the bucket is full."""
    cluster = reference_cluster()
    first = cluster.traceroute("pod-a", "pod-c", numeric=True)
    assert first.stdout.splitlines()[3].split()[:2] == ["3", "10.244.1.2"]
    limited = [d for h in first.trace.hops for d in h.decisions if d.function == "icmp_send"
               and d.reason.value == "ratelimited"]
    assert len(limited) == 10 and {d.fact("dst") for d in limited} == {"10.244.0.2"}
    second = cluster.traceroute("pod-a", "pod-c", numeric=True, cold=False)
    assert second.stdout.splitlines()[3] == " 3  * * *"
    again = cluster.traceroute("pod-a", "pod-c", numeric=True)
    assert again.stdout == first.stdout
    cluster.netns("pod-c").set_sysctl("net.ipv4.icmp_ratelimit", 0)
    third = cluster.traceroute("pod-a", "pod-c", numeric=True)
    assert third.stdout.splitlines()[3].split()[:2] == ["3", "10.244.1.2"] and len(third.stdout.splitlines()) == 4
