"""The Python side of 'Edit and run' (book/_static/netsim-run/runner.py) and `make serve`, in CPython.

runner.py runs in the reader's browser (Pyodide, tests/browser/test_run_in_page.py); it is plain
Python, so what it makes of a cell is checked here too: streams, the last value's display, the
traceback of an error, and a wheel unpacked on the first import of its package.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

import netsim
from netsim.views import Stepper
from tools.serve import Served

RUNNER = Path(__file__).resolve().parent.parent / "book" / "_static" / "netsim-run" / "runner.py"


@pytest.fixture
def runner():
    """A fresh copy of the module (its namespace is the page's: one per test)."""
    spec = importlib.util.spec_from_file_location("netsim_page_runner_under_test", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_join_one_stream_record_per_stream_in_order(runner):
    out = runner.run_cell("import sys\nprint('a')\nprint('b')\nprint('oops', file=sys.stderr)\nprint('c')")
    assert out == [{"type": "stream", "name": "stdout", "text": "a\nb\n"},
                   {"type": "stream", "name": "stderr", "text": "oops\n"},
                   {"type": "stream", "name": "stdout", "text": "c\n"}]


def test_the_last_expression_is_displayed_unless_a_semicolon_ends_the_cell(runner):
    assert runner.run_cell("x = 6 * 7\nx") == [{"type": "display", "data": {"text/plain": "42"}}]
    assert runner.run_cell("x;") == []
    assert runner.run_cell("x = 1") == []
    assert runner.run_cell("None") == []
    assert runner.run_cell("_ + 1") == [{"type": "display", "data": {"text/plain": "43"}}]   # _ is the last value


def test_cells_share_one_namespace_and_display_shows_values_mid_cell(runner):
    runner.run_cell("import netsim\ncluster = netsim.reference_cluster()")
    out = runner.run_cell("display('first')\nprint(cluster.show('node1', 'ip route'))")
    assert out == [{"type": "display", "data": {"text/plain": "'first'"}},
                   {"type": "stream", "name": "stdout", "text": netsim.reference_cluster().show("node1", "ip route") + "\n"}]


def test_a_stepper_shows_its_static_face_and_nothing_that_needs_a_kernel(runner):
    (out,) = runner.run_cell("import netsim\nfrom netsim import views\nc = netsim.reference_cluster()\n"
                             "t = netsim.scenarios.pod_to_pod_cross_node(cluster=c)\nviews.Stepper(t, c)")
    assert out["type"] == "display"
    assert list(out["data"]) == ["text/html", "text/plain"]            # no widget view: no kernel in the page
    cluster = netsim.reference_cluster()
    trace = netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)
    face = Stepper(trace, cluster).to_html()
    uid = lambda html: html.split('id="', 1)[1].split('"', 1)[0]    # noqa: E731
    assert out["data"]["text/html"] == face.replace(uid(face), uid(out["data"]["text/html"]))
    assert out["data"]["text/plain"] == Stepper(trace, cluster).text()


def test_html_and_svg_reprs_are_used_without_a_mime_bundle(runner):
    runner.run_cell("class H:\n    def _repr_html_(self): return '<b>h</b>'\n"
                    "class S:\n    def _repr_svg_(self): return '<svg/>'\n    def __repr__(self): return 'S()'")
    assert runner.run_cell("H()")[0]["data"]["text/html"] == "<b>h</b>"
    assert runner.run_cell("S()")[0]["data"] == {"image/svg+xml": "<svg/>", "text/plain": "S()"}


def test_an_error_shows_its_traceback_from_the_cells_own_line_and_stops_the_cell(runner):
    out = runner.run_cell("print('before')\ndef f(n):\n    return [1][n]\n\nf(5)\nprint('after')")
    assert out[0] == {"type": "stream", "name": "stdout", "text": "before\n"}
    err = out[1]
    assert (err["type"], err["ename"], err["evalue"]) == ("error", "IndexError", "list index out of range")
    lines = err["traceback"].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith('  File "<cell 1>", line 5, in <module>') and lines[2].strip() == "f(5)"
    assert 'line 3, in f' in lines[3] and lines[4].strip() == "return [1][n]"
    assert lines[-1] == "IndexError: list index out of range"
    assert "runner.py" not in err["traceback"] and len(out) == 2


def test_a_syntax_error_and_exit_are_shown_too(runner):
    (err,) = runner.run_cell("x = (1,")
    assert err["ename"] == "SyntaxError" and '"<cell 1>", line 1' in err["traceback"]
    (err,) = runner.run_cell("raise SystemExit(3)")
    assert err["ename"] == "SystemExit" and err["evalue"] == "3"
    assert json.loads(runner.run_cell_json("print(1)")) == [{"type": "stream", "name": "stdout", "text": "1\n"}]


def _wheel(package: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{package}/__init__.py", "ANSWER = 42\n")
        z.writestr(f"{package}-1.0.dist-info/METADATA", f"Name: {package}\nVersion: 1.0\n")
    return buf.getvalue()


def test_a_wheel_is_unpacked_on_the_first_import_of_its_package_and_only_then(runner, tmp_path, monkeypatch):
    package = "nsr_lazy_pkg"
    fetched = []

    def fetch(url):
        fetched.append(url)
        return _wheel(package)

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    runner.install_on_import(package, "https://book.invalid/_static/pyodide/x.whl", fetch, str(tmp_path))
    assert fetched == [] and not (tmp_path / package).exists()
    out = runner.run_cell(f"import {package}\nprint({package}.ANSWER)")
    assert out == [{"type": "stream", "name": "stdout", "text": "42\n"}]
    assert fetched == ["https://book.invalid/_static/pyodide/x.whl"]
    assert not any(type(f).__name__ == "_WheelOnImport" for f in sys.meta_path)   # its work is done
    assert runner.run_cell(f"import importlib\nimportlib.reload({package}).ANSWER")[0]["data"] == {"text/plain": "42"}
    assert len(fetched) == 1 and (tmp_path / package / "__init__.py").is_file()
    sys.modules.pop(package, None)


def test_an_installed_package_is_not_fetched(runner):
    runner.install_on_import("json", "https://book.invalid/never.whl", lambda url: pytest.fail("fetched"))
    assert not any(type(f).__name__ == "_WheelOnImport" for f in sys.meta_path)


def test_serve_gives_wasm_its_type_lists_no_directory_and_listens_on_loopback_only(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>book</title>")
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "a.wasm").write_bytes(b"\0asm\1\0\0\0")
    with Served(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "_static/a.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm" and r.read() == b"\0asm\1\0\0\0"
            assert r.headers["Cache-Control"] == "no-cache"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "_static/")
        assert e.value.code == 404


def test_a_package_the_page_lacks_says_where_the_notebook_can_use_it(runner):
    (err,) = runner.run_cell("import nsr_no_such_package.sub")
    assert err["ename"] == "ModuleNotFoundError"
    assert err["traceback"].rstrip().splitlines()[-1] == runner.MISSING.format(name="nsr_no_such_package")
