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

from netsim import reference_cluster
from netsim.lab import Lab
from netsim.lab.exchanges import (
    PING_CASES, POD_C, SPECIAL, TOOL_BY_KEY, TRACEROUTES, TRANSFERS, UPLOAD, model_traceroute, ping_size, pmtu_cluster, quiet_limits,
)
from netsim.lab.tools import run_tool
from netsim.packet import ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP
from test_lab import needs_lab

MISSING = [t for t in ("ping", "traceroute", "curl", "dig") if shutil.which(t) is None]
pytestmark = [needs_lab, pytest.mark.skipif(bool(MISSING), reason=f"missing {MISSING} (Debian packages iputils-ping, "
                                                                  f"traceroute, curl, bind9-dnsutils)")]
# the clusters and the model side of each case: netsim.lab.exchanges (tools/chapter_traces.py lists them)


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
    case = TOOL_BY_KEY["enobufs"]
    cluster = case.build()
    argv = ["ping", "-c", "2", "-s", "1472", "-M", "do", POD_C]
    with Lab(cluster) as lab:
        kernel = run_tool(lab, "pod-a", argv, timeout=60)
    [model] = case.run(cluster)
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
    case = TOOL_BY_KEY["pmtu-cache"]
    cluster = case.build()
    do = ["ping", "-c", "1", "-s", "1472", "-M", "do", POD_C]
    want = ["ping", "-c", "1", "-s", "1472", "-M", "want", POD_C]
    with Lab(cluster) as lab:
        kernel = [run_tool(lab, "pod-a", do), run_tool(lab, "pod-a", ["ip", "route", "get", POD_C], cold=False),
                  run_tool(lab, "pod-a", do, cold=False), run_tool(lab, "pod-a", want, cold=False)]
    runs = case.run(cluster)             # ping -M do, -M do again, -M want (the route is read after all three:
    model = [runs[0], cluster.show("pod-a", f"ip route get {POD_C}"), *runs[1:]]    # the second and third keep it)
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


# ------------------------------------------------------------------------------ TCP as a stream


def tcp_segments(trace, where: str, direction: str, src: str) -> list[tuple[str, int, int | None, int]]:
    """The TCP segments `src` sent, seen at one capture point, as (flags, seq, ack, length) with
    seq and ack relative to the two ISNs (the kernel picks its ISNs at random)."""
    every = [h.inner_ip for h in trace.hops if h.inner_ip is not None and isinstance(h.inner_ip.payload, TCP)]
    isn = {ip.src: ip.payload.seq for ip in every if "S" in ip.payload.flags}
    segs = [h.inner_ip for h in trace.hops if h.where == where and h.direction == direction
            and h.inner_ip is not None and isinstance(h.inner_ip.payload, TCP)]
    out = []
    for ip in segs:
        if ip.src != src:
            continue
        seg = ip.payload
        peer = next(a for a in isn if a != ip.src)
        ack = (seg.ack - isn[peer]) % (1 << 32) if "A" in seg.flags else None
        out.append((seg.flags, (seg.seq - isn[ip.src]) % (1 << 32), ack, len(seg.payload)))
    return out


def fin_apart(segs: list[tuple[str, int, int | None, int]]) -> list[tuple[str, int, int | None, int]]:
    """The segments with a FIN the kernel set on its last data segment written as that data
    and a FIN of its own. tcp_send_fin sets FIN on the send queue's tail when the tail has not
    left yet: the server's close() comes while its last bytes still wait for the window (the
    timing of the real machine's ACKs decides, run by run); the model sends the FIN after the
    data has left. Same bytes, same sequence space either way."""
    out = []
    for flags, seq, ack, length in segs:
        if "F" in flags and length:
            out.append((flags.replace("F", ""), seq, ack, length))
            out.append(("FA", seq + length, ack, 0))
        else:
            out.append((flags, seq, ack, length))
    return out


@pytest.mark.parametrize("backend, mss, size", TRANSFERS)
def test_a_transfer_across_nodes_is_the_kernels_segment_for_segment(backend, mss, size):
    """curl on pod-a fetches SIZE bytes from pod-c's HTTP server (netsim's program on real
    sockets), the response delivered whole. Compared exactly, relative to the ISNs: the request
    (curl 7.88.1's bytes), every segment pod-c sends (data cut at the MSS the path gives:
    1398 under vxlan's 1450, 1448 under host-gw's 1500; ACK; PSH where the kernel pushes; the
    FIN after the data), the ACK numbers pod-a's segments carry, in order, and the teardown
    (pod-c's FIN first, curl's FIN carrying the ACK of it, pod-c's last ACK). Not compared: the
    windows pod-a advertises after the first data (the kernel grows its receive window, the
    model does not: programs/tcp.py) and the interleaving of the two directions at one capture
    point (the kernel batches receives)."""
    case = TOOL_BY_KEY[f"transfer {backend} {size}"]
    cluster = case.build()
    url = f"http://{POD_C}:8080/{size}"
    with Lab(cluster) as lab:
        kernel = run_tool(lab, "pod-a", ["curl", "-sS", url])
    [model] = case.run(cluster)
    assert kernel.returncode == model.status == 0
    assert kernel.stdout == model.stdout == "r" * size
    k_server = fin_apart(tcp_segments(kernel.trace, "pod-c/eth0", "tx", POD_C))
    m_server = tcp_segments(model.trace, "pod-c/eth0", "tx", POD_C)
    k_client = tcp_segments(kernel.trace, "pod-a/eth0", "tx", "10.244.0.2")
    m_client = tcp_segments(model.trace, "pod-a/eth0", "tx", "10.244.0.2")
    # every data segment pod-c sends: sequence, acknowledgement, length, flags. PSH is compared
    # for a response that fits the server's send buffer (16 kB, net.ipv4.tcp_wmem); a larger
    # write also pushes each time it waits for buffer memory (sk_stream_wait_memory), which
    # depends on when ACKs free it: programs/tcp.py does not model it, so PSH is left out there
    unpushed = (lambda x: (x[0].replace("P", ""), *x[1:])) if size > 16384 else (lambda x: x)
    assert [unpushed(x) for x in k_server if x[3]] == [unpushed(x) for x in m_server if x[3]]
    data = [length for _f, _s, _a, length in m_server if length]
    assert max(data) == mss and sum(data) == len(model.result.status_line) + 2 + sum(
        len(f"{k}: {v}\r\n") for k, v in model.result.headers) + 2 + size
    # pod-a's request, and the handshake
    request = [x for x in m_client if x[3]]
    assert [x for x in k_client if x[3]] == request and request[0][:3] == ("PA", 1, 1)
    assert k_server[0] == m_server[0] == ("SA", 0, 1, 0) and k_client[0] == m_client[0] == ("S", 0, None, 0)
    # the teardown: one FIN each way, after the data; the last ACK each side sends takes the
    # other's FIN. Which close comes first is a race on the real machine (the server program's
    # close() right after its write, curl's once it has read the body): not compared.
    fins = lambda segs: [(f, seq, length) for f, seq, _a, length in segs if "F" in f]
    assert fins(k_server) == fins(m_server) == [("FA", 1 + sum(data), 0)]
    assert fins(k_client) == fins(m_client) == [("FA", request[0][3] + 1, 0)]
    assert k_server[-1][2] == m_server[-1][2] == request[0][3] + 2
    assert k_client[-1][2] == m_client[-1][2] == fins(m_server)[0][1] + 1
    # pod-a's pure ACKs: each at a segment's end; how many and which follow the receive window
    # the kernel grows (quick ACKs while it grows) and the program's timing: not compared
    ends = {1} | {seq + length for _f, seq, _a, length in m_server if length} | {fins(m_server)[0][1] + 1}
    acked = lambda segs: {a for f, _s, a, length in segs if f == "A" and not length}
    assert acked(k_client) <= ends and acked(m_client) <= ends


def test_a_connection_lowers_its_mss_on_frag_needed():
    """nc on pod-a uploads 6,000 bytes to pod-c; both pods, their host veths and cni0 at 1500,
    so both ends offer MSS 1460 and node1 answers each 1500-byte segment with fragmentation
    needed (mtu 1450). pod-a learns the path MTU (`ip route get`: mtu 1450) and sends the lost
    bytes again cut at the new MSS, 1398: every segment pod-a sends, relative to its ISN, is
    the kernel's (4 x 1448 and 249; then 4 x 1398 and 200; the FIN; the last ACKs)."""
    case = TOOL_BY_KEY["mss-lowered"]
    cluster = case.build()
    with Lab(cluster) as lab:
        kernel = run_tool(lab, "pod-a", ["nc", "-N", POD_C, "8080"], stdin=UPLOAD.decode())
        route = run_tool(lab, "pod-a", ["ip", "route", "get", POD_C], cold=False)
    [model] = case.run(cluster)
    assert kernel.returncode == model.status == 0 and kernel.stdout == model.stdout
    k_segs = tcp_segments(kernel.trace, "pod-a/eth0", "tx", "10.244.0.2")
    m_segs = tcp_segments(model.trace, "pod-a/eth0", "tx", "10.244.0.2")
    # every segment up to the last byte of data, exactly; after it, the teardown's timing is
    # nc's (-N shuts the write side down when it reads the end of its input, before or after
    # the server's answer arrives, depending on the machine's load): one FIN at the same
    # sequence number on both sides, the rest bare ACKs
    def split(segs):
        rows = [(f, seq, length) for f, seq, _a, length in segs]
        last = max(i for i, (_f, _s, length) in enumerate(rows) if length)
        return rows[:last + 1], rows[last + 1:]
    (k_data, k_end), (m_data, m_end) = split(k_segs), split(m_segs)
    assert k_data == m_data
    assert [(seq, length) for f, seq, length in k_end if "F" in f] == [(seq, length) for f, seq, length in m_end
                                                                       if "F" in f] == [(6042, 0)]
    assert {f for f, *_ in k_end} | {f for f, *_ in m_end} <= {"A", "FA"}
    assert [length for *_x, length in m_segs if length] == [1448] * 4 + [249] + [1398] * 4 + [200]
    assert route_get(route.stdout)[0] == route_get(cluster.show("pod-a", f"ip route get {POD_C}"))[0]


# ------------------------------------------------------------------------------ traceroute


def quoted(trace, where: str) -> list[tuple[int, int, str, str, int]]:
    """The ICMP errors arriving at `where`: (type, code, source, quoted destination and port;
    the port only for TCP, whose probes all go to one port)."""
    from netsim.sockets.input import quoted_probe
    out = []
    for h in trace.hops:
        ip = h.ip
        if h.where == where and h.direction == "rx" and ip is not None and isinstance(ip.payload, ICMP) \
                and ip.payload.type in (3, 11):
            _src, proto, probe = quoted_probe(ip.payload.data)
            out.append((ip.payload.type, ip.payload.code, ip.src, probe.dst, probe.dport if proto == 6 else 0))
    return sorted(set(out))


@pytest.fixture(scope="module")
def traceroute_lab():
    cluster = quiet_limits(reference_cluster())
    with Lab(cluster) as lab:
        yield cluster, lab


@pytest.mark.parametrize("host, args, call", TRACEROUTES, ids=[f"{h}-{' '.join(a)}" for h, a, _c in TRACEROUTES])
def test_traceroute_prints_and_sends_what_the_real_one_does(traceroute_lab, host, args, call):
    """traceroute 2.1 in each mode, from pod-a to pod-c (cni0, node2's flannel.1, pod-c) and
    from ext to node1's NodePort (the gateway, then node1 for every later hop: with -T the
    probes are DNATed to pod-c and the errors node1 and node2 send about them come back
    with their quoted headers un-DNATed, 192.168.50.11:30080, from node1's address, as
    conntrack translates a RELATED error: nf_ct_attach). Compared: the output but its times, the
    exit status, the probes up to the destination's hop (their TTLs), and the errors reaching
    the tracer with what they quote. Not compared: how many probes traceroute sends past the
    destination's hop (up to -N 16 at once, one more each time a reply is read while the
    destination is unknown): that depends on how the replies fall into its reads, a matter
    of microseconds on the real machine."""
    cluster, lab = traceroute_lab
    kernel = run_tool(lab, host, ["traceroute", *args], timeout=120)
    model = model_traceroute(cluster, host, call)
    assert kernel.returncode == model.status == 0
    assert without_times(kernel.stdout) == without_times(model.stdout)
    src = cluster.resolve(host, source=True)

    def probe(ip) -> bool:
        p = ip.payload
        return ((isinstance(p, UDP) and p.dport >= 33434) or (isinstance(p, ICMP) and p.type == 8)
                or (isinstance(p, TCP) and p.flags == "S"))

    last = len(model.result.hops)
    ttls = lambda t: sorted(h.ip.ttl for h in t.hops if h.where == f"{src.netns}/eth0" and h.direction == "tx"
                            and h.ip is not None and probe(h.ip) and h.ip.ttl <= last)
    assert ttls(kernel.trace) == ttls(model.trace)
    assert quoted(kernel.trace, f"{src.netns}/eth0") == quoted(model.trace, f"{src.netns}/eth0")
    if host == "ext" and call.get("mode") == "tcp":
        assert {q[3:] for q in quoted(model.trace, "ext/eth0")} == {("192.168.50.11", 30080)}


# ------------------------------------------------------------------------------ ping sizes and DF


@pytest.fixture(scope="module")
def ping_labs():
    clusters = {backend: reference_cluster(backend) for backend in ("vxlan", "host-gw")}
    labs = {backend: Lab(cluster) for backend, cluster in clusters.items()}
    for lab in labs.values():
        lab.__enter__()
    try:
        yield clusters, labs
    finally:
        for lab in labs.values():
            lab.close()


@pytest.mark.parametrize("backend, delta, mode", PING_CASES, ids=[f"{b}-mtu{'+1' if d else ''}-M{m}"
                                                                   for b, d, m in PING_CASES])
def test_ping_on_both_sides_of_the_pod_mtu(ping_labs, backend, delta, mode):
    """ping -M do|want|dont from pod-a to pod-c with the largest size that fits the pods' MTU
    (1450 under vxlan, 1500 under host-gw) and one byte more: what it prints (but times), its
    exit status, and the echo requests pod-a's eth0 sends: whole with DF, refused by pod-a's
    stack (-M do: "local error: message too long"), or cut into fragments without DF (want,
    dont), each fragment's length and offset."""
    clusters, labs = ping_labs
    cluster = clusters[backend]
    size = ping_size(cluster, delta)
    argv = ["ping", "-c", "1", "-s", str(size), "-M", mode, POD_C]
    kernel = run_tool(labs[backend], "pod-a", argv)
    model = cluster.ping("pod-a", POD_C, size=size, pmtudisc=mode)
    assert kernel.returncode == model.status == (1 if delta and mode == "do" else 0)
    assert without_times(kernel.stdout) == without_times(model.stdout)
    assert kernel.stderr == model.stderr
    assert fragments_at(kernel.trace, "pod-a/eth0", "tx") == fragments_at(model.trace, "pod-a/eth0", "tx")


# ------------------------------------------------------------------------------ special destinations


def icmp_path(trace) -> list[tuple[str, str, str, str, str, int, bool]]:
    """Every ICMP frame: capture point, direction, destination MAC, addresses, TTL, DF; sorted
    (the kernel's flood copies come out in another order than the walk's)."""
    return sorted((h.where, h.direction, h.frame.dst, h.ip.src, h.ip.dst, h.ip.ttl, h.ip.df) for h in trace.hops
                  if h.ip is not None and h.ip.proto == IPPROTO_ICMP)


@pytest.fixture(scope="module")
def special_lab():
    cluster = reference_cluster()
    with Lab(cluster) as lab:
        yield cluster, lab


@pytest.mark.parametrize("dst, broadcast", SPECIAL, ids=[f"{d}{'-b' if b else ''}" for d, b in SPECIAL])
def test_special_destinations_as_the_kernel_treats_them(special_lab, dst, broadcast):
    """ping from pod-a to 0.0.0.0 (this host: 127.0.0.1 on lo, "PING 0.0.0.0 (127.0.0.1)"), to
    its subnet's broadcast and to the limited broadcast (refused without -b: EACCES at the
    probe's connect(); with -b sent to ff:ff:ff:ff:ff:ff, flooded by cni0, back to pod-a too
    (hairpin), no answer: icmp_echo_ignore_broadcasts; the limited broadcast leaves cni0's
    ports masqueraded, as br_netfilter runs flanneld's rule on it), and to the all-hosts group
    (01:00:5e:00:00:01, TTL 1, DF, no answer). Compared: output but times, stderr, exit status,
    every ICMP frame at every capture point (MAC, addresses, TTL, DF), and `ip route get`."""
    cluster, lab = special_lab
    argv = ["ping", "-c", "1", "-W", "1"] + (["-b"] if broadcast else []) + [dst]
    kernel = run_tool(lab, "pod-a", argv, timeout=30)
    model = cluster.ping("pod-a", dst, broadcast=broadcast)
    assert kernel.returncode == model.status
    assert without_times(kernel.stdout) == without_times(model.stdout)
    assert kernel.stderr == model.stderr
    assert icmp_path(kernel.trace) == icmp_path(model.trace)
    route = run_tool(lab, "pod-a", ["ip", "route", "get", dst], cold=False)
    assert route_get(route.stdout)[0] == route_get(cluster.show("pod-a", f"ip route get {dst}"))[0]
