"""conntrack: connection states as nf_conntrack keeps them and `conntrack -L` prints them,
and NAT port choice as nf_nat_core.c makes it (with crc32 standing in for the kernel's random)."""

from __future__ import annotations

from types import SimpleNamespace

from netsim.conntrack import DST, SRC, ConnTuple, Conntrack, tuple_of
from netsim.decision import ConntrackReason, ConntrackRef
from netsim.packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TCP, UDP
from netsim.skb import Skb


class FakeNetns:
    def __init__(self, name: str = "kl-node1"):
        self.name = name
        self.sysctl = SimpleNamespace(ip_local_port_range=(32768, 60999))
        self.conntrack = Conntrack(self)


def tcp(src: str, sport: int, dst: str, dport: int, flags: str) -> IPv4:
    return IPv4(src, dst, IPPROTO_TCP, TCP(sport, dport, flags=flags))


def udp(src: str, sport: int, dst: str, dport: int) -> IPv4:
    return IPv4(src, dst, IPPROTO_UDP, UDP(sport, dport, b"REQ"))


def ping(src: str, dst: str, ident: int, kind: int = 8) -> IPv4:
    return IPv4(src, dst, IPPROTO_ICMP, ICMP(kind, 0, (ident << 16) | 1, b"x"))


def see(ct: Conntrack, packet: IPv4) -> Skb:
    """One packet through conntrack: track at PREROUTING, confirm at its last hook."""
    skb = Skb()
    ct.track(packet, skb)
    if skb.ct is not None and not skb.ct.confirmed and not skb.ct.dying:
        ct.confirm(skb.ct)
    return skb


C, S = "10.244.0.2", "10.244.0.3"


def test_conntrack_listing_format():
    """Checked against conntrack-tools 1.4.7 on a 6.18 kernel (see the module docstring)."""
    ct = FakeNetns().conntrack
    for packet in (tcp(C, 33836, S, 8080, "S"), tcp(S, 8080, C, 33836, "SA"), tcp(C, 33836, S, 8080, "A")):
        see(ct, packet)
    see(ct, udp(C, 35242, S, 9191))
    see(ct, udp(C, 43132, S, 9090))
    see(ct, udp(S, 9090, C, 43132))
    see(ct, ping(C, S, 1227))
    assert ct.listing() == (
        "tcp      6 431999 ESTABLISHED src=10.244.0.2 dst=10.244.0.3 sport=33836 dport=8080 "
        "src=10.244.0.3 dst=10.244.0.2 sport=8080 dport=33836 [ASSURED] mark=0 use=1\n"
        "udp      17 29 src=10.244.0.2 dst=10.244.0.3 sport=35242 dport=9191 [UNREPLIED] "
        "src=10.244.0.3 dst=10.244.0.2 sport=9191 dport=35242 mark=0 use=1\n"
        "udp      17 29 src=10.244.0.2 dst=10.244.0.3 sport=43132 dport=9090 "
        "src=10.244.0.3 dst=10.244.0.2 sport=9090 dport=43132 mark=0 use=1\n"
        "icmp     1 29 src=10.244.0.2 dst=10.244.0.3 type=8 code=0 id=1227 [UNREPLIED] "
        "src=10.244.0.3 dst=10.244.0.2 type=0 code=0 id=1227 mark=0 use=1\n")
    ct.flush()
    assert ct.listing() == "" and ct.entries == []


def test_tcp_handshake_states_and_assured_on_third_packet():
    ct = FakeNetns().conntrack
    states = []
    for packet in (tcp(C, 1000, S, 80, "S"), tcp(S, 80, C, 1000, "SA"), tcp(C, 1000, S, 80, "A")):
        skb = see(ct, packet)
        entry = ct.entries[0]
        states.append((skb.ct_state, skb.ct_reply, entry.state, entry.seen_reply, entry.assured))
    assert states == [
        ("NEW", False, "SYN_SENT", False, False),
        ("ESTABLISHED", True, "SYN_RECV", True, False),
        ("ESTABLISHED", False, "ESTABLISHED", True, True),
    ]


def test_tcp_close_reaches_time_wait_and_a_new_syn_reopens():
    ct = FakeNetns().conntrack
    for packet in (tcp(C, 1000, S, 80, "S"), tcp(S, 80, C, 1000, "SA"), tcp(C, 1000, S, 80, "A"),
                   tcp(C, 1000, S, 80, "FA"), tcp(S, 80, C, 1000, "FA"), tcp(C, 1000, S, 80, "A")):
        see(ct, packet)
    assert [e.state for e in ct.entries] == ["TIME_WAIT"]
    assert ct.entries[0].line().startswith("tcp      6 119 TIME_WAIT ")
    skb = Skb()
    decisions = ct.track(tcp(C, 1000, S, 80, "S"), skb)
    assert [(d.subsystem, d.function, d.verdict) for d in decisions] == [
        ("conntrack", "nf_conntrack_tcp_packet", "remove"), ("conntrack", "nf_conntrack_in", "new")]
    assert decisions[0].consulted == (ConntrackRef("tcp", "10.244.0.2:1000 -> 10.244.0.3:80",
                                                   "10.244.0.3:80 -> 10.244.0.2:1000", "TIME_WAIT", "original"),)
    assert [(d.reason, d.facts) for d in decisions] == [(ConntrackReason.REOPEN, ()),
                                                        (ConntrackReason.NEW, (("tcp_state", "SYN_SENT"),))]
    assert decisions[1].consulted == (ConntrackRef("tcp", "10.244.0.2:1000 -> 10.244.0.3:80",
                                                   "10.244.0.3:80 -> 10.244.0.2:1000", "NEW", "original"),)
    assert ct.entries == [] and skb.ct_state == "NEW"


def test_rst_before_any_reply_removes_the_entry():
    """A refused connection: the RST answering the SYN kills the entry at once, but still
    travels as a reply of it (so NAT is undone on it)."""
    ct = FakeNetns().conntrack
    see(ct, tcp(C, 1000, S, 80, "S"))
    skb = see(ct, tcp(S, 80, C, 1000, "RA"))
    assert (skb.ct_state, skb.ct_reply, skb.ct is not None) == ("ESTABLISHED", True, True)
    assert ct.entries == []


def test_packets_that_cannot_start_a_connection_are_invalid():
    ct = FakeNetns().conntrack
    results = []
    for packet in (tcp(S, 80, C, 1000, "SA"), tcp(S, 80, C, 1000, "R"), tcp(S, 80, C, 1000, "F"),
                   ping(S, C, 7, kind=0)):
        skb = Skb()
        decision = ct.track(packet, skb)[0]
        assert (decision.subsystem, decision.verdict) == ("conntrack", "invalid")
        results.append((skb.ct_state, skb.ct, decision.reason, decision.facts, decision.consulted))
    lone = ConntrackRef("tcp", "10.244.0.3:80 -> 10.244.0.2:1000", state="INVALID", direction="original")
    assert results == [
        ("INVALID", None, ConntrackReason.INVALID_TCP, (("flags", "SA"),), (lone,)),
        ("INVALID", None, ConntrackReason.INVALID_TCP, (("flags", "R"),), (lone,)),
        ("INVALID", None, ConntrackReason.INVALID_TCP, (("flags", "F"),), (lone,)),
        ("INVALID", None, ConntrackReason.INVALID_ICMP, (("type", 0), ("src", "10.244.0.3"), ("dst", "10.244.0.2")),
         (ConntrackRef("icmp", "10.244.0.3 -> 10.244.0.2 id 7", state="INVALID", direction="original"),)),
    ]


def test_a_mid_stream_ack_is_picked_up_as_established_but_not_assured():
    """nf_conntrack_tcp_loose=1: an ACK of an unknown connection starts an ESTABLISHED entry."""
    ct = FakeNetns().conntrack
    skb = see(ct, tcp(C, 1000, S, 80, "A"))
    assert skb.ct_state == "NEW"
    assert ct.listing() == ("tcp      6 431999 ESTABLISHED src=10.244.0.2 dst=10.244.0.3 sport=1000 dport=80 "
                            "[UNREPLIED] src=10.244.0.3 dst=10.244.0.2 sport=80 dport=1000 mark=0 use=1\n")


def test_udp_stays_new_until_a_reply_is_seen():
    ct = FakeNetns().conntrack
    first = see(ct, udp(C, 5000, S, 53))
    second = see(ct, udp(C, 5000, S, 53))
    reply = see(ct, udp(S, 53, C, 5000))
    third = see(ct, udp(C, 5000, S, 53))
    assert [s.ct_state for s in (first, second, reply, third)] == ["NEW", "NEW", "ESTABLISHED", "ESTABLISHED"]
    assert len(ct.entries) == 1 and not ct.entries[0].assured   # ASSURED needs traffic 2 s later


def test_icmp_echo_tuple_and_its_reply():
    request = tuple_of(ping(C, S, 1227))
    assert request == ConnTuple(IPPROTO_ICMP, C, S, 1227, 0, 8, 0)
    assert request.invert() == ConnTuple(IPPROTO_ICMP, S, C, 1227, 0, 0, 0)
    ct = FakeNetns().conntrack
    see(ct, ping(C, S, 1227))
    assert see(ct, ping(S, C, 1227, kind=0)).ct_reply is True
    assert "[UNREPLIED]" not in ct.listing()


def test_snat_keeps_the_source_port_when_unique_and_searches_when_not():
    ct = FakeNetns().conntrack
    mapped = []
    for pod in ("10.244.0.2", "10.244.0.3"):
        skb = Skb()
        ct.track(tcp(pod, 40000, "203.0.113.10", 80, "S"), skb)
        assert ct.setup_nat(skb.ct, SRC, "192.168.50.11")
        ct.confirm(skb.ct)
        mapped.append(skb.ct.reply.dport)
    # the second connection would clash with the first: search from crc32(name, tuple) over 1024-65535
    offset = ct.pseudo_random(ConnTuple(IPPROTO_TCP, "192.168.50.11", "203.0.113.10", 40000, 80)) & 0xFFFF
    assert mapped == [40000, 1024 + offset % 64512] == [40000, 7210]


def test_random_fully_picks_from_crc32_and_steps_past_a_taken_port():
    ct = FakeNetns().conntrack
    tup = ConnTuple(IPPROTO_TCP, "192.168.50.11", "203.0.113.10", 45178, 8080)
    pick = 1024 + (ct.pseudo_random(tup) & 0xFFFF) % 64512
    blocker = Skb()
    ct.track(tcp("10.244.0.9", 45178, "203.0.113.10", 8080, "S"), blocker)
    ct.setup_nat(blocker.ct, SRC, "192.168.50.11", (pick, pick))
    ct.confirm(blocker.ct)
    skb = Skb()
    ct.track(tcp("10.244.0.2", 45178, "203.0.113.10", 8080, "S"), skb)
    ct.setup_nat(skb.ct, SRC, "192.168.50.11", random_fully=True)
    assert (blocker.ct.reply.dport, skb.ct.reply.dport) == (pick, pick + 1)


def test_low_source_ports_stay_in_their_band():
    """nf_nat_l4proto_unique_tuple: a source port below 512 is remapped within 1-511."""
    ct = FakeNetns().conntrack
    skb = Skb()
    ct.track(udp("10.244.0.2", 123, "203.0.113.10", 123), skb)
    ct.setup_nat(skb.ct, SRC, "192.168.50.11", random_fully=True)
    assert 1 <= skb.ct.reply.dport <= 511


def test_dnat_changes_only_what_it_is_given():
    ct = FakeNetns().conntrack
    skb = Skb()
    ct.track(tcp("10.244.0.2", 40000, "10.96.0.100", 80, "S"), skb)
    ct.setup_nat(skb.ct, DST, "10.244.1.2", (8080, 8080))
    ct.setup_nat(skb.ct, SRC, None)                  # the null binding at POSTROUTING
    ct.confirm(skb.ct)
    entry = skb.ct
    assert (entry.dnat, entry.snat) == (True, False)
    assert entry.line() == ("tcp      6 119 SYN_SENT src=10.244.0.2 dst=10.96.0.100 sport=40000 dport=80 [UNREPLIED] "
                            "src=10.244.1.2 dst=10.244.0.2 sport=8080 dport=40000 mark=0 use=1")
    assert ct.lookup(ConnTuple(IPPROTO_TCP, "10.244.1.2", "10.244.0.2", 8080, 40000)) == (entry, 1)


# ---- a property: NAT is always undone on the way back -------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from netsim.conntrack import ORIGINAL, REPLY  # noqa: E402

addresses = st.sampled_from(["10.244.0.2", "10.244.0.3", "10.244.1.2", "192.168.50.12"])
ports = st.integers(1, 65535)


@settings(max_examples=200, deadline=None)
@given(flows=st.lists(st.tuples(addresses, ports, st.integers(1, 65535), st.booleans(), st.booleans()),
                      min_size=1, max_size=12))
def test_every_masqueraded_reply_is_restored_to_the_original_sender(flows):
    """Whatever ports the NAT picks, (1) no two connections share a reply tuple and (2) each
    reply, rewritten at PREROUTING, reaches the original sender's address and port."""
    ct = FakeNetns().conntrack
    seen = []
    for src, sport, dport, use_udp, random_fully in flows:
        packet = udp(src, sport, "203.0.113.10", dport) if use_udp else tcp(src, sport, "203.0.113.10", dport, "S")
        skb = Skb()
        ct.track(packet, skb)
        if skb.ct is None or skb.ct.confirmed:
            continue                                   # a repeated flow: already NATed
        assert ct.setup_nat(skb.ct, SRC, "192.168.50.11", random_fully=random_fully)
        ct.confirm(skb.ct)
        seen.append(skb.ct)
    replies = [entry.reply for entry in seen]
    assert len(set(replies)) == len(replies)
    for entry in seen:
        r = entry.reply
        answer = (udp if r.proto == IPPROTO_UDP else (lambda *a: tcp(*a, "SA")))(r.src, r.sport, r.dst, r.dport)
        skb = Skb()
        ct.track(answer, skb)
        assert skb.ct is entry and skb.ct_reply
        restored, _ = ct.nat_packet(entry, REPLY, DST, answer)
        assert (restored.dst, restored.payload.dport) == (entry.original.src, entry.original.sport)
        assert ct.nat_packet(entry, ORIGINAL, DST, answer)[1] is None     # no DNAT on this flow
