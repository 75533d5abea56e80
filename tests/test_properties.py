"""Invariants that hold for every topology and protocol (hypothesis, derandomized so CI sees the
same examples on every run):

- conservation: every frame copy ends in a hop whose verdict is "delivered" or "dropped", a
  transmitted frame arrives on the cable's other end unchanged, and a drop says why;
- replies retrace the request's capture points in reverse (kernel-observations fact 6);
- the TTL falls by exactly one per namespace that routes the packet, never on bridges, veths or
  VXLAN encapsulation (fact 1);
- every checksum in every emitted frame verifies;
- determinism: the same build gives the same bytes, in this process and under another
  PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, event, given, settings, strategies as st

from netsim.decision import Decision
from netsim.device import Veth
from netsim.stack import Network
from netsim.views.sentences import sentence
from tests.checks import bad_checksums, scapy_rebuild_matches
from tests.topologies import bridged_pods, flannel_pair, router_chain

ROOT = Path(__file__).resolve().parent.parent
PROFILE = settings(derandomize=True, deadline=None, max_examples=150,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# an answer came back from the peer itself (a refusal by RST is one; an ICMP error is not)
SUCCESS = ("answered", "connected", "received")


@dataclass(frozen=True)
class Case:
    build: Callable[[], Network]
    src: str
    dst: str
    proto: str
    dport: int | None
    payload: bytes | None
    listener: str | None       # namespace that opens a socket on dport

    def run(self, net: Network | None = None):
        net = net or self.build()
        if self.listener is not None and self.proto != "icmp":
            net.netns(self.listener).listen(self.proto, self.dport)
        return net, net.send(self.src, self.dst, self.proto, self.dport, payload=self.payload)


def _transport(draw, listener_ns: str) -> tuple[str, int | None, bytes | None, str | None]:
    proto = draw(st.sampled_from(["icmp", "tcp", "udp"]))
    dport = None if proto == "icmp" else draw(st.sampled_from([53, 8080, 9090]))
    payload = None
    if proto == "udp":
        payload = b"u" * draw(st.sampled_from([3, 200, 1400, 2000]))
    elif proto == "tcp" and draw(st.booleans()):
        payload = b"REQ"
    listener = listener_ns if draw(st.booleans()) else None
    return proto, dport, payload, listener


@st.composite
def chain_cases(draw) -> Case:
    routers = draw(st.integers(1, 4))
    octets = st.tuples(st.integers(1, 223).filter(lambda a: a != 127), st.integers(0, 255), st.integers(0, 255))
    prefixes = draw(st.lists(octets, min_size=routers + 1, max_size=routers + 1, unique=True))
    subnets = [f"{a}.{b}.{c}" for a, b, c in prefixes]
    mtus = draw(st.lists(st.sampled_from([1500, 1450, 1000, 576]), min_size=routers + 1, max_size=routers + 1))
    forward = draw(st.booleans())
    src, dst_ns, dst = ("h1", "h2", f"{subnets[-1]}.2") if forward else ("h2", "h1", f"{subnets[0]}.1")
    if draw(st.booleans()):                      # sometimes a router's own address
        i = draw(st.integers(1, routers))
        dst_ns, dst = f"r{i}", draw(st.sampled_from([f"{subnets[i - 1]}.2", f"{subnets[i]}.1"]))
    proto, dport, payload, listener = _transport(draw, dst_ns)
    return Case(lambda: router_chain(routers, subnets, mtus), src, dst, proto, dport, payload, listener)


@st.composite
def bridge_cases(draw) -> Case:
    pods = draw(st.integers(2, 5))
    hairpin = draw(st.booleans())
    src = draw(st.integers(0, pods - 1))
    dst = draw(st.integers(0, pods))             # `pods` means the gateway, cni0
    dst_ns, dst_ip = ("node", "10.244.0.1") if dst == pods else (f"pod{dst}", f"10.244.0.{dst + 2}")
    proto, dport, payload, listener = _transport(draw, dst_ns)
    return Case(lambda: bridged_pods(pods, hairpin), f"pod{src}", dst_ip, proto, dport, payload, listener)


@st.composite
def vxlan_cases(draw) -> Case:
    per_node = draw(st.integers(1, 2))
    pods = [(f"n{n}pod{p}", f"10.244.{n - 1}.{p + 2}") for n in (1, 2) for p in range(per_node)]
    src = draw(st.sampled_from([name for name, _ in pods] + ["node1", "node2"]))
    dst_ns, dst_ip = draw(st.sampled_from([p for p in pods if p[0] != src]))
    proto, dport, payload, listener = _transport(draw, dst_ns)
    return Case(lambda: flannel_pair(per_node), src, dst_ip, proto, dport, payload, listener)


any_case = st.one_of(chain_cases(), bridge_cases(), vxlan_cases())


@st.composite
def mtu_cases(draw) -> Case:
    """UDP over chains of mixed MTUs: DF datagrams that meet a smaller link (fragmentation
    needed), DF-clear ones fragmented by the sender and again by routers."""
    routers = draw(st.integers(1, 3))
    mtus = draw(st.lists(st.sampled_from([1500, 1400, 1000, 576]), min_size=routers + 1, max_size=routers + 1))
    size = draw(st.sampled_from([500, 1200, 1472, 3000]))
    listener = "h2" if draw(st.booleans()) else None
    return Case(lambda: router_chain(routers, mtus=mtus), "h1", f"10.{routers}.0.2", "udp", 9, b"m" * size, listener)


# the invariants ---------------------------------------------------------------------------------

def assert_conservation(net: Network, trace) -> None:
    hops = list(trace)
    for i, hop in enumerate(hops):
        assert hop.verdict in ("", "delivered", "dropped"), hop
        assert all(sentence(d) for d in hop.decisions), hop      # every record has its sentence
        if hop.verdict:
            assert hop.reason is not None and hop.reason in hop.decisions, f"{hop.verdict} without a reason: {hop}"
        if hop.verdict:
            continue
        later = [h for h in hops[i + 1:] if h.packet_id == hop.packet_id]
        dev = net.netns(hop.netns).devices[hop.device]
        if hop.direction == "tx" and isinstance(dev, Veth):
            peer = dev.peer
            assert any(h.netns == peer.netns.name and h.device == peer.name and h.direction == "rx"
                       and h.data == hop.data for h in later), f"{hop.where} tx never arrived at {peer.where}"
        else:
            assert any(h.netns == hop.netns for h in later), f"{hop.where} {hop.direction}: the frame vanished"
    assert not [h for h in hops if h.verdict == "dropped" and not h.decisions]
    # a copy that ended before a capture point of its own is kept, with its reason and where
    for ended in trace.ended:
        assert ended.verdict in ("delivered", "dropped") and isinstance(ended.reason, Decision) and ended.netns, ended
        if ended.after is not None:
            assert hops[ended.after].packet_id == ended.packet_id and ended.reason in hops[ended.after].decisions


def _linear(trace, role: str) -> bool:
    points = trace.path(role)
    ips = [h.ip for h in trace if h.role == role]
    return bool(points) and len(points) == len(set(points)) and not any(ip.is_fragment for ip in ips if ip)


def assert_reply_retraces_request(trace) -> None:
    answered = trace.outcome.kind in SUCCESS or (trace.outcome.kind == "refused" and trace.outcome.icmp is None)
    if not answered or not _linear(trace, "request") or not _linear(trace, "reply"):
        return
    if all(h.device == "lo" for h in trace.request):
        # loopback records each frame once, on receive (like libpcap on lo)
        assert trace.path("reply") == trace.path("request") == [f"{trace.request[0].netns}/lo rx"]
        return
    flip = {"rx": "tx", "tx": "rx"}
    mirrored = [f"{p.rsplit(' ', 1)[0]} {flip[p.rsplit(' ', 1)[1]]}" for p in reversed(trace.path("reply"))]
    assert trace.path("request") == mirrored


def assert_ttl_rule(net: Network, trace) -> None:
    """Walk each linear path: the inner TTL drops by one when the packet leaves a namespace that
    received it addressed to one of its own MACs (so it was routed there), and nowhere else."""
    for role in ("request", "reply", "error"):
        if not _linear(trace, role):
            continue
        path = [h for h in trace if h.role == role]
        expected = path[0].inner_ip.ttl
        routed_in: set[str] = set()
        for hop in path:
            ns = net.netns(hop.netns)
            if hop.direction == "rx" and not hop.encapsulated:
                own = {d.mac for d in ns.devices.values()}
                if hop.frame.dst in own:
                    routed_in.add(hop.netns)
            if hop.direction == "tx" and hop.netns in routed_in:
                routed_in.discard(hop.netns)
                expected -= 1
            assert hop.inner_ip.ttl == expected, f"{role} at {hop.where} {hop.direction}: TTL {hop.inner_ip.ttl}"


def assert_checksums(trace) -> None:
    for hop in trace:
        assert bad_checksums(hop.data, hop.link_type) == [], hop.where


def digest(trace) -> str:
    h = hashlib.sha256()
    for hop in trace:
        h.update(f"{hop.where} {hop.direction} {hop.role} {hop.verdict} {hop.decisions}".encode())
        h.update(hop.data)
    return h.hexdigest()


# the properties ---------------------------------------------------------------------------------

@PROFILE
@given(any_case)
def test_every_frame_copy_ends_delivered_or_dropped(case):
    net, trace = case.run()
    event(f"{case.proto}: {trace.outcome.kind} {trace.outcome.errno}".rstrip())
    assert len(trace) > 0
    assert_conservation(net, trace)


@settings(PROFILE, max_examples=60)
@given(mtu_cases())
def test_fragments_and_pmtu_errors_keep_every_invariant(case):
    net, trace = case.run()
    event(f"{trace.outcome.kind} {trace.outcome.errno}".rstrip())
    assert_conservation(net, trace)
    assert_checksums(trace)
    assert_ttl_rule(net, trace)
    first_link = min(net.netns("h1").device("eth0").mtu, 1500)
    smallest = min(d.mtu for ns in net.namespaces.values() for d in ns.devices.values() if d.name != "lo")
    datagram = 28 + len(case.payload)
    if datagram > first_link or datagram <= smallest:
        # DF clear from the start, or fits everywhere: it arrives (reassembled if need be)
        expected = ("answered", "", None) if case.listener else ("refused", "ECONNREFUSED", (3, 3))
        assert (trace.outcome.kind, trace.outcome.errno, trace.outcome.icmp) == expected
    else:
        assert (trace.outcome.kind, trace.outcome.errno, trace.outcome.icmp) == ("icmp-error", "EMSGSIZE", (3, 4))


@PROFILE
@given(any_case)
def test_replies_retrace_the_request_in_reverse(case):
    _, trace = case.run()
    assert_reply_retraces_request(trace)


@PROFILE
@given(any_case)
def test_ttl_falls_once_per_routing_namespace_only(case):
    net, trace = case.run()
    assert_ttl_rule(net, trace)


@PROFILE
@given(any_case)
def test_every_emitted_frame_has_valid_checksums(case):
    _, trace = case.run()
    assert_checksums(trace)


@settings(PROFILE, max_examples=15)
@given(any_case)
def test_scapy_rebuilds_every_frame_byte_for_byte(case):
    _, trace = case.run()
    for hop in trace:
        assert scapy_rebuild_matches(hop.data, hop.link_type), hop.where


@settings(PROFILE, max_examples=30)
@given(any_case)
def test_same_build_gives_identical_bytes(case):
    _, first = case.run()
    _, second = case.run()
    assert [h.data for h in first] == [h.data for h in second]
    assert digest(first) == digest(second)


@settings(PROFILE, max_examples=20)
@given(any_case)
def test_warm_caches_change_only_the_arp_hops(case):
    net, cold = case.run()
    warm = net.send(case.src, case.dst, case.proto, case.dport, payload=case.payload, cold=False)
    assert warm.arp == [] or cold.arp != []
    assert [h.where for h in warm if not h.is_arp and h.role == "request"][:1] == \
        [h.where for h in cold if not h.is_arp and h.role == "request"][:1]


DIGEST_SCRIPT = """
import hashlib
from tests.topologies import flannel_pair, bridged_pods, router_chain
from tests.test_properties import digest
out = []
net = flannel_pair(2)
net.netns("n2pod1").listen("tcp", 8080)
out.append(digest(net.send("n1pod0", "10.244.1.3", "tcp", dport=8080, payload=b"REQ")))
out.append(digest(net.send("n1pod1", "10.244.1.2", "udp", dport=9090)))
out.append(digest(net.send("node2", "10.244.0.2")))
out.append(digest(bridged_pods(3).send("pod2", "10.244.0.2")))
out.append(digest(router_chain(3, mtus=[1500, 1000, 576, 1500]).send("h1", "10.3.0.2", "udp", dport=9,
                                                                      payload=b"x" * 3000)))
print(hashlib.sha256(" ".join(out).encode()).hexdigest())
"""


def test_traces_do_not_depend_on_the_hash_seed():
    results = set()
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, check=True)
        results.add(proc.stdout.strip())
    local = {}
    exec(DIGEST_SCRIPT.replace("print(", "local['d'] = ("), {"local": local})
    results.add(local["d"])
    assert len(results) == 1, results
