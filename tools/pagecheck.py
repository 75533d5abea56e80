"""Load a page in headless Chromium and report what a reader without network would see.

Debian's /usr/bin/chromium, driven by the Playwright Python package (no `playwright install`).
Every request that is not for a local file is aborted and recorded, so a page that needs
the network (a CDN script, a web font, an analytics beacon) shows up in the report instead of
quietly working on a developer's connected machine.

Used by tests/browser (the built book) and tests/test_pipeline_guards.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tools.toc import REPO, toc_files

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Schemes that never leave the machine.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# The element that holds a page's own text in sphinx-book-theme.
MAIN_CONTENT = "main#main-content article"
HTML = REPO / "_build" / "html"
# True once a page has loaded and each of its hop steppers is ready (netsim.views.stepper).
READY = ("() => document.readyState === 'complete' && [...document.querySelectorAll('.netsim-stepper')]"
         ".every(s => s.dataset.state === 'ready')")
# Pages Sphinx writes for itself rather than from the TOC; index.html is a redirect.
GENERATED = {"genindex.html", "search.html", "index.html"}


@dataclass
class PageReport:
    url: str
    network_requests: list[str] = field(default_factory=list)
    failed_local_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    main_text: str = ""
    main_visible: bool = False
    # Sphinx marks every formula with class "math"; MathJax turns each into an mjx-container.
    math_formulas: int = 0
    math_rendered: int = 0


def book_pages(html: Path = HTML) -> list[str]:
    """The built book's pages, relative to html: every TOC entry, then any other page built.

    The list comes from the table of contents, not only from what is in the build folder, so
    a missing or unbuilt book gives failing checks rather than no checks at all.
    """
    pages = [f"{name}.html" for name in toc_files()]
    if html.is_dir():
        for path in sorted(html.rglob("*.html")):
            rel = path.relative_to(html).as_posix()
            if rel.startswith(("_static/", "_sources/", "_images/")) or rel in GENERATED:
                continue
            if rel not in pages:
                pages.append(rel)
    return pages


@contextmanager
def chromium():
    """A headless Chromium with no network helpers (updates, sync, first-run pages)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def check_page(browser, path_or_url, main_selector: str = MAIN_CONTENT) -> PageReport:
    """Open one page in a fresh browser context and report its requests, errors and content."""
    url = str(path_or_url)
    if not url.startswith("file:"):
        url = Path(url).resolve().as_uri()
    report = PageReport(url=url)
    context = browser.new_context()
    page = context.new_page()

    def route(route):
        request_url = route.request.url
        if request_url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            record(request_url)
            route.abort()

    def record(request_url):
        if request_url not in report.network_requests:
            report.network_requests.append(request_url)

    def on_request(request):
        # A backstop for requests that bypass routing (service workers, preloads).
        if not request.url.startswith(LOCAL_SCHEMES):
            record(request.url)

    def on_failed(request):
        if request.url.startswith("file:"):
            report.failed_local_requests.append(f"{request.url} ({request.failure})")

    def on_console(message):
        if message.type == "error":
            report.console_errors.append(f"console: {message.text} @ {message.location}")

    def on_page_error(error):
        report.console_errors.append(f"uncaught: {error}")

    page.route("**/*", route)
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        page.goto(url, wait_until="load")
        # Wait for conditions, never for a quiet network: the page has loaded (every resource
        # fetched or refused) and every hop stepper has decoded its data and drawn its hop.
        page.wait_for_function(READY)
        # MathJax typesets after loading; wait for it to finish if the page uses it.
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        report.math_formulas = page.locator(".math").count()
        report.math_rendered = page.locator("mjx-container").count()
        main = page.locator(main_selector).first
        if main.count():
            report.main_visible = main.is_visible()
            report.main_text = main.inner_text().strip()
    finally:
        context.close()
    return report
