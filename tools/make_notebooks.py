"""Write the chapter notebooks (notebooks/NN-*.ipynb) from the chapter sources below.

Each chapter is one string: cells separated by marker lines `%% md` and `%% code`, a code
marker optionally followed by cell tags (`%% code hide-output`). Cell ids are the notebook's
stem plus the cell number, so regenerating gives the same ids. The notebooks are written
without outputs; `make notebooks` (tools/execute_notebooks.py) then runs them in place.

Usage: python tools/make_notebooks.py [NN ...]   (default: every chapter)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "pygments_lexer": "ipython3", "file_extension": ".py",
                      "mimetype": "text/x-python", "codemirror_mode": {"name": "ipython", "version": 3},
                      "nbconvert_exporter": "python"},
}


def build(stem: str, source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(metadata=METADATA)
    chunks = source.strip("\n").split("\n%% ")
    for n, chunk in enumerate(chunks):
        chunk = chunk.removeprefix("%% ")
        head, _, body = chunk.partition("\n")
        kind, *tags = head.split()
        body = body.strip("\n")
        cell_id = f"{stem[:3]}c{n:02d}"
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(body, id=cell_id)
        elif kind == "code":
            cell = nbformat.v4.new_code_cell(body, id=cell_id)
        else:
            raise ValueError(f"{stem}: unknown cell kind {kind!r}")
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    from tools.chapter_sources import CHAPTERS
    wanted = set(argv)
    for stem, source in CHAPTERS.items():
        if wanted and stem[:2] not in wanted:
            continue
        path = NOTEBOOKS / f"{stem}.ipynb"
        nbformat.write(build(stem, source), path)
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
