"""`make bench` runs: tools/bench.py --quick prints every row of its table. No timing is asserted
here; the figures and their targets are the benchmark's business (README, `make bench`)."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_and_prints_every_row(tmp_path):
    out = tmp_path / "bench.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "tools/bench.py", "--quick", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - start < 30
    names = [row["name"] for row in json.loads(out.read_text())["rows"]]
    assert names == [
        *(f"scenario {n} trace" for n in range(1, 7)),
        "curl 100 kB pod-a -> pod-c / s4", "dig via ClusterIP / s4",
        "scenario 4, this tree", "scenario 4 vs 1512ebb", "scenario 4 vs f16976d",
        "scenario 5 trace, nftables mode", "scenario 5 nftables/iptables",
        "parameter change -> stepper", "50-hop stepper render", "50-hop stepper size",
        *(row for n in (10, 100) for row in (f"build {n} x 110 pods", f"peak RSS {n} nodes",
                                             f"first trace {n} nodes", f"trace {n} nodes")),
        "clean book build", "nbval, all notebooks", "kernel build + scenario 4", "make test-fast",
        "page: loader before Edit and run", "page: cold start to first result", "page: second run",
        "page: scenario 4 trace (Pyodide)",
    ]
    for name in names:
        assert name in done.stdout
    assert "scenario 4 trace" in done.stdout and "<= 1.000 ms" in done.stdout
    assert "<= 1.300 x" in done.stdout            # issue #26: nftables mode within 1.3x of iptables mode
    assert "<= 20.0 x" in done.stdout and "<= 1.500 x" in done.stdout     # issue #22: the tools' ratios


def test_bench_times_a_baseline_commit_beside_the_working_tree(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "tools/bench.py", "--baseline", "HEAD", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert result["baseline"] == "HEAD"
    figures = ["build 100 x 110", "build 100 x 110 CPU", "peak RSS 100 nodes", "first trace 100 nodes", "scenario 4 trace"]
    assert list(rows) == [f"{f}: {part}" for f in figures for part in ("baseline", "working tree", "ratio")] + [
        "make test-fast: ratio"]
    for figure in figures:
        base, work, ratio = (rows[f"{figure}: {part}"] for part in ("baseline", "working tree", "ratio"))
        assert len(base["rounds"]) == len(work["rounds"]) >= 2          # alternating rounds, paired
        assert base["value"] == pytest.approx(statistics.median(base["rounds"]))
        assert ratio["value"] == pytest.approx(statistics.median(w / b for b, w in zip(base["rounds"], work["rounds"])))
    assert (rows["build 100 x 110: ratio"]["target"], rows["scenario 4 trace: ratio"]["target"]) == (0.4, 0.6)
    assert rows["build 100 x 110: ratio"]["status"] == ("ok" if rows["build 100 x 110: ratio"]["value"] <= 0.4
                                                        else "MISS")
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "bench-baseline-" not in worktrees             # the temporary checkout is gone
