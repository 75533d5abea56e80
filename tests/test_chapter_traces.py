"""No chapter shows a trace without a lab comparison of the same exchange.

A chapter's traces are the exchanges its code cells walk (tools/chapter_traces.py runs each
chapter's cells with `Network.send` recorded); the lab's comparisons are every exchange a lab
family compares with the kernel (the scenario family, the MTU cases, the troubleshooting
cases, the chapters' other exchanges). Two are the same exchange when the lab's own comparison
finds no difference between them. A chapter trace with no lab comparison is allowed only for a
reason in NOT_IN_THE_LAB, which the conformance appendix prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import netsim
from netsim.lab import breakages, chapters
from tools import chapter_traces as ct
from tools.toc import REPO


@pytest.fixture(scope="module")
def rows():
    return ct.coverage()


def test_every_chapter_trace_has_a_lab_comparison_or_a_stated_reason(rows):
    missing = [item.label for item, found, reason in rows if found is None and reason is None]
    assert not missing, "chapter traces no lab family compares with the kernel:\n" + "\n".join(missing)


def test_the_traces_are_found_in_every_chapter_that_walks_one(rows):
    walked = {item.chapter for item, _, _ in rows}
    assert {"01-toolbox", "05-vxlan-across-nodes", "06-backends", "10-troubleshooting"} <= walked
    assert len(rows) >= 40


def test_every_reason_for_an_unchecked_trace_is_printed_in_the_conformance_appendix(rows):
    appendix = (REPO / "book" / "appendix" / "conformance.md").read_text()
    for _, found, reason in rows:
        if found is None:
            assert reason in ct.NOT_IN_THE_LAB and ct.NOT_IN_THE_LAB[reason] in appendix


def test_every_lab_case_the_chapters_rely_on_is_run_by_a_lab_test():
    lab_tests = (REPO / "tests" / "test_lab_breakages.py").read_text() + (REPO / "tests" / "test_lab_chapters.py").read_text()
    assert "breakages.CASES" in lab_tests or "from netsim.lab.breakages import BY_KEY, CASES" in lab_tests
    assert "chapters.CASES" in lab_tests
    assert {c.key for c in chapters.CASES}.isdisjoint({c.key for c in breakages.CASES})


def _chapter(tmp_path: Path, code: str) -> Path:
    path = tmp_path / "99-probe.md"
    path.write_text(f"# Probe\n\n```{{code-cell}} ipython3\nimport netsim\n```\n\n```{{code-cell}} ipython3\n"
                    f":tags: [hide-output]\n\n{code}\n```\n")
    return path


def test_a_chapter_trace_of_an_exchange_no_lab_runs_is_found_missing(tmp_path):
    path = _chapter(tmp_path, 'netsim.reference_cluster().send("pod-b", "ext", proto="udp")')
    [(item, found, reason)] = ct.coverage([path])
    assert (item.chapter, item.cell, item.trace.title) == ("99-probe", 1, "pod-b -> ext (udp/9090)")
    assert found is None and reason is None


def test_the_same_exchange_on_a_cluster_used_before_is_still_the_same(tmp_path):
    """Client ports and IP IDs move on from send to send; the lab's comparison takes them by rule."""
    path = _chapter(tmp_path, 'c = netsim.reference_cluster()\nc.send("pod-a", "pod-c", proto="tcp")\n'
                              'c.send("pod-a", "pod-c", proto="tcp")')
    found = [f.key for _, f, _ in ct.coverage([path])]
    assert found == ["reference vxlan s4 tcp", "reference vxlan s4 tcp"]


def test_a_fault_changes_the_exchange(tmp_path):
    """The same send on a broken cluster is another exchange: break_fdb on node2 kills the reply."""
    healthy, broken = (ct.match(ct.ChapterTrace("x", 0, t, "vxlan"), ct.lab_exchanges())
                       for t in (netsim.reference_cluster().send("pod-a", "pod-c", proto="tcp"),
                                 breakages.BY_KEY["fdb-back"].send(breakages.BY_KEY["fdb-back"].build())))
    assert healthy is not None and healthy.key == "reference vxlan s4 tcp"
    assert broken is not None and (broken.family, broken.key) == ("troubleshooting", "fdb-back")


def test_the_udp_backend_is_the_only_reason_given():
    assert list(ct.NOT_IN_THE_LAB) == ["udp backend"]
    udp = netsim.reference_cluster("udp")
    assert ct.exempt(ct.ChapterTrace("x", 0, udp.send("pod-a", "pod-c"), "udp")) == "udp backend"
    assert ct.exempt(ct.ChapterTrace("x", 0, netsim.reference_cluster().send("pod-a", "pod-c"), "vxlan")) is None
