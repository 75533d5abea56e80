"""The exchanges the lab's other test files compare with the kernel, listed without root.

tools/chapter_traces.py checks that every trace a chapter shows is an exchange some lab test
compares; these are the cases of four lab test files, defined here so the tests and that tool
read the same list:

- `TOOL_CASES` (tests/test_lab_sockets.py): the tools a reader types, run on the model
  (`Cluster.ping`, `traceroute`, `fetch`, `nc`) and, by the test, the real tool on the kernel;
- `HAIRPIN_CASES` (tests/test_lab_hairpin.py): a pod calling its own Service, hairpin and
  br_netfilter on and off, both kube-proxy modes;
- `KUBE_DNS_CASES` (tests/test_lab_kube_dns.py): kube-dns's three ports from either node;
- `LB_PATHS` (tests/test_lab_loadbalancer.py): LoadBalancer Services entered from outside;
- `CHAPTER_TOOL_CASES` (tests/test_lab_chapters_15_17.py): chapters 15 and 16's tool runs;
- `DNS_LOOKUPS` (tests/test_lab_dns.py): glibc's getaddrinfo in a pod, chapter 13's lookups.

`model_exchanges()` yields (family, key, model trace) for each, computed as the test computes
its model side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

from ..cluster import Cluster, reference_cluster
from ..cluster.tools import ToolRun
from ..cni import host_veth_name
from ..trace import Trace

POD_C = "10.244.1.2"


# ------------------------------------------------------------------------------ tools

def quiet_limits(cluster: Cluster) -> Cluster:
    """icmp_ratelimit 0 everywhere (model and lab): a traceroute's 16 probes in flight draw
    more errors from the destination than the 6 a burst allows (icmp.py)."""
    for ns in cluster.network.namespaces.values():
        ns.set_sysctl("net.ipv4.icmp_ratelimit", 0)
    return cluster


def pmtu_cluster(backend: str = "vxlan") -> Cluster:
    """pod-a, its host veth and cni0 at 1500: node1 forwards onto flannel.1 (1450 under vxlan,
    the underlay's 1500 under host-gw) and answers a bigger DF packet with fragmentation needed."""
    cluster = reference_cluster(backend)
    for host, dev in (("pod-a", "eth0"), ("node1", cluster.pods["pod-a"].host_veth), ("node1", "cni0")):
        cluster.set_mtu(host, dev, 1500)
    return cluster


def enobufs_cluster() -> Cluster:
    """pod-a's eth0 at 1500, its host veth left at 1450."""
    cluster = reference_cluster()
    cluster.set_mtu("pod-a", "eth0", 1500)
    return cluster


def mss_cluster() -> Cluster:
    """Both pods, their host veths and both cni0s at 1500: both ends offer MSS 1460."""
    cluster = reference_cluster()
    for host, dev in (("pod-a", "eth0"), ("node1", cluster.pods["pod-a"].host_veth), ("node1", "cni0"),
                      ("pod-c", "eth0"), ("node2", cluster.pods["pod-c"].host_veth), ("node2", "cni0")):
        cluster.set_mtu(host, dev, 1500)
    return cluster


UPLOAD = b"POST / HTTP/1.1\r\nContent-Length: 6000\r\n\r\n" + b"x" * 6000

# traceroute: (host, traceroute's arguments, Cluster.traceroute's)
TRACEROUTES: list[tuple[str, list[str], dict]] = [
    ("pod-a", ["-n", POD_C], dict(dst=POD_C)),
    ("pod-a", ["-I", "-n", POD_C], dict(dst=POD_C, mode="icmp")),
    ("pod-a", ["-T", "-p", "8080", "-n", POD_C], dict(dst=POD_C, mode="tcp", port=8080)),
    ("ext", ["-n", "192.168.50.11"], dict(dst="192.168.50.11")),
    ("ext", ["-I", "-n", "192.168.50.11"], dict(dst="192.168.50.11", mode="icmp")),
    ("ext", ["-T", "-p", "30080", "-n", "192.168.50.11"], dict(dst="192.168.50.11", mode="tcp", port=30080)),
]


def model_traceroute(cluster: Cluster, host: str, call: dict) -> ToolRun:
    kwargs = dict(call)
    return cluster.traceroute(host, kwargs.pop("dst"), numeric=True, **kwargs)


# ping at the pod MTU and one byte over: (backend, bytes over, -M mode)
PING_CASES = [(backend, delta, mode) for backend in ("vxlan", "host-gw") for delta in (0, 1)
              for mode in ("do", "want", "dont")]


def ping_size(cluster: Cluster, delta: int) -> int:
    return cluster.netns("pod-a").devices["eth0"].mtu - 28 + delta


# special destinations: (destination, ping -b)
SPECIAL = [
    ("0.0.0.0", False), ("10.244.0.255", False), ("10.244.0.255", True), ("255.255.255.255", False),
    ("255.255.255.255", True), ("224.0.0.1", False),
]

TRANSFERS = [(backend, mss, size) for backend, mss in (("vxlan", 1398), ("host-gw", 1448)) for size in (6000, 100000)]


@dataclass(frozen=True)
class ToolCase:
    """One cluster and the tool runs a lab test makes on it: `run(cluster)` is the model's side,
    in the order the test runs them (a run with `cold=False` keeps what the earlier ones learned)."""

    key: str
    build: Callable[[], Cluster]
    run: Callable[[Cluster], list[ToolRun]]


def _transfer(size: int, c: Cluster) -> list[ToolRun]:
    return [c.fetch("pod-a", f"http://{POD_C}:8080/{size}")]


def _traceroute(host: str, call: dict, c: Cluster) -> list[ToolRun]:
    return [model_traceroute(c, host, call)]


def _ping_mtu(delta: int, mode: str, c: Cluster) -> list[ToolRun]:
    return [c.ping("pod-a", POD_C, size=ping_size(c, delta), pmtudisc=mode)]


def _ping_special(dst: str, broadcast: bool, c: Cluster) -> list[ToolRun]:
    return [c.ping("pod-a", dst, broadcast=broadcast)]


def _quiet() -> Cluster:
    return quiet_limits(reference_cluster())


def _tool_cases() -> list[ToolCase]:
    cases = [
        ToolCase("enobufs", enobufs_cluster, lambda c: [c.ping("pod-a", POD_C, count=2, size=1472, pmtudisc="do")]),
        ToolCase("pmtu-cache", pmtu_cluster, lambda c: [
            c.ping("pod-a", POD_C, size=1472, pmtudisc="do"),
            c.ping("pod-a", POD_C, size=1472, pmtudisc="do", cold=False),
            c.ping("pod-a", POD_C, size=1472, pmtudisc="want", cold=False)]),
        ToolCase("mss-lowered", mss_cluster, lambda c: [c.nc("pod-a", "pod-c", 8080, UPLOAD)]),
    ]
    for backend, _mss, size in TRANSFERS:
        cases.append(ToolCase(f"transfer {backend} {size}", partial(reference_cluster, backend), partial(_transfer, size)))
    for host, args, call in TRACEROUTES:
        cases.append(ToolCase(f"traceroute {host} {' '.join(args)}", _quiet, partial(_traceroute, host, call)))
    for backend, delta, mode in PING_CASES:
        cases.append(ToolCase(f"ping {backend} mtu{'+1' if delta else ''} -M {mode}",
                              partial(reference_cluster, backend), partial(_ping_mtu, delta, mode)))
    for dst, broadcast in SPECIAL:
        cases.append(ToolCase(f"ping {dst}{' -b' if broadcast else ''}", reference_cluster,
                              partial(_ping_special, dst, broadcast)))
    return cases


TOOL_CASES = _tool_cases()
TOOL_BY_KEY = {case.key: case for case in TOOL_CASES}



# ------------------------------------------------------------------------------ chapters 15 and 16

def _no_endpoints() -> Cluster:
    cluster = reference_cluster()
    cluster.add_service("api", port=80, target_port=8080, pods=[])
    return cluster


def _quiet_broken(fault: str) -> Callable[[], Cluster]:
    def build() -> Cluster:
        cluster = _quiet()
        getattr(cluster, fault)("node1", "node2")
        return cluster
    return build


def _ch15_healthy(c: Cluster) -> list[ToolRun]:
    """Chapter 15's tool runs on its healthy cluster, in the chapter's order."""
    runs = [c.nc("pod-a", "pod-c", 9999, b"hello\n", verbose=True), c.ping("ext", POD_C), c.ping("gateway", POD_C)]
    runs += [c.traceroute("pod-a", POD_C, mode=mode, port=port, numeric=True)
             for mode, port in (("udp", None), ("icmp", None), ("tcp", 8080))]
    runs += [c.traceroute("ext", "192.168.50.11", mode="tcp", port=30080, numeric=True),
             c.traceroute("ext", "192.168.50.11", mode="tcp", port=30080, numeric=True, first_ttl=3, max_ttl=3,
                          queries=1),
             c.traceroute("ext", "192.168.50.11", numeric=True), c.fetch("pod-a", f"{POD_C}:9999")]
    return runs


def _ch15_no_endpoints(c: Cluster) -> list[ToolRun]:
    c.send("pod-a", "api", proto="tcp")
    api = str(c.services["api"].cluster_ip)
    return [c.fetch("pod-a", f"{api}:80"), c.nc("pod-a", api, 80, b"x", verbose=True)]


def _ch15_neighbour(c: Cluster) -> list[ToolRun]:
    c.send("pod-a", "pod-c")
    return [c.ping("pod-a", POD_C)]


def _ch15_route(c: Cluster) -> list[ToolRun]:
    c.send("pod-a", "pod-c")
    return [c.traceroute("pod-a", POD_C, numeric=True, max_ttl=4, wait=1)]


# Chapters 15 and 16's tool runs, each case one cluster built and driven as the chapter drives it
# (tests/test_lab_chapters_15_17.py runs the same commands with the real tools, in the same order).
CHAPTER_TOOL_CASES = [
    ToolCase("ch15 healthy", _quiet, _ch15_healthy),
    ToolCase("ch15 no-endpoints", _no_endpoints, _ch15_no_endpoints),
    ToolCase("ch15 neighbour", _quiet_broken("break_neighbour"), _ch15_neighbour),
    ToolCase("ch15 route", _quiet_broken("break_route"), _ch15_route),
    ToolCase("ch16 ping 2000", reference_cluster, lambda c: [c.ping("pod-a", POD_C, size=2000, pmtudisc="want")]),
]
CHAPTER_TOOL_BY_KEY = {case.key: case for case in CHAPTER_TOOL_CASES}


# ------------------------------------------------------------------------------ hairpin

ECHO_IP = "10.96.0.101"
HAIRPIN_PORTS = {"tcp": 80, "udp": 90}
POD_C_PORT = host_veth_name("pod-c")        # veth4bd4e613
NO_ANSWER = "no answer reached the sender"


def hairpin_cluster(proxy_mode: str = "iptables", br_netfilter: bool = True, hairpin: bool = True) -> Cluster:
    """The reference cluster plus Service `echo` in front of pod-c with two named ports (http
    TCP 80 -> 8080, dns UDP 90 -> 9090), node2's br_netfilter switch and the hairpin flag of
    pod-c's cni0 port set as asked."""
    c = reference_cluster(proxy_mode=proxy_mode)
    c.add_service("echo", pods=["pod-c"], ports=[{"name": "http", "port": 80, "target_port": 8080},
                                                {"name": "dns", "port": 90, "target_port": 9090, "protocol": "udp"}])
    c.netns("node2").set_sysctl("net.bridge.bridge-nf-call-iptables", int(br_netfilter))
    c.bridge_link_set("node2", POD_C_PORT, hairpin=hairpin)
    return c


# (proxy mode, br_netfilter, hairpin, what pod-c sees over tcp, over udp)
HAIRPIN_CASES = [
    (mode, brnf, hairpin,
     f"connected to {ECHO_IP}:80 (SYN-ACK)" if hairpin or not brnf else NO_ANSWER,
     f"udp reply from {ECHO_IP}:90" if hairpin or not brnf else NO_ANSWER)
    for mode in ("iptables", "nftables") for brnf in (True, False) for hairpin in (True, False)]


def hairpin_key(mode: str, brnf: bool, hairpin: bool) -> str:
    return f"{mode}-brnf-{'on' if brnf else 'off'}-hairpin-{'on' if hairpin else 'off'}"


# ------------------------------------------------------------------------------ kube-dns

KUBE_DNS_IP = "10.96.0.10"
KUBE_DNS_PORTS = [("udp", 53), ("tcp", 53), ("tcp", 9153)]
KUBE_DNS_CLIENTS = ("pod-b", "pod-c")       # on coredns's node, on the other node


def kube_dns_payload(proto: str, port: int) -> bytes | None:
    """What a client sends to kube-dns's port: a DNS query for web on UDP 53 (the coredns pod
    serves DNS and answers nothing else there), the lab's default datagram or a bare connect
    otherwise."""
    from ..programs.dns import query
    return query(0x2A, "web.default.svc.cluster.local").to_bytes() if (proto, port) == ("udp", 53) else None


# ------------------------------------------------------------------------------ LoadBalancer

LB = {"web-lb": "192.168.50.200", "local-lb": "192.168.50.201", "open-lb": "192.168.50.202",
      "shut-lb": "192.168.50.203"}


def lb_cluster(proxy_mode: str = "iptables") -> Cluster:
    """LoadBalancer Services on the reference cluster; MetalLB's pool is 192.168.50.200-250.

    - web-lb (192.168.50.200, policy Cluster) in front of pod-c: node1 wins the election for .200
      (sha256("node1#192.168.50.200") sorts first), so traffic enters on node1 and crosses to node2;
    - local-lb (192.168.50.201, policy Local) in front of pod-c: only node2 has an endpoint, so
      only node2 is a candidate; it gets a healthCheckNodePort;
    - open-lb (192.168.50.202, loadBalancerSourceRanges 203.0.113.0/24: ext may) and shut-lb
      (192.168.50.203, 198.51.100.0/24: ext may not), both in front of pod-c."""
    c = reference_cluster(proxy_mode=proxy_mode)
    c.add_service("web-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer")
    c.add_service("local-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                  external_traffic_policy="Local")
    c.add_service("open-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                  load_balancer_source_ranges=["203.0.113.0/24"])
    c.add_service("shut-lb", port=80, target_port=8080, pods=["pod-c"], type="LoadBalancer",
                  load_balancer_source_ranges=["198.51.100.0/24"])
    return c


# (id, destination, port, what ext sees)
LB_PATHS = [
    ("cluster-policy-cross-node", LB["web-lb"], 80, f"connected to {LB['web-lb']}:80 (SYN-ACK)"),
    ("local-policy", LB["local-lb"], 80, f"connected to {LB['local-lb']}:80 (SYN-ACK)"),
    ("source-range-allows", LB["open-lb"], 80, f"connected to {LB['open-lb']}:80 (SYN-ACK)"),
    ("source-range-drops", LB["shut-lb"], 80, NO_ANSWER),
    ("health-check-port", "192.168.50.12", 30088, "connected to 192.168.50.12:30088 (SYN-ACK)"),
]


# ------------------------------------------------------------------------------ DNS lookups

# (pod, name): getaddrinfo(name) with AF_UNSPEC and no flags (A and AAAA asked), as chapter 13
# walks it; tests/test_lab_dns.py runs glibc's in the pod's namespace with kubelet's resolv.conf.
DNS_LOOKUPS = [("pod-a", "web"), ("pod-a", "example.com")]


def lookup_program(cluster: Cluster, pod: str, name: str):
    """The model of glibc's getaddrinfo(name) in `pod`, seeded as chapter 13 seeds it."""
    from ..cluster.dns import resolv_conf
    from ..programs.resolver import Resolve
    conf = resolv_conf(cluster, pod)
    if conf is None:
        raise ValueError(f"{pod!r} is not a pod")
    return Resolve(name, conf, seed=pod)


def model_lookup(cluster: Cluster, pod: str, name: str) -> tuple[Trace, object]:
    """The walk of the lookup's queries (cold caches) and the program, whose `lookup.result` it returned."""
    program = lookup_program(cluster, pod, name)
    trace = cluster.network.run([(pod, program)], cold=True, title=f"getaddrinfo({name}) in {pod}")
    return trace, program


# ------------------------------------------------------------------------------ all of them

def model_exchanges() -> Iterator[tuple[str, str, Trace]]:
    """(family, key, model trace) for every exchange the four lab test files compare."""
    for case in TOOL_CASES:
        runs = case.run(case.build())
        for i, run in enumerate(runs):
            for j, trace in enumerate(run.traces):
                suffix = (f" run {i + 1}" if len(runs) > 1 else "") + (f" trace {j + 1}" if len(run.traces) > 1 else "")
                yield "tools", case.key + suffix, trace
    for case in CHAPTER_TOOL_CASES:
        for i, run in enumerate(case.run(case.build())):
            for j, trace in enumerate(run.traces):
                yield "chapter-tools", f"{case.key} run {i + 1}" + (f" trace {j + 1}" if len(run.traces) > 1 else ""), trace
    for mode, brnf, hairpin, _tcp, _udp in HAIRPIN_CASES:
        for proto, port in HAIRPIN_PORTS.items():
            cluster = hairpin_cluster(mode, brnf, hairpin)
            yield "hairpin", f"{hairpin_key(mode, brnf, hairpin)} {proto}", cluster.send(
                "pod-c", ECHO_IP, proto=proto, dport=port)
    for mode in ("iptables", "nftables"):
        for client in KUBE_DNS_CLIENTS:
            for proto, port in KUBE_DNS_PORTS:
                cluster = reference_cluster(proxy_mode=mode)
                yield "kube-dns", f"{mode} {client} {proto}/{port}", cluster.send(
                    client, KUBE_DNS_IP, proto=proto, dport=port, payload=kube_dns_payload(proto, port))
        for key, dst, port, _seen in LB_PATHS:
            yield "loadbalancer", f"{mode} {key}", lb_cluster(mode).send("ext", f"{dst}:{port}", proto="tcp")
    for pod, name in DNS_LOOKUPS:
        yield "dns-lookup", f"{pod} {name}", model_lookup(reference_cluster(), pod, name)[0]
