"""Sync each chapter's stored notebook from its MyST Markdown source (the first half of `make notebooks`).

A chapter is a pair: `notebooks/NN-name.md`, a MyST Markdown notebook in jupytext's `myst`
format that authors edit, and `notebooks/NN-name.ipynb`, the same cells with their stored
outputs, which the book is built from and nbval compares against. Both carry the jupytext
pairing `formats: ipynb,md:myst`, so JupyterLab with jupytext saves both on every edit.

For each `.md` this writes the `.ipynb`'s cells from the `.md`, keeping the stored outputs of
cells whose source is unchanged (what `jupytext --to ipynb --update` does). Cell ids are the
stem's number plus the cell's position (`05-c03`), so a sync gives the same bytes every time.
The outputs of changed cells are left empty; tools/execute_notebooks.py then runs every
notebook.

    python tools/make_notebooks.py [NN ...]          sync (default: every chapter)
    python tools/make_notebooks.py --check [NN ...]  report pairs whose cells differ; exit 1 if any

The other way round, after editing only an .ipynb outside JupyterLab:
`jupytext --to md:myst notebooks/NN-name.ipynb` rewrites its .md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PAIRING = "ipynb,md:myst"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def chapter_sources(wanted: set[str] | None = None) -> list[Path]:
    """The chapters' .md sources, in file-number order (optionally only the numbers wanted)."""
    return [path for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.md"))
            if not wanted or path.name[:2] in wanted]


def cell_inputs(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a pair must agree on, cell by cell: the cell type, the source and the tags."""
    return [(cell.cell_type, cell.source, tuple(cell.metadata.get("tags", ())))
            for cell in nb.cells]


def divergence(md_path: Path) -> str | None:
    """None when the .md and its .ipynb hold the same cells; else where they first differ."""
    ipynb_path = md_path.with_suffix(".ipynb")
    if not ipynb_path.is_file():
        return f"{ipynb_path.name} is missing"
    text = cell_inputs(jupytext.read(md_path, fmt="md:myst"))
    stored = cell_inputs(nbformat.read(ipynb_path, as_version=4))
    for n, (a, b) in enumerate(zip(text, stored)):
        if a != b:
            lines = [(x, y) for x, y in zip(a[1].splitlines() + [""], b[1].splitlines() + [""]) if x != y]
            where = f"{lines[0][0]!r} against {lines[0][1]!r}" if lines else f"{a[0]} {a[2]} against {b[0]} {b[2]}"
            return f"cell {n} differs ({md_path.name} against {ipynb_path.name}): {where}"
    if len(text) != len(stored):
        return f"{md_path.name} has {len(text)} cells, {ipynb_path.name} has {len(stored)}"
    return None


def sync(md_path: Path) -> nbformat.NotebookNode:
    """The .ipynb for md_path: the .md's cells, with the stored outputs of unchanged cells."""
    nb = jupytext.read(md_path, fmt="md:myst")
    ipynb_path = md_path.with_suffix(".ipynb")
    if ipynb_path.is_file():
        nb = combine_inputs_with_outputs(nb, nbformat.read(ipynb_path, as_version=4), fmt="md:myst")
    nb.metadata.setdefault("kernelspec", KERNELSPEC)
    nb.metadata.setdefault("jupytext", {})["formats"] = PAIRING
    for n, cell in enumerate(nb.cells):
        cell.id = f"{md_path.stem[:3]}c{n:02d}"
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("numbers", nargs="*", help="chapter numbers (NN); default every chapter")
    parser.add_argument("--check", action="store_true", help="only report pairs that differ")
    args = parser.parse_args(argv)
    sources = chapter_sources(set(args.numbers))
    if not sources:
        print("make_notebooks: no chapter sources found", file=sys.stderr)
        return 2
    if args.check:
        problems = [(path, divergence(path)) for path in sources]
        for path, problem in problems:
            if problem:
                print(f"{path.relative_to(REPO)}: {problem}", file=sys.stderr)
        return 1 if any(problem for _, problem in problems) else 0
    for path in sources:
        target = path.with_suffix(".ipynb")
        nbformat.write(sync(path), target)
        print(f"synced {target.relative_to(REPO)} from {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
