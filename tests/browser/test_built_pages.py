"""Every page of the built book loads offline in Chromium, with no error, showing its content.

Pages come from the table of contents: if the book was not built, these fail, never skip.
"""

from __future__ import annotations

import pytest

from tools import pagecheck
from tools.pagecheck import HTML, book_pages
from tools.toc import toc_files


@pytest.mark.parametrize("page", book_pages())
def test_page_loads_offline_without_errors(browser, page):
    path = HTML / page
    assert path.is_file(), f"{path} is missing: build the book first (make html)"
    report = pagecheck.check_page(browser, path)
    assert report.network_requests == [], "the page asked the network for something"
    assert report.failed_local_requests == [], "the page refers to local files the build lacks"
    assert report.console_errors == []
    assert report.main_visible, "the page's main content is not visible"
    assert len(report.main_text) > 50, f"the page's main content is nearly empty: {report.main_text!r}"
    assert report.math_rendered == report.math_formulas, "some formulas were not typeset"


def test_index_redirects_to_the_first_page(browser):
    index = HTML / "index.html"
    assert index.is_file(), f"{index} is missing: build the book first (make html)"
    report = pagecheck.check_page(browser, index)
    assert report.network_requests == []
    assert report.console_errors == []
    root = toc_files()[0]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(index.as_uri())
        page.wait_for_url(f"**/{root}.html")
        assert page.locator(f"{pagecheck.MAIN_CONTENT} h1").first.is_visible()
    finally:
        context.close()
