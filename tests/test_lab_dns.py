"""DNS through kube-dns's ClusterIP against the real kernel (netsim.lab): the coredns namespace
runs the model's CoreDNS-role server program on real sockets (lab/programs.py), the real `dig`
(bind9-dnsutils) and glibc (`getent ahosts`) run in the pods' namespaces, and the model runs
the same lookups. Compared, in kube-proxy's iptables and nftables modes, from pod-a (coredns on
the same node) and pod-c (the other node), over UDP and TCP:

- dig's output, but what its clock and random number generator decide (the query id, the
  client cookie, the query time, the date), which are compared by rule instead: every message
  of one query carries the query's id, the reply echoes the query's cookie;
- every IP frame at every capture point (each pod's eth0, the host veths, the cni0 bridge
  device itself, flannel.1 and the nodes' eth0 across nodes), in order per capture point:
  MACs, addresses, TTL, DF, length, protocol, UDP and TCP ports (the client's ephemeral port
  by rule: one port per socket, the same at every hop), TCP flags and options (sequence
  numbers ignored: random), and the DNS message in each (but id and cookie);
- left out: IGMPv3 membership reports (224.0.0.22) the kernel sends on its own timer from
  any interface that joined a group, unrelated to the exchange (netsim models no IGMP);
- ARP: the same set of requests and replies at every capture point (unordered: a flood's
  copies leave in the bridge's port order);
- glibc: with kubelet's resolv.conf written where `ip netns exec` reads it
  (/etc/netns/NAME/resolv.conf), the names and types glibc asks, in order, are the model
  resolver's (A only: the lab's namespaces have no IPv6 address, so getaddrinfo's
  AI_ADDRCONFIG, which getent ahosts sets, drops AAAA; the model's resolver asks what a
  pod without IPv6 asks, `families=("A",)`).
Root on Linux only; skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import shutil

import pytest

from netsim import reference_cluster
from netsim.lab import Lab
from netsim.lab.tools import run_tool
from netsim.lab.compare import dns_cookie as cookie, dns_messages as compare_dns_messages
from netsim.lab.exchanges import DNS_LOOKUPS, model_lookup
from netsim.lab.walks import walk_differences
from netsim.programs.dns import TYPE_A, Message
from netsim.programs.resolver import Resolve
from test_lab import needs_lab

MISSING = [t for t in ("dig", "getent") if shutil.which(t) is None]
pytestmark = [needs_lab, pytest.mark.skipif(bool(MISSING), reason=f"missing {MISSING} (Debian packages "
                                                                  f"bind9-dnsutils, libc-bin)")]
KUBE_DNS = "10.96.0.10"
MODES = ("iptables", "nftables")


@pytest.fixture(scope="module", params=MODES)
def dns_lab(request):
    """One lab per proxy mode, with kubelet's resolv.conf for pod-a and pod-c where ip netns
    exec bind-mounts it."""
    cluster = reference_cluster(proxy_mode=request.param)
    written = []
    with Lab(cluster) as lab:
        try:
            for pod in ("pod-a", "pod-c"):
                etc = os.path.join("/etc/netns", lab.netns(pod))
                os.makedirs(etc, exist_ok=True)
                path = os.path.join(etc, "resolv.conf")
                with open(path, "w") as f:
                    f.write(cluster.resolv_conf(pod))
                written.append((etc, path))
            yield cluster, lab
        finally:
            for etc, path in written:
                os.remove(path)
                os.rmdir(etc)


# ------------------------------------------------------------------------------ normalising
# The rules (per capture point, DNS ID and cookie by rule) are netsim.lab.walks's and compare's.


def dns_messages(trace) -> list[Message]:
    """Every DNS message in the trace's UDP datagrams and TCP streams (per capture point, so
    each message once per hop), in hop order."""
    return [m for h in trace.hops if h.ip is not None for m in (compare_dns_messages(h.ip.payload) or [])]


def id_pattern(messages: list[Message]) -> list[int]:
    """Each message's query as the order in which its id first appeared."""
    seen: dict[int, int] = {}
    return [seen.setdefault(m.id, len(seen)) for m in messages]


def without_random(text: str) -> str:
    import re
    text = re.sub(r"id: \d+", "id: ID", text)
    text = re.sub(r"COOKIE: [0-9a-f]+", "COOKIE: C", text)
    text = re.sub(r"Query time: \d+ msec", "Query time: T msec", text)
    return re.sub(r"WHEN: .*", "WHEN: W", text)


def assert_same_walk(kernel_trace, model_trace) -> None:
    assert walk_differences(model_trace, kernel_trace) == []


# ------------------------------------------------------------------------------ dig


CASES = [("pod-a", False), ("pod-a", True), ("pod-c", False), ("pod-c", True)]


@pytest.mark.parametrize("src, tcp", CASES, ids=[f"{s}-{'tcp' if t else 'udp'}" for s, t in CASES])
def test_dig_through_the_clusterip_is_the_kernels(dns_lab, src, tcp):
    cluster, lab = dns_lab
    name = "web.default.svc.cluster.local"
    argv = ["dig", f"@{KUBE_DNS}", name] + (["+tcp"] if tcp else [])
    kernel = run_tool(lab, src, argv)
    model = cluster.dig(src, name, server=KUBE_DNS, tcp=tcp)
    assert kernel.returncode == model.status == 0
    assert without_random(kernel.stdout) == without_random(model.stdout)
    assert f"{name}. 30 IN\tA\t10.96.0.100" in model.stdout
    assert f";; SERVER: {KUBE_DNS}#53({KUBE_DNS}) ({'TCP' if tcp else 'UDP'})" in model.stdout
    for trace in (kernel.trace, model.trace):
        msgs = dns_messages(trace)
        assert msgs and len({m.id for m in msgs}) == 1            # every copy of the one query's id
        queries = [m for m in msgs if not m.qr]
        replies = [m for m in msgs if m.qr]
        assert queries and replies and {cookie(r) for r in replies} == {cookie(queries[0])}
        assert len(cookie(queries[0]) or b"") == 8                # the client cookie dig sends
    assert_same_walk(kernel.trace, model.trace)
    points = {h.where for h in model.trace.hops}
    assert "node1/cni0" in points and "coredns/eth0" in points
    if src == "pod-c":
        assert {"node2/flannel.1", "node1/flannel.1", "node2/eth0", "node1/eth0"} <= points


# ------------------------------------------------------------------------------ glibc


@pytest.mark.parametrize("src, name", [("pod-a", "web"), ("pod-c", "web"), ("pod-a", "kube-dns.kube-system"),
                                       ("pod-c", "example.com")])
def test_glibc_asks_the_cluster_dns_what_the_model_resolver_asks(dns_lab, src, name):
    cluster, lab = dns_lab
    kernel = run_tool(lab, src, ["ip", "netns", "exec", lab.netns(src), "getent", "ahosts", name])
    ns = cluster.resolve(src, source=True).netns
    resolver = Resolve(name, cluster_resolv_conf(cluster, src), families=("A",), seed=ns)
    trace = cluster.network.run([(ns, resolver)], cold=True, title=f"getent ahosts {name}")
    result = resolver.lookup.result
    at = f"{src}/eth0"
    k_sent = [(m.question.name, m.question.qtype) for m in dns_messages(_at(kernel.trace, at, "tx"))]
    m_sent = [(m.question.name, m.question.qtype) for m in dns_messages(_at(trace, at, "tx"))]
    assert k_sent == m_sent == [(q.name, {"A": TYPE_A}[q.qtype]) for q in result.queries]
    if result.addresses:
        first = kernel.stdout.splitlines()[0].split()
        assert kernel.returncode == 0 and first == [result.addresses[0], "STREAM", result.canonical]
    else:
        assert kernel.returncode == 2 and kernel.stdout == "" and result.error == "EAI_NONAME"
    assert_same_walk(kernel.trace, trace)
    k_msgs = dns_messages(_at(kernel.trace, at, "tx")) + dns_messages(_at(kernel.trace, at, "rx"))
    m_msgs = dns_messages(_at(trace, at, "tx")) + dns_messages(_at(trace, at, "rx"))
    assert id_pattern(k_msgs) == id_pattern(m_msgs)


def _at(trace, where: str, direction: str):
    """The trace with only the hops at one capture point (for dns_messages)."""
    class _View:
        hops = [h for h in trace.hops if h.where == where and h.direction == direction]
    return _View


def cluster_resolv_conf(cluster, pod):
    from netsim.cluster.dns import resolv_conf
    return resolv_conf(cluster, pod)



# ------------------------------------------------------------------------------ chapter 13's lookups

LOOKUP = ("import socket, sys\n"
          "try:\n"
          "    print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], None)})[0])\n"
          "except socket.gaierror as e:\n"
          "    print([k for k in dir(socket) if k.startswith('EAI_') and getattr(socket, k) == e.errno][0])\n")


@pytest.mark.parametrize("src, name", DNS_LOOKUPS, ids=[f"{s}-{n}" for s, n in DNS_LOOKUPS])
def test_chapter_13s_lookups_are_glibcs_walk(dns_lab, src, name):
    """getaddrinfo(name) with AF_UNSPEC and no flags, as curl calls it (A and AAAA asked for every
    name tried): Python's socket.getaddrinfo is glibc's, run in the pod's namespace with
    kubelet's resolv.conf. The model's lookup (netsim.lab.exchanges.DNS_LOOKUPS, the lab case
    chapter 13's cells are matched with) walks the same frames at every capture point. The A
    query's walk ends before the AAAA query leaves (the kernel runs it inside sendmsg): the AAAA
    query meets node1's neighbour for coredns reachable, with its header cached, and is bridged
    straight to coredns's port (br_nf_pre_routing_finish_bridge: no node1/cni0 tx frame), on
    the conntrack entry the A query made (the same port)."""
    import sys
    cluster, lab = dns_lab
    kernel = run_tool(lab, src, ["ip", "netns", "exec", lab.netns(src), sys.executable, "-c", LOOKUP, name])
    trace, program = model_lookup(cluster, src, name)
    result = program.lookup.result
    assert kernel.returncode == 0, kernel.stderr
    assert kernel.stdout.strip() == (result.addresses[0] if result.addresses else result.error)
    at = f"{src}/eth0"
    sent = [(m.question.name, m.question.qtype) for m in dns_messages(_at(trace, at, "tx"))]
    assert sent == [(q.name, {"A": 1, "AAAA": 28}[q.qtype]) for q in result.queries]
    assert {t for _, t in sent} == {1, 28}
    assert_same_walk(kernel.trace, trace)
