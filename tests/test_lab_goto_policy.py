"""A chain reached by goto from a built-in chain ends in the built-in chain's policy, on the
kernel as in netsim (ipt_do_table: with nothing on the stack, the end of a chain is the hook's
underflow entry). node1's FORWARD gets policy DROP and a first rule `-d 203.0.113.10 -g GOTEST`
whose chain accepts only UDP: pod-a's TCP SYN to ext dies at FORWARD's policy, its UDP passes.
Every frame and rule evaluation compared (tests/test_netfilter.py pins the model's verdicts).
Needs root on Linux, like tests/test_lab.py; skipped with the reason otherwise."""

from __future__ import annotations

import pytest

import netsim
from netsim.lab import Lab, compare
from tests import labkit

GATE = labkit.gate(__file__)
pytestmark = [pytest.mark.lab, GATE.needs_lab]
DROP_TIMEOUT = 0.9      # a silent drop: waited for less than TCP's first SYN retransmission (1 s)


def goto_cluster() -> netsim.Cluster:
    cluster = netsim.reference_cluster()
    nf = cluster.netns("node1").netfilter
    nf.new_chain("filter", "GOTEST")
    nf.append("filter", "GOTEST", "-p udp -j ACCEPT")
    nf.insert("filter", "FORWARD", "-d 203.0.113.10/32 -g GOTEST", 1)
    nf.set_policy("filter", "FORWARD", "DROP")
    return cluster


@pytest.fixture(scope="module")
def lab():
    with Lab(goto_cluster(), trace_rules=True) as built:
        yield built


@pytest.mark.parametrize("proto, port, outcome", [("tcp", 80, "no answer reached the sender"),
                                                   ("udp", 9090, "udp reply from 203.0.113.10:9090")])
def test_the_end_of_a_goto_chain_is_the_built_in_policy_on_the_kernel(lab, proto, port, outcome):
    model = lab.cluster.send("pod-a", "ext", proto=proto, dport=port)
    observed = lab.exchange("pod-a", "ext", proto, port, timeout=DROP_TIMEOUT if proto == "tcp" else 3.0)
    result = compare(model, observed, cluster=lab.cluster, title=f"pod-a -> ext {proto} through -g GOTEST")
    assert result.ok, "\n" + str(result)
    assert observed.outcome == outcome
    forward = [d for h in model.hops for d in h.decisions
               if d.function == "ipt_do_table" and d.consulted and d.consulted[0].chain in ("FORWARD", "GOTEST")]
    if proto == "tcp":
        assert (forward[-1].reason.value, forward[-1].verdict.value) == ("policy", "drop")
    assert result.compared["rule evaluations"] > 0
