"""Read the constraints file and environment.yml, and check that environment.yml resolves.

Binder (repo2docker) builds its image from environment.yml. Its conda part is only
``python=3.11`` and ``pip``; every real dependency sits in the ``pip:`` list, pinned to the
same versions as requirements/constraints.txt. Because the list is plain pip requirements,
it can be checked here without conda: ``pip install --dry-run --report`` resolves it
against the package index and fails on a pin that cannot be satisfied.

Used by tests/test_environment.py and tools/lock.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tools.toc import REPO
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
ENVIRONMENT = REPO / "environment.yml"
# Binder's own, lean environment (repo2docker reads binder/ in preference to the root):
# what the notebooks need to run live, no book build or test toolchain. binder/postBuild
# installs netsim itself (--no-deps) once the repository is in the image.
BINDER_ENVIRONMENT = REPO / "binder" / "environment.yml"
# What Binder installs, before the pins close it: netsim's own dependencies and the lab extra
# (JupyterLab, jupyterlab-myst, jupytext), and the kernel.
BINDER_REQUIREMENTS = ["-e .[lab]", "ipykernel"]
# Packages of the book build and the checks, which Binder must not install.
NOT_FOR_BINDER = ("sphinx", "jupyter-book", "myst-nb", "playwright", "pytest", "nbval", "hypothesis",
                  "pyinstrument", "coverage")

# The conda part of environment.yml, apart from the nested pip list.
CONDA_PART = ["python=3.11", "pip"]
# How environment.yml installs this repository's own package.
LOCAL_PACKAGE = "-e ."

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


class EnvironmentCheckError(Exception):
    """environment.yml is malformed or its pip list does not resolve."""


def normalize(name: str) -> str:
    """The PEP 503 form of a distribution name: lower case, runs of -_. become one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines) -> dict[str, str]:
    """``{normalized name: version}`` for every ``name==version`` line; other lines are skipped."""
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        match = _PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def read_constraints(path: Path = CONSTRAINTS) -> dict[str, str]:
    return parse_pins(Path(path).read_text(encoding="utf-8").splitlines())


def load_environment(path: Path = ENVIRONMENT) -> tuple[list, list[str]]:
    """Return (conda dependencies other than the pip list, the pip list) of an environment.yml."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        raise EnvironmentCheckError(f"{path}: no 'dependencies' list")
    conda, pip = [], None
    for item in data["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            if pip is not None:
                raise EnvironmentCheckError(f"{path}: more than one pip list")
            pip = [str(x) for x in item["pip"]]
        else:
            conda.append(item)
    if pip is None:
        raise EnvironmentCheckError(f"{path}: no pip list under dependencies")
    return conda, pip


def resolve_pip_list(pip_list: list[str], cwd: Path, python: str = sys.executable) -> dict:
    """Resolve a pip requirement list without installing anything; return pip's JSON report.

    Runs in ``cwd`` because conda runs the pip list from the environment file's folder,
    so ``-e .`` means that folder. Raises EnvironmentCheckError with pip's output on failure.
    """
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(pip_list) + "\n", encoding="utf-8")
        report = Path(tmp) / "report.json"
        cmd = [
            python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
            "--report", str(report), "-r", str(requirements),
        ]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0 or not report.exists():
            raise EnvironmentCheckError(
                f"pip could not resolve the pip list (exit {proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return json.loads(report.read_text(encoding="utf-8"))


def resolve_environment(path: Path = ENVIRONMENT, python: str = sys.executable) -> dict[str, str]:
    """Resolve an environment.yml's pip list; return ``{normalized name: version}`` it would install."""
    path = Path(path)
    _conda, pip_list = load_environment(path)
    report = resolve_pip_list(pip_list, cwd=path.parent, python=python)
    return {
        normalize(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report.get("install", [])
    }


def binder_pins(constraints: Path = CONSTRAINTS, python: str = sys.executable) -> dict[str, str]:
    """``{normalized name: version}`` of everything BINDER_REQUIREMENTS needs, pinned by the constraints."""
    report = resolve_pip_list([f"-c {constraints}", *BINDER_REQUIREMENTS], cwd=REPO, python=python)
    return {
        normalize(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report.get("install", [])
        if normalize(item["metadata"]["name"]) != "netsim"
    }


ROOT_HEADER = [
    "# The full conda environment (book build, checks and lab), for working on the book with conda.",
    "# Binder uses the lean binder/environment.yml instead.",
]
BINDER_HEADER = [
    "# Binder (repo2docker) environment: what the notebooks need live (netsim's dependencies,",
    "# JupyterLab, ipywidgets, jupytext, jupyterlab-myst, the kernel), no book or test toolchain.",
    "# binder/postBuild installs netsim itself and trusts the notebooks.",
]


def render_environment(pins: dict[str, str], names: dict[str, str] | None = None,
                       binder: bool = False) -> str:
    """The text of environment.yml (or, with binder, binder/environment.yml) for the given pins.

    pip itself comes from conda. The root file installs this repository (``-e .``) from pip;
    Binder's leaves that to binder/postBuild, which runs once the repository is in the image.
    """
    names = names or {}
    lines = [
        *(BINDER_HEADER if binder else ROOT_HEADER),
        "# Generated by `make lock` from requirements/constraints.txt; do not edit by hand.",
        "# tests/test_environment.py checks that it resolves and agrees with the constraints.",
        "name: packets-in-kubernetes",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        *[f"  - {dep}" for dep in CONDA_PART],
        "  - pip:",
        *([] if binder else [f"      - {LOCAL_PACKAGE}"]),
    ]
    for key in sorted(pins):
        if key == "pip":
            continue
        lines.append(f"      - {names.get(key, key)}=={pins[key]}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    installed = resolve_environment()
    print(f"environment.yml resolves: {len(installed)} packages")
