"""'Edit and run' in the built book: netsim runs in the page, with Pyodide from the book's own files.

The book is served on 127.0.0.1 (tools/serve.py, as `make serve` serves it) and every request
for anything else is aborted and recorded: the tests assert there were none, that every file the
page asked its own origin for was there, and that nothing logged an error (the worker's console
included). Each expectation waits for the element it reads, never for a time; the first run
waits up to START_S for Pyodide's cold start (6-7 s on the 2-core test machine). Needs a built
book with its runtime (`make html`): fails, never skips, without one.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from playwright.sync_api import expect

import netsim
from netsim.views import diagram
from tools.pagecheck import HTML
from tools.serve import Served

CHAPTER = "notebooks/05-vxlan-across-nodes.html"
RUNTIME = HTML / "_static" / "pyodide" / "runtime.json"
START_S = 120                       # the first run: Pyodide's cold start on a slow, busy machine
RUN_S = 30                          # later runs
STEPPER_CELL = 2                    # chapter 5's `views.Stepper(trace, cluster, predict=[...])`

HOST_GW_STEPPER = """from netsim import views

cluster = netsim.reference_cluster(backend="host-gw")
trace = netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)
views.Stepper(trace, cluster)"""       # no question: every hop's row is in the page


@pytest.fixture(scope="module")
def served():
    assert RUNTIME.is_file(), f"{RUNTIME} is missing: build the book with its runtime first (make html)"
    with Served(HTML) as url:
        yield url


class Visit:
    """One page of the served book, with everything it asked for and everything it logged."""

    def __init__(self, browser, url: str, width: int):
        self.origin = url
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.outside: list[str] = []
        self.asked: list[str] = []
        self.missing: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.missing.append(f"{r.url} {r.failure}")
                     if r.url.startswith(self.origin) else None)
        self.page.on("response", lambda r: self.missing.append(f"{r.url} {r.status}") if r.status >= 400 else None)

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.origin):
            self.asked.append(url[len(self.origin):])
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, path: str) -> None:
        self.page.goto(self.origin + path)
        self.page.wait_for_selector("button.nsr-edit")

    def cell(self, index: int):
        return self.page.locator("div.cell").nth(index)

    def run(self, index: int, code: str, timeout_s: float = RUN_S) -> str:
        """Edit cell `index` to `code`, run it, wait for its new output and return its text."""
        cell = self.cell(index)
        if not cell.locator(".nsr-editor textarea").count():
            cell.locator("button.nsr-edit").click()
        before = self.page.locator(".nsr-out").evaluate_all(
            "els => Math.max(0, ...els.map(e => +e.dataset.run))")
        cell.locator(".nsr-editor textarea").fill(code)
        cell.locator("button.nsr-run").click()
        out = cell.locator(f".nsr-out[data-run='{before + 1}']")
        out.wait_for(timeout=timeout_s * 1000)
        return out.inner_text()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, served):
    v = Visit(browser, served, 1200)
    yield v
    v.close()
    assert v.outside == [], "the page asked for something outside the book"
    assert v.missing == [], "the page asked the book for files it does not have"
    assert v.errors == []


def _where(row_text: str) -> str:
    return row_text.split()[1]


def test_a_host_gw_stepper_runs_in_the_page_and_its_path_has_no_flannel_1_hop(visit):
    visit.open(CHAPTER)
    code_cells = visit.page.locator("div.cell > div.cell_input").count()
    assert visit.page.locator("button.nsr-edit").count() == code_cells > STEPPER_CELL
    # nothing of the runtime is fetched before a button is pressed
    assert [a for a in visit.asked if "pyodide/" in a or "netsim-run/" in a] == []

    visit.run(STEPPER_CELL, HOST_GW_STEPPER, timeout_s=START_S)
    cell = visit.cell(STEPPER_CELL)
    stepper = cell.locator(".nsr-out .netsim-stepper")
    assert stepper.count() == 1
    rows = stepper.locator("ol.hops li").all_inner_texts()
    cluster = netsim.reference_cluster(backend="host-gw")
    trace = netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)
    assert [_where(r) for r in rows] == [h.where for h in trace.hops]     # the page ran the same model
    assert not any("flannel.1" in _where(r) for r in rows)
    assert "node1/eth0" in [_where(r) for r in rows] and "node2/eth0" in [_where(r) for r in rows]
    assert cell.locator(".cell_output").count() == 0                      # the stored output is replaced
    # its script runs: Next steps to hop 1
    stepper.locator("button[data-a=next]").click()
    expect(stepper).to_have_attribute("data-hop", "1")
    # the earlier cells ran first, once; the stepper cell's status says so
    assert "with 2 cells above" in cell.locator(".nsr-status").inner_text()

    text = visit.run(STEPPER_CELL + 1, 'print(cluster.show("node1", "ip route"))')
    assert text == cluster.show("node1", "ip route") + "\n"             # what print() wrote
    # flannel's host-gw route: the other node's pod subnet via that node's own address
    assert "10.244.1.0/24 via 192.168.50.12 dev eth0" in text.splitlines()
    assert re.fullmatch(r"Ran in \d+ ms\.", visit.cell(STEPPER_CELL + 1).locator(".nsr-status").inner_text())
    assert [a for a in visit.asked if a.endswith(".whl")] == [f"_static/pyodide/{json.loads(RUNTIME.read_text())['netsim']}"]


def test_errors_packets_and_the_diagram_in_the_page_on_a_phone(browser, served):
    """At 390 px: a traceback in the cell, scapy loaded on first use only, the same SVG as CPython."""
    v = Visit(browser, served, 390)
    try:
        v.open(CHAPTER)
        err = v.run(0, "import netsim\n\ndef hop(n):\n    return netsim.reference_cluster().send('pod-a', 'pod-c')[n]\n\n"
                       "hop(10 ** 6)", timeout_s=START_S)
        assert err.startswith("Traceback (most recent call last):")
        assert re.search(r'File "<cell \d+>", line 6, in <module>\n\s+hop\(10 \*\* 6\)', err)
        assert err.rstrip().splitlines()[-1].startswith("IndexError")
        assert "netsim_page_runner" not in err                       # the traceback starts at the reader's code
        assert [a for a in v.asked if "scapy" in a] == []

        cluster = netsim.reference_cluster()
        trace = netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)
        # scapy's VXLAN layer dissects the tunnel frame (it needs the IPv6 shim in Pyodide)
        fields = ("[type(l).__name__ for l in p.iterpayloads()], p['UDP'].dport, p['VXLAN'].vni, "
                  "p['VXLAN'].payload.src, p['TCP'].dport")
        out = v.run(0, "import netsim\nc = netsim.reference_cluster()\nt = netsim.scenarios.pod_to_pod_cross_node(cluster=c)\n"
                       f"p = t.where('node1/eth0', 'tx', role='request')[0].packet\nprint({fields})")
        p = trace.where("node1/eth0", "tx", role="request")[0].packet
        expected = ([type(layer).__name__ for layer in p.iterpayloads()], p["UDP"].dport, p["VXLAN"].vni,
                    p["VXLAN"].payload.src, p["TCP"].dport)
        assert expected[0] == ["Ether", "IP", "UDP", "VXLAN", "Ether", "IP", "TCP"]
        assert out == " ".join(str(x) for x in expected) + "\n"
        assert len([a for a in v.asked if "scapy-" in a]) == 1               # fetched on the first import

        svg = diagram(cluster, netsim.scenarios.SIX[5](cluster=cluster), 20).svg()
        out = v.run(0, "import hashlib, netsim\nfrom netsim.views import diagram\nc = netsim.reference_cluster()\n"
                       "t = netsim.scenarios.SIX[5](cluster=c)\nprint(hashlib.sha256(diagram(c, t, 20).svg().encode()).hexdigest())")
        assert out == hashlib.sha256(svg.encode()).hexdigest() + "\n"

        page = v.page
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        editor = v.cell(0).locator(".nsr-editor textarea").bounding_box()
        assert editor is not None and editor["x"] >= 0 and editor["x"] + editor["width"] <= 390
    finally:
        v.close()
    assert v.outside == [] and v.missing == [] and v.errors == []


def test_from_a_file_url_the_button_says_how_to_serve_the_book(browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto((HTML / CHAPTER).as_uri())
        cell = page.locator("div.cell").nth(0)
        cell.locator("button.nsr-edit").click()
        assert "make serve" in cell.locator(".nsr-note").inner_text()
        assert cell.locator(".nsr-editor").count() == 0
    finally:
        context.close()


def test_a_runtime_the_book_lacks_is_reported_in_the_cell(browser, served):
    """A book built without its runtime (or a server that lost it): the cell says Python could not start."""
    context = browser.new_context()
    try:
        context.route("**/*", lambda r: r.abort() if "pyodide/" in r.request.url or not r.request.url.startswith(served)
                      else r.continue_())
        page = context.new_page()
        page.goto(served + CHAPTER)
        cell = page.locator("div.cell").nth(0)
        cell.locator("button.nsr-edit").click()
        cell.locator("button.nsr-run").click()
        expect(cell.locator(".nsr-status")).to_contain_text("Python could not start", timeout=30_000)
        expect(cell.locator("button.nsr-run")).to_be_enabled()
        assert cell.locator(".nsr-out").count() == 0 and cell.locator(".cell_output").count() == 1
    finally:
        context.close()
