"""Markers by test family, so the model's own tests can run alone (`make test-fast`).

- `lab`: needs root and the real kernel (network namespaces, iptables, tcpdump).
- `fuzz`: the bounded fuzz of random clusters (tests/test_fuzz.py), too slow for the fast loop.
- `tools`: runs other programs or heavy toolchains: tshark, pip's resolver, jupyter-book,
  nbval, nbformat's schema checks, the benchmark script, or a fresh Python interpreter per
  hash seed.

A whole file is marked by its name (so a new `test_lab_*.py` is covered by the pattern);
single tests in otherwise model-only files are marked by node id below or with a
`pytest.mark` in the file. `make test` runs every family; `make test-fast` runs
`pytest -m "not lab and not tools and not fuzz" tests`. The markers are declared in pyproject.toml.

A file whose every test the `-m` expression leaves out is not even imported: importing
test_notebooks_meta.py or test_server_config.py alone (nbformat loads jsonschema, whose
rfc3987 grammar takes 3 s to build) costs seconds.

The cyclic garbage collector is tuned for a test session (see `_GC_THRESHOLDS`): every cluster
netsim builds is a web of cycles (namespaces and their devices, sockets and their namespaces),
so a session leaves hundreds of thousands of objects for the collector, and Python's default
thresholds spent some 4 s of a 20 s `make test-fast` in it, most in full collections.

`make test` run as root sets NETSIM_NO_SKIPS=1: there the Makefile has installed every tool
the tests use and the lab can run, so a skipped test means something is missing (a Debian
package left out of APT_PACKAGES once skipped nc's 10 tests on a fresh machine) and is
reported as a failure naming its reason. Strict xfails (known deviations) are not skips.
"""

from __future__ import annotations

import gc
import itertools
import os
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

# the lab test files' shared helpers assert; rewritten like a test module, so a failure shows the values
pytest.register_assert_rewrite("tests.labkit")

# file name pattern -> marker given to every test in a matching file
FILE_MARKERS: tuple[tuple[str, str], ...] = (
    ("test_lab.py", "lab"),
    ("test_lab_*.py", "lab"),
    ("test_iptables_real*.py", "lab"),
    ("test_pipeline_guards*.py", "tools"),
    ("test_environment*.py", "tools"),
    ("test_notebooks_meta*.py", "tools"),
    ("test_server_config*.py", "tools"),    # JupyterLab's save hook; importing nbformat costs 3 s
    ("test_bench_smoke*.py", "tools"),
    ("test_book_claims*.py", "tools"),      # reads the built book, building it when stale
    ("test_chapter_traces*.py", "tools"),   # runs every chapter's code cells
    ("test_fuzz*.py", "fuzz"),
)

# (file name, test function name) -> marker: tests that start a fresh interpreter per hash seed
# or run a toolchain
TEST_MARKERS: dict[tuple[str, str], str] = {
    ("test_views_diagram.py", "test_svg_is_byte_identical_across_processes_and_hash_seeds"): "tools",
    ("test_views_stepper.py", "test_html_is_byte_identical_across_processes_and_hash_seeds"): "tools",
    ("test_properties.py", "test_traces_do_not_depend_on_the_hash_seed"): "tools",
    # a small Jupyter Book build each (about 6 s of CPU)
    ("test_links.py", "test_without_repo_url_the_book_has_no_launch_repository_or_issue_button"): "tools",
    ("test_links.py", "test_with_repo_url_every_button_points_at_that_repository"): "tools",
}

_KEYWORDS = {"and", "or", "not"}

# (gen0, gen1, gen2) for gc.set_threshold; Python's default is (700, 10, 10). A larger youngest
# generation lets most of a test's short-lived cycles die in far fewer passes (about 400 young
# collections a session instead of 6,000, and 3 full ones instead of 14), for the same peak
# memory (about 280 MB of RSS either way). Only when garbage is found changes, never what is.
_GC_THRESHOLDS = (10_000, 10, 10)


def pytest_configure(config: pytest.Config) -> None:
    gc.set_threshold(*_GC_THRESHOLDS)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Everything the session leaves alive (cached clusters, traces, modules) goes into the
    collector's permanent generation, so the interpreter's exit does not walk it all once more
    in a last full collection (about 2 s after pytest's summary line)."""
    gc.freeze()


def file_marker(name: str) -> str | None:
    """The marker every test of a file named `name` gets, if any."""
    return next((marker for pattern, marker in FILE_MARKERS if fnmatch(name, pattern)), None)


def _never_selected(markexpr: str, marker: str) -> bool:
    """Whether `-m markexpr` rejects every test that carries `marker`, whatever other markers
    it has: tried for every truth assignment of the expression's other names."""
    if not markexpr or "=" in markexpr:                  # marker(arg=value): not worth it
        return False
    try:
        from _pytest.mark.expression import Expression     # what `-m` itself compiles
    except ImportError:                                     # moved in some pytest: collect everything
        return False

    names = sorted(set(re.findall(r"[\w.:+-]+", markexpr)) - _KEYWORDS - {marker})
    if len(names) > 8:
        return False
    try:
        expr = Expression.compile(markexpr)
    except SyntaxError:
        return False                                    # let pytest report it
    for values in itertools.product((False, True), repeat=len(names)):
        truth = dict(zip(names, values), **{marker: True})
        if expr.evaluate(lambda name, **_kw: truth.get(name, False)):
            return False
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under NETSIM_NO_SKIPS=1 (make test as root), a skipped test fails with its reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("NETSIM_NO_SKIPS") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped under `make test` as root, where every test must run (NETSIM_NO_SKIPS=1): "
                           f"{reason}")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    marker = file_marker(collection_path.name)
    if marker is not None and _never_selected(config.getoption("markexpr", ""), marker):
        return True
    return None


@pytest.hookimpl(tryfirst=True)         # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        marker = file_marker(name)
        if marker is not None:
            item.add_marker(marker)
        function = getattr(item, "originalname", item.name)
        extra = TEST_MARKERS.get((name, function))
        if extra is not None:
            item.add_marker(extra)
