"""Serve the built book on 127.0.0.1 (`make serve`), so "Edit and run" can start Python in the page.

A browser will not start a Web Worker or compile WebAssembly from a `file://` page, so the
book's in-page runtime (Pyodide, issue #23) needs the pages served over HTTP. Any static file
server does; this one binds to the loopback address only, serves `.wasm` as `application/wasm`
(browsers compile it while it downloads only with that type) and never lists a directory.

Usage: python tools/serve.py [--port 8000] [--root _build/html]
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
HOST = "127.0.0.1"
TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
         ".json": "application/json", ".whl": "application/zip", ".zip": "application/zip"}


class BookHandler(SimpleHTTPRequestHandler):
    """Static files with the types the runtime needs; no directory listings; quiet unless asked."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}
    verbose = False

    def end_headers(self):
        # Revalidate on every load (a 304 when unchanged), so a rebuilt book never mixes old files in.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def list_directory(self, path):
        self.send_error(404, "No directory listing")
        return None

    def log_message(self, format, *args):      # noqa: A002 (the base class's name)
        if self.verbose:
            super().log_message(format, *args)


def make_server(root: Path = HTML, port: int = 8000, verbose: bool = False) -> ThreadingHTTPServer:
    """A server for `root` on 127.0.0.1:`port` (0: any free port; read `server.server_port`)."""
    handler = functools.partial(type("Handler", (BookHandler,), {"verbose": verbose}), directory=str(root))
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


class Served:
    """`with Served(root) as url:` the book served from a background thread for the duration."""

    def __init__(self, root: Path = HTML):
        self.server = make_server(root, 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://{HOST}:{self.server.server_port}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--root", type=Path, default=HTML)
    args = ap.parse_args(argv)
    if not (args.root / "index.html").is_file():
        print(f"{args.root} has no index.html: build the book first (make book)", file=sys.stderr)
        return 1
    if not (args.root / "_static" / "pyodide" / "runtime.json").is_file():
        print(f"note: {args.root} has no in-page runtime (_static/pyodide); `make book` builds it",
              file=sys.stderr)
    server = make_server(args.root, args.port, verbose=True)
    print(f"Serving {args.root} at http://{HOST}:{server.server_port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
