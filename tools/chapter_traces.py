"""Which exchanges the book's chapters show, and which lab comparison checks each on the kernel.

    .venv/bin/python tools/chapter_traces.py        # every chapter's traces and their lab comparison

A chapter's traces are the traces its code computes: the chapter's code cells (from its MyST
source, in order, in a fresh namespace, working directory notebooks/, as nbval runs them) are
executed with `netsim.stack.Network.send` and `Network.run` wrapped, so every exchange any cell
walks, through `Cluster.send`, a scenario function, a bare `Network` or a tool (`Cluster.ping`,
`traceroute`, `dig`, `fetch`, `nc`: each walk of its resolver and of its own traffic), is
recorded with the cell it came from. Nothing is displayed: a stepper is built, not rendered.

The lab's comparisons are every exchange a lab family runs on the kernel (`lab_exchanges()`):
the scenario family (netsim.lab.conformance: every shape, backend, scenario and protocol), the
MTU cases (tools/conformance_report.py), the troubleshooting cases (netsim.lab.breakages), the
chapters' other exchanges (netsim.lab.chapters), and the cases of the tools', hairpin, kube-dns
LoadBalancer and DNS lookup lab tests (netsim.lab.exchanges).
For each, the model's trace is computed here, without root, as the family computes it.

A chapter's trace and a lab exchange are the same exchange when the lab's own comparison
(netsim.lab.compare) finds no difference between the chapter's trace and the model trace the
lab compared with the kernel: the same capture points, frames and decisions' outcomes, the
kernel's random values (client ports, IP IDs, VXLAN source ports, DNS query IDs and cookies)
compared by rule.

Exchanges no lab can run are listed in NOT_IN_THE_LAB with the reason, which the conformance
appendix prints; a chapter trace is allowed to go unchecked only for such a reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from netsim.trace import Trace  # noqa: E402

CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)


@dataclass(frozen=True)
class ChapterTrace:
    """One exchange a chapter's code walks: the chapter, the code cell (0-based, among its code
    cells), the trace, and the backend of the network it ran on."""

    chapter: str
    cell: int
    trace: Trace
    backend: str | None        # a Cluster's backend; None for a bare Network (chapter 1's)

    @property
    def label(self) -> str:
        return f"{self.chapter} cell {self.cell}: {self.trace.title or 'trace'}"


@dataclass(frozen=True)
class LabExchange:
    """One exchange a lab family runs on the kernel, with the model trace it compares."""

    family: str               # "scenarios", "mtu", "troubleshooting", "chapters", "tools", "hairpin", ...
    key: str                  # within its family: "reference vxlan s4 tcp", "a", "fdb"
    trace: Trace


# Exchanges a chapter may show without a lab comparison, and why no lab can run them. The
# conformance appendix lists each reason under "Not in the lab".
NOT_IN_THE_LAB: dict[str, str] = {
    "udp backend": "the udp backend: its flannel0 is a TUN device served by flanneld's userspace proxy, which has "
                   "no kernel counterpart without flanneld (netsim follows proxy_amd64.c instead)",
}


def exempt(item: ChapterTrace) -> str | None:
    """The NOT_IN_THE_LAB key that excuses a chapter trace, if one does."""
    if item.backend == "udp" or any(h.device == "flannel0" for h in item.trace.hops):
        return "udp backend"
    return None


def code_cells(path: Path) -> list[str]:
    """The code cells of a MyST notebook, without their `:tags:` option lines."""
    cells = []
    for body in CELL.findall(path.read_text(encoding="utf-8")):
        lines = body.splitlines()
        while lines and lines[0].startswith(":"):
            lines.pop(0)
        cells.append("\n".join(lines))
    return cells


@contextlib.contextmanager
def recording(out: list[tuple[Trace, object]]) -> Iterator[None]:
    """Every trace `Network.send` or `Network.run` (the tools' walks) returns meanwhile goes to
    `out`, with its network."""
    from netsim.stack import Network
    originals = {name: getattr(Network, name) for name in ("send", "run")}

    def recorded(original):
        def walk(self, *args, **kwargs):
            trace = original(self, *args, **kwargs)
            out.append((trace, self))
            return trace
        return walk

    for name, original in originals.items():
        setattr(Network, name, recorded(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(Network, name, original)


def _backend(network) -> str | None:
    names = {d.kind for ns in network.namespaces.values() for d in ns.devices.values()}
    if "tun" in names:
        return "udp"
    if "vxlan" in names:
        return "vxlan"
    nodes = [n for n in network.namespaces if n.startswith("node")]
    return "host-gw" if nodes and "underlay" in network.namespaces else None


def chapter_traces(path: Path) -> list[ChapterTrace]:
    """Run a chapter's code cells and return every exchange they walked."""
    import matplotlib
    matplotlib.use("Agg")
    cells = code_cells(path)
    namespace: dict[str, object] = {"__name__": "__chapter__"}
    found: list[ChapterTrace] = []
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        for i, source in enumerate(cells):
            seen: list[tuple[Trace, object]] = []
            with recording(seen), contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
            found += [ChapterTrace(path.stem, i, trace, _backend(net)) for trace, net in seen]
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt
        plt.close("all")
    return found


def book_chapters() -> list[Path]:
    """The chapters of the book, in the table of contents' order (their MyST sources)."""
    from tools.book_notebooks import book_notebooks
    return [ROOT / nb.replace(".ipynb", ".md") for nb in book_notebooks()]


def lab_exchanges() -> list[LabExchange]:
    """Every exchange a lab family compares with the kernel, with its model trace."""
    from netsim.lab import breakages, chapters, edge, exchanges
    from netsim.lab.conformance import BACKENDS, PROTOS, SCENARIOS, SHAPES
    from tools.conformance_report import MTU_CASES
    out: list[LabExchange] = []
    for shape, (_, build) in SHAPES.items():
        for backend in BACKENDS:
            for key, (_, fn) in SCENARIOS.items():
                for proto in PROTOS:
                    trace = fn(cluster=build(backend), proto=proto)
                    label = f"s{key}" if isinstance(key, int) else key
                    out.append(LabExchange("scenarios", f"{shape} {backend} {label} {proto}", trace))
    for case in MTU_CASES:
        cluster = case.build(case.backend)
        size = case.payload(cluster) if callable(case.payload) else case.payload
        for _ in range(case.sends - 1):
            cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(size))
        out.append(LabExchange("mtu", case.key,
                               cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(size))))
    for bc in breakages.CASES:
        out.append(LabExchange("troubleshooting", bc.key, bc.send(bc.build())))
    for cc in chapters.CASES:
        out.append(LabExchange("chapters", cc.key, cc.send(cc.build())))
    out += [LabExchange(family, key, trace) for family, key, trace in exchanges.model_exchanges()]
    for ec in edge.CASES:                  # chapter 18's exchanges (tests/test_lab_edge.py)
        out.append(LabExchange("edge", ec.key, ec.send(ec.build())))
    for tc in edge.TOOL_RUNS:
        run = tc.model(tc.build())
        for j, trace in enumerate(run.traces):
            out.append(LabExchange("edge", tc.key + (f" trace {j + 1}" if len(run.traces) > 1 else ""), trace))
    return out


def _signature(trace: Trace) -> tuple:
    return tuple((h.where, h.direction, h.role) for h in trace.hops if h.role not in ("arp", "other"))


def match(item: ChapterTrace, exchanges: list[LabExchange],
          same: Callable[[Trace, Trace], bool] | None = None) -> LabExchange | None:
    """The first lab exchange that is the same exchange as the chapter's trace (module doc)."""
    from netsim.lab.compare import compare
    same = same or (lambda a, b: identical(a, b) or compare(a, b).ok)
    signature = _signature(item.trace)
    for ex in exchanges:
        if _signature(ex.trace) == signature and same(item.trace, ex.trace):
            return ex
    return None


def identical(a: Trace, b: Trace) -> bool:
    """The same exchange byte for byte: every hop at the same capture point, direction and role
    with the same bytes on the wire (netsim is deterministic, so a chapter's run of a lab case
    is this; it stands for the case where compare()'s rules for kernel randomness cannot take a
    model trace on both sides, as a TCP traceroute's quoted headers)."""
    return len(a.hops) == len(b.hops) and all(
        (x.where, x.direction, x.role) == (y.where, y.direction, y.role) and x.data == y.data
        for x, y in zip(a.hops, b.hops))


def coverage(chapters: list[Path] | None = None) -> list[tuple[ChapterTrace, LabExchange | None, str | None]]:
    """(chapter trace, the lab exchange that checks it or None, the NOT_IN_THE_LAB reason if exempt)."""
    exchanges = lab_exchanges()
    rows = []
    for path in chapters if chapters is not None else book_chapters():
        for item in chapter_traces(path):
            found = match(item, exchanges)
            rows.append((item, found, None if found else exempt(item)))
    return rows


def main() -> int:
    rows = coverage()
    missing = 0
    for item, found, reason in rows:
        where = (f"{found.family}: {found.key}" if found else
                 f"not in the lab ({reason})" if reason else "NO LAB COMPARISON")
        missing += found is None and reason is None
        print(f"{item.label:70} {where}")
    print(f"{len(rows)} traces, {sum(1 for r in rows if r[1])} with a lab comparison, "
          f"{sum(1 for r in rows if r[2])} not in the lab, {missing} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
