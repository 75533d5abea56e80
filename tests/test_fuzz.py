"""A bounded fuzz test of the public API: random clusters, pods, services, breakages and sends.

Inputs are drawn from pools that mix valid and invalid values (names Kubernetes refuses,
special-purpose CIDRs, ports 0 and 70000, str payloads, unknown endpoints...). Whatever is
drawn, only netsim's own errors (NetsimError) may escape, and every trace must account for
every frame copy: each hop's verdict is "", "delivered" or "dropped"; a hop with a verdict
says why (at least one decision); a hop without one has a continuation (a transmitted frame
arrives unchanged at the veth's other end, anything else is seen again in its namespace).

derandomize=True: the same examples on every run. Bounded by max_examples: about 13 s of CPU
(40 s on the wall clock of a busy shared machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings, strategies as st

import netsim
from netsim.decision import Outcome
from netsim.device import Veth
from netsim.errors import NetsimError
from netsim.views.sentences import outcome_text, sentence

NODE_NAMES = ["node1", "node2", "node3", "node4"]
POD_NAMES = ["p1", "db-0", "x", "p1", "db-0", "x", "Pod-A", "4", "node1", "web", "a b", "gateway"]
SERVICE_NAMES = ["web", "api", "dns", "1svc", "pod-a", "Web"]
# Mostly endpoints that exist (pod-a and pod-b always do), some that may not, a few invalid.
ENDPOINTS = ["pod-a", "pod-b", "pod-a", "pod-b", "pod-a/app", "pod-a/sidecar", "node1", "node2", "ext", "web",
             "gateway", "p1", "db-0", "x", "api", "dns", "node3", "10.244.0.2", "10.244.1.2:8080",
             "192.168.50.11:30080", "192.168.50.12:30081", "10.96.0.100", "10.96.0.101:53", "8.8.8.8",
             "203.0.113.10", "172.16.1.2", "pod-b/nope", "bogus", "10.244.1.2:0"]
SOURCES = ["pod-a", "pod-a", "pod-a", "pod-b", "pod-b", "pod-a/app", "node1", "node2", "ext", "ext", "gateway", "p1",
           "db-0", "web", "bogus"]


@dataclass
class Plan:
    cluster: dict
    bad_option: tuple | None
    external: bool
    pods: list[tuple]
    services: list[tuple]
    breaks: list[tuple]
    sends: list[tuple]
    errors: list[str] = field(default_factory=list)


plans = st.builds(
    Plan,
    cluster=st.fixed_dictionaries({
        "nodes": st.sampled_from([1, 2, 2, 3, 4]),
        "backend": st.sampled_from(["vxlan", "host-gw", "udp"]),
        "pod_cidr": st.sampled_from(["10.244.0.0/16", "10.244.0.0/16", "172.16.0.0/16", "10.32.0.0/20"]),
        "subnet_len": st.sampled_from([24, 24, 26, 28]),
        "underlay_cidr": st.sampled_from(["192.168.50.0/24", "192.168.50.0/24", "192.168.0.0/28"]),
        "underlay_mtu": st.sampled_from([1500, 1500, 9000, 1280, 576]),
        "lazy": st.sampled_from([None, None, True]),
    }),
    bad_option=st.sampled_from([None] * 60 + [
        ("nodes", 0), ("backend", "geneve"), ("pod_cidr", "224.0.0.0/16"), ("pod_cidr", "10.96.0.0/16"),
        ("pod_cidr", "127.0.0.0/16"), ("subnet_len", 31), ("underlay_cidr", "10.244.9.0/24"),
        ("underlay_cidr", "169.254.0.0/24"), ("underlay_mtu", 100)]),
    external=st.booleans(),
    pods=st.lists(st.tuples(st.sampled_from(POD_NAMES), st.sampled_from(NODE_NAMES + ["node9"]),
                            st.sampled_from([("app",), ("app", "sidecar"), ("App",), ()])), max_size=5),
    services=st.lists(st.tuples(st.sampled_from(SERVICE_NAMES), st.sampled_from([80, 53, 0, 65536]),
                                st.sampled_from([8080, 9090, 5353]),
                                st.lists(st.sampled_from(["pod-a", "pod-b", "p1", "db-0", "nope"]), max_size=3,
                                         unique=True),
                                st.sampled_from([None, None, 30080, 30081, 80, 32767]),
                                st.sampled_from(["Cluster", "Local"]), st.sampled_from(["tcp", "udp"]),
                                st.sampled_from(["", None, "10.96.0.100", "10.96.0.101", "10.0.0.1"])),
                      max_size=3),
    breaks=st.lists(st.tuples(st.sampled_from(["break_fdb", "break_neighbour", "break_route", "break_forwarding",
                                               "break_masquerade", "set_mtu"]),
                              st.sampled_from(NODE_NAMES + ["pod-a"]), st.sampled_from(NODE_NAMES + ["pod-a"])),
                    max_size=3),
    sends=st.lists(st.tuples(st.sampled_from(SOURCES), st.sampled_from(ENDPOINTS),
                             st.sampled_from([None, "icmp", "tcp", "udp"] * 3 + ["sctp"]),
                             st.sampled_from([None] * 8 + [80, 8080, 9090, 53, 30080, 0, 70000]),
                             st.sampled_from([None] * 8 + [b"hi", b"x" * 2000, b"", "str"]),
                             st.booleans()),
                   min_size=1, max_size=3),
)


def _try(plan: Plan, what: str, call) -> object:
    """Run one API call: a NetsimError is an allowed answer (recorded); anything else escapes."""
    try:
        return call()
    except NetsimError as e:
        plan.errors.append(f"{what}: {type(e).__name__}")
        return None


def apply_break(c: netsim.Cluster, method: str, a: str, b: str) -> None:
    if method in ("break_fdb", "break_neighbour", "break_route"):
        getattr(c, method)(a, b)
    elif method == "set_mtu":
        c.set_mtu(a, "eth0", 1400)
    else:
        getattr(c, method)(a)


def assert_every_copy_accounted_for(c: netsim.Cluster, trace: netsim.Trace) -> None:
    assert isinstance(trace.outcome, Outcome) and outcome_text(trace.outcome), trace
    hops = list(trace)
    for i, hop in enumerate(hops):
        assert hop.verdict in ("", "delivered", "dropped"), hop
        assert all(sentence(d) for d in hop.decisions), hop      # every record has its sentence
        if hop.verdict:
            assert hop.reason is not None and hop.reason in hop.decisions, \
                f"{hop.verdict} without a reason at hop {hop.index}"
            continue
        later = [h for h in hops[i + 1:] if h.packet_id == hop.packet_id]
        dev = c.network.namespaces[hop.netns].devices[hop.device]
        if hop.direction == "tx" and isinstance(dev, Veth) and dev.peer is not None:
            peer = dev.peer
            assert any(h.netns == peer.netns.name and h.device == peer.name and h.direction == "rx"
                       and h.data == hop.data for h in later), f"hop {hop.index} {hop.where} tx never arrived"
        else:
            assert any(h.netns == hop.netns for h in later), f"hop {hop.index} {hop.where}: the frame vanished"


@settings(max_examples=1200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plans)
def test_fuzz_only_netsim_errors_and_every_copy_ends(plan: Plan):
    options = dict(plan.cluster)
    if plan.bad_option is not None:
        options.update([plan.bad_option])
    c = _try(plan, "Cluster", lambda: netsim.Cluster(**options))
    if c is None:
        event("cluster refused")
        return
    if plan.external:
        _try(plan, "add_external", lambda: c.add_external("ext"))
    c.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
    c.add_pod("pod-b", node=list(c.nodes)[-1])
    for name, node, containers in plan.pods:   # more pods, some refused
        _try(plan, "add_pod", lambda: c.add_pod(name, node=node, containers=containers))
    for name, port, target, pods, node_port, policy, proto, ip in plan.services:
        _try(plan, "add_service", lambda: c.add_service(name, port, target, pods=pods, node_port=node_port,
                                                        external_traffic_policy=policy, protocol=proto,
                                                        cluster_ip=ip))
    for method, a, b in plan.breaks:
        _try(plan, method, lambda: apply_break(c, method, a, b))
    for src, dst, proto, dport, payload, cold in plan.sends:
        trace = _try(plan, "send", lambda: c.send(src, dst, proto=proto, dport=dport, payload=payload, cold=cold))
        if trace is None:
            event("send refused")
            continue
        event(f"trace: {'empty' if not len(trace) else 'hops'}")
        assert_every_copy_accounted_for(c, trace)
