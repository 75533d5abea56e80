"""The core's layers, read from the source: the kernel model imports nothing of Kubernetes and
writes no files; the pcap writer takes a trace and imports nothing of the model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.sources import nodes

PACKAGE = Path(__file__).resolve().parent.parent / "netsim"
# What models Kubernetes and its programs (everything else in netsim/ outside views/, lab/ and
# the CLI is the kernel model).
KUBERNETES = ("netsim.cluster", "netsim.kubeproxy", "netsim.kubeproxy_nft", "netsim.cni", "netsim.flannel",
              "netsim.flannel_nft", "netsim.names", "netsim.networkpolicy", "netsim.scenarios")
# The programs in the pods (netsim.programs) are userspace: a resolver may know kubelet's search list.
NOT_KERNEL = (*KUBERNETES, "netsim.programs", "netsim.views", "netsim.lab", "netsim.cli", "netsim.__main__", "netsim.pcap")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package_dir: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every netsim module `path` imports, anywhere in it (module level, functions, TYPE_CHECKING),
    with the line: `from .x import y` counts as both x and x.y, whichever is a module."""
    name = module_name(path, package_dir)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in nodes(path):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base) if node.level else node.module or ""
            out += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
            out.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
    return [(t, line) for t, line in out if t == "netsim" or t.startswith("netsim.")]


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


KERNEL = sorted(p for p in PACKAGE.rglob("*.py") if not within(module_name(p), NOT_KERNEL)
                and module_name(p) != "netsim")


def test_the_kernel_model_is_most_of_the_package():
    names = {module_name(p) for p in KERNEL}
    assert {"netsim.owners", "netsim.trace", "netsim.stack", "netsim.walk", "netsim.route",
            "netsim.netfilter.core"} <= names
    assert not names & {"netsim.cluster", "netsim.flannel", "netsim.pcap"}


@pytest.mark.parametrize("path", KERNEL, ids=module_name)
def test_a_kernel_module_imports_nothing_of_kubernetes(path):
    assert [(t, line) for t, line in imports(path) if within(t, KUBERNETES)] == []


@pytest.mark.parametrize("path", KERNEL, ids=module_name)
def test_a_kernel_module_opens_no_file(path):
    calls = [node for node in nodes(path) if isinstance(node, ast.Call)
             and (getattr(node.func, "id", None) == "open"
                  or getattr(node.func, "attr", None) in ("write_text", "write_bytes", "open"))]
    assert [c.lineno for c in calls] == []


def test_the_pcap_writer_imports_nothing_of_the_model_and_the_model_imports_it_only_when_asked():
    assert imports(PACKAGE / "pcap.py") == []
    trace = ast.parse((PACKAGE / "trace.py").read_text())
    module_level = [node for node in trace.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(node.module != "pcap" for node in module_level if isinstance(node, ast.ImportFrom))
    lazy = [node for node in ast.walk(trace) if isinstance(node, ast.ImportFrom) and node.module == "pcap"]
    assert [(node.level, [a.name for a in node.names]) for node in lazy] == [(1, ["write"])]


def test_the_import_reader_sees_imports_under_type_checking(tmp_path):
    """The reader counts an import inside `if TYPE_CHECKING:` (like the one of Cluster that
    owners.py had), so the guards above would catch it."""
    source = (PACKAGE / "owners.py").read_text().replace(
        "if TYPE_CHECKING:  # pragma: no cover\n", "if TYPE_CHECKING:  # pragma: no cover\n    from .cluster import Cluster\n")
    probe = tmp_path / "netsim" / "owners.py"
    probe.parent.mkdir()
    probe.write_text(source)
    line = source.splitlines().index("    from .cluster import Cluster") + 1
    assert ("netsim.cluster", line) in imports(probe, tmp_path / "netsim")
    assert ("netsim.cluster.Cluster", line) in imports(probe, tmp_path / "netsim")
