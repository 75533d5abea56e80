"""netsim's own source, parsed once per test session.

Several test files read the package's modules as syntax trees (the import graph, the layers,
the rooms' sizes, the sentences the core does not write). Parsing the whole package takes
about half a second on the 2-core machine, and each of those files used to parse it again, some
once per test. These helpers keep one tree, and one list of its nodes, per file text: a file is
read afresh on every call and parsed again whenever its text differs, so a file a test writes
(under tmp_path) is never served from an older parse. The trees are shared: read them, never
change them.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


@cache
def _tree(text: str) -> ast.Module:
    return ast.parse(text)


@cache
def _nodes(text: str) -> tuple[ast.AST, ...]:
    return tuple(ast.walk(_tree(text)))


def tree(path: Path) -> ast.Module:
    """The syntax tree of the file at `path` (shared: do not modify it)."""
    return _tree(path.read_text())


def nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the file's tree, in ast.walk's order (breadth first from the module)."""
    return _nodes(path.read_text())
