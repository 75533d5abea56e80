"""No page of the built book links to a placeholder, and its buttons follow the build's REPO_URL.

Runs on the book `make html` built (after it, like the other browser checks); fails, never
skips, without one.
"""

from __future__ import annotations

import pytest
import yaml

from tools.pagecheck import HTML, book_pages
from tools.repo_url import page_links, placeholder_links
from tools.toc import REPO

BUILD_CONFIG = REPO / "_build" / "config" / "_config.yml"


def test_no_built_page_links_to_a_placeholder():
    pages = list(HTML.rglob("*.html")) if HTML.is_dir() else []
    assert len(pages) >= len(book_pages()), f"{HTML} holds no built book: run make html first"
    assert placeholder_links(HTML) == []


@pytest.mark.parametrize("page", book_pages())
def test_launch_repository_and_issue_buttons_follow_the_builds_repo_url(page):
    assert BUILD_CONFIG.is_file(), f"{BUILD_CONFIG} is missing: build the book with make html"
    repo = (yaml.safe_load(BUILD_CONFIG.read_text()).get("repository") or {}).get("url")
    links = page_links((HTML / page).read_text(encoding="utf-8"))
    launch = [u for u in links if u.startswith("https://mybinder.org/v2/")]
    issues = [u for u in links if "/issues/new" in u]
    if repo is None:
        assert launch == [] and issues == [], "buttons rendered although no REPO_URL was set"
    else:
        owner_repo = repo.split("/", 3)[3]
        assert all(f"/v2/gh/{owner_repo}/" in u for u in launch), launch
        assert issues and all(u.startswith(f"{repo}/issues/new?") for u in issues), issues
        assert repo in links
        if page.startswith("notebooks/"):
            assert len(launch) == 1, "a chapter page has one Binder launch button"
