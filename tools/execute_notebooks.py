"""Re-execute notebooks in place so their stored outputs match the current netsim (`make notebooks`).

Each notebook runs top to bottom in a fresh `python3` kernel with its own folder
(notebooks/) as the working directory, the way nbval and Binder run it. The result is
written back with no run-specific metadata: no execution timings and no ipywidgets
widget state and no widget views beside a text/html output (the published book does not
load the widget JavaScript, and their model ids change on every run). PYTHONHASHSEED is fixed for the kernel.

Usage: python tools/execute_notebooks.py notebooks/*.ipynb
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TIMEOUT_PER_CELL = 600
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        store_widget_state=False,
    )
    client.execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            # A widget view's model id is new on every run and nothing static can show it;
            # the self-contained text/html beside it is what the book and nbval use.
            if WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv: list[str]) -> int:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    paths = [Path(arg) for arg in argv]
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        start = time.perf_counter()
        execute(path)
        print(f"executed {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
