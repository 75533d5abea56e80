"""`make bench` runs: tools/bench.py --quick prints every row of its table. No timing is asserted
here; the figures and their targets are the benchmark's business (README, `make bench`)."""

import json
import subprocess
import sys
import time
from pathlib import Path

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
        "clean book build", "nbval, all notebooks", "kernel build + scenario 4",
        "page: loader before Edit and run", "page: cold start to first result", "page: second run",
        "page: scenario 4 trace (Pyodide)",
    ]
    for name in names:
        assert name in done.stdout
    assert "scenario 4 trace" in done.stdout and "<= 1.000 ms" in done.stdout
    assert "<= 1.300 x" in done.stdout            # issue #26: nftables mode within 1.3x of iptables mode
    assert "<= 20.0 x" in done.stdout and "<= 1.500 x" in done.stdout     # issue #22: the tools' ratios
