"""The socket layer and the tools against the real kernel (netsim.lab): the real iputils ping,
traceroute, curl and dig run in the lab's namespaces; netsim's Cluster.ping and its kin run the
same command on the model; what each prints (but the times it measures) and what it puts on
the wire (every capture point) must agree.

What the kernel randomises or times is compared by identity or left out, and said so at each
test: TCP's initial sequence numbers and timestamps (compared relative to the ISN), IP IDs,
ping's identifier, round-trip times and ping's "time" total, the seconds a route exception has
left (within a few seconds of each other), the receiver's ACK pacing (programs/tcp.py).
ICMP rate limiting is modelled (icmp.py); where a test sends more errors than a burst allows it
sets net.ipv4.icmp_ratelimit to 0 in the model, which the lab then writes too.
Root on Linux only; skipped with the reason elsewhere.
"""

from __future__ import annotations

import re
import shutil

import pytest

from netsim import Cluster, reference_cluster
from netsim.lab import Lab
from netsim.lab.tools import run_tool
from netsim.packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP
from test_lab import needs_lab

MISSING = [t for t in ("ping", "traceroute", "curl", "dig") if shutil.which(t) is None]
pytestmark = [needs_lab, pytest.mark.skipif(bool(MISSING), reason=f"missing {MISSING} (Debian packages iputils-ping, "
                                                                  f"traceroute, curl, bind9-dnsutils)")]
POD_C = "10.244.1.2"


def without_times(text: str) -> str:
    """A tool's output with what the clock decides put to T: round-trip times, ping's total."""
    text = re.sub(r"time=[\d.]+ ms", "time=T ms", text)
    text = re.sub(r"time \d+ms", "time Tms", text)
    text = re.sub(r"rtt min/avg/max/mdev = [\d./]+ ms", "rtt min/avg/max/mdev = T ms", text)
    return re.sub(r"  [\d.]+ ms", "  T ms", text)


def icmp_at(trace, where: str, direction: str, itype: int) -> list:
    return [h.ip for h in trace.hops if h.where == where and h.direction == direction and h.ip is not None
            and h.ip.proto == IPPROTO_ICMP and isinstance(h.ip.payload, ICMP) and h.ip.payload.type == itype]


def fragments_at(trace, where: str, direction: str) -> list:
    return [(h.ip.length(), h.ip.df, h.ip.mf, h.ip.frag * 8) for h in trace.hops if h.where == where
            and h.direction == direction and h.ip is not None and h.ip.proto == IPPROTO_ICMP
            and (h.ip.is_fragment or (isinstance(h.ip.payload, ICMP) and h.ip.payload.type == 8))]


# ------------------------------------------------------------------------------ ENOBUFS


def test_a_veth_dropping_an_oversize_frame_gives_the_sender_enobufs():
    """pod-a's eth0 at 1500, its host veth at 1450: a 1500-byte probe is dropped by veth_xmit
    (is_skb_forwardable) and veth_xmit's NET_XMIT_DROP is the socket's ENOBUFS. The first probe
    waits for ARP and goes out after sendmsg returned: dropped, nobody told. The second fails
    20 times, 500 ms apart (ping retries an ENOBUFS until the failures reach its 10 s linger),
    then ping prints the sendmsg error. Compared: stderr, the statistics line but its time,
    and every echo request pod-a's eth0 sent (the kernel's and the model's: 21 each)."""
    cluster = reference_cluster()
    cluster.set_mtu("pod-a", "eth0", 1500)
    argv = ["ping", "-c", "2", "-s", "1472", "-M", "do", POD_C]
    with Lab(cluster) as lab:
        kernel = run_tool(lab, "pod-a", argv, timeout=60)
    model = cluster.ping("pod-a", POD_C, count=2, size=1472, pmtudisc="do")
    assert kernel.stderr == model.stderr == "ping: sendmsg: No buffer space available\n"
    assert without_times(kernel.stdout) == without_times(model.stdout)
    assert kernel.returncode == model.status == 1
    sent = [icmp_at(t, "pod-a/eth0", "tx", 8) for t in (kernel.trace, model.trace)]
    assert [len(s) for s in sent] == [21, 21]
    assert [[(ip.length(), ip.df, ip.payload.seq) for ip in s] for s in sent] == [[(1500, True, 1)] + [(1500, True, 2)] * 20] * 2
    # none of them reached node1: the host veth dropped each (rx_dropped), no ICMP came back
    assert not [h for h in kernel.trace.hops if h.netns == "node1" and h.ip is not None and h.ip.proto == IPPROTO_ICMP]
    assert not [h for h in model.trace.hops if h.netns == "node1" and h.ip is not None and h.ip.proto == IPPROTO_ICMP]


# ------------------------------------------------------------------------------ the PMTU cache


def pmtu_cluster(backend: str = "vxlan") -> Cluster:
    """pod-a, its host veth and cni0 at 1500: node1 forwards onto flannel.1 (1450 under vxlan,
    the underlay's 1500 under host-gw) and answers a bigger DF packet with fragmentation needed."""
    cluster = reference_cluster(backend)
    for host, dev in (("pod-a", "eth0"), ("node1", cluster.pods["pod-a"].host_veth), ("node1", "cni0")):
        cluster.set_mtu(host, dev, 1500)
    return cluster


def route_get(text: str) -> tuple[str, int | None]:
    """`ip route get`'s lines without trailing spaces, the seconds left put to S; and them."""
    lines = [line.rstrip() for line in text.splitlines()]
    found = re.search(r"expires (\d+)sec", text)
    return "\n".join(re.sub(r"expires \d+sec", "expires Ssec", line) for line in lines), (
        int(found.group(1)) if found else None)


def test_frag_needed_is_learned_as_a_route_exception_and_used_by_the_next_probes():
    """ping -M do of 1500 bytes: node1's fragmentation needed (mtu 1450) is printed and stored
    in pod-a as a route exception (`ip route get`: `cache expires 599sec mtu 1450`, the seconds
    left compared within 5 of each other); the next -M do probe is refused by pod-a's own stack
    (`ping: local error: message too long, mtu=1450`); a -M want probe leaves pod-a already cut
    into fragments for 1450 (1444 + 76 bytes), DF clear, and is answered."""
    cluster = pmtu_cluster()
    do = ["ping", "-c", "1", "-s", "1472", "-M", "do", POD_C]
    want = ["ping", "-c", "1", "-s", "1472", "-M", "want", POD_C]
    with Lab(cluster) as lab:
        kernel = [run_tool(lab, "pod-a", do), run_tool(lab, "pod-a", ["ip", "route", "get", POD_C], cold=False),
                  run_tool(lab, "pod-a", do, cold=False), run_tool(lab, "pod-a", want, cold=False)]
    model = [cluster.ping("pod-a", POD_C, size=1472, pmtudisc="do"), cluster.show("pod-a", f"ip route get {POD_C}"),
             cluster.ping("pod-a", POD_C, size=1472, pmtudisc="do", cold=False),
             cluster.ping("pod-a", POD_C, size=1472, pmtudisc="want", cold=False)]
    assert without_times(kernel[0].stdout) == without_times(model[0].stdout)
    assert "From 10.244.0.1 icmp_seq=1 Frag needed and DF set (mtu = 1450)" in model[0].stdout
    (k_route, k_left), (m_route, m_left) = route_get(kernel[1].stdout), route_get(model[1])
    assert k_route == m_route == (f"{POD_C} via 10.244.0.1 dev eth0 src 10.244.0.2 uid 0\n"
                                  f"    cache expires Ssec mtu 1450")
    assert k_left is not None and m_left is not None and abs(k_left - m_left) <= 5
    assert kernel[2].stderr == model[2].stderr == "ping: local error: message too long, mtu=1450\n"
    assert without_times(kernel[2].stdout) == without_times(model[2].stdout)
    assert not icmp_at(kernel[2].trace, "pod-a/eth0", "tx", 8) and not icmp_at(model[2].trace, "pod-a/eth0", "tx", 8)
    assert without_times(kernel[3].stdout) == without_times(model[3].stdout)
    assert "1480 bytes from 10.244.1.2: icmp_seq=1" in model[3].stdout
    assert fragments_at(kernel[3].trace, "pod-a/eth0", "tx") == fragments_at(model[3].trace, "pod-a/eth0", "tx") == [
        (1444, False, True, 0), (76, False, False, 1424)]
