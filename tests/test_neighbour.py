"""Neighbours (ARP): requests are broadcast, replies fill the table, permanent entries need no
ARP, unanswered requests end in FAILED and ICMP host unreachable."""

from netsim.decision import NeighbourRef
from netsim.neighbour import Neighbour
from netsim.packet import ARP_REPLY, ARP_REQUEST, BROADCAST_MAC
from tests.topologies import flannel_pair, router_chain, two_hosts


def test_arp_request_is_broadcast_and_reply_fills_table():
    net = two_hosts()
    h1, h2 = net.netns("h1"), net.netns("h2")
    mac1, mac2 = h1.device("eth0").mac, h2.device("eth0").mac
    trace = net.send("h1", "10.0.0.2")
    arp = trace.arp
    assert [(h.where, h.direction) for h in arp] == [
        ("h1/eth0", "tx"), ("h2/eth0", "rx"), ("h2/eth0", "tx"), ("h1/eth0", "rx")]
    request, reply = arp[0].frame, arp[2].frame
    assert (request.dst, request.src) == (BROADCAST_MAC, mac1)
    assert (request.payload.op, request.payload.psrc, request.payload.pdst, request.payload.hwdst) == \
        (ARP_REQUEST, "10.0.0.1", "10.0.0.2", "00:00:00:00:00:00")
    assert (reply.dst, reply.src) == (mac1, mac2)
    assert (reply.payload.op, reply.payload.hwsrc, reply.payload.psrc) == (ARP_REPLY, mac2, "10.0.0.2")
    assert str(h1.neighbours.get("eth0", "10.0.0.2")) == f"10.0.0.2 dev eth0 lladdr {mac2} REACHABLE"
    # the request taught h2 the sender, so h2 answers without an ARP of its own
    assert str(h2.neighbours.get("eth0", "10.0.0.1")) == f"10.0.0.1 dev eth0 lladdr {mac1} STALE"
    [answered] = arp[1].decisions
    assert (answered.subsystem, answered.function, answered.verdict, arp[1].verdict) == (
        "arp", "arp_process", "reply", "delivered")
    assert answered.consulted == (NeighbourRef("eth0", "10.0.0.1", mac1, "STALE"),)
    [learned] = arp[3].decisions
    assert (learned.function, learned.verdict, learned.consulted) == (
        "neigh_update", "reachable", (NeighbourRef("eth0", "10.0.0.2", mac2, "REACHABLE"),))
    assert [d.function for d in arp[0].decisions] == ["arp_solicit"]
    assert len(arp) == 4


def test_queued_packet_leaves_after_the_reply():
    trace = two_hosts().send("h1", "10.0.0.2")
    first_ip = next(h for h in trace if not h.is_arp)
    assert first_ip.index == 4
    queued = first_ip.decided("__neigh_event_send")
    assert [(d.verdict, d.consulted) for d in queued] == [("queue", (NeighbourRef("eth0", "10.0.0.2", "", "INCOMPLETE"),))]
    # sent once the reply came: a packet this host made has no Ethernet header to rewrite
    [sent] = first_ip.decided("neigh_update")
    assert (sent.verdict, sent.consulted[0].state, sent.changes) == ("send", "REACHABLE", ())


def test_cold_send_flushes_learned_entries_and_warm_send_reuses_them():
    net = two_hosts()
    assert len(net.send("h1", "10.0.0.2").arp) == 4
    warm = net.send("h1", "10.0.0.2", cold=False)
    assert warm.arp == []
    assert [h.where + " " + h.direction for h in warm] == ["h1/eth0 tx", "h2/eth0 rx", "h2/eth0 tx", "h1/eth0 rx"]
    assert len(net.send("h1", "10.0.0.2", cold=True).arp) == 4


def test_permanent_entries_survive_a_flush_and_need_no_arp():
    net = two_hosts()
    h1, h2 = net.netns("h1"), net.netns("h2")
    h1.neigh_add("10.0.0.2", "eth0", h2.device("eth0").mac)
    trace = net.send("h1", "10.0.0.2")
    # only h2 has to resolve h1 (it got no ARP request to learn from)
    assert [h.frame.payload.pdst for h in trace.arp if h.frame.payload.op == ARP_REQUEST] == ["10.0.0.1", "10.0.0.1"]
    assert h1.neighbours.get("eth0", "10.0.0.2").state == "PERMANENT"


def test_no_arp_crosses_flannel_1():
    trace = flannel_pair().send("n1pod0", "10.244.1.2")
    assert not [h for h in trace.arp if h.device == "flannel.1"]
    assert sorted({h.frame.payload.pdst for h in trace.arp if h.frame.payload.op == ARP_REQUEST}) == \
        ["10.244.0.1", "10.244.1.2", "192.168.50.12"]


def test_unanswered_arp_is_retried_then_failed_with_host_unreachable():
    net = router_chain(1)
    trace = net.send("h1", "10.1.0.99")
    requests = [h for h in trace.arp if h.direction == "tx" and h.where == "r1/right1"]
    assert len(requests) == 3                      # mcast_solicit
    assert str(net.netns("r1").neighbours.get("right1", "10.1.0.99")) == "10.1.0.99 dev right1 FAILED"
    assert (trace.outcome.kind, trace.outcome.errno, trace.outcome.peer) == ("icmp-error", "EHOSTUNREACH", "10.0.0.2")
    dropped = [h for h in trace.drops if h.role == "request"]
    assert dropped[-1].where == "r1/left0"
    reason = dropped[-1].reason
    assert (reason.function, reason.verdict, reason.consulted) == (
        "neigh_invalidate", "drop", (NeighbourRef("right1", "10.1.0.99", "", "FAILED"),))


def test_local_packet_with_failed_arp_reports_host_unreachable_from_own_address():
    # ping prints "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable"
    trace = two_hosts().send("h1", "10.0.0.9")
    assert (trace.outcome.kind, trace.outcome.errno, trace.outcome.peer, trace.outcome.icmp) == (
        "icmp-error", "EHOSTUNREACH", "10.0.0.1", (3, 1))
    assert trace[-1].where == "h1/lo" and trace[-1].verdict == "delivered"


def test_neighbour_lines_print_like_ip_neigh():
    assert str(Neighbour("10.0.0.2", "eth0", "02:00:00:00:00:02", "REACHABLE")) == \
        "10.0.0.2 dev eth0 lladdr 02:00:00:00:00:02 REACHABLE"
    assert str(Neighbour("10.0.0.77", "eth0", None, "INCOMPLETE")) == "10.0.0.77 dev eth0 INCOMPLETE"
    assert str(Neighbour("10.0.0.77", "eth0", None, "FAILED")) == "10.0.0.77 dev eth0 FAILED"
