"""Run a chapter's code cells in the reader's browser (Pyodide in a Web Worker, issue #23).

worker.js loads this file once and calls `run_cell(code)` for each cell, in the order the page
asks. All cells of a page share one namespace, as they share one kernel in Jupyter. A cell's
outputs come back as a list of records, the way a notebook stores them:

  {"type": "stream", "name": "stdout" | "stderr", "text": ...}
  {"type": "display", "data": {"text/plain": ..., "text/html": ...}}   # the last expression's value
  {"type": "error", "ename": ..., "evalue": ..., "traceback": ...}

The last expression's value is displayed as Jupyter displays it: through `_repr_mimebundle_`,
else `_repr_html_` / `_repr_svg_`, with `repr()` as its text; a trailing `;` hides it, and
`display(obj)` shows one in the middle of a cell. The page shows text/html first (the netsim
stepper's static face), then image/svg+xml, then text/plain.

scapy is large and only a packet's dissection (`hop.packet`) needs it, so its wheel is not
loaded at start: `install_on_import` puts it in place the first time anything imports scapy,
fetched from the book with the worker's synchronous request (allowed in a worker).

Plain CPython: tests/test_run_in_page.py runs this module outside the browser too.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import io
import json
import linecache
import sys
import sysconfig
import traceback
import zipfile
from contextlib import redirect_stderr, redirect_stdout

MIME_ORDER = ("text/html", "image/svg+xml", "text/plain")
NAMESPACE: dict = {"__name__": "__main__", "__builtins__": __builtins__}
_outputs: list[dict] = []
_count = 0


class _Stream(io.TextIOBase):
    """stdout or stderr of the running cell: consecutive writes join one stream record."""

    def __init__(self, name: str):
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if _outputs and _outputs[-1]["type"] == "stream" and _outputs[-1]["name"] == self.name:
            _outputs[-1]["text"] += text
        else:
            _outputs.append({"type": "stream", "name": self.name, "text": text})
        return len(text)


def mime_bundle(obj) -> dict[str, str]:
    """What Jupyter would show for `obj`, limited to the types the page renders."""
    bundle: dict = {}
    method = getattr(obj, "_repr_mimebundle_", None)
    if callable(method):
        got = method(include=None, exclude=None)
        bundle = dict(got[0] if isinstance(got, tuple) else got or {})
    for mime, name in (("text/html", "_repr_html_"), ("image/svg+xml", "_repr_svg_")):
        if mime not in bundle and callable(getattr(obj, name, None)):
            value = getattr(obj, name)()
            if value is not None:
                bundle[mime] = value
    bundle.setdefault("text/plain", repr(obj))
    return {mime: bundle[mime] for mime in MIME_ORDER if isinstance(bundle.get(mime), str)}


def display(*objs) -> None:
    """Show each object below the cell, as IPython's `display` does."""
    for obj in objs:
        _outputs.append({"type": "display", "data": mime_bundle(obj)})


NAMESPACE["display"] = display


MISSING = ("The page's Python has the standard library, netsim and scapy; for {name!r}, run the "
           "notebook in JupyterLab (make lab) or on Binder.")


def _error(exc: BaseException, filename: str) -> dict:
    """The exception as a record; the traceback starts at the cell's own code."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        exc.add_note(MISSING.format(name=exc.name.split(".")[0]))
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb) if tb is not None else \
        traceback.format_exception_only(type(exc), exc)
    return {"type": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": "".join(lines)}


def run_cell(code: str) -> list[dict]:
    """Run one cell in the shared namespace and return its outputs."""
    global _count
    _count += 1
    filename = f"<cell {_count}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    _outputs.clear()
    try:
        with redirect_stdout(_Stream("stdout")), redirect_stderr(_Stream("stderr")):
            try:
                tree = ast.parse(code, filename, "exec")
                last = None
                if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
                    last = ast.Expression(tree.body.pop().value)
                exec(compile(tree, filename, "exec"), NAMESPACE)
                if last is not None:
                    value = eval(compile(last, filename, "eval"), NAMESPACE)
                    if value is not None:
                        NAMESPACE["_"] = value
                        display(value)
            except BaseException as exc:  # the reader's error (even exit()): shown in the cell, Python goes on
                _outputs.append(_error(exc, filename))
        return list(_outputs)
    finally:
        _outputs.clear()


def run_cell_json(code: str) -> str:
    """`run_cell` for the worker: the outputs as JSON text."""
    return json.dumps(run_cell(code))


# ------------------------------------------------------------------- a wheel on first import
class _WheelOnImport(importlib.abc.MetaPathFinder):
    """Before the first import of `package`, unpack its wheel (fetched by `fetch(url) -> bytes`)."""

    def __init__(self, package: str, url: str, fetch, site: str):
        self.package, self.url, self.fetch, self.site = package, url, fetch, site

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] != self.package:
            return None
        sys.meta_path.remove(self)                 # once: from now on the files are in place
        data = self.fetch(self.url)
        data = data.to_bytes() if hasattr(data, "to_bytes") else data   # a JS Uint8Array in the worker
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            wheel.extractall(self.site)
        importlib.invalidate_caches()
        return None                                # the next finder on sys.meta_path finds it now


def install_on_import(package: str, url: str, fetch, site: str | None = None) -> None:
    """Load `package`'s wheel from `url` when something first imports it (unless it is there)."""
    if any(isinstance(f, _WheelOnImport) and f.package == package for f in sys.meta_path):
        return
    if importlib.util.find_spec(package) is not None:
        return
    sys.meta_path.insert(0, _WheelOnImport(package, url, fetch, site or sysconfig.get_paths()["purelib"]))
