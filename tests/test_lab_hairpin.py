"""A pod calling its own Service on the kernel, with hairpin on and off on its cni0 port and
br_netfilter (net.bridge.bridge-nf-call-iptables) on and off on its node, in both kube-proxy
modes: every frame, the ARPs included, and every rule evaluation compared with netsim's
(tests/hairpin_topology.py; the model's verdicts are pinned in tests/test_hairpin.py). Needs
root on Linux, like tests/test_lab.py; skipped with the reason otherwise."""

from __future__ import annotations

import pytest

from netsim.lab import Lab, compare
from netsim.lab import state
from tests import labkit
from tests.hairpin_topology import ECHO_IP, HAIRPIN_CASES, POD_C_PORT, PORTS, hairpin_cluster, hairpin_key

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab
DROP_TIMEOUT = 0.9      # a silent drop: waited for less than TCP's first SYN retransmission (1 s)

# (proxy mode, br_netfilter, hairpin, what pod-c sees over tcp, over udp): netsim.lab.exchanges
CASES = HAIRPIN_CASES


@pytest.fixture(scope="module", params=CASES, ids=[hairpin_key(*c[:3]) for c in CASES])
def case(request):
    if GATE.reason:
        pytest.skip(GATE.reason)
    mode, brnf, hairpin, tcp_seen, udp_seen = request.param
    with Lab(hairpin_cluster(mode, brnf, hairpin), trace_rules=True) as lab:
        yield lab, {"tcp": tcp_seen, "udp": udp_seen}, hairpin


@needs_lab
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_pod_calling_its_own_service_matches_the_kernel(case, proto):
    lab, seen, hairpin = case
    model = lab.cluster.send("pod-c", ECHO_IP, proto=proto, dport=PORTS[proto])
    timeout = 3.0 if seen[proto] != "no answer reached the sender" else DROP_TIMEOUT
    observed = lab.exchange("pod-c", ECHO_IP, proto, PORTS[proto], timeout=timeout)
    result = compare(model, observed, cluster=lab.cluster, title=f"pod-c -> echo {proto} ({lab.cluster.proxy_mode})")
    assert result.ok, "\n" + str(result)
    assert observed.outcome == seen[proto]
    assert result.compared["rule evaluations"] > 0


@needs_lab
def test_the_port_flags_are_the_kernels(case):
    lab, _, hairpin = case
    for host in ("node1", "node2", "underlay"):
        assert state.differences(lab, lab.cluster, host, "bridge -d link") == []
    line = lab.cluster.show("node2", f"bridge -d link show dev {POD_C_PORT}").splitlines()[1]
    assert line.startswith(f"    hairpin {'on' if hairpin else 'off'} ")
