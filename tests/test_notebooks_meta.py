"""The chapter notebooks are stored the way nbval and the static book need them.

nbval compares each cell's stored outputs with a fresh run, so a notebook stored without
outputs would pass while checking nothing. `make notebooks` writes them in this form.
Each chapter is a pair, notebooks/NN-name.md (MyST Markdown, what authors edit) and
notebooks/NN-name.ipynb (the same cells with stored outputs): the two must never diverge.
"""

from __future__ import annotations

from pathlib import Path

import subprocess
import sys

import jupytext
import nbformat
import pytest

from tools.make_notebooks import PAIRING, cell_inputs, divergence, sync
from tools.toc import toc_files

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SOURCES = sorted((REPO / "notebooks").glob("*.md"))


def toc_entries() -> set[str]:
    return set(toc_files())


def test_there_are_notebooks():
    assert NOTEBOOKS


def test_every_toc_entry_exists():
    for entry in toc_entries():
        assert any((REPO / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb")), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_the_toc(path):
    assert f"notebooks/{path.stem}" in toc_entries()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_after_one_clean_top_to_bottom_run(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert any(cell.outputs for cell in code), "no stored outputs: nbval would check nothing"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert errors == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_run_specific_metadata(path):
    nb = nbformat.read(path, as_version=4)
    # Widget state would make the book load the widget JavaScript from a CDN.
    assert "widgets" not in nb.metadata
    assert all("execution" not in cell.metadata for cell in nb.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_a_title(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")


def test_toc_order_is_file_number_order():
    """Chapters are numbered in the order they were added to a part: within each part of the
    TOC the numbers rise; the numbers are unique; chapters 1 to 12 are the book's first
    edition, in reading order (later chapters join the part they belong to: 15 and 16 after
    11, 17 after 12)."""
    import yaml
    toc = yaml.safe_load((Path(__file__).resolve().parent.parent / "book" / "_toc.yml").read_text(encoding="utf-8"))
    numbers = []
    for part in toc["parts"]:
        mine = [int(c["file"].removeprefix("notebooks/")[:2]) for c in part["chapters"]
                if c["file"].startswith("notebooks/")]
        assert mine == sorted(mine), part["caption"]
        numbers += mine
    assert len(numbers) == len(set(numbers))
    assert [n for n in numbers if n <= 12] == list(range(1, 13))


def test_every_notebook_has_its_markdown_source_and_back():
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_markdown_source_is_a_paired_myst_notebook(path):
    text = path.read_text(encoding="utf-8")
    header = jupytext.read(path).metadata
    assert header["jupytext"]["text_representation"]["format_name"] == "myst"
    assert header["jupytext"]["formats"] == PAIRING
    assert header["kernelspec"]["name"] == "python3"
    assert text.startswith("---\n")
    stored = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
    assert stored.metadata["jupytext"]["formats"] == PAIRING


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_markdown_source_and_stored_notebook_hold_the_same_cells(path):
    assert divergence(path) is None
    text = cell_inputs(jupytext.read(path, fmt="md:myst"))
    stored = cell_inputs(nbformat.read(path.with_suffix(".ipynb"), as_version=4))
    assert text == stored


def test_a_diverging_pair_is_caught(tmp_path):
    source = SOURCES[0]
    for suffix in (".md", ".ipynb"):
        (tmp_path / f"{source.stem}{suffix}").write_bytes(source.with_suffix(suffix).read_bytes())
    md = tmp_path / source.name
    assert divergence(md) is None
    md.write_text(md.read_text(encoding="utf-8").replace("\n# ", "\n# Edited: ", 1), encoding="utf-8")
    assert "cell 0 differs" in divergence(md)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_syncing_an_unchanged_pair_changes_nothing(path):
    stored = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
    synced = sync(path)
    assert [cell.id for cell in synced.cells] == [cell.id for cell in stored.cells]
    assert [cell.get("outputs") for cell in synced.cells] == [cell.get("outputs") for cell in stored.cells]
    assert cell_inputs(synced) == cell_inputs(stored)


def test_nbval_collects_only_the_stored_notebooks():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--collect-only", "-q", "notebooks/"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collected = {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}
    assert collected == {f"notebooks/{p.name}" for p in NOTEBOOKS}


def test_the_book_builds_from_the_ipynb_not_from_its_markdown_twin():
    """Sphinx would find two sources per chapter ("multiple files found", a warning -W fails on) and
    might render the .md, which has no outputs: book/_config.yml must exclude the .md files."""
    import fnmatch

    import yaml

    config = yaml.safe_load((REPO / "book" / "_config.yml").read_text(encoding="utf-8"))
    patterns = config["exclude_patterns"]
    for source in SOURCES:
        rel = source.relative_to(REPO).as_posix()
        assert any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), rel
    for stored in NOTEBOOKS:
        rel = stored.relative_to(REPO).as_posix()
        assert not any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), rel
