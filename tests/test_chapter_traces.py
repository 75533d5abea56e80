"""No chapter shows a trace without a lab comparison of the same exchange.

A chapter's traces are the exchanges its code cells walk (tools/chapter_traces.py runs each
chapter's cells with `Network.send` and `Network.run` recorded: the tools' walks too); the
lab's comparisons are every exchange a lab family compares with the kernel (the scenario
family, the MTU cases, the troubleshooting cases, the chapters' other exchanges, and the tools',
hairpin, kube-dns and LoadBalancer lab tests' cases, netsim.lab.exchanges). Two are the same exchange when the lab's own comparison
finds no difference between them. A chapter trace with no lab comparison is allowed only for a
reason in NOT_IN_THE_LAB, which the conformance appendix prints.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import netsim
from netsim.lab import breakages, chapters, exchanges
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


def test_chapter_13s_lookups_are_the_dns_lab_cases_and_a_datagram_to_kube_dns_is_kube_dns(tmp_path):
    """getaddrinfo(web) walked in pod-a is the lab's DNS lookup case (tests/test_lab_dns.py runs
    glibc's); one query sent by send() (no resolver) is the kube-dns lab case."""
    path = _chapter(tmp_path, 'from netsim.lab.exchanges import model_lookup\n'
                              'model_lookup(netsim.reference_cluster(), "pod-a", "web")')
    [(item, found, reason)] = ct.coverage([path])
    assert item.trace.title == "getaddrinfo(web) in pod-a"
    assert found is not None and (found.family, found.key) == ("dns-lookup", "pod-a web")
    from netsim.lab.exchanges import kube_dns_payload
    plain = netsim.reference_cluster()
    datagram = ct.ChapterTrace("x", 0, plain.send("pod-c", "10.96.0.10", proto="udp", dport=53,
                                                  payload=kube_dns_payload("udp", 53)), "vxlan")
    found = ct.match(datagram, ct.lab_exchanges())
    assert found is not None and (found.family, found.key) == ("kube-dns", "iptables pod-c udp/53")


def test_a_lookup_of_another_name_is_another_exchange(tmp_path):
    """example.com from pod-c: no lab case walks it; the chapter would show an unchecked trace."""
    path = _chapter(tmp_path, 'from netsim.lab.exchanges import model_lookup\n'
                              'model_lookup(netsim.reference_cluster(), "pod-c", "example.com")')
    [(item, found, reason)] = ct.coverage([path])
    assert found is None and reason is None


def test_the_reasons_given():
    assert list(ct.NOT_IN_THE_LAB) == ["udp backend"]
    udp = netsim.reference_cluster("udp")
    assert ct.exempt(ct.ChapterTrace("x", 0, udp.send("pod-a", "pod-c"), "udp")) == "udp backend"
    assert ct.exempt(ct.ChapterTrace("x", 0, netsim.reference_cluster().send("pod-a", "pod-c"), "vxlan")) is None


def test_a_tool_run_in_a_chapter_is_recorded_and_found_in_the_tools_lab(tmp_path):
    """A traceroute a chapter runs is the traceroute tests/test_lab_sockets.py runs on the kernel."""
    path = _chapter(tmp_path, 'from netsim.lab.exchanges import quiet_limits\n'
                              'quiet_limits(netsim.reference_cluster()).traceroute("pod-a", "10.244.1.2", mode="icmp", '
                              'numeric=True)')
    [(item, found, reason)] = ct.coverage([path])
    assert item.trace.title == "traceroute -I -q 3 -n 10.244.1.2 (in pod-a)"
    assert found is not None and (found.family, found.key) == ("tools", "traceroute pod-a -I -n 10.244.1.2")


def test_a_tool_run_no_lab_compares_is_found_missing(tmp_path):
    """Three echo requests: no lab case sends three; the chapter would show an unchecked trace."""
    path = _chapter(tmp_path, 'netsim.reference_cluster().ping("pod-a", "10.244.1.2", count=3)')
    [(item, found, reason)] = ct.coverage([path])
    assert item.trace.title == "ping -c 3 -s 56 -M want 10.244.1.2 (in pod-a)"
    assert found is None and reason is None


def test_the_resolvers_walk_is_a_trace_of_its_own(tmp_path):
    """curl http://web/ with a DNS server attached walks glibc's queries, then the connection:
    two traces, each needing its own lab comparison."""
    path = _chapter(tmp_path, 'c = netsim.reference_cluster()\nc.set_dns("coredns", "10.96.0.10")\n'
                              'c.fetch("pod-a", "web")')
    titles = [item.trace.title for item in ct.chapter_traces(path)]
    assert titles == ["getaddrinfo(web) in pod-a", "curl -sS http://web/ (in pod-a)"]


def test_hairpin_kube_dns_and_load_balancer_exchanges_are_the_lab_tests_cases():
    by_family: dict[str, list[str]] = {}
    for ex in ct.lab_exchanges():
        by_family.setdefault(ex.family, []).append(ex.key)
    assert len(by_family["hairpin"]) == 2 * len(exchanges.HAIRPIN_CASES) == 16
    assert len(by_family["kube-dns"]) == 2 * 2 * len(exchanges.KUBE_DNS_PORTS) == 12
    assert len(by_family["loadbalancer"]) == 2 * len(exchanges.LB_PATHS) == 10
    assert {k.split(" run ")[0].split(" trace ")[0] for k in by_family["tools"]} == set(exchanges.TOOL_BY_KEY)


def test_every_case_of_netsim_lab_exchanges_is_run_by_its_lab_test():
    text = {name: (REPO / "tests" / f"{name}.py").read_text()
            for name in ("test_lab_sockets", "test_lab_hairpin", "test_lab_kube_dns", "test_lab_loadbalancer")}
    for key in ("enobufs", "pmtu-cache", "mss-lowered"):
        assert f'TOOL_BY_KEY["{key}"]' in text["test_lab_sockets"]
    assert 'TOOL_BY_KEY[f"transfer {backend} {size}"]' in text["test_lab_sockets"]
    for name in ("TRANSFERS", "TRACEROUTES", "PING_CASES", "SPECIAL"):
        assert re.search(rf'@pytest.mark.parametrize\("[^"]*", {name}\b', text["test_lab_sockets"]), name
    assert "CASES = HAIRPIN_CASES" in text["test_lab_hairpin"]
    assert "PORTS = KUBE_DNS_PORTS" in text["test_lab_kube_dns"] and "KUBE_DNS_CLIENTS)" in text["test_lab_kube_dns"]
    assert "PATHS = LB_PATHS" in text["test_lab_loadbalancer"]
