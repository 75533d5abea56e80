"""Every chapter's code, run in the book's own Pyodide, prints what the stored notebook shows.

The stored outputs come from CPython 3.11 (`make notebooks`); the page runs Python 3.13 compiled
to WebAssembly, with netsim's wheel and scapy's from the built book. Node runs that same
runtime and the page's runner.py here (tests/browser/pyodide_cells.js), each chapter in a fresh
namespace, so a difference between the two interpreters in anything a chapter prints shows up
as a failing cell. Needs the built book (`make html`) and node; fails, never skips, without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat

from tools.book_notebooks import book_notebooks
from tools.pagecheck import HTML

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RUNTIME = HTML / "_static" / "pyodide"
RUNNER = REPO / "book" / "_static" / "netsim-run" / "runner.py"
# The one cell the page cannot run: chapter 11 plots with matplotlib, which has no Pyodide build here.
NEEDS_MATPLOTLIB = {("notebooks/11-scale.ipynb", 1)}


def _stored(cell) -> tuple[str, list[str]]:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    plain = [o["data"]["text/plain"] for o in cell.outputs
             if o.output_type in ("execute_result", "display_data") and "text/plain" in o["data"]]
    return text, plain


def _ran(outputs: list[dict]) -> tuple[str, list[str]]:
    text = "".join(o["text"] for o in outputs if o["type"] == "stream")
    plain = [o["data"]["text/plain"] for o in outputs if o["type"] == "display" and "text/plain" in o["data"]]
    return text, plain


def test_every_chapters_cells_print_in_pyodide_what_cpython_stored():
    assert (RUNTIME / "runtime.json").is_file(), f"{RUNTIME} is missing: build the book first (make html)"
    node = shutil.which("node")
    assert node, "node is needed to run Pyodide outside the browser (Debian: nodejs)"
    books = {name: nbformat.read(REPO / name, as_version=4) for name in book_notebooks()}
    code = {name: [c for c in nb.cells if c.cell_type == "code"] for name, nb in books.items()}
    done = subprocess.run([node, str(HERE / "pyodide_cells.js"), str(RUNTIME), str(RUNNER)],
                          input=json.dumps([[c.source for c in cells] for cells in code.values()]),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["python"].startswith("3.13.")
    assert len(report["results"]) == len(code) >= 11
    errors, differ = [], []
    for (name, cells), results in zip(code.items(), report["results"]):
        assert len(results) == len(cells), name
        for i, (cell, outputs) in enumerate(zip(cells, results)):
            failed = [o for o in outputs if o["type"] == "error"]
            if failed:
                errors.append((name, i, failed[0]["ename"], failed[0]["evalue"]))
            elif _ran(outputs) != _stored(cell):
                differ.append((name, i))
    assert errors == [(n, i, "ModuleNotFoundError", "No module named 'matplotlib'") for n, i in sorted(NEEDS_MATPLOTLIB)]
    assert differ == []
