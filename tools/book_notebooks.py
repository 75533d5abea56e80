"""The notebooks of the book: every .ipynb the table of contents (book/_toc.yml) names.

`make test-notebooks` hands this list to nbval, so it checks the book's chapters and nothing
else: not a stray Untitled.ipynb, not a checkpoint copy, and a renamed or new chapter is
picked up as soon as the TOC lists it. A TOC entry is a notebook when `<entry>.ipynb` exists
(a MyST Markdown chapter paired through jupytext has one beside its .md); an entry with no
source file at all is an error, so a typo in the TOC cannot shrink the list unnoticed.

    python tools/book_notebooks.py      # one repo-relative path a line
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.toc import REPO, TOC, toc_files  # noqa: E402

SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")


class TocError(Exception):
    """The TOC names a document that has no source file."""


def book_notebooks(toc_path: Path = TOC, root: Path = REPO) -> list[str]:
    """Repo-relative paths of the TOC's notebooks, in TOC order."""
    found = []
    for entry in toc_files(toc_path):
        if not any((root / f"{entry}{suffix}").is_file() for suffix in SOURCE_SUFFIXES):
            raise TocError(f"{toc_path}: {entry!r} has no source file ({', '.join(SOURCE_SUFFIXES)})")
        if (root / f"{entry}.ipynb").is_file():
            found.append(f"{entry}.ipynb")
    return found


def main() -> int:
    try:
        paths = book_notebooks()
    except TocError as err:
        print(err, file=sys.stderr)
        return 1
    if not paths:
        print(f"{TOC}: names no notebook", file=sys.stderr)
        return 1
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
