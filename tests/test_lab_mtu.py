"""MTU and fragmentation: the model against the real kernel (netsim.lab), case by case.

Each case builds its own lab (an MTU change and the kernel's path-MTU cache would leak
between cases otherwise), sends one UDP datagram of a given size, and compares the model's
trace with the kernel's captures: fragments piece by piece, drops by where the kernel last
saw the packet, ICMP errors by their next-hop MTU and quoted header. Root on Linux only;
skipped with the reason elsewhere (tests/test_lab.py's helpers).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace

import pytest

import netsim
from netsim import Cluster, reference_cluster
from netsim.decision import Outcome, OutcomeReason
from netsim.lab import Lab, compare
from netsim.views.sentences import outcome_text
from test_lab import needs_lab

UDP_TIMEOUT = 1.0          # a silent drop waits this long for the answer that never comes


def _populate(c: Cluster) -> Cluster:
    c.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
    c.add_pod("pod-b", node="node1")
    c.add_pod("pod-c", node="node2")
    return c


def _run(cluster: Cluster, size: int, check=None):
    """The model's trace and the kernel's for a `size`-byte UDP payload pod-a -> pod-c, compared."""
    with Lab(cluster, trace_rules=True) as lab:
        model = cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(size))
        observed = lab.exchange("pod-a", "pod-c", "udp", payload=bytes(size), timeout=UDP_TIMEOUT)
        extra = check(lab) if check else None
        result = compare(model, observed, cluster=cluster)
    assert lab.leftovers() == []
    return model, observed, result, extra


def _ip(h):
    return h.frame.ip


# the comparison's fragment rules, without root ------------------------------------------------

def _underlay_1400(backend: str = "vxlan") -> Cluster:
    """Flannel sized for a 1500 underlay (flannel.1 1450), the underlay then lowered to 1400."""
    c = _populate(Cluster(backend=backend, underlay_mtu=1500))
    for node in ("node1", "node2"):
        c.set_mtu(node, "eth0", 1400)
    for dev in c.netns("underlay").devices.values():
        if dev.kind != "loopback":
            c.set_mtu("underlay", dev.name, 1400)
    return c


def test_fragments_are_compared_piece_by_piece_whatever_their_interleaving():
    model = _underlay_1400().send("pod-a", "pod-c", proto="udp", payload=bytes(1400))
    hops = list(model.hops)
    frags = [i for i, h in enumerate(hops) if h.role == "request" and _ip(h).is_fragment]
    assert len(frags) == 8                  # node1/eth0 tx, p-node1 rx, p-node2 tx, node2/eth0 rx, x 2
    # the kernel interleaves the two fragments' journeys differently: swap two neighbours
    a, b = frags[1], frags[2]
    hops[a], hops[b] = hops[b], hops[a]
    assert compare(model, netsim.Trace(tuple(hops), outcome=model.outcome)).ok
    # but a fragment with another offset or length is a difference
    h = hops[frags[0]]
    hops[frags[0]] = replace(h, frame=replace(h.frame, payload=replace(_ip(h), frag=_ip(h).frag + 1)))
    result = compare(model, netsim.Trace(tuple(hops), outcome=model.outcome))
    assert any("path (fragment" in d.where for d in result.differences), str(result)


def test_a_drop_must_be_the_kernels_last_capture_point():
    c = reference_cluster()
    c.set_mtu("pod-a", "eth0", 1500)
    model = c.send("pod-a", "pod-c", proto="udp", payload=bytes(1460))
    assert compare(model, model).ok
    drop = next(h for h in model.hops if h.role == "request" and h.verdict == "dropped")
    kernel = netsim.Trace(tuple(h for h in model.hops if h is not drop), outcome=model.outcome)
    result = compare(model, kernel)
    assert any(d.field == "drop point" and d.kernel == "never seen" for d in result.differences), str(result)


# the lab -------------------------------------------------------------------------------------

@needs_lab
def test_a_pod_mtu_above_the_host_veth_is_a_silent_drop_counted_in_rx_dropped():
    c = reference_cluster()
    c.set_mtu("pod-a", "eth0", 1500)
    veth = c.pods["pod-a"].host_veth

    def rx_dropped(lab):
        out = subprocess.run(["ip", "-n", lab.netns("node1"), "-s", "link", "show", veth],
                             capture_output=True, text=True).stdout
        return int(re.search(r"RX:.*\n\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out).group(4))

    model, observed, result, dropped = _run(c, 1460, rx_dropped)
    assert result.ok, "\n" + str(result)
    assert [(h.where, h.direction) for h in observed.trace.request] == [("pod-a/eth0", "tx")]
    assert _ip(observed.trace.request[0]).length() == 1488 and _ip(observed.trace.request[0]).df
    assert not observed.trace.of_role("error") and not model.of_role("error")
    assert observed.outcome == outcome_text(model.outcome) == "no answer reached the sender"
    assert model.outcome == Outcome("timed-out", OutcomeReason.NO_ANSWER, "ETIMEDOUT", ended=())
    assert dropped >= 1                                    # the host veth counted it, nobody sent ICMP


@needs_lab
def test_b_df_datagram_too_big_for_flannel_1_gets_frag_needed_mtu_1450():
    c = reference_cluster()
    c.set_mtu("pod-a", "eth0", 1500)
    c.set_mtu("node1", c.pods["pod-a"].host_veth, 1500)
    c.set_mtu("node1", "cni0", 1500)
    model, observed, result, _ = _run(c, 1460)
    assert result.ok, "\n" + str(result)
    first = _ip(observed.trace.request[0])
    assert (first.length(), first.df, first.mf) == (1488, True, False)   # PMTUDISC_WANT: DF when it fits
    for trace in (model, observed.trace):
        error = trace.where("pod-a/eth0", "rx", "error")[0].ip
        icmp = error.payload
        assert (error.src, error.dst, icmp.type, icmp.code, icmp.rest) == ("10.244.0.1", "10.244.0.2", 3, 4, 1450)
        assert error.length() == 576 and icmp.data[:20] == _ip(trace.request[0]).to_bytes()[:20]
    assert observed.outcome == outcome_text(model.outcome) == (
        "error: ICMP destination unreachable code 4 from 10.244.0.1")
    assert model.outcome == Outcome("icmp-error", OutcomeReason.ICMP_ERROR, "EMSGSIZE", "10.244.0.1", (3, 4))


@needs_lab
def test_c_underlay_below_flannels_assumption_fragments_the_outer_packet():
    c = _underlay_1400()
    model, observed, result, _ = _run(c, 1400)
    assert result.ok, "\n" + str(result)
    for trace in (model, observed.trace):
        inner = _ip(trace.where("node1/flannel.1", "tx", "request")[0])
        assert (inner.length(), inner.df) == (1428, True)
        outer = [_ip(h) for h in trace.where("node1/eth0", "tx", "request")]
        assert [(ip.df, ip.mf, ip.frag * 8, ip.length()) for ip in outer] == [
            (False, True, 0, 1396), (False, False, 1376, 102)]
        assert len({ip.id for ip in outer}) == 1          # one outer IP ID shared by both fragments
        # node2 reassembles before its UDP socket on 8472 decapsulates: one whole inner packet
        assert [_ip(h).length() for h in trace.where("node2/flannel.1", "rx", "request")] == [1428]
    assert observed.outcome.startswith("udp reply")


@needs_lab
def test_c_a_second_datagram_is_fragmented_the_same_way():
    """Whatever path MTU the first datagram taught node1 (the lab's cold start flushes neighbours,
    FDB and conntrack, not route exceptions), the second 1428-byte DF packet goes the same way."""
    c = _underlay_1400()
    with Lab(c, trace_rules=True) as lab:
        lab.exchange("pod-a", "pod-c", "udp", payload=bytes(1400), timeout=UDP_TIMEOUT)
        observed = lab.exchange("pod-a", "pod-c", "udp", payload=bytes(1400), timeout=UDP_TIMEOUT)
        model = c.send("pod-a", "pod-c", proto="udp", payload=bytes(1400))   # the lab's cold start keeps PMTU
        result = compare(model, observed, cluster=c)
    assert result.ok, "\n" + str(result)
    assert not observed.trace.of_role("error") and observed.outcome.startswith("udp reply")


@needs_lab
@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_d_datagram_bigger_than_the_pods_own_mtu(backend):
    """pod-a fragments the datagram itself (DF clear); node1's conntrack (nf_defrag_ipv4, via
    br_netfilter's PREROUTING) reassembles it, so cni0 rx shows one packet, and the output cuts it
    back to the largest fragment's size; pod-c reassembles and answers (Linux 6.18). node1 sends
    both fragments with TTL 63 and its own Ethernet addresses. (The lab's capture once showed the
    second one with TTL 62 and node2's addresses: a recvmsg packet socket read the bytes after
    node2 had rewritten the shared data. The capture rings copy at the tap: netsim/lab/capture.py.)"""
    c = reference_cluster(backend)
    mtu = c.netns("pod-a").devices["eth0"].mtu
    model, observed, result, _ = _run(c, mtu + 550)
    sent = [_ip(h) for h in observed.trace.where("pod-a/eth0", "tx", "request")]
    step = (mtu - 20) // 8 * 8
    assert [(ip.df, ip.mf, ip.frag * 8, ip.length()) for ip in sent] == [
        (False, True, 0, step + 20), (False, False, step, mtu + 550 + 28 - step)]
    assert observed.outcome.startswith("udp reply")
    assert result.ok, "\n" + str(result)
    out = "node1/flannel.1" if backend == "vxlan" else "node1/eth0"
    for trace in (model, observed.trace):
        frags = trace.where(out, "tx", "request")
        assert [(_ip(h).ttl, _ip(h).is_fragment) for h in frags] == [(63, True), (63, True)]
        assert len({(h.frame.src, h.frame.dst) for h in frags}) == 1
    k_frags, m_frags = observed.trace.where(out, "tx", "request"), model.where(out, "tx", "request")
    assert [(h.frame.src, h.frame.dst) for h in k_frags] == [(h.frame.src, h.frame.dst) for h in m_frags]
