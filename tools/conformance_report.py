"""Write the book's conformance appendix: every lab family, on netsim and on the running kernel.

    sudo .venv/bin/python tools/conformance_report.py [--out book/appendix/conformance.md] [--quick]

The lab (netsim.lab) builds each cluster in real network namespaces and compares the kernel
with the model. The report covers every lab family:

- scenarios: each cluster shape with each backend, every scenario with TCP, UDP and ICMP,
  frame by frame (netsim.lab.conformance; tests/test_lab.py);
- MTU and fragmentation: one lab per case, one UDP datagram of a chosen size, fragments piece
  by piece, drops by where the kernel last saw the packet, ICMP errors by their next-hop MTU,
  and the veth drop counters the kernel keeps (tests/test_lab_mtu.py);
- state views: netsim's `ip link`, `ip -d link` (promiscuity counts included), `ip route`,
  permanent `ip neigh`, `bridge fdb`, `iptables-save` and `nft -a list ruleset` against the real tools' output for
  the same cluster (netsim.lab.state; tests/test_lab_state.py);
- troubleshooting: each broken cluster of chapter 10, frames and the drop and error counters the
  kernel moved (netsim.lab.breakages; tests/test_lab_breakages.py);
- the chapters' other exchanges: chapter 1's small networks, a pod to its own address,
  externalTrafficPolicy Local (netsim.lab.chapters; tests/test_lab_chapters.py);
- and, without root, which lab comparison checks each trace a chapter shows
  (tools/chapter_traces.py; tests/test_chapter_traces.py);

and lists every known deviation of the model with its evidence. Exits 1 if anything differs
that is not a recorded deviation, or a recorded deviation no longer shows (the report is
written anyway); 2 if the lab cannot run here (not root, not Linux, a tool missing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netsim import Cluster, reference_cluster  # noqa: E402
from netsim.lab import breakages, chapters  # noqa: E402
from netsim.lab.breakages import CaseResult, run_case  # noqa: E402
from tools import chapter_traces  # noqa: E402
from netsim.lab import state as lab_state  # noqa: E402
from netsim.lab.cni import compare_cni, compare_portmap, plugins_reason, real_cni_node  # noqa: E402
from netsim.lab import (BACKENDS, KNOWN_DEVIATIONS, PROTOS, SHAPES, Comparison, Lab, compare,  # noqa: E402
                        conformance, report, unavailable_reason)

UDP_TIMEOUT = 1.0          # a silent drop waits this long for the answer that never comes
STATE_HOSTS = lab_state.HOSTS
STATE_VIEWS = lab_state.VIEWS


# ---------------------------------------------------------------- MTU and fragmentation

def _pod_mtu_1500(backend: str) -> Cluster:
    """pod-a's eth0 at 1500, its host veth left at Flannel's 1450."""
    c = reference_cluster(backend)
    c.set_mtu("pod-a", "eth0", 1500)
    return c


def _pod_path_1500(backend: str) -> Cluster:
    """pod-a's eth0, its host veth and cni0 at 1500: the packet reaches flannel.1 (1450)."""
    c = _pod_mtu_1500(backend)
    c.set_mtu("node1", c.pods["pod-a"].host_veth, 1500)
    c.set_mtu("node1", "cni0", 1500)
    return c


def _underlay_1400(backend: str) -> Cluster:
    """Flannel sized for a 1500 underlay (flannel.1 1450), the underlay then lowered to 1400."""
    c = Cluster(backend=backend, underlay_mtu=1500)
    c.add_pod("pod-a", node="node1", containers=("app", "sidecar"))
    c.add_pod("pod-b", node="node1")
    c.add_pod("pod-c", node="node2")
    for node in ("node1", "node2"):
        c.set_mtu(node, "eth0", 1400)
    for dev in c.netns("underlay").devices.values():
        if dev.kind != "loopback":
            c.set_mtu("underlay", dev.name, 1400)
    return c


@dataclass(frozen=True)
class MtuCase:
    """One MTU case: a cluster, the UDP payload pod-a sends pod-c, and what the case shows."""

    key: str
    title: str
    build: Callable[[str], Cluster]
    payload: int | Callable[[Cluster], int]
    backend: str = "vxlan"
    sends: int = 1                  # > 1: earlier datagrams first, the last one is compared
    counters: bool = False          # read the host veth's and the pod's drop counters
    deviation: str | None = None    # the key of a recorded deviation this case shows
    was: str | None = None          # the key of a fixed deviation this case showed (it must now match)
    tcpdump: bool = False           # also capture node1/eth0's output with tcpdump, a second witness


MTU_CASES = (
    MtuCase("a", "pod eth0 1500, host veth 1450: a 1488-byte packet", _pod_mtu_1500, 1460, counters=True),
    MtuCase("a-1454", "the veth's limit: a 1454-byte packet (MTU + 4) passes the veth", _pod_mtu_1500, 1426),
    MtuCase("a-1455", "the veth's limit: a 1455-byte packet (MTU + 5) is dropped", _pod_mtu_1500, 1427,
            counters=True),
    MtuCase("b", "the path at 1500 up to flannel.1 (1450): DF datagram gets frag-needed", _pod_path_1500, 1460),
    MtuCase("c", "underlay lowered to 1400 under flannel.1's 1450: outer packet fragmented", _underlay_1400, 1400),
    MtuCase("c-again", "the same, a second datagram after the first", _underlay_1400, 1400, sends=2),
    MtuCase("d", "a datagram bigger than pod-a's own MTU (fragmented by pod-a, vxlan)", reference_cluster,
            lambda c: c.netns("pod-a").devices["eth0"].mtu + 550, was="second-fragment-ttl"),
    MtuCase("d-host-gw", "a datagram bigger than pod-a's own MTU (host-gw)", reference_cluster,
            lambda c: c.netns("pod-a").devices["eth0"].mtu + 550, backend="host-gw",
            was="second-fragment-ttl", tcpdump=True),
)


@dataclass
class MtuResult:
    case: MtuCase
    comparison: Comparison
    counters: dict[str, int] = field(default_factory=dict)
    tcpdump: list[str] = field(default_factory=list)


TCPDUMP_LINE = re.compile(r"^\S+ (?P<src>[0-9a-f:]{17}) > (?P<dst>[0-9a-f:]{17}), .*?ttl (?P<ttl>\d+), "
                          r"id \d+, offset (?P<offset>\d+)")


def _tcpdump(netns: str, dev: str) -> subprocess.Popen:
    """tcpdump on one device's output (it copies each frame when the kernel hands it over)."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-i", dev, "-nn", "-e", "-v", "-l",
                             "-Q", "out", "udp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)                 # tcpdump is listening once its filter is installed
    return proc


def _tcpdump_lines(proc: subprocess.Popen) -> list[str]:
    time.sleep(0.3)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return [f"offset {m['offset']} ttl {m['ttl']} {m['src']} > {m['dst']}"
            for m in (TCPDUMP_LINE.match(line) for line in out.splitlines()) if m]


def _stats(netns: str, dev: str) -> dict:
    out = subprocess.run(["ip", "-j", "-s", "-n", netns, "link", "show", dev], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]["stats64"]


def run_mtu_case(case: MtuCase) -> MtuResult:
    cluster = case.build(case.backend)
    size = case.payload(cluster) if callable(case.payload) else case.payload
    t0 = time.perf_counter()
    counters: dict[str, int] = {}
    seen_by_tcpdump: list[str] = []
    with Lab(cluster, trace_rules=True) as lab:
        for _ in range(case.sends - 1):
            lab.exchange("pod-a", "pod-c", "udp", payload=bytes(size), timeout=UDP_TIMEOUT)
        model = cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(size))
        witness = _tcpdump(lab.netns("node1"), "eth0") if case.tcpdump else None
        observed = lab.exchange("pod-a", "pod-c", "udp", payload=bytes(size), timeout=UDP_TIMEOUT)
        if witness is not None:
            seen_by_tcpdump = _tcpdump_lines(witness)
        if case.counters:
            veth = cluster.pods["pod-a"].host_veth
            counters = {f"node1 {veth} rx_dropped": _stats(lab.netns("node1"), veth)["rx"]["dropped"],
                        "pod-a eth0 tx_dropped": _stats(lab.netns("pod-a"), "eth0")["tx"]["dropped"]}
        result = compare(model, observed, cluster=cluster, title=f"{case.backend} mtu {case.key} ({size} bytes)")
    result.seconds = time.perf_counter() - t0
    return MtuResult(case, result, counters, seen_by_tcpdump)


# ---------------------------------------------------------------- state views

def run_state_views(backend: str) -> list[tuple[str, str, int, bool]]:
    """(host, view, lines, equal) for every host and view of the reference cluster
    (netsim.lab.state)."""
    cluster = reference_cluster(backend)
    rows = []
    with Lab(cluster) as lab:
        for host in STATE_HOSTS:
            for view in STATE_VIEWS:
                lines = len(lab_state.kernel_view(lab, host, view))
                rows.append((host, view, lines, not lab_state.differences(lab, cluster, host, view)))
    return rows


# ---------------------------------------------------------------- deviations and families

@dataclass(frozen=True)
class Deviation:
    """A measured way the model differs from the kernel, kept visible until its cause is found."""

    key: str
    title: str
    evidence: str
    test: str
    lead: str = ""                  # what the latest measurements suggest, not yet confirmed
    fixed: str = ""                 # once the cause is found and fixed: what it was and what changed


DEVIATIONS: dict[str, Deviation] = {}

# Deviations whose cause was found in the lab, not in the model, and fixed there: kept as a record,
# with the cases that showed them, which must now match
FIXED = {
    "second-fragment-ttl": Deviation(
        "second-fragment-ttl",
        "the second fragment of a forwarded datagram that conntrack reassembled and the output cut back "
        "into fragments",
        "The lab's capture showed node1 sending the second fragment one TTL lower than the first, with "
        "Ethernet addresses node1 cannot have written (host-gw: node1/eth0 tx 1500 bytes TTL 63, 598 bytes "
        "TTL 62 from node2/cni0 to pod-c/eth0; vxlan: the inner fragments likewise, under an outer UDP "
        "checksum that no longer verified), where the model sends both at 63 with node1's addresses; "
        "tcpdump on node1/eth0 saw both leave as the model has them",
        "tests/test_lab_mtu.py::test_d_datagram_bigger_than_the_pods_own_mtu (vxlan and host-gw: both "
        "fragments at TTL 63 with node1's addresses, and the whole exchange matches)",
        fixed="The cause was the lab's capture, not node1 and not the model: a packet socket read with "
        "recvmsg is queued a clone of the skb that shares the packet's data (packet_rcv in "
        "net/packet/af_packet.c), and the bytes are copied out only at recvmsg, after node2's forwarding "
        "had rewritten that data in place (its TTL, the Ethernet header it gives the packet). The lab now "
        "captures through a PACKET_MMAP receive ring (TPACKET_V2, as libpcap in immediate mode): "
        "tpacket_rcv copies each frame into the ring with skb_copy_bits as it passes the tap "
        "(netsim/lab/capture.py), as tcpdump sees it. The model's single decrement was right and is "
        "unchanged"),
}

NOT_IN_THE_LAB = (
    *chapter_traces.NOT_IN_THE_LAB.values(),
    "a node's own connection to a ClusterIP (no chapter shows one): the rule comparison cannot yet line up "
    "the kernel's nat OUTPUT walk of a packet that is DNATed before any capture point sees it",
    "IPv6 (off in every lab namespace; netsim models IPv4 only)",
    "VXLAN DirectRouting and kube-proxy's IPVS mode (the nftables modes of kube-proxy and Flannel are in "
    "the nftables shape above)",
    "Flannel's wireguard, ipip, ipsec, alloc, extension and tencent-vpc backends: netsim does not model them "
    "(chapter 12 explains them from Flannel's source), and the lab's kernel here has no ipip or wireguard driver",
    "the VXLAN checksum-offload problem of chapter 10, case 11 (kubernetes#88986): the lab switches transmit "
    "checksum offload off on every device, and the model's checksums are always complete",
    "flanneld, kubelet and the API server themselves: the lab writes the state they would write, generated "
    "from netsim's model (the CNI plugins do run, on a node of their own: the Real CNI plugins line above)",
    "kube-proxy itself: the lab loads the rules netsim writes for it, and its health server on a "
    "healthCheckNodePort is a stand-in written from the Go source (netsim/lab/kube_proxy_health.py), whose "
    "answers chapter 18's probes compare with the model's byte for byte, the Date by rule",
)


def families_section(runs, mtu: list[MtuResult], state: dict[str, list],
                     cases: dict[str, list[CaseResult]] | None = None) -> list[str]:
    cases = cases or {}
    scen = [c for r in runs for c in r.comparisons]
    mtu_ok = [m for m in mtu if m.comparison.ok]
    state_rows = [row for rows in state.values() for row in rows]
    return [
        "## Lab families",
        "",
        "| Family | What is compared | Test in `make test` | This run |",
        "|---|---|---|---|",
        f"| Scenarios | the six paths and two extras (host to remote pod, pod to ClusterIP), TCP, UDP and ICMP, on "
        f"{len(SHAPES)} cluster shapes x {len(BACKENDS)} backends, frame by frame | `tests/test_lab.py` | "
        f"{len(scen) - sum(not c.ok for c in scen)} of {len(scen)} exchanges match |",
        f"| MTU and fragmentation | {len(MTU_CASES)} cases: the veth's size limit and its drop counters, "
        f"frag-needed from flannel.1, outer fragmentation under a smaller underlay, a datagram bigger than the "
        f"pod's MTU | `tests/test_lab_mtu.py` | {len(mtu_ok)} of {len(mtu)} match"
        + (f", {sum(1 for m in mtu if not m.comparison.ok and m.case.deviation)} show a known deviation"
           if any(not m.comparison.ok and m.case.deviation for m in mtu) else "") + " |",
        f"| State views | `ip link`, `ip -d link` (promiscuity and allmulti counts included), `ip route`, "
        f"permanent `ip neigh`, `bridge fdb`, `iptables-save`, `nft -a list ruleset` of "
        f"{len(STATE_HOSTS)} hosts, vxlan and host-gw, against the real tools | `tests/test_lab_state.py` | "
        f"{sum(row[3] for row in state_rows)} of {len(state_rows)} views equal |",
        "| iptables text | every rule set netsim prints, loaded with `iptables-restore` into a throwaway "
        "namespace and read back with `iptables-save` | `tests/test_iptables_real.py` | not repeated here |",
        *(f"| {FAMILY_TITLES[family]} | {FAMILY_TEXT[family]} | `{FAMILY_TESTS[family]}` | "
          f"{sum(r.ok for r in results)} of {len(results)} match, frames and counters |"
          for family, results in cases.items()),
        "",
    ]


FAMILY_TITLES = {"troubleshooting": "Troubleshooting", "chapters": "Chapters' other exchanges"}
FAMILY_TEXT = {
    "troubleshooting": f"chapter 10's {len(breakages.CASES)} broken clusters, each in a lab of its own: frames hop by "
                       "hop, drops by where the kernel last saw the packet, and the drop and error counters "
                       "(nstat, `ip -s link`, the DROP/REJECT rules' packets) before and after against the model's",
    "chapters": f"{len(chapters.CASES)} exchanges the chapters walk beyond the scenarios: chapter 1's networks of "
                "namespaces, a pod to its own address, externalTrafficPolicy Local through either node",
}
FAMILY_TESTS = {"troubleshooting": "tests/test_lab_breakages.py", "chapters": "tests/test_lab_chapters.py"}
FAMILY_CASES = {"troubleshooting": breakages.CASES, "chapters": chapters.CASES}


def cases_section(family: str, results: list[CaseResult]) -> list[str]:
    out = [f"## {FAMILY_TITLES[family]}", "",
           "Each case: its network in a lab of its own, one exchange (the model's `send()` and the same with real "
           "sockets), compared as above, and the watched counters (netsim.counters.WATCHED_MIB in `nstat`, every "
           "device's RX and TX dropped, every DROP or REJECT rule's packets) read before and after on every host: "
           "the kernel's changes must be the model's records exactly.", "",
           "| Case | Exchange | Hops | Values | Result | Counters the kernel moved | Time |",
           "|---|---|---:|---:|---|---|---:|"]
    for r in results:
        c = r.comparison
        verdict = "match" if r.ok else f"**{len(c.differences) + len(r.counters)} differences**"
        moved = ", ".join(f"{k.host} {k.name} +{v}" for k, v in r.kernel_counters.items()) or "none"
        size = len(r.case.payload) if isinstance(r.case.payload, bytes) else r.case.payload
        proto = f"{r.case.proto}" + (f", {size} bytes" if size else "")
        out.append(f"| {r.case.key}: {r.case.title} | {r.case.src} -> {r.case.dst} ({proto}) | {c.hops_compared} | "
                   f"{sum(c.compared.values())} | {verdict} | {moved} | {r.seconds:.2f} s |")
    return out + [""]


def chapters_section(rows) -> list[str]:
    """Every trace a chapter shows, and the lab comparison of the same exchange."""
    out = ["## Every chapter's traces and their lab comparison", "",
           "tools/chapter_traces.py runs each chapter's code cells and records every exchange they walk; the "
           "lab comparison listed is the exchange above that the lab's own comparison finds identical to it "
           "(random values by rule). `tests/test_chapter_traces.py` fails if a chapter shows a trace without one, "
           "unless for a reason listed under \"Not in the lab\".", "",
           "| Chapter | Cell | Exchange | Lab comparison |", "|---|---:|---|---|"]
    for item, found, reason in rows:
        where = f"{found.family}: {found.key}" if found else f"not in the lab: {reason}" if reason else "**none**"
        out.append(f"| {item.chapter} | {item.cell} | {item.trace.title} | {where} |")
    return out + [""]


def mtu_section(mtu: list[MtuResult]) -> list[str]:
    out = ["## MTU and fragmentation", "",
           "Each case builds its own lab (an MTU change and the kernel's path-MTU cache would leak between cases "
           "otherwise), sends one UDP datagram from pod-a to pod-c and compares the whole exchange as above, "
           "fragment by fragment. Where a case reads the veth drop counters, they are the kernel's, after the "
           "exchange.", "",
           "| Case | Backend | Packet | Hops | Values | Result | Kernel counters | Outcome | Time |",
           "|---|---|---:|---:|---:|---|---|---|---:|"]
    for m in mtu:
        c = m.comparison
        size = c.title.rsplit("(", 1)[1].split()[0]
        verdict = "match" if c.ok else (f"known deviation ({m.case.deviation})" if m.case.deviation
                                         else f"**{len(c.differences)} differences**")
        counters = ", ".join(f"{k} {v}" for k, v in m.counters.items()) or "-"
        out.append(f"| {m.case.key}: {m.case.title} | {m.case.backend} | {int(size) + 28} bytes | "
                   f"{c.hops_compared} | {sum(c.compared.values())} | {verdict} | {counters} | "
                   f"{c.kernel.outcome} | {c.seconds:.2f} s |")
    return out + [""]


def state_section(state: dict[str, list]) -> list[str]:
    out = ["## State views", "", "| Backend | Host | View | Lines | Result |", "|---|---|---|---:|---|"]
    for backend, rows in state.items():
        out += [f"| {backend} | {host} | `{view}` | {lines} | {'equal' if ok else '**differs**'} |"
                for host, view, lines, ok in rows]
    return out + [""]


def _measured(comparison: Comparison) -> str:
    """A comparison's differences, one entry per (field, model value, kernel value) with the hops."""
    where: dict[tuple[str, str, str], list[str]] = {}
    for d in comparison.differences:
        where.setdefault((d.field, str(d.model), str(d.kernel)), []).append(d.where)
    return "; ".join(f"`{name}` model {model}, kernel {kernel} at {', '.join(places)}"
                     for (name, model, kernel), places in where.items())


def deviations_section(mtu: list[MtuResult]) -> list[str]:
    out = ["## Known deviations, with their evidence", ""]
    for key, why in KNOWN_DEVIATIONS.items():
        out.append(f"- **{key}** (a field the comparison reports but does not count as a failure): {why}.")
    for dev in DEVIATIONS.values():
        seen = [m for m in mtu if m.case.deviation == dev.key]
        out += [f"- **{dev.key}**: {dev.title}. {dev.evidence}. Evidence in the suite: {dev.test}."
                + (f" {dev.lead}." if dev.lead else ""),
                *(f"  - Measured in this run, case {m.case.key} ({m.case.backend}): "
                  + ("the deviation did not show." if m.comparison.ok else _measured(m.comparison) + ".")
                  + (f" tcpdump on node1/eth0 saw: {'; '.join(m.tcpdump)}." if m.tcpdump else "")
                  for m in seen)]
        if not seen and "test_lab_mtu" in dev.test:
            out.append("  - Not run in this report.")
        elif not seen:
            out.append(f"  - Run in this report with its test file, under More lab families: {dev.test.split('::')[0]}.")
    if not KNOWN_DEVIATIONS and not DEVIATIONS:
        out.append("None at present.")
    if FIXED:
        out += ["", "Found and fixed (the cause was in the lab, not in the model; the cases that showed them must "
                "now match):", ""]
    for dev in FIXED.values():
        out += [f"- **{dev.key}**: {dev.title}. {dev.evidence}. {dev.fixed}. Evidence in the suite: {dev.test}.",
                *(f"  - Measured in this run, case {m.case.key} ({m.case.backend}): "
                  + ("match." if m.comparison.ok else _measured(m.comparison) + ".")
                  + (f" tcpdump on node1/eth0 saw: {'; '.join(m.tcpdump)}." if m.tcpdump else "")
                  for m in mtu if m.case.was == dev.key)]
    out += ["", "Not in the lab, so neither confirmed nor contradicted by it:", "",
            *(f"- {item}." for item in NOT_IN_THE_LAB), "",
            "Where netsim departs from the versions it models (the lab runs netsim's own state, so it cannot show "
            "these; each was found by reading the source):", "",
            *(f"- {item}." for item in DEPARTURES), ""]
    return out


# netsim against the source of the programs whose state it writes (the chapters that show the
# state say so too)
DEPARTURES = (
    "kube-proxy's nftables mode: netsim writes the v1.29-v1.35 layout, whose endpoint and external chains "
    "`jump mark-for-masquerade`; since v1.36 (kubernetes#135800) the mark is set inline in those chains and the "
    "chain is gone. The packets and the mark are the same (chapter 17)",
    "ingress-nginx's default backend: for a Host no rule names, nginx proxies to its own server on 127.0.0.1:8181 "
    "(DefaultEndpoint), a loopback connection inside the controller pod; netsim answers the 404 at once, so that "
    "connection is missing from chapter 18's trace (nothing of it leaves the pod)",
)


def cni_family() -> tuple[str, list[str]]:
    """Three pods on node1 made by Debian's CNI plugins against netsim's (tests/test_lab_cni.py)."""
    reason = plugins_reason()
    if reason:
        return f"Real CNI plugins: not run ({reason}).", []
    cluster = reference_cluster()
    cluster.add_pod("pod-d", node="node1", host_ports=[{"container_port": 8080, "host_port": 8081}])
    real = real_cni_node(cluster, "node1", f"nsl-{os.getpid()}-cni-")
    diff = compare_cni(cluster, "node1", real)
    ports = compare_portmap(cluster, "node1", real)
    return (f"Real CNI plugins: containernetworking-plugins {real.version} (`bridge` with `host-local`, `loopback`, "
            f"flannel's delegate configuration) made node1 with {len(real.pods)} pods; addresses, routes, cni0, "
            f"host veths, hairpin, promiscuity and sysctls compared with netsim's: "
            + ("the same (cni0's MAC and the veth names by pattern)." if not diff else f"{len(diff)} differ.")
            + " `portmap`, second in flannel's conflist, forwarded pod-d's hostPort 8081: its nat rules "
            f"(`iptables-save -t nat`, chain names included) and cni0's route_localnet against netsim's: "
            + ("the same." if not ports else f"{len(ports)} differ.")
            + " The hostPort exchanges (from outside, from another node's pod, hairpin, localhost) are compared "
              "frame by frame and rule by rule with the kernel's trace in tests/test_lab_portmap.py."), diff + ports


# The lab families whose cases live in their test files: run by pytest here, counted per file.
PYTEST_FAMILIES: dict[str, str] = {
    "tests/test_lab_sockets.py": "the tools on the kernel: iputils ping (sizes and DF on both sides of each MTU, "
                                 "ENOBUFS, special destinations), traceroute in three modes from a pod and to a "
                                 "NodePort, curl's 6,000- and 100,000-byte transfers segment by segment, the MSS "
                                 "drop and the route exception after a frag-needed",
    "tests/test_lab_route_localnet.py": "route_localnet on and off: a pod's datagram for 127.0.0.1 (a martian "
                                        "destination, or node1's port unreachable from 127.0.0.1 that the pod drops as a "
                                        "martian source) and node1's own connection to a hostPort on 127.0.0.1",
    "tests/test_lab_route_localnet_arp.py": "a pod's echo for 127.0.0.1 dropped at cni0, and with route_localnet on, "
                                            "node1's ARP 'tell 127.0.0.1' probed three times and never answered",
    "tests/test_lab_nc_udp.py": "netcat-openbsd's `nc -u` to a closed and an open UDP port on the same node, with -v's "
                                "udptest probes: output, exit status and pod-a's datagrams",
    "tests/test_lab_dns.py": "the real dig through kube-dns's ClusterIP over UDP and TCP, same node and other node, "
                             "both proxy modes, every frame at every capture point; glibc's query sequence; chapter 13's "
                             "getaddrinfo lookups, A and AAAA back to back",
    "tests/test_lab_kube_dns.py": "kube-dns's three ports from coredns's node and the other, both proxy modes, "
                                  "rule by rule",
    "tests/test_lab_hairpin.py": "a pod calling its own Service: hairpin on/off x br_netfilter on/off x both "
                                 "proxy modes, rule by rule",
    "tests/test_lab_loadbalancer.py": "LoadBalancer Services: MetalLB's ARP answer, policy Cluster and Local, "
                                      "source ranges, the health-check node port, both proxy modes",
    "tests/test_lab_ingress.py": "the Ingress path: curl from ext, the proxy's two TCP connections at every "
                                 "capture point; real nginx's request headers",
    "tests/test_lab_edge.py": "chapter 18's exchanges and tool runs (LoadBalancer, kube-proxy's health check, "
                              "NetworkPolicy, headless dig, Ingress curl)",
    "tests/test_lab_cluster_networkpolicy.py": "NetworkPolicy with kube-network-policies' table: allowed and "
                                               "denied SYNs, rule by rule, both proxy modes",
    "tests/test_lab_cluster_nftables.py": "kube-proxy's nftables mode: the Service paths rule by rule",
    "tests/test_lab_portmap.py": "hostPorts through the real portmap plugin: its rules, and ext, another node's "
                                 "pod, a hairpin and localhost to the hostPort, rule by rule",
    "tests/test_lab_inject.py": "frames crafted with scapy, sent through a packet socket",
    "tests/test_lab_goto_policy.py": "a chain reached by goto from a built-in chain ends in its policy",
    "tests/test_lab_capture_points.py": "every model hop against the kernel's frame on the same device and "
                                        "direction",
    "tests/test_lab_chapters_15_17.py": "the tool runs of chapters 15 to 17 with the real tools",
}


def pytest_families() -> list[tuple[str, str, int, int, int]]:
    """(test file, what it compares, tests passed, tests not passed) for PYTEST_FAMILIES' files
    that exist, from one pytest run (its JUnit XML)."""
    import tempfile
    import xml.etree.ElementTree as ET
    files = [f for f in PYTEST_FAMILIES if (ROOT / f).is_file()]
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "lab.xml"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:nbval", "-p", "no:cacheprovider",
                               f"--junitxml={xml}", *files], cwd=ROOT, capture_output=True, text=True)
        if not xml.is_file() or done.returncode in (2, 3, 4, 5):     # interrupted, internal, usage, none collected
            raise RuntimeError(f"the lab families' pytest run ended with {done.returncode}:\n{done.stdout[-3000:]}")
        cases = ET.parse(xml).getroot().iter("testcase")
        counts = {f: [0, 0, 0] for f in files}            # passed, not passed, known deviations
        for case in cases:
            name = case.get("classname", "").replace(".", "/") + ".py"
            if name not in counts:
                continue
            # a strict xfail pins a known deviation (JUnit: <skipped type="pytest.xfail">); it is
            # counted apart, and fails the run (as a failure) the day model and kernel agree
            if any(c.tag == "skipped" and c.get("type") == "pytest.xfail" for c in case):
                counts[name][2] += 1
                continue
            bad = [child for child in case if child.tag in ("failure", "error", "skipped")]
            counts[name][1 if bad else 0] += 1
            for child in bad:           # which test, and why: a lab flake is worth its evidence
                print(f"{name}::{case.get('name')}: {child.tag}: {child.get('message', '')}\n"
                      f"{(child.text or '')[-3000:]}", file=sys.stderr)
    return [(f, PYTEST_FAMILIES[f], ok, bad, known) for f, (ok, bad, known) in counts.items()]


def pytest_section(rows: list[tuple[str, str, int, int, int]]) -> list[str]:
    out = ["## More lab families", "",
           "These families keep their cases in their test files (frames, rule evaluations and outputs compared as "
           "above, by the test's own rules); this report runs them and counts their tests. A known deviation is a "
           "strict xfail that pins a difference listed below under Known deviations.", ""]
    # a list, not a table: a test file's path is one unbreakable word, and on a phone a table
    # column of them pushed what is compared off the screen
    for f, text, ok, bad, known in rows:
        extra = f", {known} known deviation{'s' if known > 1 else ''}" if known else ""
        out.append(f"- `{f}`, {ok} of {ok + bad} pass{extra}: {text}")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "book" / "appendix" / "conformance.md"))
    parser.add_argument("--quick", action="store_true", help="the reference cluster only, no MTU or state family")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"conformance_report: the lab cannot run here: {reason}", file=sys.stderr)
        return 2
    say = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    shapes = ("reference",) if args.quick else tuple(SHAPES)
    start = time.perf_counter()
    runs = conformance(shapes=shapes, backends=BACKENDS, protos=PROTOS, progress=say)
    mtu: list[MtuResult] = []
    state: dict[str, list] = {}
    cases: dict[str, list[CaseResult]] = {}
    if not args.quick:
        for family, family_cases in FAMILY_CASES.items():
            cases[family] = []
            for case in family_cases:
                cases[family].append(run_case(case, family))
                say(f"{family} {case.key}: {cases[family][-1].comparison.summary()} {cases[family][-1].counters or ''}")
        for case in MTU_CASES:
            mtu.append(run_mtu_case(case))
            say(f"mtu {case.key}: {mtu[-1].comparison.summary()} {mtu[-1].counters or ''}")
        for backend in BACKENDS:
            state[backend] = run_state_views(backend)
            say(f"state {backend}: {sum(r[3] for r in state[backend])} of {len(state[backend])} views equal")
    cni_line, cni_diff = cni_family()
    say(cni_line)
    today = datetime.date.today().isoformat()
    text = report(runs, generated=today, cni=cni_line)
    head, sep, rest = text.partition("## What is compared, and how")
    text = head + "\n".join(families_section(runs, mtu, state, cases)) + "\n" + sep + rest
    pytest_bad: list[tuple[str, str, int, int, int]] = []
    if mtu or state:
        extra = [line for family, results in cases.items() for line in cases_section(family, results)]
        more = pytest_families()
        say(f"pytest families: {sum(r[2] for r in more)} of {sum(r[2] + r[3] for r in more)} pass, "
            f"{sum(r[4] for r in more)} known deviations")
        pytest_bad = [r for r in more if r[3]]
        text = text.rstrip() + "\n\n" + "\n".join(mtu_section(mtu) + extra + pytest_section(more)
                                                   + chapters_section(chapter_traces.coverage())
                                                   + state_section(state) + deviations_section(mtu))
    Path(args.out).write_text(text.rstrip() + "\n")
    differing = [c for r in runs for c in r.comparisons if not c.ok]
    unexpected = [m for m in mtu if m.comparison.ok == bool(m.case.deviation)]
    state_bad = [(b, row) for b, rows in state.items() for row in rows if not row[3]]
    cases_bad = [r for results in cases.values() for r in results if not r.ok]
    print(f"wrote {args.out}: {sum(len(r.comparisons) for r in runs)} scenario exchanges ({len(differing)} differ), "
          f"{len(mtu)} MTU cases ({len(unexpected)} unexpected), "
          f"{sum(len(rows) for rows in state.values())} state views ({len(state_bad)} differ), "
          f"{time.perf_counter() - start:.1f} s")
    for c in differing:
        print(c, file=sys.stderr)
    for m in unexpected:
        print(("a recorded deviation no longer shows: " if m.case.deviation else "") + str(m.comparison),
              file=sys.stderr)
    for b, row in state_bad:
        print(f"state view differs: {b} {row[0]} {row[1]}", file=sys.stderr)
    for line in cni_diff:
        print(f"CNI pod differs: {line}", file=sys.stderr)
    for r in cases_bad:
        print(r.comparison, *r.counters, sep="\n", file=sys.stderr)
    for f, _text, ok, bad, _known in pytest_bad:
        print(f"{f}: {bad} of {ok + bad} tests did not pass", file=sys.stderr)
    return 1 if differing or unexpected or state_bad or cni_diff or cases_bad or pytest_bad else 0


if __name__ == "__main__":
    sys.exit(main())
