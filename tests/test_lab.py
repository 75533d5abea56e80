"""Conformance with the real kernel (netsim.lab): every scenario, built for real and compared.

The lab tests need root on Linux (CI runs `make test` as root). Elsewhere they are skipped,
with the reason in the skip message and a warning, never passed silently. The comparison's
own rules are tested first, without root, on synthetic traces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

import netsim
from netsim import reference_cluster
from netsim.lab import (
    BACKENDS, PROTOS, SCENARIOS, SHAPES, Lab, LabError, LabUnavailable, checksum_faults, compare, report,
    run_scenario, unavailable_reason,
)
from netsim.lab import plan
from netsim.lab.conformance import Run
from netsim.packet import TCP
from netsim import ip_forward
from netsim.walk import Walk
from netsim.netfilter import ip_tables
from netsim.netfilter.targets import MarkTarget
from tests import labkit

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab          # test_lab_breakages and others import it from here

TIMINGS: dict[str, float] = {}


# the comparison's rules, on synthetic traces (no root needed) --------------------------------

def test_a_trace_compared_with_itself_matches():
    trace = netsim.scenarios.pod_to_pod_cross_node()
    result = compare(trace, trace)
    assert result.ok, str(result)
    assert result.hops_compared == len(trace.request) + len(trace.reply)


def test_a_changed_ttl_is_reported_with_hop_device_and_both_values():
    model = netsim.scenarios.pod_to_pod_cross_node()
    hop = model.where("node2/cni0", "tx", "request")[0]
    kernel_hops = list(model.hops)
    kernel_hops[hop.index] = replace(hop, frame=replace(hop.frame, payload=replace(hop.frame.payload, ttl=61)))
    result = compare(model, netsim.Trace(tuple(kernel_hops), outcome=model.outcome))
    assert [str(d) for d in result.differences] == [f"hop {hop.index} node2/cni0 tx: ip ttl model 62 kernel 61"]


def test_random_fields_are_compared_by_rule_not_value():
    model = netsim.scenarios.pod_to_pod_cross_node()

    def shift(h):
        ip = h.inner_ip
        seg = ip.payload
        moved = replace(ip, id=(ip.id + 7) & 0xFFFF if ip.id else 0, payload=replace(seg, seq=seg.seq + 1000, sport=seg.sport + 3)
                        if seg.flags == "S" else replace(seg, seq=seg.seq + 1000, dport=seg.dport + 3))
        if h.encapsulated:
            outer = h.ip
            udp = outer.payload
            vx = udp.payload
            inner_eth = replace(vx.payload, payload=moved)
            frame = replace(h.frame, payload=replace(outer, id=outer.id ^ 0x55, payload=replace(
                udp, sport=udp.sport + 1, payload=replace(vx, payload=inner_eth))))
        else:
            frame = replace(h.frame, payload=moved)
        return replace(h, frame=frame)

    kernel = netsim.Trace(tuple(shift(h) if h.role in ("request", "reply") else h for h in model.hops),
                          outcome=model.outcome)
    result = compare(model, kernel)
    assert result.ok, str(result)


def test_a_port_kept_where_the_model_translates_it_is_a_difference():
    model = netsim.scenarios.pod_to_external()
    first = model.request[0].ip.payload.sport
    kernel = netsim.Trace(tuple(
        replace(h, frame=replace(h.frame, payload=replace(h.ip, payload=replace(
            h.ip.payload, **({"sport": first} if h.role == "request" else {"dport": first})))))
        if h.role in ("request", "reply") else h for h in model.hops), outcome=model.outcome)
    result = compare(model, kernel)
    assert any(d.field == "client port" and "same as hop" in str(d.kernel) for d in result.differences), str(result)


def test_a_missing_hop_is_shown_as_a_path_diff():
    model = netsim.scenarios.host_to_pod()
    kernel = netsim.Trace(tuple(h for h in model.hops if not (h.role == "request" and h.device == "cni0")),
                          outcome=model.outcome)
    result = compare(model, kernel)
    path = [d for d in result.differences if d.where == "request path"]
    assert path and "-node1/cni0 tx" in str(path[0])


def test_checksum_faults_finds_a_corrupted_tcp_checksum_inside_vxlan():
    hop = next(h for h in netsim.scenarios.pod_to_pod_cross_node().request if h.encapsulated)
    raw = bytearray(hop.data)
    assert checksum_faults(bytes(raw)) == []
    raw[-3] ^= 0xFF                              # a byte of the inner TCP options
    faults = checksum_faults(bytes(raw))
    assert len(faults) == 2 and faults[1].startswith("inner tcp checksum")   # and the outer UDP one
    assert checksum_faults(bytes(raw), complete=False) == []


def test_without_root_the_lab_says_why(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in unavailable_reason()


def test_the_udp_backend_is_refused_with_the_reason():
    with pytest.raises(LabUnavailable, match="no kernel counterpart without flanneld"):
        Lab(netsim.Cluster(backend="udp"))


def test_report_lists_rules_kernel_and_results():
    model = netsim.scenarios.pod_to_pod_same_node()
    result = compare(model, model, title="vxlan s2 pod to pod, same node (tcp)")
    text = report([Run("reference", "vxlan", [result], build=0.2, teardown=0.03, kernel="6.18.0-test")])
    assert "Linux 6.18.0-test" in text and "| s2 pod to pod, same node | tcp |" in text and "| ip id |" in text


# the lab itself --------------------------------------------------------------------------------

class Labs:
    """One lab at a time: the cases are grouped by shape and backend, so each is built once."""

    def __init__(self):
        self.key = None
        self.lab: Lab | None = None

    def get(self, shape: str, backend: str) -> Lab:
        if self.key != (shape, backend):
            self.close()
            self.lab = Lab(SHAPES[shape][1](backend), trace_rules=True).__enter__()
            self.key = (shape, backend)
            TIMINGS[f"build {shape}/{backend}"] = self.lab.timings["build"]
        return self.lab

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()
            assert self.lab.leftovers() == []
            self.lab = None
            self.key = None


@pytest.fixture(scope="module")
def labs(request):
    holder = Labs()
    start = time.perf_counter()
    yield holder
    holder.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TIMINGS:
        scen = [v for k, v in TIMINGS.items() if not k.startswith("build")]
        builds = sum(v for k, v in TIMINGS.items() if k.startswith("build"))
        line = (f"\nlab: {len(scen)} exchanges, {sum(scen):.1f} s (mean {sum(scen) / max(len(scen), 1):.2f} s, "
                f"max {max(scen, default=0):.2f} s); builds {builds:.2f} s; module {time.perf_counter() - start:.1f} s")
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


CASES = [(shape, backend, key, proto) for shape in SHAPES for backend in BACKENDS for key in SCENARIOS
         for proto in PROTOS]


def _id(case) -> str:
    shape, backend, key, proto = case
    return f"{shape}-{backend}-{'s' + str(key) if isinstance(key, int) else key}-{proto}"


@needs_lab
@pytest.mark.parametrize("shape,backend,scenario,proto", CASES, ids=[_id(c) for c in CASES])
def test_model_matches_kernel(labs, shape, backend, scenario, proto):
    result = run_scenario(labs.get(shape, backend), scenario, proto)
    TIMINGS[_id((shape, backend, scenario, proto))] = result.seconds
    assert result.ok, "\n" + str(result)
    assert result.hops_compared > 0
    if scenario != 1:       # every other exchange crosses a node's rules: the kernel traced them
        assert result.compared["rule evaluations"] > 0 and result.compared["netfilter nat"] > 0


@needs_lab
def test_tcp_window_scale_matches_kernel(labs):
    """The SYN's window scale follows tcp_rmem[2] (32 MiB on 6.16+ kernels: scale 10)."""
    result = run_scenario(labs.get("reference", "vxlan"), 4, "tcp", known={})
    assert result.ok, "\n" + str(result)


@needs_lab
def test_a_wrong_model_fails_with_a_clear_diff(labs, monkeypatch):
    """A model whose node2 forgets to decrement the TTL when forwarding."""
    original = ip_forward.ip_forward

    def forward_without_ttl_on_node2(kernel, ns, in_dev, ip, rr, flow):
        if ns.name == "node2":
            ip = replace(ip, ttl=ip.ttl + 1)
        return original(kernel, ns, in_dev, ip, rr, flow)

    monkeypatch.setattr(Walk, "ip_forward", forward_without_ttl_on_node2)     # the kernel's dst_input
    result = run_scenario(labs.get("reference", "vxlan"), 4, "tcp")
    assert not result.ok
    lines = [str(d) for d in result.differences]
    assert any("node2/cni0 tx: ip ttl model 63 kernel 62" in line for line in lines), "\n".join(lines)
    assert any("node1/cni0 tx: ip ttl model 63 kernel 62" in line for line in lines), "\n".join(lines)  # the reply
    assert "ip ttl model 63 kernel 62" in str(result)


def forget_rule_records(lab: Lab) -> None:
    """Forget the rule records the model shares (ip_tables' caches) and the table walks each
    namespace remembers (Netfilter.changed), so that a test patching how a rule decides sees
    its patch used, and the next test does not meet the patched records."""
    ip_tables._rule_decision.cache_clear()
    ip_tables._DECIDED.clear()
    for ns in lab.cluster.network.namespaces.values():
        ns.netfilter.changed()


@needs_lab
def test_a_wrong_rule_number_in_the_model_is_found_in_the_kernels_trace(labs, monkeypatch):
    """A model that names the KUBE-FORWARD rule after the one that accepted the packet: the
    kernel's trace (xtables-monitor) names the rule by its handle, and the lab's numbering of
    it disagrees with the model's record."""
    original = ip_tables._rule_ref.__wrapped__       # every rule's record is made here, then shared

    def off_by_one(table, hook, chain, path, rule, position):
        ref = original(table, hook, chain, path, rule, position)
        return replace(ref, rule=ref.rule + 1) if chain == "KUBE-FORWARD" else ref

    lab = labs.get("reference", "vxlan")
    forget_rule_records(lab)
    monkeypatch.setattr(ip_tables, "_rule_ref", off_by_one)
    try:
        result = run_scenario(lab, 5, "tcp")
    finally:
        forget_rule_records(lab)         # the records made with the wrong numbers go too
    rules = [str(d) for d in result.differences if d.field == "netfilter rules"]
    assert rules, str(result)
    assert "-filter FORWARD KUBE-FORWARD rule 3 ACCEPT" in rules[0]
    assert "+filter FORWARD KUBE-FORWARD rule 2 ACCEPT" in rules[0]


@needs_lab
def test_a_wrong_mark_in_the_model_is_found_in_the_kernels_trace(labs, monkeypatch):
    """A model whose MARK sets 0x8000 where kube-proxy's KUBE-MARK-MASQ sets 0x4000: the mark the
    kernel's FORWARD hook sees is not the model's."""
    original = MarkTarget.apply
    lab = labs.get("reference", "vxlan")
    forget_rule_records(lab)             # walks remembered from earlier cases would not call apply
    monkeypatch.setattr(MarkTarget, "apply", lambda self, mark: original(self, mark) << 1)
    try:
        result = run_scenario(lab, 5, "tcp")
    finally:
        forget_rule_records(lab)
    marks = [d for d in result.differences if d.field == "netfilter mark"]
    assert marks and marks[0].model.startswith("0x8000") and marks[0].kernel == "0x4000", str(result)


def _root_links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout


def _lab_namespaces(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


@needs_lab
def test_nothing_is_left_behind_when_a_test_fails_midway():
    before = _root_links()
    lab = Lab(reference_cluster())
    with pytest.raises(RuntimeError, match="failing midway"):
        with lab:
            assert len(_lab_namespaces(lab.prefix)) == len(lab.cluster.network.namespaces)
            assert lab.exchange("pod-a", "pod-c", "tcp").outcome.startswith("connected")
            raise RuntimeError("failing midway")
    assert _lab_namespaces(lab.prefix) == []
    assert _root_links() == before          # the host namespace's interfaces were never touched


@needs_lab
def test_nothing_is_left_behind_when_the_build_fails(monkeypatch):
    cluster = reference_cluster()
    monkeypatch.setattr(cluster.netns("node2").netfilter, "save", lambda table=None: "*nat\n-A NOSUCHCHAIN -j X\nCOMMIT\n")
    lab = Lab(cluster)
    with pytest.raises(LabError, match="iptables-restore in .* failed"):
        with lab:
            pass
    assert _lab_namespaces(lab.prefix) == []


@needs_lab
def test_nothing_is_left_behind_when_an_ip_command_fails(monkeypatch):
    """A route the kernel refuses (its device does not exist) fails the node's `ip -batch`
    midway through the build; the namespaces made so far are deleted."""
    cluster = reference_cluster()
    original = plan.config_commands

    def with_a_bad_route(ns):
        lines = original(ns)
        return lines + [("route", "add", "10.99.0.0/16", "dev", "nosuchdev")] if ns.name == "node2" else lines

    monkeypatch.setattr(plan, "config_commands", with_a_bad_route)
    lab = Lab(cluster)
    with pytest.raises(LabError, match="-batch -` failed"):
        with lab:
            pass
    assert _lab_namespaces(lab.prefix) == []


@needs_lab
def test_nothing_is_left_behind_when_the_process_is_terminated():
    code = ("import os, signal, sys, netsim\nfrom netsim.lab import Lab\n"
            "lab = Lab(netsim.reference_cluster()).__enter__()\n"
            "print(lab.prefix, flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    prefix = done.stdout.strip()
    assert prefix.startswith("nsl-"), done.stderr
    assert _lab_namespaces(prefix) == []


@needs_lab
def test_lab_state_is_generated_from_the_model(labs):
    lab = labs.get("reference", "vxlan")
    out = subprocess.run(["ip", "-n", lab.netns("node1"), "-d", "link", "show", "flannel.1"],
                         capture_output=True, text=True).stdout
    dev = lab.cluster.netns("node1").devices["flannel.1"]
    assert dev.mac in out and f"mtu {dev.mtu}" in out and "vxlan id 1 local 192.168.50.11" in out
    assert "dstport 8472 nolearning" in out and "udpcsum" in out
    routes = subprocess.run(["ip", "-n", lab.netns("node1"), "route"], capture_output=True, text=True).stdout
    assert "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink" in routes
    saved = subprocess.run(["ip", "netns", "exec", lab.netns("node1"), "iptables-save"],
                           capture_output=True, text=True).stdout
    assert "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4" in saved and "KUBE-NODEPORTS" in saved
