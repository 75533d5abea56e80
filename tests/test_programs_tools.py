"""The tools a reader types: ping, traceroute, dig, a curl-like fetch and nc, as sans-IO programs.

Expected texts are the real tools' output on this machine (iputils-ping 20221126, traceroute
2.1.2, dig 9.18.49, curl 7.88.1, netcat-openbsd 1.219), run in network namespaces: a pod-like
namespace 10.9.0.1/24 (MTU 1450) behind a router 10.9.0.254 / 10.9.1.254 (MTU 1400 on the far
side) to 10.9.1.2. The programs are fed the events those runs produced (the same addresses,
ICMP errors and times) and must print the same bytes.
"""

from __future__ import annotations

import pytest

from netsim import endpoints as ep
from netsim.errors import UsageError
from netsim.packet import TCPOPT_MSS, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW
from netsim.programs.coredns import ClusterDns, CoreDnsServer, ServiceRecord
from netsim.programs.dig import Dig, DigUsageError, format_dig, parse_dig_args
from netsim.programs.events import (
    CancelTimer, Close, Connect, Connected, Done, EchoReplyReceived, Open, Probe, Program, SegmentReceived, SendEcho,
    SendSegment, SetOptions, SetTimer, SocketError, SocketOptions, Started, TimerFired,
)
from netsim.programs.http import Fetch, HttpEchoServer, format_fetch
from netsim.programs.nc import Nc, NcListen
from netsim.programs.ping import (
    Ping, PingError, PingReply, PingResult, PingUsageError, api_options, echo_data, format_ping, parse_ping_args,
    ping_stderr,
)
from netsim.programs.resolver import kubelet_resolv_conf
from netsim.programs.traceroute import (
    Traceroute, TracerouteUsageError, format_traceroute, parse_traceroute_args,
)
from netsim.programs.wire import DirectWire


class Idle(Program):
    def on_event(self, event):
        return []


# ------------------------------------------------------------------------------ ping: the command line

@pytest.mark.parametrize("argv, text, status", [
    (["-c", "1", "-t", "256", "10.9.0.2"], "ping: invalid argument: '256': out of range: 0 <= value <= 255", 1),
    (["-c", "0", "10.9.0.2"], "ping: invalid argument: '0': out of range: 1 <= value <= 9223372036854775807", 1),
    (["-c", "1", "-s", "-1", "10.9.0.2"], "ping: invalid argument: '-1': out of range: 0 <= value <= 2147483647", 1),
    (["-c", "1", "-s", "abc", "10.9.0.2"], "ping: invalid argument: 'abc'", 1),
    (["-c", "1", "-M", "foo", "10.9.0.2"], "ping: invalid -M argument: foo", 2),
    (["-c", "1", "-Q", "300", "10.9.0.2"], "ping: the decimal value of TOS bits must be in range 0-255: 300", 2),
    (["-c", "1", "-x", "10.9.0.2"], "ping: invalid option -- 'x'", 2),
    (["-c", "1"], "ping: usage error: Destination address required", 1),
])
def test_ping_refuses_options_as_ping_does(argv, text, status):
    with pytest.raises(PingUsageError) as refused:
        parse_ping_args(argv)
    assert (refused.value.text, refused.value.status) == (text, status)


def test_ping_options_parsed():
    opts = parse_ping_args(["-c", "3", "-s", "1472", "-M", "do", "-t", "5", "-Q", "0x10", "-b", "10.244.1.2"])
    assert (opts.count, opts.size, opts.pmtudisc, opts.ttl, opts.tos, opts.broadcast, opts.destination) == (
        3, 1472, "do", 5, 16, True, "10.244.1.2")
    assert parse_ping_args(["-c1", "-s0", "10.0.0.1"]).size == 0


def test_api_refuses_sizes_over_65507_naming_the_value():
    assert api_options("10.244.1.2", size=65507).size == 65507
    with pytest.raises(UsageError, match="65508.*0 to 65507"):
        api_options("10.244.1.2", size=65508)


def test_ping_data_is_the_timeval_then_iputils_pattern():
    assert echo_data(56) == ep.PING_DATA                     # what netsim's echo requests carry today
    assert echo_data(1472)[16:20] == bytes([16, 17, 18, 19]) and echo_data(1472)[256] == 0
    assert echo_data(10) == bytes(10)


# ------------------------------------------------------------------------------ ping: the program

def test_ping_learns_the_route_then_sends_one_probe_per_interval():
    ping = Ping(parse_ping_args(["-c", "2", "-t", "7", "-M", "do", "10.244.1.2"]))
    assert ping.start(0) == [Open("probe", "udp", SocketOptions()), Connect("probe", "10.244.1.2", 1025)]
    icmp = SocketOptions(ttl=7, pmtudisc="do", recverr=True)          # ping4_run sets IP_RECVERR
    assert ping.handle(Connected("probe", 10)) == [
        Close("probe"), Open("icmp", "icmp", icmp), SendEcho("icmp", "10.244.1.2", ep.PING_ID, 1, echo_data(56)),
        SetTimer("tick", 1_000_000)]
    assert ping.handle(EchoReplyReceived("icmp", "10.244.1.2", ep.PING_ID, 1, 64, 62, at=76)) == []
    assert ping.handle(TimerFired("tick", 1_000_010)) == [
        SendEcho("icmp", "10.244.1.2", ep.PING_ID, 2, echo_data(56)), SetTimer("tick", 1_000_000)]
    actions = ping.handle(EchoReplyReceived("icmp", "10.244.1.2", ep.PING_ID, 2, 64, 62, at=1_000_080))
    assert actions[-1] == Done(ping.result, 0)
    assert ping.result.replies == (PingReply(1, "10.244.1.2", 64, 62, 66), PingReply(2, "10.244.1.2", 64, 62, 70))
    assert ping.result.elapsed_ms == 1000


def test_ping_refuses_a_broadcast_without_b():
    ping = Ping(parse_ping_args(["-c", "1", "10.9.0.255"]))
    ping.start(0)
    (done,) = ping.handle(SocketError("probe", "EACCES", "local"))
    assert done.status == 2
    assert ping_stderr(ping.result) == ("ping: Do you want to ping broadcast? Then -b. If not, check your local "
                                        "firewall rules\n")


def test_ping_ttl_zero_is_refused_by_the_kernel():
    ping = Ping(parse_ping_args(["-c", "1", "-t", "0", "10.9.0.2"]))
    assert ping.start(0)[-1].status == 2
    assert format_ping(ping.result) == "ping: cannot set unicast time-to-live: Invalid argument\n"


def test_ping_runs_on_a_wire():
    wire = DirectWire()
    wire.add("10.244.1.2", Idle())
    ping = wire.add("10.244.0.2", Ping(parse_ping_args(["-c", "3", "10.244.1.2"])))
    wire.run()
    assert [e.seq for e in ping.result.events] == [1, 2, 3]
    assert ping.status == 0


# ------------------------------------------------------------------------------ ping: the output

def run_ping(argv, events):
    """Feed a ping the events of a real run: (at, kind, seq, *detail)."""
    ping = Ping(parse_ping_args(argv))
    ping.start(0)
    ping.handle(Connected("probe", 0))
    dst = ping.address
    for at, kind, seq, *detail in events:
        if kind == "tick":
            ping.handle(TimerFired("tick", at))
        elif kind == "reply":
            size, ttl = detail
            ping.handle(EchoReplyReceived("icmp", dst, ep.PING_ID, seq, size, ttl, at=at))
        elif kind == "icmp":
            src, itype, code, info = detail
            ping.handle(SocketError("icmp", "EHOSTUNREACH", "icmp", src, itype, code, info,
                                    Probe(dst, "icmp", ident=ep.PING_ID, seq=seq), at=at))
        elif kind == "local":
            ping.handle(SocketError("icmp", "EMSGSIZE", "local", "", 0, 0, detail[0],
                                    Probe(dst, "icmp", ident=ep.PING_ID, seq=seq), at=at))
    return ping


def test_ping_output_two_replies_across_a_router():
    ping = run_ping(["-c", "2", "10.9.1.2"], [(56, "reply", 1, 64, 63), (1_007_000, "tick", 0),
                                             (1_007_066, "reply", 2, 64, 63)])
    assert format_ping(ping.result) == (
        "PING 10.9.1.2 (10.9.1.2) 56(84) bytes of data.\n"
        "64 bytes from 10.9.1.2: icmp_seq=1 ttl=63 time=0.056 ms\n"
        "64 bytes from 10.9.1.2: icmp_seq=2 ttl=63 time=0.066 ms\n"
        "\n"
        "--- 10.9.1.2 ping statistics ---\n"
        "2 packets transmitted, 2 received, 0% packet loss, time 1007ms\n"
        "rtt min/avg/max/mdev = 0.056/0.061/0.066/0.005 ms\n")


def test_ping_output_ttl_exceeded():
    ping = run_ping(["-c", "2", "-t", "1", "10.9.1.2"], [(60, "icmp", 1, "10.9.0.254", 11, 0, 0),
                                                         (1_014_000, "tick", 0),
                                                         (1_014_040, "icmp", 2, "10.9.0.254", 11, 0, 0)])
    assert format_ping(ping.result) == (
        "PING 10.9.1.2 (10.9.1.2) 56(84) bytes of data.\n"
        "From 10.9.0.254 icmp_seq=1 Time to live exceeded\n"
        "From 10.9.0.254 icmp_seq=2 Time to live exceeded\n"
        "\n"
        "--- 10.9.1.2 ping statistics ---\n"
        "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1014ms\n"
        "\n")
    assert ping.status == 1


def test_ping_output_frag_needed_then_local_errors_from_the_pmtu_cache():
    ping = run_ping(["-c", "3", "-M", "do", "-s", "1422", "10.9.1.2"], [
        (50, "icmp", 1, "10.9.0.254", 3, 4, 1400), (1_024_000, "tick", 0), (1_024_000, "local", 2, 1400),
        (2_048_000, "tick", 0), (2_048_000, "local", 3, 1400), (2_048_000, "tick", 0),
        (12_048_000, "linger", 0)])
    ping.handle(TimerFired("linger", 2_048_000))
    assert format_ping(ping.result) == (
        "PING 10.9.1.2 (10.9.1.2) 1422(1450) bytes of data.\n"
        "From 10.9.0.254 icmp_seq=1 Frag needed and DF set (mtu = 1400)\n"
        "ping: local error: message too long, mtu=1400\n"
        "ping: local error: message too long, mtu=1400\n"
        "\n"
        "--- 10.9.1.2 ping statistics ---\n"
        "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2048ms\n"
        "\n")
    assert ping_stderr(ping.result) == "ping: local error: message too long, mtu=1400\n" * 2


def test_ping_output_host_unreachable_after_arp_fails_counts_the_pipe():
    events = [(1_000_000 * k, "tick", 0) for k in (1, 2, 3)]
    events += [(3_063_000, "icmp", seq, "10.9.0.1", 3, 1, 0) for seq in (1, 2, 3, 4)]
    ping = run_ping(["-c", "4", "10.9.0.99"], events)
    assert format_ping(ping.result) == (
        "PING 10.9.0.99 (10.9.0.99) 56(84) bytes of data.\n"
        + "".join(f"From 10.9.0.1 icmp_seq={s} Destination Host Unreachable\n" for s in (1, 2, 3, 4))
        + "\n--- 10.9.0.99 ping statistics ---\n"
        "4 packets transmitted, 0 received, +4 errors, 100% packet loss, time 3063ms\n"
        "pipe 4\n")


def test_ping_output_statistics_rounding():
    result = PingResult(parse_ping_args(["-c", "3", "10.0.0.2"]), "10.0.0.2", "10.0.0.2",
                        (PingReply(1, "10.0.0.2", 64, 64, 150), PingReply(3, "10.0.0.2", 64, 64, 12_345)), 3, 2003)
    lines = format_ping(result).splitlines()
    assert lines[2] == "64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=12.3 ms"
    assert lines[-2] == "3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms"
    # mdev: llsqrt of the variance in microseconds, (152421525 - 12495 * 12495 // 2) // 2 = 37179506;
    # Newton from above stops at 6097 (6097.5 squared is the variance)
    assert lines[-1] == "rtt min/avg/max/mdev = 0.150/6.247/12.345/6.097 ms"


def test_ping_output_without_timing_below_16_bytes():
    ping = run_ping(["-c", "1", "-s", "10", "10.9.0.2"], [(40, "reply", 1, 18, 64)])
    assert format_ping(ping.result).splitlines()[1] == "18 bytes from 10.9.0.2: icmp_seq=1 ttl=64"
    assert format_ping(ping.result).endswith("0% packet loss, time 0ms\n\n")
    assert isinstance(ping.result.events[0], PingReply) and not isinstance(ping.result.events[0], PingError)


# ------------------------------------------------------------------------------ traceroute

@pytest.mark.parametrize("argv, text", [
    (["-m", "256", "10.9.1.2"], "max hops cannot be more than 255"),
    (["-m", "0", "10.9.1.2"], "first hop out of range"),
    (["-q", "11", "10.9.1.2"], "no more than 10 probes per hop"),
    (["-p", "abc", "10.9.1.2"], "Cannot handle `-p' option with arg `abc' (argc 2)"),
    (["10.9.1.2", "65001"], "too big packetlen 65001 specified"),
])
def test_traceroute_refuses_options_as_traceroute_does(argv, text):
    with pytest.raises(TracerouteUsageError) as refused:
        parse_traceroute_args(argv)
    assert (refused.value.text, refused.value.status) == (text, 2)


def test_traceroute_udp_probes():
    tr = Traceroute(parse_traceroute_args(["10.9.1.2"]))
    actions = tr.start(0)
    sends = [a for a in actions if type(a).__name__ == "Send"]
    opens = [a for a in actions if isinstance(a, Open)]
    connects = [a for a in actions if isinstance(a, Connect)]
    # 16 probes in flight: TTL 1 to 6 with three per hop, ports 33434 up, DF clear
    assert [o.options for o in opens] == [SocketOptions(ttl=1 + i // 3, pmtudisc="dont", recverr=True)
                                              for i in range(16)]
    assert [c.dport for c in connects] == list(range(33434, 33450))
    # the captured payload: 32 bytes "@ABC...^_"
    assert {s.data for s in sends} == {bytes(range(0x40, 0x60))}


def test_traceroute_icmp_probes():
    tr = Traceroute(parse_traceroute_args(["-I", "10.9.1.2"]))
    actions = tr.start(0)
    assert actions[0] == Open("icmp", "icmp", SocketOptions(pmtudisc="dont", recverr=True))
    echoes = [a for a in actions if isinstance(a, SendEcho)]
    ttls = [a.options.ttl for a in actions if isinstance(a, SetOptions)]
    assert [e.seq for e in echoes] == list(range(1, 17)) and ttls == [1 + i // 3 for i in range(16)]
    assert echoes[0].data == bytes(range(0x48, 0x68))        # the captured "HIJK...efg"


def test_traceroute_tcp_probes():
    tr = Traceroute(parse_traceroute_args(["-T", "10.9.1.2"]), mtu=1450)
    segments = [a.segment for a in tr.start(0) if isinstance(a, SendSegment)]
    syn = segments[0]
    assert (syn.flags, syn.dport, syn.window, len(syn.options)) == ("S", 80, 5640, 20)
    kinds = [(o.kind, o.values[:1] if o.kind != TCPOPT_TIMESTAMP else o.values[1:]) for o in syn.option_list]
    assert kinds == [(TCPOPT_MSS, (1410,)), (TCPOPT_SACK_PERM, ()), (TCPOPT_TIMESTAMP, (0,)), (TCPOPT_NOP, ()),
                     (TCPOPT_WINDOW, (2,))]
    assert len({s.sport for s in segments}) == 16 and {s.dport for s in segments} == {80}
    assert tr.options.length == 60


@pytest.mark.parametrize("argv, length", [(["10.9.1.2", "27"], 28), (["-I", "10.9.1.2", "20"], 28),
                                          (["-T", "10.9.1.2", "20"], 60), (["10.9.1.2", "1450"], 1450)])
def test_traceroute_packet_length(argv, length):
    assert parse_traceroute_args(argv).length == length


def test_traceroute_udp_data_wraps_every_64_bytes():
    tr = Traceroute(parse_traceroute_args(["-q", "1", "-m", "1", "10.9.1.2", "100"]))
    (send,) = [a for a in tr.start(0) if type(a).__name__ == "Send"]
    assert send.data == bytes(range(0x40, 0x80)) + bytes(range(0x40, 0x48))


def trace(argv, answers, **kw):
    """Feed a traceroute (index, at, offender, icmp type, code, info); index None: a timer."""
    tr = Traceroute(parse_traceroute_args(argv), **kw)
    tr.start(0)
    for index, at, src, itype, code, info in answers:
        if src is None:
            tr.handle(TimerFired(f"w{index}", at))
        elif itype == "reply":
            tr.handle(EchoReplyReceived("icmp", src, tr.ident, index + 1, 40, 63, at=at))
        else:
            tr.handle(SocketError(f"p{index}", "EHOSTUNREACH", "icmp", src, itype, code, info, at=at))
    return tr


def test_traceroute_output_names_and_times():
    tr = trace(["10.9.1.2"], [(0, 301, "10.9.0.254", 11, 0, 0), (1, 11, "10.9.0.254", 11, 0, 0),
                              (2, 4, "10.9.0.254", 11, 0, 0), (3, 19, "10.9.1.2", 3, 3, 0),
                              (4, 7, "10.9.1.2", 3, 3, 0), (5, 7, "10.9.1.2", 3, 3, 0)])
    assert tr.done
    assert format_traceroute(tr.result) == (
        "traceroute to 10.9.1.2 (10.9.1.2), 30 hops max, 60 byte packets\n"
        " 1  10.9.0.254 (10.9.0.254)  0.301 ms  0.011 ms  0.004 ms\n"
        " 2  10.9.1.2 (10.9.1.2)  0.019 ms  0.007 ms  0.007 ms\n")


def test_traceroute_output_stars_and_a_late_destination():
    answers = [(0, 32, "10.9.0.254", 11, 0, 0), (1, 4, "10.9.0.254", 11, 0, 0), (2, 5, "10.9.0.254", 11, 0, 0)]
    answers += [(i, 5_000_000, None, 0, 0, 0) for i in range(3, 19)]
    answers += [(19, 5_000_224, "10.9.1.2", 3, 3, 0), (20, 5_000_008, "10.9.1.2", 3, 3, 0)]
    tr = trace(["-n", "10.9.1.2"], answers)
    assert format_traceroute(tr.result).splitlines()[1:] == [
        " 1  10.9.0.254  0.032 ms  0.004 ms  0.005 ms", " 2  * * *", " 3  * * *", " 4  * * *", " 5  * * *",
        " 6  * * *", " 7  * 10.9.1.2  0.224 ms  0.008 ms"]


def test_traceroute_output_marks():
    unreachable = trace(["-n", "-w", "5", "-q", "1", "-m", "3", "10.9.1.99"],
                        [(0, 17, "10.9.0.254", 11, 0, 0), (1, 3_069_389, "10.9.0.254", 3, 1, 0)])
    assert format_traceroute(unreachable.result) == (
        "traceroute to 10.9.1.99 (10.9.1.99), 3 hops max, 60 byte packets\n"
        " 1  10.9.0.254  0.017 ms\n"
        " 2  10.9.0.254  3069.389 ms !H\n")
    frag = trace(["-n", "-F", "10.9.1.2", "1450"],
                 [(0, 17, "10.9.0.254", 11, 0, 0), (1, 2, "10.9.0.254", 11, 0, 0), (2, 2, "10.9.0.254", 11, 0, 0),
                  (3, 3, "10.9.0.254", 3, 4, 1400), (4, 1, "10.9.0.254", 3, 4, 1400),
                  (5, 2, "10.9.0.254", 3, 4, 1400)])
    assert format_traceroute(frag.result).splitlines()[2] == (
        " 2  10.9.0.254  0.003 ms !F-1400  0.001 ms !F-1400  0.002 ms !F-1400")


def test_traceroute_keeps_16_probes_in_flight_and_stops_at_the_destination_hop():
    tr = Traceroute(parse_traceroute_args(["-I", "10.9.1.2"]))
    tr.start(0)
    more = tr.handle(SocketError("icmp", "EHOSTUNREACH", "icmp", "10.9.0.254", 11, 0, 0,
                                 Probe("10.9.1.2", "icmp", ident=tr.ident, seq=1), at=30))
    assert [a.seq for a in more if isinstance(a, SendEcho)] == [17]
    for seq in (2, 3):
        tr.handle(SocketError("icmp", "EHOSTUNREACH", "icmp", "10.9.0.254", 11, 0, 0,
                              Probe("10.9.1.2", "icmp", ident=tr.ident, seq=seq), at=30))
    for seq in (4, 5):
        assert not tr.done
        tr.handle(EchoReplyReceived("icmp", "10.9.1.2", tr.ident, seq, 40, 63, at=40))
    last = tr.handle(EchoReplyReceived("icmp", "10.9.1.2", tr.ident, 6, 40, 63, at=40))
    assert tr.done and isinstance(last[-1], Done)
    assert format_traceroute(tr.result).splitlines()[2] == " 2  10.9.1.2 (10.9.1.2)  0.040 ms  0.040 ms  0.040 ms"


def test_traceroute_tcp_reaches_the_destination_with_its_rst():
    wire = DirectWire()
    wire.add("10.244.1.2", Idle())
    tr = wire.add("10.244.0.2", Traceroute(parse_traceroute_args(["-n", "-T", "10.244.1.2"])))
    wire.run()
    assert format_traceroute(tr.result).splitlines()[1].startswith(" 1  10.244.1.2  0.")
    rsts = [d.payload for d in wire.log if d.src == "10.244.1.2"]
    assert {r.flags for r in rsts} == {"RA"}


# ------------------------------------------------------------------------------ dig

REAL_DIG = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @10.9.0.2 web.default.svc.cluster.local
; (1 server found)
;; global options: +cmd
;; Got answer:
;; WARNING: .local is reserved for Multicast DNS
;; You are currently testing what happens when an mDNS query is leaked to DNS
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 31957
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
; COOKIE: 8844441340968c3f (echoed)
;; QUESTION SECTION:
;web.default.svc.cluster.local.\tIN\tA

;; ANSWER SECTION:
web.default.svc.cluster.local. 5 IN\tA\t10.96.0.100

;; Query time: 4 msec
;; SERVER: 10.9.0.2#53(10.9.0.2) (UDP)
;; WHEN: Sat Dec 05 09:04:40 UTC 2026
;; MSG SIZE  rcvd: 115

"""

REAL_DIG_NXDOMAIN_TCP = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @10.9.0.2 nosuch.default.svc.cluster.local +tcp
; (1 server found)
;; global options: +cmd
;; Got answer:
;; WARNING: .local is reserved for Multicast DNS
;; You are currently testing what happens when an mDNS query is leaked to DNS
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 56921
;; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
; COOKIE: ef42ff87a3c6f02b (echoed)
;; QUESTION SECTION:
;nosuch.default.svc.cluster.local. IN\tA

;; AUTHORITY SECTION:
cluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5

;; Query time: 0 msec
;; SERVER: 10.9.0.2#53(10.9.0.2) (TCP)
;; WHEN: Sat Dec 05 09:04:40 UTC 2026
;; MSG SIZE  rcvd: 166

"""


def run_dig(argv, data=None):
    wire = DirectWire()
    wire.add("10.9.0.2", CoreDnsServer(data or ClusterDns(services=(ServiceRecord("web", "default", "10.96.0.100"),))))
    dig = wire.add("10.9.0.1", Dig(parse_dig_args(argv), kubelet_resolv_conf("default"), seed="pod-a",
                                   epoch=1796461480))
    wire.run()
    return dig.result


def as_run(text, result, query_time):
    """The real transcript with the values dig picks at random (ID, cookie) and the clock's
    (query time) put to the model's."""
    cookie = next(o.data for o in result.query.edns.options if o.code == 10).hex()
    old_id = text.split("id: ")[1].split("\n")[0]
    old_cookie = text.split("COOKIE: ")[1].split(" ")[0]
    return (text.replace(f"id: {old_id}\n", f"id: {result.reply.id}\n").replace(old_cookie, cookie)
            .replace(f"Query time: {query_time} msec", "Query time: 0 msec"))


def test_dig_output_matches_the_real_transcript():
    result = run_dig(["@10.9.0.2", "web.default.svc.cluster.local"])
    assert format_dig(result) == as_run(REAL_DIG, result, 4)


def test_dig_nxdomain_over_tcp_matches_the_real_transcript():
    result = run_dig(["@10.9.0.2", "nosuch.default.svc.cluster.local", "+tcp"])
    assert result.proto == "tcp"
    assert format_dig(result) == as_run(REAL_DIG_NXDOMAIN_TCP, result, 0)


def test_dig_search_and_short():
    result = run_dig(["@10.9.0.2", "web", "+search", "+short"])
    assert result.names_tried == ("web.default.svc.cluster.local.",)
    assert format_dig(result) == "10.96.0.100\n"
    assert run_dig(["@10.9.0.2", "web"]).reply.question.name == "web."       # no search list by default


def test_dig_query_flags_and_edns():
    q = run_dig(["@10.9.0.2", "web.default.svc.cluster.local", "+noedns"]).query
    assert (q.rd, q.ad, q.edns) == (True, True, None)
    q = run_dig(["@10.9.0.2", "web.default.svc.cluster.local", "+nocookie", "+norecurse"]).query
    assert (q.rd, q.edns.udp_size, q.edns.options) == (False, 1232, ())


def test_dig_retries_and_gives_up_when_refused():
    result = run_dig(["@10.9.0.2", "-p", "5353", "+tries=2", "web"])
    assert result.status == 9
    assert format_dig(result) == (
        ";; communications error to 10.9.0.2#5353: connection refused\n"
        ";; communications error to 10.9.0.2#5353: connection refused\n"
        "\n"
        "; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @10.9.0.2 -p 5353 +tries=2 web\n"
        "; (1 server found)\n"
        ";; global options: +cmd\n"
        ";; no servers could be reached\n")


@pytest.mark.parametrize("argv, text, status", [
    (["+foo", "web"], "Invalid option: +foo\nUsage:  dig [@global-server] [domain] [q-type] [q-class] {q-opt}\n", 1),
    (["@10.9.0.2", "a..b"], "dig: 'a..b' is not a legal name (empty label)\n", 10),
])
def test_dig_refuses_as_dig_does(argv, text, status):
    with pytest.raises(DigUsageError) as refused:
        parse_dig_args(argv)
    assert refused.value.text.startswith(text) and refused.value.status == status


# ------------------------------------------------------------------------------ curl-like fetch and nc

def test_fetch_request_is_what_curl_sends():
    assert Fetch("http://10.9.0.2:8080/x").request() == (
        b"GET /x HTTP/1.1\r\nHost: 10.9.0.2:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
    assert Fetch("http://10.9.0.2:8080/", data=b"abc").request() == (
        b"POST / HTTP/1.1\r\nHost: 10.9.0.2:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nContent-Length: 3\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nabc")


def test_fetch_a_chosen_size_over_the_tcp_stream():
    wire = DirectWire()
    server = wire.add("10.244.1.2", HttpEchoServer(8080, response_size=100000))
    fetch = wire.add("10.244.0.2", Fetch("http://10.244.1.2:8080/", data=b"q" * 6000))
    wire.run()
    assert (fetch.result.status_line, len(fetch.result.body), fetch.status) == ("HTTP/1.1 200 OK", 100000, 0)
    assert server.requests == [("POST", "/", 6000)]
    # the path "/<n>" asks for n bytes
    wire2 = DirectWire()
    wire2.add("10.244.1.2", HttpEchoServer(8080))
    small = wire2.add("10.244.0.2", Fetch("http://10.244.1.2:8080/42"))
    wire2.run()
    assert small.result.body == b"r" * 42


def test_fetch_errors_as_curl_prints_them():
    wire = DirectWire()
    wire.add("10.244.1.2", Idle())
    refused = wire.add("10.244.0.2", Fetch("http://10.244.1.2:8081/"))
    wire.run()
    assert format_fetch(refused.result) == (
        "", "curl: (7) Failed to connect to 10.244.1.2 port 8081 after 0 ms: Couldn't connect to server\n")
    assert refused.status == 7
    hang = Fetch("http://10.9.0.99:8080/", max_time_ms=2000)
    hang.start(0)
    hang.handle(TimerFired("timeout", 2_000_000))
    assert (hang.result.error, hang.status) == ("curl: (28) Connection timed out after 2000 milliseconds", 28)


def test_nc_sends_prints_and_reports():
    wire = DirectWire()
    wire.add("10.244.1.2", NcListen(8080, reply=b"r" * 20))
    nc = wire.add("10.244.0.2", Nc("10.244.1.2", 8080, b"hello", verbose=True))
    wire.run()
    assert (nc.result.received, nc.result.stderr, nc.status) == (
        b"r" * 20, "Connection to 10.244.1.2 8080 port [tcp/http-alt] succeeded!\n", 0)
    wire = DirectWire()
    wire.add("10.244.1.2", Idle())
    refused = wire.add("10.244.0.2", Nc("10.244.1.2", 8081))
    wire.run()
    assert (refused.result.stderr, refused.status) == (
        "nc: connect to 10.244.1.2 port 8081 (tcp) failed: Connection refused\n", 1)
    silent = Nc("10.9.0.99", 8080, wait_s=1)
    silent.start(0)
    silent.handle(TimerFired("wait", 1_000_000))
    assert silent.result.stderr == "nc: connect to 10.9.0.99 port 8080 (tcp) timed out: Operation now in progress\n"


def test_nc_given_a_name_prints_it_with_the_address():
    """netcat.c prints the host as typed and, when it differs, the address in parentheses
    (measured: `nc -vz localhost 5555`, `nc -v -w 1 localhost 9` against a DROP rule)."""
    wire = DirectWire()
    wire.add("10.244.1.2", NcListen(8080))
    nc = wire.add("10.244.0.2", Nc("10.244.1.2", 8080, zero=True, verbose=True, name="web"))
    wire.run()
    assert (nc.result.stderr, nc.status) == ("Connection to web (10.244.1.2) 8080 port [tcp/http-alt] succeeded!\n", 0)
    wire = DirectWire()
    wire.add("10.244.1.2", Idle())
    refused = wire.add("10.244.0.2", Nc("10.244.1.2", 9, name="localhost"))
    wire.run()
    assert refused.result.stderr == "nc: connect to localhost (10.244.1.2) port 9 (tcp) failed: Connection refused\n"
    silent = Nc("10.9.0.99", 9, wait_s=1, name="localhost")
    silent.start(0)
    silent.handle(TimerFired("wait", 1_000_000))
    assert silent.result.stderr == "nc: connect to localhost (10.9.0.99) port 9 (tcp) timed out: Operation now in progress\n"
    same = Nc("10.244.1.2", 9, name="10.244.1.2")
    assert same.shown == "10.244.1.2"


def test_segment_and_cancel_events_are_value_records():
    assert SegmentReceived("t", "1.2.3.4", ep.tcp_syn("1.1.1.1", "2.2.2.2", 1, 2, 1410, 64, 0).payload) == \
        SegmentReceived("t", "1.2.3.4", ep.tcp_syn("1.1.1.1", "2.2.2.2", 1, 2, 1410, 64, 0).payload)
    assert CancelTimer("a") != CancelTimer("b") and Started(0) == Started(0)
