"""Install Binder's environment into a fresh venv, time it, and run every book notebook in it.

What a reader's Binder does, minus conda: a new venv (pip, no site packages), then the pip
list of binder/environment.yml, then binder/postBuild (netsim, trust, server config) with a
throw-away HOME. Each notebook of the table of contents then runs top to bottom in that venv's
kernel, working directory notebooks/, without writing anything back. Prints the install time,
the size of the venv and, per notebook, the run time and the number of error outputs.

    python tools/binder_check.py            # exits 1 if the install fails or any cell errors
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.book_notebooks import book_notebooks  # noqa: E402
from tools.envcheck import BINDER_ENVIRONMENT, load_environment  # noqa: E402
from tools.toc import REPO  # noqa: E402

RUN_NOTEBOOK = r"""
import sys, time, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
for o in errors:
    print("ERROR", o.ename, o.evalue, file=sys.stderr)
print(f"{time.perf_counter() - start:.1f} {len(errors)}")
"""


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    _conda, pip_list = load_environment(BINDER_ENVIRONMENT)
    with tempfile.TemporaryDirectory(prefix="binder-check-") as tmp_name:
        tmp = Path(tmp_name)
        requirements = tmp / "requirements.txt"
        requirements.write_text("\n".join(pip_list) + "\n")
        home = tmp / "home"
        home.mkdir()
        bindir = tmp / "venv" / "bin"
        env = {**os.environ, "HOME": str(home), "PATH": f"{bindir}:{os.environ['PATH']}",
               "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"), "PYTHONHASHSEED": "0"}
        env.pop("JUPYTER_CONFIG_DIR", None)
        start = time.perf_counter()
        venv.create(tmp / "venv", with_pip=True)
        subprocess.run([bindir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", requirements], check=True, env=env)
        installed = time.perf_counter() - start
        subprocess.run(["bash", REPO / "binder" / "postBuild"], check=True, cwd=REPO, env=env,
                       stdout=subprocess.DEVNULL)
        total = time.perf_counter() - start
        print(f"venv + pip install of {len(pip_list)} pins: {installed:.1f} s; with postBuild: {total:.1f} s; "
              f"venv size {du(tmp / 'venv') / 2**20:.0f} MiB")
        failed = 0
        for rel in book_notebooks():
            proc = subprocess.run([bindir / "python", "-c", RUN_NOTEBOOK, REPO / rel, REPO / "notebooks"],
                                  capture_output=True, text=True, env=env, cwd=REPO / "notebooks")
            if proc.returncode != 0:
                print(f"{rel}: could not run\n{proc.stderr[-2000:]}")
                failed += 1
                continue
            seconds, errors = proc.stdout.split()[-2:]
            failed += int(errors) > 0
            print(f"{rel}: {seconds} s, {errors} errors" + (f"\n{proc.stderr}" if int(errors) else ""))
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
