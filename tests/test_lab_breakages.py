"""The troubleshooting chapter's broken clusters on the running kernel (netsim.lab.breakages).

Each case builds its reference cluster with one fault in a lab of its own, sends the chapter's
exchange with real sockets and compares the kernel's frames with the model's trace hop by hop
(drops by where the kernel last saw the packet), then the drop and error counters the kernel
moved (nstat's MIB counters, `ip -s link`'s dropped, the DROP/REJECT rules' packets) with the
model's records and with what Linux 6.18 was measured to move (tests/test_counters.py).
Root on Linux only; skipped with the reason elsewhere.
"""

from __future__ import annotations

import pytest

from netsim.counters import CounterKey
from netsim.lab.breakages import BY_KEY, CASES, run_case
from test_counters import DROPS, HOST_VETH, KERNEL_COUNTERS
from test_lab import needs_lab


@needs_lab
@pytest.mark.parametrize("key", [c.key for c in CASES])
def test_the_broken_cluster_fails_on_the_kernel_as_in_the_model(key):
    result = run_case(BY_KEY[key])
    assert result.comparison.ok, "\n" + str(result.comparison)
    assert result.counters == [], result.counters
    cluster = BY_KEY[key].build()
    host_veth = cluster.pods["pod-a"].host_veth
    want = {CounterKey(h, t, n.replace(HOST_VETH, host_veth)): v for (h, t, n), v in KERNEL_COUNTERS[key].items()}
    assert result.kernel_counters == want
    # the model's drops, as records, are where the kernel's captures of the packet end
    drops, errno = DROPS[key]
    model = result.comparison.model
    assert [(h.where, h.direction, h.role, h.decisions[-1].function, h.decisions[-1].reason.value)
            for h in model.hops if h.verdict == "dropped" and h.role != "arp"] == drops
    assert model.outcome.errno == errno
