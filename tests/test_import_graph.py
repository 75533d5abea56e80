"""The import graph of netsim/, read from the source: no circle anywhere, the protocol modules
written against the kernel interface (netsim/kernel.py) and not against the walk or each other,
and rooms of a sane size.

What counts as an import: every `import` and `from ... import` statement anywhere in a module,
at module level, inside a function, and under `if TYPE_CHECKING:` too. An import made only for
a type annotation is still a dependency a reader has to follow, and a circle through one is a
circle of ideas even when Python would not fail on it; so the graph has no exception for them.
`from . import x` is an import of the module x (and of the package only when x is a name the
package defines). What is not counted: the package a module lives in, which Python initialises
before any of its submodules. That is how packages work, not a dependency the module chose, and
counting it would put every package's `__init__` in a circle with the submodules it re-exports.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.sources import nodes

PACKAGE = Path(__file__).resolve().parent.parent / "netsim"

# The kernel's protocol modules: each is written against netsim.kernel.Kernel and imports none of
# the others, nor the walk that implements the interface, nor the network that runs it.
PROTOCOLS = ("netsim.arp", "netsim.bridge", "netsim.veth", "netsim.vxlan", "netsim.tun", "netsim.ip_input",
             "netsim.ip_forward", "netsim.ip_output", "netsim.ip_fragment", "netsim.icmp", "netsim.sockets",
             "netsim.flannel", "netsim.netfilter.nf_reject_ipv4")
# flanneld creates its devices (flannel.1, flannel0): it imports their classes
DEVICE_CLASSES = {"netsim.flannel": {"netsim.vxlan", "netsim.tun"}}
HUB = ("netsim.walk", "netsim.stack")
MAX_CLASS_LINES, MAX_MODULE_LINES = 300, 900


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    """module -> {module it imports: the first line that does}, for the modules of `package`."""
    paths = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for name, path in paths.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges: dict[str, int] = {}
        for node in nodes(path):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = here.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in paths else source)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                if target in paths and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@cache
def netsim_graph() -> dict[str, dict[str, int]]:
    """netsim's own graph, read on first use rather than at import: collecting this file (which
    every pytest-xdist worker does) then parses nothing. Shared: read it, never change it."""
    return import_graph(PACKAGE)


def test_netsim_has_no_import_circle():
    graph = netsim_graph()
    found = circles(graph)
    described = [" -> ".join(f"{m} (line {graph[m][n]})" for m, n in zip(c, c[1:] + c[:1]) if n in graph[m])
                 for c in found]
    assert found == [], "\n".join(described)


def test_the_graph_reader_finds_a_circle_made_only_of_type_annotations(tmp_path):
    """A circle closed by an import under TYPE_CHECKING, one through a function-level import and
    a clean package: the reader reports the first two, as the test above would."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\nfrom . import sub\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nclass A: ...\n")
    (pkg / "b.py").write_text("from .a import A\nclass B(A): ...\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import f\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from . import d\n    return d\n")
    (pkg / "sub" / "d.py").write_text("from .c import f\n")
    (pkg / "e.py").write_text("from . import a\nfrom .sub import c\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b": 3}
    assert graph["pkg.e"] == {"pkg.a": 1, "pkg.sub.c": 2}       # `from . import a` is module a, not the package
    assert circles(graph) == [["pkg.a", "pkg.b"], ["pkg.sub.c", "pkg.sub.d"]]


@pytest.mark.parametrize("module", PROTOCOLS)
def test_a_protocol_module_is_written_against_the_kernel_interface(module):
    """It imports netsim.kernel, and nothing it imports, directly or not, is the walk, the
    network, or another protocol module (flanneld may import the classes of the devices it
    creates)."""
    graph = netsim_graph()
    assert "netsim.kernel" in graph[module]
    allowed = DEVICE_CLASSES.get(module, set())
    assert sorted(reachable(graph, module) & (set(PROTOCOLS) | set(HUB)) - allowed) == []


def test_the_walk_implements_the_interface_and_the_interface_names_no_protocol():
    graph = netsim_graph()
    assert {"netsim.kernel", *PROTOCOLS} - {"netsim.flannel"} <= set(graph["netsim.walk"])
    assert sorted(reachable(graph, "netsim.kernel") & (set(PROTOCOLS) | set(HUB))) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rooms_of_a_sane_size(path):
    """No module over 900 lines, no class over 300 (the developers' rules)."""
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    big = [(node.name, node.end_lineno - node.lineno + 1) for node in nodes(path)
           if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert big == []
