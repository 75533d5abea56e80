"""nbval collects the book's notebooks (the TOC's), and git ignores Jupyter's stray files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.book_notebooks import TocError, book_notebooks
from tools.toc import REPO, toc_files


def _toc(tmp_path: Path, chapters: list[str]) -> Path:
    toc = tmp_path / "book" / "_toc.yml"
    toc.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    body = "".join(f"      - file: {c}\n" for c in chapters)
    toc.write_text(f"format: jb-book\nroot: book/intro\nparts:\n  - caption: C\n    chapters:\n{body}")
    return toc


def test_the_list_is_the_tocs_notebooks_in_toc_order():
    expected = [f"{e}.ipynb" for e in toc_files() if (REPO / f"{e}.ipynb").is_file()]
    assert book_notebooks() == expected
    assert expected and all(p.startswith("notebooks/") for p in expected)


def test_a_renamed_chapter_follows_the_toc_and_strays_are_left_out(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for name in ("01-a.ipynb", "02-renamed.ipynb", "02-renamed.md", "Untitled.ipynb", "old.ipynb"):
        (nbdir / name).write_text("{}")
    (tmp_path / "book" / "glossary.md").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "book" / "glossary.md").write_text("# Glossary\n")
    toc = _toc(tmp_path, ["notebooks/01-a", "notebooks/02-renamed", "book/glossary"])
    assert book_notebooks(toc, tmp_path) == ["notebooks/01-a.ipynb", "notebooks/02-renamed.ipynb"]


def test_a_toc_entry_without_a_source_file_is_an_error(tmp_path):
    (tmp_path / "notebooks").mkdir()
    toc = _toc(tmp_path, ["notebooks/01-typo"])
    with pytest.raises(TocError, match="01-typo"):
        book_notebooks(toc, tmp_path)


def test_the_script_prints_one_path_a_line():
    out = subprocess.run([sys.executable, "tools/book_notebooks.py"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines() == book_notebooks()


def test_the_makefile_hands_nbval_the_scripts_list():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ntest-notebooks:", 1)[1].split("\n\n", 1)[0]
    assert "tools/book_notebooks.py" in recipe and "--nbval" in recipe
    assert not re.search(r"\snotebooks/?\s*$", recipe, re.M), "nbval must not collect the whole folder"


@pytest.mark.parametrize("path", [
    "notebooks/.ipynb_checkpoints/01-toolbox-checkpoint.ipynb",
    "notebooks/Untitled.ipynb",
    "notebooks/Untitled3.ipynb",
    "Untitled.ipynb",
    "notebooks/untitled.txt",
    "_build/html/index.html",
    ".venv/bin/python",
])
def test_git_ignores_jupyters_stray_files(path):
    proc = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert proc.returncode == 0, f"{path} is not ignored"


@pytest.mark.parametrize("path", ["notebooks/01-toolbox.ipynb", "book/intro.md", "binder/environment.yml"])
def test_git_keeps_the_books_files(path):
    proc = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert proc.returncode == 1, f"{path} is ignored"
