"""The live path: a chapter in JupyterLab, started the way `make lab` starts it, driven in Chromium.

JupyterLab runs from this venv on 127.0.0.1 (a free port, no token) over a temporary copy of
notebooks/, trusted with `jupyter trust` as `make lab` and binder/postBuild do, with the
repository's jupyter_server_config.py. Chromium (Debian's, through Playwright) may reach only
that server: every other request is aborted and recorded. The checks:

1. before any run, the stored outputs render (the notebook is trusted, so the stepper's HTML
   face shows, not an unstyled list) and the MyST markup renders (no raw `:::{` or roles);
   Links to other pages are plain links, and the glossary link opens book/glossary.md;
2. Run All; the live stepper widget steps (Next moves to the next hop);
3. the cluster cell switched to host-gw, and it and the cells down to the stepper re-run,
   give a trace without the VXLAN device;
4. a save through the server keeps the stepper's HTML and drops its widget view and the
   widget state (the pre-save hook);
5. no console error and no request off the machine, throughout.

The server is stopped by its PID in the fixture's teardown, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tools.book_notebooks import book_notebooks
from tools.toc import REPO

CHAPTER = "05-vxlan-across-nodes.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
JUPYTER = Path(sys.executable).parent / "jupyter"
# Settings a reader would not need, set so that the test sees the whole notebook (no
# windowing of off-screen cells) and JupyterLab asks nothing of the network (no news).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, root folder) of a running JupyterLab; stopped by its PID afterwards. The
    root is a copy of the repository's notebooks/ and book/, served as `make lab` serves the
    repository (so a chapter's links to book/glossary.md and book/references.md open)."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "repo"
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "Untitled*"))
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("_static"))
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces")}
    for name, value in SETTINGS.items():
        path = tmp / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    copies = [str(root / "notebooks" / Path(rel).name) for rel in book_notebooks()]
    subprocess.run([JUPYTER, "trust", *copies], env=env, check=True, capture_output=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "w")
    cmd = [JUPYTER, "lab", f"--config={REPO / 'jupyter_server_config.py'}", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"JupyterLab exited: {(tmp / 'server.log').read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
            time.sleep(0.5)
        yield base, root
    finally:
        server.send_signal(signal.SIGTERM)      # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        try:                                    # a kernel the server left behind, in its session
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


class Session:
    """One browser page on the lab, recording console errors and requests off the machine."""

    def __init__(self, browser, base: str):
        self.base = base
        self.errors: list[str] = []
        self.offsite: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def _route(self, route):
        url = route.request.url
        if url.startswith((self.base + "/", "data:", "blob:")):
            route.continue_()
        else:
            self.offsite.append(url)
            route.abort()

    def open(self, name: str) -> None:
        self.page.goto(f"{self.base}/lab/tree/notebooks/{name}")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                    " && window.jupyterapp.shell.currentWidget.context"
                                    " && window.jupyterapp.shell.currentWidget.context.isReady", timeout=120_000)
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)

    def wait_for_kernel(self, timeout_ms: int = 120_000) -> None:
        """Until the notebook's kernel has started and is idle."""
        self.page.wait_for_function(
            """() => { const nb = window.jupyterapp.shell.currentWidget;
                 const k = nb.sessionContext.session && nb.sessionContext.session.kernel;
                 return nb.sessionContext.isReady && k && k.status === 'idle'
                        && k.connectionStatus === 'connected'; }""", timeout=timeout_ms, polling=250)

    def command(self, name: str) -> None:
        self.page.evaluate("name => window.jupyterapp.commands.execute(name)", name)

    # the kernel's state, the code cells still queued or running, and the errors they raised
    STATE = """() => { const nb = window.jupyterapp.shell.currentWidget;
                 const k = nb.sessionContext.session && nb.sessionContext.session.kernel;
                 const code = nb.content.widgets.filter(c => c.model.type === 'code');
                 return {kernel: k ? k.status : null,
                         waiting: code.filter(c => c.model.executionCount === null
                                  || c.node.querySelector('.jp-InputPrompt').textContent.includes('*')).length,
                         errors: code.flatMap((c, i) => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                                 .map(o => 'code cell ' + i + ': ' + o.ename + ': ' + o.evalue + ' in '
                                      + c.model.sharedModel.getSource().slice(0, 300))),
                         dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText)}; }"""

    def wait_until_run(self, timeout_ms: int = 300_000) -> None:
        """Until every code cell has an execution count and the kernel is idle again."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                f"() => {{ const s = ({self.STATE})(); return s.errors.length || (s.kernel === 'idle' && s.waiting === 0); }}",
                timeout=timeout_ms, polling=500)
            state = self.page.evaluate(self.STATE)
            assert state["errors"] == [], f"a cell raised: {state}"
        except PlaywrightTimeout:
            raise AssertionError(f"the notebook did not finish running: {self.page.evaluate(self.STATE)}, "
                                 f"console errors {self.errors}") from None

    def cell_index(self, needle: str) -> int:
        index = self.page.evaluate(
            """needle => window.jupyterapp.shell.currentWidget.content.widgets
                 .findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(needle))""",
            needle)
        assert index >= 0, f"no code cell contains {needle!r}"
        return index

    def cell(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser, lab):
    """A page on the lab in the Chromium the other browser checks share (conftest.py)."""
    s = Session(browser, lab[0])
    try:
        yield s
    finally:
        s.close()


def _rendered_markdown(session: Session) -> list[str]:
    cells = session.page.locator(".jp-Notebook .jp-MarkdownCell")
    return [cells.nth(i).inner_text() for i in range(cells.count())]


def test_a_chapter_opens_trusted_with_its_stored_outputs_and_myst_rendered(session):
    session.open(CHAPTER)
    page = session.page
    # trusted: the stored text/html of the stepper renders, with its inline script running
    stepper = page.locator(".jp-OutputArea .netsim-stepper")
    stepper.first.wait_for(timeout=60_000)
    assert page.locator(".jp-Notebook .jp-Cell").count() == page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets.length")
    static = stepper.first
    page.wait_for_selector(".jp-OutputArea .netsim-stepper[data-state=ready]", timeout=60_000)
    assert static.locator("a.pcap").count() == 0, "the book's pcapng link has no file in JupyterLab"
    first = static.locator(".pos").first.inner_text()
    static.locator("button[data-a=next]").click()
    assert static.locator(".pos").first.inner_text() != first, "the stored stepper's Next did nothing"
    # MyST: the admonitions and roles are rendered, not shown as source
    texts = _rendered_markdown(session)
    assert len(texts) > 5
    for text in texts:
        for raw in (":::{", "{term}`", "{doc}`", "{ref}`", "```{"):
            assert raw not in text, f"raw MyST {raw!r} in a rendered cell: {text[:200]!r}"
    assert page.locator(".jp-Notebook .jp-MarkdownCell aside").count() >= 1, "no admonition rendered"
    # links to other pages are plain links (no role jupyterlab-myst cannot resolve): no "Cross
    # reference target was not found" in the console, and the glossary link opens the glossary
    assert session.errors == []
    term = page.locator(".jp-Notebook .jp-MarkdownCell a", has_text="VXLAN").first
    assert "book/glossary.md" in (term.get_attribute("href") or ""), term.get_attribute("href")
    term.click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget"
                           ".context && window.jupyterapp.shell.currentWidget.context.path === 'book/glossary.md'",
                           timeout=60_000)
    assert session.errors == []
    assert session.offsite == []


def test_run_all_step_the_widget_switch_the_backend_and_save(session, lab):
    _base, root = lab
    session.open(CHAPTER)
    page = session.page
    session.wait_for_kernel()
    session.command("notebook:run-all-cells")
    session.wait_until_run()
    stepper_cell = session.cell(session.cell_index("views.Stepper("))
    nxt = stepper_cell.locator(".jp-OutputArea .widget-button", has_text="Next")
    nxt.wait_for(timeout=60_000)
    picker = stepper_cell.locator(".jp-OutputArea .widget-dropdown select")
    hops_vxlan = picker.locator("option").all_inner_texts()
    # the picker lists the hops up to the first question; the diagram draws the whole cluster
    tunnel = stepper_cell.locator(".jp-OutputArea svg text", has_text="flannel.1")
    assert tunnel.count() >= 2 and any("node1/cni0" in h for h in hops_vxlan)
    assert picker.evaluate("s => s.selectedIndex") == 0
    nxt.click()
    page.wait_for_function("s => s.selectedIndex === 1", arg=picker.element_handle(), timeout=30_000)
    panel = stepper_cell.locator(".jp-OutputArea .panel").last.inner_text()
    assert hops_vxlan[1].split()[1] in panel, "the panel does not show hop 1's capture point"

    # the same chapter on host-gw: edit the cluster cell, run everything again
    index = session.cell_index("reference_cluster()")
    page.evaluate("""i => { const m = window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel;
                            m.setSource(m.getSource().replace('reference_cluster()', 'reference_cluster("host-gw")')); }""",
                  index)
    # from that cell to the stepper (the chapter's later cells read VXLAN's devices)
    stepper_index = session.cell_index("views.Stepper(")
    assert index < stepper_index
    page.evaluate("""async ([first, last]) => { const nb = window.jupyterapp.shell.currentWidget;
                       for (let i = first; i <= last; i++) {
                         nb.content.activeCellIndex = i;
                         await window.jupyterapp.commands.execute('notebook:run-cell'); } }""",
                  [index, stepper_index])
    session.wait_until_run()
    stepper_cell.locator(".jp-OutputArea .widget-button", has_text="Next").wait_for(timeout=60_000)
    assert stepper_cell.locator(".jp-OutputArea svg text", has_text="flannel.1").count() == 0
    assert stepper_cell.locator(".jp-OutputArea svg text", has_text="cni0").count() >= 2
    hops_hostgw = stepper_cell.locator(".jp-OutputArea .widget-dropdown select option").all_inner_texts()
    assert hops_hostgw and not any("flannel.1" in h for h in hops_hostgw)
    assert any("node1/cni0" in h for h in hops_hostgw)

    # a save goes through the pre-save hook: the HTML face stays, the widget view goes
    session.command("docmanager:save")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=60_000)
    saved = json.loads((root / "notebooks" / CHAPTER).read_text())
    outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert "widgets" not in saved["metadata"]
    assert not [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    htmls = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("netsim-stepper" in "".join(h) for h in htmls)
    assert any('reference_cluster("host-gw")' in "".join(c["source"]) for c in saved["cells"])
    assert session.errors == []
    assert session.offsite == []
