"""Fixtures for checking the built book in Chromium (run by `make test-browser` after `make html`).

The pages come from the table of contents, not from whatever happens to be in _build/html:
if the book was not built, every page test fails (it never skips).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tools import pagecheck

REPO = Path(__file__).resolve().parents[2]
HTML = REPO / "_build" / "html"
TOC = REPO / "book" / "_toc.yml"
# Pages Sphinx writes for itself rather than from the TOC; index.html is a redirect.
GENERATED = {"genindex.html", "search.html", "index.html"}


def toc_files(toc_path: Path = TOC) -> list[str]:
    """Every document the TOC names (root first), as paths without extension."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def book_pages() -> list[str]:
    """HTML pages to check, relative to _build/html: the TOC's, plus any other built page."""
    pages = [f"{name}.html" for name in toc_files()]
    if HTML.is_dir():
        for path in sorted(HTML.rglob("*.html")):
            rel = path.relative_to(HTML).as_posix()
            if rel.startswith(("_static/", "_sources/", "_images/")) or rel in GENERATED:
                continue
            if rel not in pages:
                pages.append(rel)
    return pages


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = pagecheck.launch(playwright)
        yield browser
        browser.close()
