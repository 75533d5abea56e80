"""The tool runs chapters 15 ("When packets die") and 16 ("MTU") show, on the real kernel.

Each case of netsim.lab.exchanges.CHAPTER_TOOL_CASES is one cluster driven as the chapter drives
it; here the same cluster is built in the lab and every command of the case is run with the real
tool (iputils ping, OpenBSD nc, curl, traceroute 2.1), in the same order, with the arguments the
model's run prints (a name it resolved replaced by its address). Compared for each: what it
prints (but the times it measures), its exit status, and the ICMP errors and TCP resets reaching
the sender (type, code, who sent them), some also against the values the chapter states. The
chapters' `Cluster.send` exchanges are troubleshooting cases (tests/test_lab_breakages.py) and
the other tool runs tests/test_lab_sockets.py's. Root on Linux only.
"""

from __future__ import annotations

import shutil

import pytest

from netsim.lab import Lab
from netsim.lab.exchanges import CHAPTER_TOOL_CASES
from netsim.lab.tools import run_tool
from netsim.packet import ICMP, TCP
from test_lab import needs_lab
from test_lab_sockets import fragments_at, without_times

MISSING = [t for t in ("ping", "traceroute", "curl", "nc") if shutil.which(t) is None]
pytestmark = [needs_lab, pytest.mark.skipif(bool(MISSING), reason=f"missing {MISSING} (Debian packages "
                                                                  f"iputils-ping, traceroute, curl, netcat-openbsd)")]


def answers_at(trace, netns: str) -> list[tuple]:
    """The ICMP errors (destination unreachable, time exceeded) and TCP resets arriving at
    `netns`'s eth0: ("icmp", type, code, source) or ("rst", source), sorted, without repeats."""
    out = set()
    for h in trace.hops:
        if h.where != f"{netns}/eth0" or h.direction != "rx" or h.ip is None:
            continue
        p = h.ip.payload
        if isinstance(p, ICMP) and p.type in (3, 11):
            out.add(("icmp", p.type, p.code, h.ip.src))
        elif isinstance(p, TCP) and "R" in p.flags:
            out.add(("rst", 0, 0, h.ip.src))
    return sorted(out)


# What the chapters say arrives, per (case, run number): checked on both sides.
STATED = {
    ("ch15 healthy", 1): [("rst", 0, 0, "10.244.1.2")],                 # nc to a closed port
    ("ch15 healthy", 2): [("icmp", 3, 0, "203.0.113.1")],               # the gateway: net unreachable
    ("ch15 healthy", 3): [],                                            # ENETUNREACH at connect
    ("ch15 healthy", 11): [("rst", 0, 0, "10.244.1.2")],                # curl to a closed port
    ("ch15 no-endpoints", 1): [("icmp", 3, 3, "10.244.0.1")],           # kube-proxy's REJECT
    ("ch15 no-endpoints", 2): [("icmp", 3, 3, "10.244.0.1")],
    ("ch15 neighbour", 1): [("icmp", 3, 1, "10.244.0.1")],              # host unreachable after ARP
    ("ch15 route", 1): [("icmp", 11, 0, "10.244.0.1")],                 # only node1 answers
}


def real_argv(run) -> list[str]:
    """The command the model's run prints, with a name it resolved replaced by the address."""
    argv = list(run.argv)
    if run.resolution is not None and run.resolution.name != run.resolution.address:
        argv = [run.resolution.address if a == run.resolution.name else a for a in argv]
    return argv


def given_the_address(run, text: str) -> str:
    """What the tool prints when given the address real_argv puts in place of a name: nc
    prints a name it was given with the address after it, "pod-c (10.244.1.2)", and an
    address alone (tests/test_lab_nc_udp.py compares that form with the real nc)."""
    res = run.resolution
    if res is None or res.name == res.address:
        return text
    return text.replace(f"{res.name} ({res.address})", res.address)


@pytest.mark.parametrize("case", CHAPTER_TOOL_CASES, ids=[c.key for c in CHAPTER_TOOL_CASES])
def test_the_chapters_tool_runs_print_and_answer_as_the_real_tools(case):
    cluster = case.build()
    with Lab(cluster) as lab:
        runs = case.run(cluster)
        for n, run in enumerate(runs, 1):
            stdin = run.program.data.decode("latin-1") if run.tool == "nc" else None  # type: ignore[union-attr]
            kernel = run_tool(lab, run.host, real_argv(run), stdin=stdin, timeout=90)
            label = f"{case.key} run {n}: {run.command}"
            assert kernel.returncode == run.status, label
            assert without_times(kernel.stdout) == without_times(run.stdout), label
            assert kernel.stderr == given_the_address(run, run.stderr), label
            src = cluster.resolve(run.host, source=True).netns
            assert answers_at(kernel.trace, src) == answers_at(run.trace, src), label
            if (case.key, n) in STATED:
                assert answers_at(run.trace, src) == STATED[case.key, n], label
            if case.key == "ch16 ping 2000":
                assert fragments_at(kernel.trace, "pod-a/eth0", "tx") == fragments_at(run.trace, "pod-a/eth0", "tx") \
                    == [(1444, False, True, 0), (604, False, False, 1424)]


def test_the_labs_traceroute_waits_its_whole_maximum_unless_told():
    """run_tool gives a traceroute with no -w `-w 5` alone (netsim.lab.tools: its adaptive wait
    printed "*" for answers that arrived late on a loaded machine); a -w given stays."""
    from netsim.lab.tools import _steady
    assert _steady(["traceroute", "-T", "-n", "10.244.1.2"]) == ["traceroute", "-w", "5", "-T", "-n", "10.244.1.2"]
    assert _steady(["traceroute", "-n", "-w", "1", "10.244.1.2"]) == ["traceroute", "-n", "-w", "1", "10.244.1.2"]
    assert _steady(["traceroute", "--wait=2", "10.244.1.2"]) == ["traceroute", "--wait=2", "10.244.1.2"]
    assert _steady(["ping", "-c", "1", "10.244.1.2"]) == ["ping", "-c", "1", "10.244.1.2"]
