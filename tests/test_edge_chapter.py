"""Chapter 18's exchanges are the ones netsim.lab.edge compares with the kernel.

tools/chapter_traces.py runs the chapter's cells and records every exchange they walk through
`Network.send`; each must be the same exchange (the lab's own comparison finds no difference) as
one of netsim.lab.edge's CASES, which tests/test_lab_edge.py runs on the kernel. The chapter's
curl and dig runs are edge.TOOL_RUNS, compared frame by frame there too."""

from __future__ import annotations

from tools import chapter_traces as ct
from tools.toc import REPO

from netsim.lab import edge

CHAPTER = REPO / "notebooks" / "18-in-from-the-edge.md"


def test_every_exchange_chapter_18_walks_is_an_edge_lab_case():
    """Its send() exchanges are edge.CASES, one each; the walks of its tools (curl, dig) are
    the lab's edge.TOOL_RUNS (chapter_traces records both)."""
    exchanges = [ct.LabExchange("edge", case.key, case.send(case.build())) for case in edge.CASES]
    for tool in edge.TOOL_RUNS:
        exchanges += [ct.LabExchange("edge", tool.key, trace) for trace in tool.model(tool.build()).traces]
    found = {item.label: getattr(ct.match(item, exchanges), "key", None) for item in ct.chapter_traces(CHAPTER)}
    assert None not in found.values(), found
    cases = {case.key for case in edge.CASES}
    assert sorted(k for k in found.values() if k in cases) == sorted(cases), found


def test_the_chapters_curl_commands_are_the_tool_runs_the_lab_compares():
    text = CHAPTER.read_text()
    for case in edge.TOOL_RUNS:
        if case.argv[0] == "curl" and "-H" in case.argv:
            host = case.argv[3].removeprefix("Host: ")
            assert f'edge.fetch("ext", "{case.argv[-1]}", host="{host}")' in text, case.key
        elif case.argv[0] == "curl":          # the health-check probes, on the LoadBalancer section's cluster
            assert f'cluster.fetch("ext", "{case.argv[-1]}")' in text, case.key
        else:
            assert f'dns_names.dig("pod-a", "{case.argv[2]}", server="{case.argv[1][1:]}"' in text, case.key
