"""Chapter 18's exchanges on the running kernel (netsim.lab.edge): the LoadBalancer paths and the
NetworkPolicy drop through `breakages.run_case` (frames, rule evaluations and drop counters
compared with the model), and the chapter's curl runs through the Ingress controller frame by
frame at every capture point (netsim.lab.conversation). Each in a lab of its own. Root on Linux
only; skipped with the reason elsewhere."""

from __future__ import annotations

import pytest

from netsim.counters import CounterKey
from netsim.lab import Lab, edge
from netsim.lab.breakages import run_case
from netsim.lab.conversation import differences
from netsim.lab.tools import run_tool
from test_lab import needs_lab
from test_lab_dns import assert_same_walk, without_random

# what Linux 6.18 moved among the counters netsim.lab.counters reads (nstat, iptables -L -v),
# measured in the lab: nothing for these exchanges (the policy's drop is an nftables rule, whose
# evaluation the comparison checks through nft monitor trace)
KERNEL_COUNTERS: dict[str, dict[CounterKey, int]] = {}


@needs_lab
@pytest.mark.parametrize("key", [c.key for c in edge.CASES])
def test_the_chapters_exchange_on_the_kernel_is_the_models(key):
    result = run_case(edge.BY_KEY[key], "edge")
    assert result.comparison.ok, "\n" + str(result.comparison)
    assert result.counters == []
    assert result.kernel_counters == KERNEL_COUNTERS.get(key, {})
    if key == "policy-default-deny":
        assert result.comparison.compared["rule evaluations"] > 0


@needs_lab
@pytest.mark.parametrize("key", [c.key for c in edge.TOOL_RUNS])
def test_the_chapters_tool_runs_are_the_kernels_frame_for_frame(key):
    case = edge.TOOLS_BY_KEY[key]
    cluster = case.build()
    with Lab(cluster) as lab:
        kernel = run_tool(lab, case.src, list(case.argv))
    model = case.model(cluster)
    assert kernel.returncode == model.status == 0
    if case.argv[0] == "curl":
        assert kernel.stdout == model.stdout
        assert differences(model.trace, kernel.trace) == []
        return
    # dig: its query id and cookie are random (tests/test_lab_dns.py's rules)
    assert without_random(kernel.stdout) == without_random(model.stdout)
    assert_same_walk(kernel.trace, model.trace)
    addresses = {"headless-service-name": ["10.244.0.5", "10.244.1.3", "10.244.0.6"],
                 "headless-pod-name": ["10.244.1.3"]}[key]
    assert [line.split()[-1] for line in model.stdout.splitlines() if "\tA\t" in line or line[:1].isdigit()] == addresses
