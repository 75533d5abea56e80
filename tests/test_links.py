"""The repository URL is one build setting, and no placeholder link survives into the book.

tools/repo_url.py turns REPO_URL into the build's config; these tests check the URL rules,
the generated config, the placeholder scanner on pages made here, and (with a small real
Jupyter Book build: the intro and one chapter) that the buttons appear only with a REPO_URL
and then point at that repository. tests/browser/test_built_links.py scans the whole built book.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.repo_url import (
    CONFIG,
    RepoUrlError,
    book_config,
    check_repo_url,
    page_links,
    placeholder_links,
    write_config,
)
from tools.toc import REPO

FORK = "https://github.com/alice-netsim/packets-in-kubernetes"


@pytest.mark.parametrize("url, normal", [
    ("https://github.com/alice/packets", "https://github.com/alice/packets"),
    ("https://github.com/alice/packets.git", "https://github.com/alice/packets"),
    ("https://github.com/alice/packets/", "https://github.com/alice/packets"),
    ("https://gitlab.com/bob/book", "https://gitlab.com/bob/book"),
])
def test_a_repository_url_is_accepted_and_normalised(url, normal):
    assert check_repo_url(url) == normal


@pytest.mark.parametrize("url", [
    "https://github.com/OWNER/packets-in-kubernetes",
    "https://github.com/owner/packets-in-kubernetes",
    "https://github.com/<owner>/<repo>",
    "https://github.com/your-name/packets",
    "https://example.com/alice/packets",
    "https://github.com/executablebooks/jupyter-book",
    "http://github.com/alice/packets",
    "github.com/alice/packets",
    "https://github.com/alice",
    "https://github.com/alice/packets/tree/main",
    "https://github.com/alice/packets'; rm -rf ~; '",
    "",
])
def test_a_placeholder_or_malformed_url_is_refused(url):
    with pytest.raises(RepoUrlError):
        check_repo_url(url)


def test_the_committed_config_names_no_repository_and_no_buttons():
    config = yaml.safe_load(CONFIG.read_text())
    assert "repository" not in config
    assert not config.get("launch_buttons", {}).get("binderhub_url")
    assert not config["html"].get("use_repository_button") and not config["html"].get("use_issues_button")
    assert book_config(None) == config


def test_the_footer_names_both_licences():
    footer = yaml.safe_load(CONFIG.read_text())["html"]["extra_footer"]
    links = page_links(footer)
    assert links == ["https://creativecommons.org/licenses/by/4.0/", "https://www.apache.org/licenses/LICENSE-2.0"]
    assert "CC BY 4.0" in footer and "Apache License 2.0" in footer


def test_a_repo_url_adds_the_repository_and_its_three_buttons(tmp_path):
    out = write_config(tmp_path / "_config.yml", FORK + ".git", branch="work")
    config = yaml.safe_load(out.read_text())
    assert config["repository"] == {"url": FORK, "path_to_book": "", "branch": "work"}
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert config["launch_buttons"] == {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org"}
    base = yaml.safe_load(CONFIG.read_text())
    assert {k: v for k, v in config.items() if k not in ("repository", "launch_buttons", "html")} == {
        k: v for k, v in base.items() if k not in ("launch_buttons", "html")}
    assert config["html"]["extra_footer"] == base["html"]["extra_footer"]


def test_a_bad_branch_or_a_config_that_names_a_repository_is_refused(tmp_path):
    with pytest.raises(RepoUrlError):
        book_config(FORK, branch="main; echo")
    base = tmp_path / "_config.yml"
    base.write_text("title: t\nrepository:\n  url: https://github.com/OWNER/x\n")
    with pytest.raises(RepoUrlError, match="must not name a repository"):
        book_config(None, base=base)


def test_the_scanner_finds_placeholder_links_in_every_kind_of_attribute(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "a.html").write_text(
        '<a href="https://github.com/OWNER/packets">repo</a><a href="https://mybinder.org/v2/gh/alice/b/main">ok</a>'
        '<img src="https://example.com/x.png"><p>OWNER in plain text is not a link</p>')
    (tmp_path / "sub" / "b.html").write_text(
        '<meta property="og:url" content="https://github.com/executablebooks/jupyter-book">'
        '<button data-url="https://mybinder.org/v2/gh/%3Cowner%3E/repo/main">launch</button>'
        '<a href="notebooks/OWNER.html">a local page is not a placeholder link</a>')
    (tmp_path / "_static" / "c.html").write_text('<a href="https://github.com/OWNER/x">vendored</a>')
    assert placeholder_links(tmp_path) == [
        ("a.html", "https://github.com/OWNER/packets"),
        ("a.html", "https://example.com/x.png"),
        ("sub/b.html", "https://github.com/executablebooks/jupyter-book"),
        ("sub/b.html", "https://mybinder.org/v2/gh/%3Cowner%3E/repo/main"),
    ]


def _small_build(tmp_path: Path, repo_url: str | None) -> Path:
    """The intro and the first chapter, built by Jupyter Book with the generated config."""
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01-toolbox\n")
    config = write_config(tmp_path / "config" / "_config.yml", repo_url)
    out = tmp_path / "out"
    # -n (nitpicky) is left out: the intro links to chapters this small book does not build.
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", "--config", str(config), "--toc", str(toc),
           "--path-output", str(out), "."]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "_build" / "html"


def _external_links(page: Path) -> list[str]:
    return [u for u in page_links(page.read_text()) if u.startswith("https://")]


def test_without_repo_url_the_book_has_no_launch_repository_or_issue_button(tmp_path):
    html = _small_build(tmp_path, None)
    chapter = html / "notebooks" / "01-toolbox.html"
    links = _external_links(chapter)
    assert not [u for u in links if "mybinder.org/v2" in u or "github.com" in u or "gitlab.com" in u], links
    assert 'title="Launch on Binder"' not in chapter.read_text()
    assert placeholder_links(html) == []


def test_with_repo_url_every_button_points_at_that_repository(tmp_path):
    html = _small_build(tmp_path, FORK)
    chapter = _external_links(html / "notebooks" / "01-toolbox.html")
    assert f"https://mybinder.org/v2/gh/alice-netsim/packets-in-kubernetes/main?urlpath=lab/tree/notebooks/01-toolbox.ipynb" in chapter
    assert FORK in chapter
    assert any(u.startswith(FORK + "/issues/new?") for u in chapter)
    assert [u for u in chapter if "github.com" in u and not u.startswith(FORK)] == []
    assert placeholder_links(html) == []
