"""The chapters' exchanges beyond the six scenarios on the running kernel (netsim.lab.chapters):
chapter 1's small networks, a pod calling its own address, a NodePort with
externalTrafficPolicy Local. Each in a lab of its own, frames and drop counters compared with
the model. Root on Linux only; skipped with the reason elsewhere."""

from __future__ import annotations

import pytest

from netsim.counters import CounterKey
from netsim.lab import chapters
from netsim.lab.breakages import run_case
from test_lab import needs_lab

# what Linux 6.18 moved, measured in the lab (the model's records must agree, and do)
KERNEL_COUNTERS = {
    "toolbox-no-forwarding": {CounterKey("router", "nstat", "IpInAddrErrors"): 1},
    "toolbox-drop": {CounterKey("router", "iptables -L -v", "filter FORWARD rule 1 pkts"): 1},
    "local-policy-node1": {CounterKey("node1", "iptables -L -v", "filter KUBE-EXTERNAL-SERVICES rule 1 pkts"): 1},
}


@needs_lab
@pytest.mark.parametrize("key", [c.key for c in chapters.CASES])
def test_the_chapters_exchange_on_the_kernel_is_the_models(key):
    result = run_case(chapters.BY_KEY[key], "chapters")
    assert result.comparison.ok, "\n" + str(result.comparison)
    assert result.counters == []
    assert result.kernel_counters == KERNEL_COUNTERS.get(key, {})
