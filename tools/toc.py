"""Read the book's table of contents (book/_toc.yml)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TOC = REPO / "book" / "_toc.yml"


def toc_files(toc_path: Path = TOC) -> list[str]:
    """Every document the TOC names, root first, as repo-relative paths without extension."""
    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key, value in node.items():
                if key != "root":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found
