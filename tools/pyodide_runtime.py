"""Put the in-page Python runtime into the built book (`make html` runs this after Sphinx).

"Edit and run" (book/_static/netsim-run.js, issue #23) runs the chapters' code in the reader's
browser with Pyodide. Everything it loads is served from the book itself:

  _static/pyodide/pyodide.js, pyodide.asm.js, pyodide.asm.wasm, python_stdlib.zip,
  pyodide-lock.json     the core of the npm package `pyodide` (the Makefile fetches it with
                        `npm pack` at the pinned version and checks the tarball's sha256)
  netsim-*.whl          netsim's own wheel, built here from the working tree
  scapy-*.whl           scapy's wheel at the pinned version (the Makefile fetches it), loaded
                        only when a cell imports scapy (a packet's `.packet`)
  data/NAME             the files the chapters read (notebooks/data/NAME); the worker writes
                        each into Python's working directory as data/NAME, where a chapter's
                        cell opens it, as it does beside the notebooks
  runtime.json          the file names and versions above, read by the worker

Usage: python tools/pyodide_runtime.py --pyodide DIR --scapy WHEEL --out _build/html/_static/pyodide
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "LICENSE-BOOK")     # besides netsim/
DATA = ROOT / "notebooks" / "data"
CORE = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")


def build_netsim_wheel(out: Path) -> Path:
    """netsim's wheel from the working tree (no dependencies: the page loads scapy itself).

    Built from a copy of the files the wheel needs, so setuptools' build/ and egg-info land in
    a temporary folder rather than in the repository."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "netsim", src / "netsim", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in SOURCES:
            shutil.copy2(ROOT / name, src / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--wheel-dir", tmp, str(src)], check=True, cwd=tmp)
        (wheel,) = Path(tmp).glob("netsim-*.whl")
        return Path(shutil.copy2(wheel, out / wheel.name))


def assemble(pyodide: Path, scapy: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in CORE:
        shutil.copy2(pyodide / name, out / name)
    package = json.loads((pyodide / "package.json").read_text())
    lock = json.loads((pyodide / "pyodide-lock.json").read_text())
    netsim = build_netsim_wheel(out)
    shutil.copy2(scapy, out / scapy.name)
    (out / "data").mkdir()
    data = sorted(path.name for path in DATA.glob("*") if path.is_file()) if DATA.is_dir() else []
    for name in data:
        shutil.copy2(DATA / name, out / "data" / name)
    manifest = {"pyodide": package["version"], "python": lock["info"]["python"],
                "netsim": netsim.name, "scapy": scapy.name, "data": data}
    (out / "runtime.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pyodide", type=Path, required=True, help="the unpacked npm package")
    ap.add_argument("--scapy", type=Path, required=True, help="scapy's wheel")
    ap.add_argument("--out", type=Path, required=True, help="where the page finds it (_static/pyodide)")
    args = ap.parse_args(argv)
    manifest = assemble(args.pyodide, args.scapy, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20
    print(f"in-page runtime: Pyodide {manifest['pyodide']} (Python {manifest['python']}), {manifest['netsim']}, "
          f"{manifest['scapy']}: {size:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
