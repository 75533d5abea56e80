"""The tool runs chapters 15 ("When packets die") and 16 ("MTU") show, on the real kernel.

Each test runs the real tool (iputils ping, OpenBSD nc, curl, traceroute 2.1) in the lab's
namespaces with the arguments the chapter's cell gives `Cluster.ping` and its kin, on a cluster
built as the chapter builds it, and compares what it prints (but the times it measures), its
exit status, and the ICMP errors reaching the sender (type, code, who sent them). The chapter's
`Cluster.send` exchanges are troubleshooting cases (netsim.lab.breakages), compared by
tests/test_lab_breakages.py; the traceroutes of chapter 15 and the ping sizes of chapter 16 are
tests/test_lab_sockets.py's. One Lab per cluster, module-scoped. Root on Linux only.
"""

from __future__ import annotations

import shutil

import pytest

from netsim import Cluster, reference_cluster
from netsim.lab import Lab
from netsim.lab.tools import run_tool
from netsim.packet import ICMP, TCP
from test_lab import needs_lab
from test_lab_sockets import without_times

MISSING = [t for t in ("ping", "traceroute", "curl", "nc") if shutil.which(t) is None]
pytestmark = [needs_lab, pytest.mark.skipif(bool(MISSING), reason=f"missing {MISSING} (Debian packages "
                                                                  f"iputils-ping, traceroute, curl, netcat-openbsd)")]


def quiet(cluster: Cluster) -> Cluster:
    """net.ipv4.icmp_ratelimit 0 in every namespace, as chapter 15's cluster has it."""
    for ns in cluster.network.namespaces.values():
        ns.set_sysctl("net.ipv4.icmp_ratelimit", 0)
    return cluster


def errors_at(trace, netns: str) -> list[tuple[int, int, str]]:
    """The ICMP errors (destination unreachable, time exceeded) arriving at `netns`'s eth0:
    (type, code, source), sorted and without repeats."""
    return sorted({(h.ip.payload.type, h.ip.payload.code, h.ip.src) for h in trace.hops
                   if h.where == f"{netns}/eth0" and h.direction == "rx" and h.ip is not None
                   and isinstance(h.ip.payload, ICMP) and h.ip.payload.type in (3, 11)})


def resets_at(trace, netns: str) -> list[tuple[str, str]]:
    return sorted({(h.ip.src, h.ip.payload.flags) for h in trace.hops if h.where == f"{netns}/eth0"
                   and h.direction == "rx" and h.ip is not None and isinstance(h.ip.payload, TCP)
                   and "R" in h.ip.payload.flags})


def same_run(kernel, model) -> None:
    assert kernel.returncode == model.status
    assert without_times(kernel.stdout) == without_times(model.stdout)
    assert kernel.stderr == model.stderr


# ------------------------------------------------------------------------------ chapter 15


def no_endpoints(cluster: Cluster) -> Cluster:
    cluster.add_service("api", port=80, target_port=8080, pods=[])
    return cluster


BUILDS = {
    "healthy": lambda: quiet(reference_cluster()),
    "no-endpoints": lambda: quiet(no_endpoints(reference_cluster())),
    "neighbour": lambda: quiet(reference_cluster()),
    "route": lambda: quiet(reference_cluster()),
}


def _broken(key: str) -> Cluster:
    cluster = BUILDS[key]()
    if key == "neighbour":
        cluster.break_neighbour("node1", "node2")
    elif key == "route":
        cluster.break_route("node1", "node2")
    return cluster


@pytest.fixture(scope="module")
def labs():
    clusters = {key: _broken(key) for key in BUILDS}
    opened: dict[str, Lab] = {}
    try:
        for key, cluster in clusters.items():
            opened[key] = Lab(cluster)
            opened[key].__enter__()
        yield clusters, opened
    finally:
        for lab in opened.values():
            lab.close()


def test_ch15_a_tcp_port_nobody_listens_on_is_refused_by_a_reset(labs):
    """nc -v -N pod-c 9999: pod-c's stack answers the SYN with RST,ACK (tcp_v4_send_reset):
    ECONNREFUSED, "Connection refused", exit 1."""
    clusters, opened = labs
    model = clusters["healthy"].nc("pod-a", "pod-c", 9999, b"hello\n", verbose=True)
    kernel = run_tool(opened["healthy"], "pod-a", ["nc", "-v", "-N", "10.244.1.2", "9999"], stdin="hello\n")
    same_run(kernel, model)
    assert model.stderr == "nc: connect to 10.244.1.2 port 9999 (tcp) failed: Connection refused\n"
    assert resets_at(kernel.trace, "pod-a") == resets_at(model.trace, "pod-a") == [("10.244.1.2", "RA")]


def test_ch15_a_router_with_no_route_answers_net_unreachable(labs):
    """ping from ext to pod-c's address: the gateway has no route to 10.244.0.0/16 and sends
    ICMP net unreachable (3, 0), "Destination Net Unreachable", ENETUNREACH."""
    clusters, opened = labs
    model = clusters["healthy"].ping("ext", "10.244.1.2")
    kernel = run_tool(opened["healthy"], "ext", ["ping", "-c", "1", "-s", "56", "-M", "want", "10.244.1.2"])
    same_run(kernel, model)
    assert "From 203.0.113.1 icmp_seq=1 Destination Net Unreachable" in model.stdout
    assert errors_at(kernel.trace, "ext") == errors_at(model.trace, "ext") == [(3, 0, "203.0.113.1")]


def test_ch15_no_route_in_the_sender_fails_at_connect(labs):
    """ping from the gateway to pod-c: no route, no default: connect() fails with ENETUNREACH
    before anything is sent ("ping: connect: Network is unreachable", exit 2)."""
    clusters, opened = labs
    model = clusters["healthy"].ping("gateway", "10.244.1.2")
    kernel = run_tool(opened["healthy"], "gateway", ["ping", "-c", "1", "-s", "56", "-M", "want", "10.244.1.2"])
    same_run(kernel, model)
    assert model.stderr == "ping: connect: Network is unreachable\n" and model.status == 2
    assert not [h for h in kernel.trace.hops if h.ip is not None] and not model.trace.hops


def test_ch15_a_service_without_endpoints_is_refused_by_kube_proxys_reject(labs):
    """curl and nc to Service api, which has no endpoints: kube-proxy's REJECT in node1's
    KUBE-SERVICES answers ICMP port unreachable from cni0's address, 10.244.0.1: curl's exit 7,
    nc's "Connection refused"."""
    clusters, opened = labs
    cluster, lab = clusters["no-endpoints"], opened["no-endpoints"]
    ip = cluster.services["api"].cluster_ip
    for model, argv in ((cluster.fetch("pod-a", "api"), ["curl", "-sS", f"http://{ip}/"]),
                        (cluster.nc("pod-a", "api", 80, b"x", verbose=True), ["nc", "-v", "-N", str(ip), "80"])):
        kernel = run_tool(lab, "pod-a", argv, stdin="x" if argv[0] == "nc" else None)
        assert kernel.returncode == model.status
        assert kernel.stderr.replace(str(ip), "api" if argv[0] == "curl" else str(ip)) == model.stderr
        assert errors_at(kernel.trace, "pod-a") == errors_at(model.trace, "pod-a") == [(3, 3, "10.244.0.1")]


def test_ch15_a_failed_neighbour_is_host_unreachable(labs):
    """node1 without a neighbour entry for node2's VTEP: three ARP tries, then node1 answers
    ICMP host unreachable (3, 1) from 10.244.0.1: "Destination Host Unreachable"."""
    clusters, opened = labs
    model = clusters["neighbour"].ping("pod-a", "10.244.1.2")
    kernel = run_tool(opened["neighbour"], "pod-a", ["ping", "-c", "1", "-s", "56", "-M", "want", "10.244.1.2"],
                      timeout=30)
    same_run(kernel, model)
    assert errors_at(kernel.trace, "pod-a") == errors_at(model.trace, "pod-a") == [(3, 1, "10.244.0.1")]


def test_ch15_a_router_with_no_route_back_is_silent(labs):
    """node1 without its route to node2's pods: the packet goes to the gateway, which has no
    route to 10.244.0.0/16 either way, so its error never leaves: ping loses the packet and
    traceroute shows `* * *` after node1."""
    clusters, opened = labs
    cluster, lab = clusters["route"], opened["route"]
    model = cluster.ping("pod-a", "10.244.1.2")
    kernel = run_tool(lab, "pod-a", ["ping", "-c", "1", "-s", "56", "-M", "want", "-W", "2", "10.244.1.2"])
    assert kernel.returncode == model.status == 1
    assert without_times(kernel.stdout) == without_times(model.stdout)
    model = cluster.traceroute("pod-a", "10.244.1.2", numeric=True, max_ttl=4, wait=1)
    kernel = run_tool(lab, "pod-a", ["traceroute", "-q", "3", "-m", "4", "-w", "1", "-n", "10.244.1.2"], timeout=60)
    same_run(kernel, model)
    assert errors_at(kernel.trace, "pod-a") == errors_at(model.trace, "pod-a") == [(11, 0, "10.244.0.1")]


def test_ch15_curl_to_a_closed_port_is_refused(labs):
    """curl -sS http://10.244.1.2:9999/: pod-c's reset, curl's exit 7 and its message."""
    clusters, opened = labs
    model = clusters["healthy"].fetch("pod-a", "10.244.1.2:9999")
    kernel = run_tool(opened["healthy"], "pod-a", ["curl", "-sS", "http://10.244.1.2:9999/"])
    same_run(kernel, model)
    assert model.status == 7 and resets_at(kernel.trace, "pod-a") == resets_at(model.trace, "pod-a")


def test_ch15_one_tcp_probe_to_a_nodeport_is_answered_from_the_node_quoting_the_nodeport(labs):
    """traceroute -T -f 3 -m 3 -q 1 -p 30080 from ext: the probe dies at node2, whose time
    exceeded goes to 10.244.0.0 quoting 10.244.1.2:8080; node1 translates both headers back,
    so ext gets it from 192.168.50.11 quoting 192.168.50.11:30080."""
    from netsim.sockets.input import quoted_probe
    clusters, opened = labs
    model = clusters["healthy"].traceroute("ext", "192.168.50.11", mode="tcp", port=30080, numeric=True,
                                           first_ttl=3, max_ttl=3, queries=1)
    kernel = run_tool(opened["healthy"], "ext", ["traceroute", "-T", "-q", "1", "-m", "3", "-f", "3", "-p", "30080",
                                                 "-n", "192.168.50.11"], timeout=60)
    same_run(kernel, model)

    def quotes(trace):
        out = set()
        for h in trace.hops:
            if h.ip is not None and isinstance(h.ip.payload, ICMP) and h.ip.payload.type == 11 \
                    and h.where in ("node2/flannel.1", "ext/eth0"):
                _src, _proto, probe = quoted_probe(h.ip.payload.data)
                out.add((h.where, h.direction, h.ip.src, h.ip.dst, probe.dst, probe.dport))
        return sorted(out)
    assert quotes(kernel.trace) == quotes(model.trace) == [
        ("ext/eth0", "rx", "192.168.50.11", "203.0.113.10", "192.168.50.11", 30080),
        ("node2/flannel.1", "tx", "10.244.1.0", "10.244.0.0", "10.244.1.2", 8080)]


# ------------------------------------------------------------------------------ chapter 16


def test_ch16_a_2000_byte_ping_leaves_the_pod_in_two_fragments():
    """ping -s 2000 -M want from pod-a to pod-c (vxlan, MTU 1450): the 2,028-byte packet is
    cut by pod-a's stack into 1444 and 604 bytes, DF clear; pod-c reassembles and answers."""
    from test_lab_sockets import fragments_at
    cluster = reference_cluster()
    with Lab(cluster) as lab:
        kernel = run_tool(lab, "pod-a", ["ping", "-c", "1", "-s", "2000", "-M", "want", "10.244.1.2"])
    model = cluster.ping("pod-a", "10.244.1.2", size=2000, pmtudisc="want")
    same_run(kernel, model)
    assert fragments_at(kernel.trace, "pod-a/eth0", "tx") == fragments_at(model.trace, "pod-a/eth0", "tx") == [
        (1444, False, True, 0), (604, False, False, 1424)]
