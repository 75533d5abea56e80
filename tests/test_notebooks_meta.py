"""The chapter notebooks are stored the way nbval and the static book need them.

nbval compares each cell's stored outputs with a fresh run, so a notebook stored without
outputs would pass while checking nothing. `make notebooks` writes them in this form.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools.toc import toc_files

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


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
