"""The checks `make test` relies on really fail when they should.

Each guard is shown failing on a deliberately broken input: a notebook whose stored output
no longer matches a fresh run, a book with a broken cross-reference, a page that reaches for
the network, an environment.yml that cannot resolve. The controls beside them pass, so a
failure here means the guard itself is broken.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import pagecheck
from tools.envcheck import EnvironmentCheckError, resolve_environment

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def browser():
    with pagecheck.chromium() as browser:
        yield browser


# ---------------------------------------------------------------- (a) nbval


def test_nbval_fails_when_a_stored_output_no_longer_matches(tmp_path):
    source = sorted((REPO / "notebooks").glob("*.ipynb"))[0]
    nb = json.loads(source.read_text(encoding="utf-8"))
    altered = False
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = ["an output this notebook never printed\n"]
                altered = True
                break
            if "text/plain" in output.get("data", {}):
                output["data"]["text/plain"] = ["'an output this notebook never produced'"]
                altered = True
                break
        if altered:
            break
    assert altered, f"{source.name} has no text output to alter"
    target = tmp_path / source.name
    target.write_text(json.dumps(nb), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(REPO / "tests" / "nbval_sanitize.cfg"), str(target)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode != 0, proc.stdout
    assert "never p" in proc.stdout  # nbval shows the stored output it expected


# ---------------------------------------------------------------- (b) book build


# A stored output the way a netsim object displays itself: a widget view for live kernels
# and a self-contained HTML rendering for the static book.
WIDGET_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# A rich output"},
        {"cell_type": "code", "execution_count": 1, "id": "show", "metadata": {},
         "source": "trace", "outputs": [{
             "output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": {
                 "text/plain": "Trace(3 hops)",
                 "text/html": '<div class="static-trace">The static rendering of three hops</div>',
                 "application/vnd.jupyter.widget-view+json": {
                     "model_id": "0123456789abcdef", "version_major": 2, "version_minor": 0},
             }}]},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _tiny_book(root: Path, page: str) -> list[str]:
    """A two-page book using the real book/_config.yml and book/_static."""
    (root / "book").mkdir()
    shutil.copy(REPO / "book" / "_config.yml", root / "book" / "_config.yml")
    shutil.copytree(REPO / "book" / "_static", root / "book" / "_static")
    (root / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/rich\n", encoding="utf-8")
    (root / "book" / "intro.md").write_text(page, encoding="utf-8")
    (root / "book" / "rich.ipynb").write_text(json.dumps(WIDGET_NOTEBOOK), encoding="utf-8")
    return [str(VENV_BIN / "jupyter-book"), "build", "-W", "-n", "--keep-going",
            "--config", "book/_config.yml", "--toc", "book/_toc.yml", "."]


PAGE = """# A tiny page

(the-label)=
## A section with a formula

The outer header adds $20 + 8 + 8 + 14 = 50$ bytes, as {ref}`the section <the-label>` says.
"""


@pytest.fixture(scope="module")
def tiny_book_html(tmp_path_factory) -> Path:
    """The tiny book built once with the real configuration; it must build cleanly under -W."""
    root = tmp_path_factory.mktemp("tiny-book")
    cmd = _tiny_book(root, PAGE)
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "_build" / "html"


def test_book_build_with_a_formula_passes_and_renders_it_offline(tiny_book_html, browser):
    report = pagecheck.check_page(browser, tiny_book_html / "book" / "intro.html")
    assert report.network_requests == []
    assert report.console_errors == []
    assert report.math_formulas == 1
    assert report.math_rendered == 1


def test_book_shows_the_html_rendering_instead_of_a_widget_view(tiny_book_html, browser):
    report = pagecheck.check_page(browser, tiny_book_html / "book" / "rich.html")
    assert report.network_requests == []
    assert report.console_errors == []
    assert "The static rendering of three hops" in report.main_text


def test_book_build_fails_on_a_broken_cross_reference(tmp_path):
    cmd = _tiny_book(tmp_path, PAGE.replace("<the-label>", "<no-such-label>"))
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "no-such-label" in proc.stdout + proc.stderr


# ---------------------------------------------------------------- (c) browser


def test_page_check_reports_network_requests_errors_and_missing_files(tmp_path, browser):
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><head>"
        '<script src="https://example.invalid/x.js"></script>'
        '<link rel="stylesheet" href="missing.css">'
        "</head><body><main id=\"main-content\"><article><p>Some text.</p>"
        '<img src="https://example.invalid/x.png">'
        "</article></main>"
        '<script>throw new Error("boom")</script>'
        "</body></html>",
        encoding="utf-8",
    )
    report = pagecheck.check_page(browser, page)
    assert sorted(report.network_requests) == ["https://example.invalid/x.js", "https://example.invalid/x.png"]
    assert len(report.failed_local_requests) == 1 and "missing.css" in report.failed_local_requests[0]
    assert any("boom" in error for error in report.console_errors)
    assert report.main_visible and report.main_text == "Some text."


def test_page_check_passes_a_self_contained_page(tmp_path, browser):
    page = tmp_path / "page.html"
    page.write_text(
        '<!DOCTYPE html><html><body><main id="main-content"><article><p>Only local things.</p>'
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        "</article></main></body></html>",
        encoding="utf-8",
    )
    report = pagecheck.check_page(browser, page)
    assert (report.network_requests, report.failed_local_requests, report.console_errors) == ([], [], [])
    assert report.main_visible


# ---------------------------------------------------------------- (d) environment.yml


def test_environment_check_fails_on_an_unresolvable_pin(tmp_path):
    env = tmp_path / "environment.yml"
    env.write_text(
        "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n      - nonexistent-package-xyz==0.0.0\n",
        encoding="utf-8",
    )
    with pytest.raises(EnvironmentCheckError, match="nonexistent-package-xyz"):
        resolve_environment(env)
