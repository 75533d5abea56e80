"""The walker: IP forwarding, TTL, ICMP errors, MTU and fragmentation, sockets, loops."""

import struct

import pytest

import dataclasses

from netsim.decision import (Decision, FieldChange, IpReason, NeighbourRef, NetfilterReason, Outcome, OutcomeReason,
                             RouteRef, RuleRef, Subsystem, Verdict)
from netsim.errors import TraceError
from netsim.packet import ICMP
from netsim.stack import Network
from tests.checks import bad_checksums
from tests.topologies import bridged_pods, flannel_pair, router_chain, two_hosts


def non_arp(trace, role=None):
    return [h for h in trace if not h.is_arp and (role is None or h.role == role)]


def facts(decision):
    """What a decision record says, without its sentence."""
    return (decision.subsystem, decision.function, decision.verdict)


def outcome(trace):
    o = trace.outcome
    return (o.kind, o.errno, o.peer, o.icmp)


def test_forwarding_decrements_ttl_once():
    net = router_chain(3)
    trace = net.send("h1", "10.3.0.2")
    assert outcome(trace) == ("answered", "", "10.3.0.2", None)
    assert [(h.where, h.direction, h.ip.ttl) for h in trace.request] == [
        ("h1/eth0", "tx", 64), ("r1/left0", "rx", 64), ("r1/right1", "tx", 63), ("r2/left1", "rx", 63),
        ("r2/right2", "tx", 62), ("r3/left2", "rx", 62), ("r3/right3", "tx", 61), ("h2/eth0", "rx", 61)]
    assert [h.ip.ttl for h in trace.reply] == [64, 64, 63, 63, 62, 62, 61, 61]
    route, forward, queued, sent = trace.where("r1/left0", "rx", "request")[0].decisions
    assert (facts(route), route.consulted) == (("route", "ip_route_input", "forward"),
                                               (RouteRef("main", "default via 10.1.0.2 dev right1", "right1",
                                                         "10.1.0.2", "10.1.0.1"),))
    assert (facts(forward), forward.changes) == (("ip", "ip_forward", "forward"), (FieldChange("ipv4", "ttl", 64, 63),))
    assert (facts(queued), queued.consulted) == (("neighbour", "__neigh_event_send", "queue"),
                                                 (NeighbourRef("right1", "10.1.0.2", "", "INCOMPLETE"),))
    r1, r2 = net.netns("r1"), net.netns("r2")
    assert (facts(sent), sent.consulted[0].lladdr) == (("neighbour", "neigh_update", "send"), r2.device("left1").mac)
    # at a routed hop both Ethernet addresses change: the next hop's, and the router's own
    assert sent.changes == (FieldChange("ethernet", "dst", r1.device("left0").mac, r2.device("left1").mac),
                            FieldChange("ethernet", "src", net.netns("h1").device("eth0").mac, r1.device("right1").mac))


def test_forwarding_rewrites_macs_and_keeps_id_and_df():
    net = router_chain(1)
    trace = net.send("h1", "10.1.0.2", cold=False)
    rx, tx = trace.where("r1/left0", "rx", "request")[0], trace.where("r1/right1", "tx", "request")[0]
    assert (rx.frame.dst, tx.frame.src, tx.frame.dst) == (
        net.netns("r1").device("left0").mac, net.netns("r1").device("right1").mac, net.netns("h2").device("eth0").mac)
    assert (tx.ip.id, tx.ip.df) == (rx.ip.id, rx.ip.df)
    assert bad_checksums(tx.data) == []            # the header checksum is updated with the TTL


def test_host_does_not_decrement_its_own_packets():
    # kernel-observations s7: node1 -> pod-c leaves flannel.1 with TTL 64, pod-c sees 63
    trace = flannel_pair().send("node1", "10.244.1.2")
    assert trace.where("node1/flannel.1", "tx", "request")[0].ip.ttl == 64
    assert trace.where("n2pod0/eth0", "rx", "request")[0].ip.ttl == 63
    assert trace.request[0].ip.src == "10.244.0.0"


def test_cross_node_packet_loses_two_ttl_and_reply_retraces_the_path():
    net = flannel_pair()
    net.netns("n2pod0").listen("tcp", 8080)
    trace = net.send("n1pod0", "10.244.1.2", "tcp", dport=8080)
    assert outcome(trace) == ("connected", "", "10.244.1.2:8080", None) and trace.outcome.ok
    assert trace.request[-1].ip.ttl == 62 and trace.reply[-1].ip.ttl == 62
    flip = {"rx": "tx", "tx": "rx"}
    reverse = [f"{p.rsplit(' ', 1)[0]} {flip[p.rsplit(' ', 1)[1]]}" for p in reversed(trace.path("reply"))]
    assert trace.path("request") == reverse
    synack = trace.reply[0].ip
    assert (synack.id, synack.df) == (0, True)


def test_icmp_time_exceeded_at_ttl_1():
    net = router_chain(2)
    net.netns("h1").set_sysctl("net.ipv4.ip_default_ttl", 2)
    trace = net.send("h1", "10.2.0.2")
    assert outcome(trace) == ("icmp-error", "EHOSTUNREACH", "10.1.0.2", (11, 0))
    drop = trace.where("r2/left1", "rx", "request")[0]
    assert (drop.ip.ttl, drop.verdict) == (1, "dropped")
    assert facts(drop.reason) == ("ip", "ip_forward", "drop") and drop.reason.changes == ()
    error = trace.of_role("error")[0]
    assert (error.where, error.ip.src, error.ip.dst, error.ip.ttl, error.ip.df, error.ip.tos) == (
        "r2/left1", "10.1.0.2", "10.0.0.1", 64, False, 0xC0)
    icmp = error.ip.payload
    assert (icmp.type, icmp.code, icmp.rest) == (11, 0, 0)
    assert icmp.data == drop.ip.to_bytes()         # the whole 84-byte offender is quoted, TTL 1 and all
    assert bad_checksums(error.data) == []


def test_df_packet_over_mtu_gets_frag_needed_with_next_hop_mtu():
    net = router_chain(1, mtus=[1500, 1000])
    trace = net.send("h1", "10.1.0.2", "udp", dport=9, payload=b"x" * 1200)
    assert outcome(trace) == ("icmp-error", "EMSGSIZE", "10.0.0.2", (3, 4))
    drop = trace.where("r1/left0", "rx", "request")[0]
    assert drop.ip.df and drop.ip.length() == 1228
    assert (drop.verdict, facts(drop.reason)) == ("dropped", ("ip", "ip_forward", "drop"))
    error = trace.of_role("error")[0]
    assert struct.unpack("!BBHHH", error.ip.payload.encode(error.ip.src, error.ip.dst)[:8]) == (
        3, 4, struct.unpack("!H", error.data[14 + 22:14 + 24])[0], 0, 1000)
    assert error.ip.length() == 576
    assert not trace.where("r1/right1")


def test_df_clear_packet_is_fragmented_and_reassembled():
    net = router_chain(1, mtus=[1500, 1000])
    net.netns("h2").listen("udp", 9)
    trace = net.send("h1", "10.1.0.2", "udp", dport=9, payload=bytes(range(256)) * 12)
    assert outcome(trace) == ("answered", "", "10.1.0.2:9", None)
    sent = [h.ip for h in trace.where("h1/eth0", "tx", "request")]
    # 3072 bytes of payload + 8 of UDP do not fit 1500: the socket sends it DF-clear, in 1480-byte pieces
    assert [(ip.df, ip.mf, ip.frag * 8, ip.length()) for ip in sent] == [
        (False, True, 0, 1500), (False, True, 1480, 1500), (False, False, 2960, 140)]
    assert len({ip.id for ip in sent}) == 1
    # r1 refragments each piece for the 1000-byte link (976 bytes of data per fragment)
    forwarded = [h.ip for h in trace.where("r1/right1", "tx", "request")]
    assert [(ip.mf, ip.frag * 8, ip.length()) for ip in forwarded] == [
        (True, 0, 996), (True, 976, 524), (True, 1480, 996), (True, 2456, 524), (False, 2960, 140)]
    assert all(ip.ttl == 63 for ip in forwarded)
    received = trace.where("h2/eth0", "rx", "request")
    assert [facts(d) for d in received[-1].decisions[-2:]] == [("ip", "ip_defrag", "reassemble"),
                                                                ("socket", "udp_rcv", "answer")]
    assert [(h.verdict, facts(h.reason)) for h in received[:-1]] == [("delivered", ("ip", "ip_defrag", "hold"))] * 4
    fragmented = trace.where("r1/left0", "rx", "request")[0].decided("ip_do_fragment")
    assert [d.changes for d in fragmented] == [(FieldChange("ipv4", "len", 1500, 996),)]
    assert all(bad_checksums(h.data) == [] for h in trace)


def test_ping_reply_df_clear_and_fragment_offsets_in_the_ip_header():
    trace = two_hosts().send("h1", "10.0.0.2")
    assert (trace.request[0].ip.df, trace.reply[0].ip.df) == (True, False)
    assert trace.reply[0].data[14 + 6:14 + 8] == b"\0\0"


def test_local_df_tcp_over_mtu_is_impossible_because_mss_fits():
    net = two_hosts(mtu=1400)
    net.netns("h2").listen("tcp", 80)
    trace = net.send("h1", "10.0.0.2", "tcp", dport=80)
    assert trace.request[0].ip.payload.options[:4] == bytes([2, 4, 0x05, 0x50])   # MSS 1360 = 1400 - 40


def test_no_route_gives_net_unreachable():
    net = router_chain(1)
    net.netns("r1").route_del("default")
    trace = net.send("h1", "10.9.0.2")
    assert outcome(trace) == ("icmp-error", "ENETUNREACH", "10.0.0.2", (3, 0))
    drop = trace.where("r1/left0", "rx", "request")[0]
    assert (drop.verdict, facts(drop.reason), drop.reason.consulted) == ("dropped", ("route", "ip_error", "drop"), ())
    error = trace.of_role("error")[0].ip
    assert (error.payload.type, error.payload.code) == (3, 0)


def test_no_route_on_the_sender_is_connect_network_unreachable():
    trace = two_hosts().send("h1", "10.9.0.2")
    assert (len(trace), outcome(trace)) == (0, ("local-error", "ENETUNREACH", "", None))


def test_unreachable_route_gives_host_unreachable_and_blackhole_is_silent():
    net = router_chain(1)
    r1 = net.netns("r1")
    r1.route_add("10.11.0.0/16", type="unreachable")
    r1.route_add("10.10.0.0/16", type="blackhole")
    trace = net.send("h1", "10.11.0.1")
    assert outcome(trace) == ("icmp-error", "EHOSTUNREACH", "10.0.0.2", (3, 1))
    trace = net.send("h1", "10.10.0.1")
    assert outcome(trace) == ("timed-out", "ETIMEDOUT", "", None) and not trace.outcome.ok
    reason = trace.drops[-1].reason
    assert (facts(reason), [r.route for r in reason.consulted]) == (("route", "ip_error", "drop"),
                                                                    ["blackhole 10.10.0.0/16"])
    assert not trace.of_role("error")


def test_sender_with_blackhole_or_unreachable_route_fails_like_connect():
    net = two_hosts()
    h1 = net.netns("h1")
    h1.route_add("10.20.0.0/16", type="blackhole")
    h1.route_add("10.21.0.0/16", type="unreachable")
    assert outcome(net.send("h1", "10.20.0.1")) == ("local-error", "EINVAL", "", None)
    assert outcome(net.send("h1", "10.21.0.1")) == ("local-error", "EHOSTUNREACH", "", None)


def test_ip_forward_off_drops_with_reason():
    net = router_chain(1)
    net.netns("r1").set_sysctl("net.ipv4.ip_forward", 0)
    trace = net.send("h1", "10.1.0.2")
    drop = trace.request[-1]
    assert (drop.where, drop.verdict) == ("r1/left0", "dropped")
    assert facts(drop.reason) == ("route", "ip_route_input_slow", "drop") and drop.reason is drop.decisions[-1]
    assert not trace.of_role("error")          # ip_error sends nothing when forwarding is off


def test_a_router_still_answers_for_its_own_addresses_with_forwarding_off():
    net = router_chain(1)
    net.netns("r1").set_sysctl("net.ipv4.ip_forward", 0)
    assert outcome(net.send("h1", "10.1.0.1")) == ("answered", "", "10.1.0.1", None)   # any local address, weak host


def test_tcp_rst_when_nothing_listens():
    trace = two_hosts().send("h1", "10.0.0.2", "tcp", dport=80)
    assert outcome(trace) == ("refused", "ECONNREFUSED", "10.0.0.2:80", None)
    syn, rst = trace.request[-1], trace.reply[0]
    assert (syn.verdict, facts(syn.reason)) == ("delivered", ("socket", "tcp_v4_send_reset", "reset"))
    assert (rst.ip.payload.flags, rst.ip.id, rst.ip.df, rst.ip.ttl) == ("RA", 0, True, 64)
    assert rst.ip.payload.ack == syn.ip.payload.seq + 1
    assert bad_checksums(rst.data) == []


def test_udp_closed_port_gets_port_unreachable():
    trace = two_hosts().send("h1", "10.0.0.2", "udp", dport=53)
    assert outcome(trace) == ("refused", "ECONNREFUSED", "10.0.0.2", (3, 3))
    datagram, error = trace.request[-1], trace.of_role("error")[0]
    assert facts(datagram.reason) == ("socket", "udp_rcv", "unreachable")
    assert (error.ip.payload.type, error.ip.payload.code) == (3, 3)
    assert error.ip.payload.data == datagram.ip.to_bytes()


def test_udp_and_tcp_exchanges_with_listeners():
    net = two_hosts()
    net.netns("h2").listen("udp", 9090)
    net.netns("h2").listen("tcp", 8080)
    udp = net.send("h1", "10.0.0.2", "udp", dport=9090)
    assert outcome(udp) == ("answered", "", "10.0.0.2:9090", None)
    assert udp.reply[0].ip.payload.payload == b"RSP" and udp.reply[0].ip.id != 0   # unconnected socket: hashed ID
    # the HTTP echo server: the request is ACKed at once (quick ACK), answered, and the server closes
    tcp = net.send("h1", "10.0.0.2", "tcp", dport=8080, payload=b"GET / HTTP/1.1\r\n\r\n")
    assert outcome(tcp) == ("received", "", "10.0.0.2:8080", None) and tcp.outcome.fact("size") == 60
    assert [h.ip.payload.flags for h in non_arp(tcp) if h.direction == "tx"] == ["S", "SA", "A", "PA", "A", "PA", "FA"]
    assert [h.role for h in non_arp(tcp) if h.direction == "tx"] == ["request", "reply", "ack", "data", "ack",
                                                                     "response", "fin"]
    # something else than an HTTP request: acknowledged, never answered; the connection stays open
    other = net.send("h1", "10.0.0.2", "tcp", dport=8080, payload=b"REQ")
    assert outcome(other) == ("connected", "", "10.0.0.2:8080", None)
    assert [h.ip.payload.flags for h in non_arp(other) if h.direction == "tx"] == ["S", "SA", "A", "PA", "A"]


def test_loopback_traffic_never_leaves_lo():
    net = bridged_pods(1)
    net.netns("pod0").listen("tcp", 8080)
    trace = net.send("pod0", "127.0.0.1", "tcp", dport=8080)
    assert outcome(trace) == ("connected", "", "127.0.0.1:8080", None)
    assert {h.where for h in trace} == {"pod0/lo"}
    assert [h.direction for h in trace] == ["rx", "rx"]            # each frame seen once on lo
    assert {(h.frame.src, h.frame.dst) for h in trace} == {("00:00:00:00:00:00", "00:00:00:00:00:00")}
    own = net.send("pod0", "10.244.0.2")
    assert {h.where for h in own} == {"pod0/lo"} and outcome(own) == ("answered", "", "10.244.0.2", None)


def test_martian_source_is_dropped():
    net = two_hosts()
    net.netns("h2").addr_add("eth0", "10.0.0.1/32")   # h2 claims h1's address as well
    trace = net.send("h1", "10.0.0.2")
    drops = trace.drops
    assert drops and drops[0].where == "h2/eth0"
    assert facts(drops[0].reason) == ("route", "fib_validate_source", "drop")


def test_no_reply_route_is_reported_in_the_outcome():
    net = router_chain(1)
    net.netns("h2").route_del("default")
    trace = net.send("h1", "10.1.0.2")
    assert outcome(trace) == ("timed-out", "ETIMEDOUT", "", None)
    # the reply never reached a capture point: its reason is kept, with where it ended
    [ended] = trace.ended
    assert (ended.role, ended.netns, ended.device, ended.verdict, ended.after) == ("reply", "h2", "", "dropped", None)
    assert facts(ended.reason) == ("route", "ip_route_output_key", "drop")


def test_loop_hits_ttl_expiry_first():
    net = router_chain(2)
    r2 = net.netns("r2")
    r2.route_del("default")
    r2.route_add("default", via="10.1.0.1")          # r1 and r2 now point their defaults at each other
    trace = net.send("h1", "10.9.9.9")
    assert outcome(trace) == ("icmp-error", "EHOSTUNREACH", "10.1.0.2", (11, 0))
    forwarded = [h for h in trace.request if h.direction == "tx" and h.netns != "h1"]
    assert len(forwarded) == 63                      # TTL 64 -> 1, one decrement per forward
    assert [h.ip.ttl for h in forwarded][:3] == [63, 62, 61] and forwarded[-1].ip.ttl == 1


def test_loop_hits_hop_cap_with_clear_error():
    # two bridges joined by two cables: a broadcast circulates for ever (no STP)
    net = Network()
    net.add_netns("sw")
    net.add_netns("h")
    br0, br1 = net.bridge("sw", "br0"), net.bridge("sw", "br1")
    for i in range(2):
        a, b = net.veth("sw", f"a{i}", "sw", f"b{i}")
        br0.attach(a)
        br1.attach(b)
    port, _ = net.veth("sw", "hport", "h", "eth0")
    br0.attach(port)
    net.netns("h").addr_add("eth0", "10.0.0.1/24")
    net.max_hops = 200
    with pytest.raises(TraceError) as err:
        net.send("h", "10.0.0.2")
    assert str(err.value).startswith("trace exceeded 200 hops: a forwarding or bridging loop? last hops: sw/")


def test_small_max_hops_stops_a_normal_trace():
    net = router_chain(3)
    net.max_hops = 10
    with pytest.raises(TraceError, match=r"^trace exceeded 10 hops: a forwarding or bridging loop\? last hops: "
                                         r"h1/eth0 tx; r1/left0 rx; r1/right1 tx; r2/left1 rx; r2/left1 tx; "
                                         r"r1/right1 rx$"):
        net.send("h1", "10.3.0.2")


def test_every_frame_ends_delivered_or_dropped_with_a_reason():
    trace = flannel_pair(2).send("n1pod0", "10.244.0.3")
    for hop in trace.drops:
        assert hop.decisions, hop
    assert all(h.verdict in ("", "delivered", "dropped") for h in trace)
    assert isinstance(trace.request[0].ip.payload, ICMP)


def test_the_outcome_is_a_record_not_a_string():
    trace = two_hosts().send("h1", "10.0.0.2", "tcp", dport=80)
    assert isinstance(trace.outcome, Outcome) and not isinstance(trace.outcome, str)
    assert trace.outcome == Outcome("refused", OutcomeReason.RST, "ECONNREFUSED", "10.0.0.2:80")
    assert trace.outcome != Outcome("refused", OutcomeReason.RST, "ECONNREFUSED", "10.0.0.2:81")
    assert not trace.outcome.ok


def test_every_decision_is_a_record_and_the_reason_is_one_of_them():
    trace = flannel_pair(2).send("n1pod0", "10.244.1.2")
    decisions = [d for h in trace for d in h.decisions]
    assert decisions and all(isinstance(d, Decision) and d.function for d in decisions)
    for hop in trace:
        if hop.verdict:
            assert hop.reason is not None and hop.reason in hop.decisions
        else:
            assert hop.reason is None


def test_a_flooded_copy_that_dies_on_its_way_does_not_mark_the_shared_hop():
    """Flow.copy shares the ingress hop: the copy sent to a port that is down ends before a
    capture point of its own, so its reason is kept as an Ended record naming that port, and
    the ingress hop, which the other copies left alive, keeps no verdict."""
    net = bridged_pods(3, hairpin=False)
    net.netns("node").device("vethpod2").up = False
    trace = net.send("pod0", "10.244.0.3")
    assert trace.outcome.kind == "answered"
    ingress = trace.where("node/vethpod0", "rx", "arp")[0]
    assert (ingress.verdict, ingress.reason) == ("", None)
    [ended] = trace.ended
    assert (ended.packet_id, ended.netns, ended.device, ended.verdict, ended.after) == (
        ingress.packet_id, "node", "vethpod2", "dropped", ingress.index)
    assert facts(ended.reason) == ("dev", "dev_queue_xmit", "drop")
    assert ended.reason in ingress.decisions          # still told where the kernel had the frame


def test_a_copy_with_no_sibling_that_goes_on_marks_the_hop_it_died_at():
    """The fragments r1 makes all wait for one neighbour that never answers: each ends at the
    hop where r1 routed the packet; the first gives the hop its verdict, the others are kept."""
    net = router_chain(1, mtus=[1500, 1000])
    net.netns("h2").device("eth0").up = False
    trace = net.send("h1", "10.1.0.2", "udp", dport=9, payload=b"x" * 3000)
    routed = trace.where("r1/left0", "rx", "request")        # h1's three fragments; r1 cuts the first two again
    assert [(h.ip.frag * 8, h.verdict, facts(h.reason)) for h in routed] == [
        (offset, "dropped", ("neighbour", "neigh_invalidate", "drop")) for offset in (0, 1480, 2960)]
    assert [(e.verdict, e.after, e.netns, e.device, facts(e.reason)) for e in trace.ended] == [
        ("dropped", hop.index, "r1", "right1", ("neighbour", "neigh_invalidate", "drop")) for hop in routed[:2]]
    assert outcome(trace) == ("icmp-error", "EHOSTUNREACH", "10.0.0.2", (3, 1))


def test_a_decision_is_a_frozen_record_with_value_equality():
    trace = router_chain(1).send("h1", "10.1.0.2")
    forward = trace.where("r1/left0", "rx", "request")[0].decided("ip_forward")[0]
    assert not isinstance(forward, str)
    same = Decision(Subsystem.IP, "ip_forward", IpReason.FORWARDED, Verdict.FORWARD,
                    changes=(FieldChange("ipv4", "ttl", 64, 63),))
    assert forward == same and hash(forward) == hash(same)
    assert forward != dataclasses.replace(same, verdict=Verdict.DROP)       # the verdict counts, not a text
    assert forward.change("ipv4", "ttl") == FieldChange("ipv4", "ttl", 64, 63)
    with pytest.raises(dataclasses.FrozenInstanceError):
        forward.verdict = Verdict.DROP  # type: ignore[misc]


def _policy(hook: str) -> Decision:
    return Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.POLICY, Verdict.ACCEPT,
                    consulted=(RuleRef("filter", hook, hook, 0, (), "ACCEPT", (), (hook,)),))


class _RecordingNetfilter:
    """A netfilter stand-in that accepts everything and says so with records."""

    conntrack_active = False

    def __init__(self) -> None:
        self.seen: list[str] = []

    def run(self, hook, packet, skb, indev, outdev, nexthop=None):
        return self.hook(hook, packet, skb, indev, outdev, nexthop)   # a callback on every hook

    def hook(self, hook, packet, skb, indev, outdev, nexthop=None):
        from types import SimpleNamespace
        self.seen.append(hook)
        return SimpleNamespace(verdict="ACCEPT", packet=packet, decisions=[_policy(hook)])


def test_the_walk_takes_netfilters_records_when_the_hook_gives_them():
    net = two_hosts()
    stub = net.netns("h2").netfilter = _RecordingNetfilter()
    trace = net.send("h1", "10.0.0.2")
    arrived = trace.where("h2/eth0", "rx", "request")[0]
    assert [(d.function, d.verdict) for d in arrived.decisions[:2]] == [("ipt_do_table", "accept")] * 2
    assert arrived.decisions[:2] == (_policy("PREROUTING"), _policy("INPUT"))
    assert stub.seen[:2] == ["PREROUTING", "INPUT"] and trace.outcome.kind == "answered"


class _DnatNowhere(_RecordingNetfilter):
    """OUTPUT rewrites the destination to an address no route covers."""

    def hook(self, hook, packet, skb, indev, outdev, nexthop=None):
        from dataclasses import replace
        result = super().hook(hook, packet, skb, indev, outdev, nexthop)
        if hook == "OUTPUT":
            result.packet = replace(packet, dst="10.99.0.1")
        return result


def test_a_send_that_fails_on_its_way_out_is_a_local_error():
    net = two_hosts()
    net.netns("h1").netfilter = _DnatNowhere()
    trace = net.send("h1", "10.0.0.2")
    assert (len(trace), trace.outcome.kind, trace.outcome.errno) == (0, "local-error", "ENETUNREACH")
    [ended] = trace.ended
    assert (ended.role, ended.netns, ended.reason.function) == ("request", "h1", "ip_route_me_harder")


def test_icmp_error_answers_only_the_first_fragment():
    # __icmp_send (net/ipv4/icmp.c): "Only reply to fragment 0". Three DF-clear fragments are
    # queued on r1 for an address nobody has; when ARP gives up each queued fragment is dropped,
    # and only the one at offset 0 gets a host unreachable back.
    net = router_chain(1)
    trace = net.send("h1", "10.1.0.99", "udp", dport=9, payload=bytes(3072))
    assert outcome(trace) == ("icmp-error", "EHOSTUNREACH", "10.0.0.2", (3, 1))
    sent = [h.ip for h in trace.where("h1/eth0", "tx", "request")]
    assert [ip.frag * 8 for ip in sent] == [0, 1480, 2960]
    errors = trace.of_role("error")
    assert [(h.netns, h.device, h.direction) for h in errors] == [("r1", "left0", "tx"), ("h1", "eth0", "rx")]
    quoted = errors[0].ip.payload.data
    assert struct.unpack("!H", quoted[6:8])[0] == 0x2000          # MF set, offset 0: fragment 0
    assert quoted[8] == 63 and quoted[12:20] == sent[0].to_bytes()[12:20]   # forwarded: TTL 63


def test_tcp_rst_acknowledges_what_the_segment_occupied():
    # tcp_v4_send_reset (net/ipv4/tcp_ipv4.c): with ACK set, a bare RST at the segment's ACK
    # number; without, RST,ACK at seq + syn + fin + payload length.
    from netsim import endpoints as ep
    from netsim.packet import IPPROTO_TCP, IPv4, TCP

    def rst_for(flags: str, payload: bytes) -> TCP:
        seg = IPv4("10.0.0.1", "10.0.0.2", IPPROTO_TCP, TCP(40000, 81, 1000, 5000, flags, 502, b"", payload))
        out = ep.tcp_rst(seg, 64)
        assert (out.src, out.dst, out.ttl, out.id, out.df) == ("10.0.0.2", "10.0.0.1", 64, 0, True)
        assert isinstance(out.payload, TCP)
        return out.payload

    def fields(t: TCP) -> tuple:
        return (t.sport, t.dport, t.seq, t.ack, t.flags, t.window)

    assert fields(rst_for("S", b"")) == (81, 40000, 0, 1001, "RA", 0)
    assert fields(rst_for("P", b"x" * 10)) == (81, 40000, 0, 1010, "RA", 0)      # data alone: no extra 1
    assert fields(rst_for("F", b"x" * 10)) == (81, 40000, 0, 1011, "RA", 0)
    assert fields(rst_for("SF", b"")) == (81, 40000, 0, 1002, "RA", 0)
    assert fields(rst_for("PA", b"x" * 10)) == (81, 40000, 5000, 0, "R", 0)
    assert fields(rst_for("FA", b"")) == (81, 40000, 5000, 0, "R", 0)


def test_a_walk_leaves_the_garbage_collector_as_it_found_it():
    """Walk.run pauses Python's cyclic collector while it runs and resumes it as it was."""
    import gc

    net = two_hosts()
    assert gc.isenabled()
    assert net.send("h1", "10.0.0.2").outcome.kind == "answered"
    assert gc.isenabled()
    gc.disable()
    try:
        assert net.send("h1", "10.0.0.2").outcome.kind == "answered"
        assert not gc.isenabled()
    finally:
        gc.enable()
