"""The 'Edit and run' figures of `make bench` (issue #23), measured in the built, served book.

Headless Chromium (tools/pagecheck.py) opens chapter 5 from tools/serve.py's server on
127.0.0.1, in a fresh browser context each time (an empty cache: a reader's first visit), with
every request outside the book aborted.

  loader bytes        what a chapter page loads because of 'Edit and run' before it is
                      pressed: the page's bytes with the loader minus the page's bytes with the
                      loader's request aborted
  cold start          from pressing 'Edit and run' and Run on the chapter's first cell to its
                      output in the page: Pyodide, netsim and the cell (wall clock)
  second run          Run again on the same cell, to its new output (median)
  scenario 4 (Pyodide) scenario 4's trace inside the page's Python, timed there as `make bench`
                      times it in CPython: one reused cluster, request and reply, the bytes of
                      every hop formed (median of 30 after 2 warm-ups)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

CHAPTER = "notebooks/05-vxlan-across-nodes.html"
LOADER = "_static/netsim-run.js"
START_S = 120
TARGETS = {"bytes": 20.0, "cold": 8.0, "second": 0.5, "s4": 15.0}
SCENARIO_4 = """import gc, statistics, time
import netsim
from netsim import scenarios

bench_cluster = netsim.reference_cluster()

def bench_trace():
    t = scenarios.SIX[4](cluster=bench_cluster)
    for hop in t.hops:
        hop.data

for _ in range(2):
    bench_trace()
times = []
for _ in range(30):
    gc.collect()
    t0 = time.perf_counter()
    bench_trace()
    times.append(time.perf_counter() - t0)
print(f"{statistics.median(times) * 1000:.3f}")"""


def _context(browser, origin: str, block: tuple[str, ...] = ()):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    outside: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(origin) and not any(url[len(origin):].startswith(b) for b in block):
            r.continue_()
        else:
            if not url.startswith(origin):
                outside.append(url)
            r.abort()
    context.route("**/*", route)
    return context, outside


def page_bytes(browser, origin: str, block: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """Bytes of every response a chapter page loads (without pressing anything), and their paths."""
    context, outside = _context(browser, origin, block)
    sizes: dict[str, int] = {}
    page = context.new_page()
    page.on("requestfinished", lambda r: sizes.__setitem__(r.url[len(origin):], r.sizes()["responseBodySize"]))
    page.goto(origin + CHAPTER, wait_until="load")
    page.wait_for_selector("div.cell")
    if not block:
        page.wait_for_selector("button.nsr-edit")
    context.close()
    if outside:
        raise RuntimeError(f"the page asked for something outside the book: {outside}")
    return sum(sizes.values()), sorted(sizes)


def run_cell(page, index: int, code: str | None, timeout_s: float) -> str:
    cell = page.locator("div.cell").nth(index)
    if not cell.locator(".nsr-editor textarea").count():
        cell.locator("button.nsr-edit").click()
    runs = page.locator(".nsr-out").evaluate_all("els => Math.max(0, ...els.map(e => +e.dataset.run))")
    if code is not None:
        cell.locator(".nsr-editor textarea").fill(code)
    cell.locator("button.nsr-run").click()
    out = cell.locator(f".nsr-out[data-run='{runs + 1}']")
    out.wait_for(timeout=timeout_s * 1000)
    return out.inner_text()


def measure(html: Path, repeat: int = 5) -> dict:
    """The four figures: KB, s, s, ms (raises if the book or its runtime is missing)."""
    from tools import pagecheck
    from tools.serve import Served

    if not (html / "_static" / "pyodide" / "runtime.json").is_file():
        raise FileNotFoundError(f"{html}/_static/pyodide/runtime.json: build the book first (make html)")
    with Served(html) as origin, pagecheck.chromium() as browser:
        with_loader, paths = page_bytes(browser, origin)
        without, _ = page_bytes(browser, origin, block=(LOADER,))
        early = [p for p in paths if "pyodide/" in p or "netsim-run/" in p]
        if early:
            raise RuntimeError(f"the page loaded the runtime before a button was pressed: {early}")
        context, outside = _context(browser, origin)
        page = context.new_page()
        page.goto(origin + CHAPTER)
        page.wait_for_selector("button.nsr-edit")
        t0 = time.perf_counter()
        run_cell(page, 0, None, START_S)
        cold = time.perf_counter() - t0
        again = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            run_cell(page, 0, None, 30)
            again.append(time.perf_counter() - t0)
        s4 = float(run_cell(page, 0, SCENARIO_4, 60).strip())
        context.close()
        if outside:
            raise RuntimeError(f"the page asked for something outside the book: {outside}")
    return {"bytes": (with_loader - without) / 1000, "cold": cold, "second": statistics.median(again), "s4": s4}
