"""environment.yml (the full conda environment) and binder/environment.yml (Binder's lean one) resolve,
and pin exactly the constraints' versions."""

from __future__ import annotations

from tools.envcheck import (
    BINDER_ENVIRONMENT,
    CONDA_PART,
    CONSTRAINTS,
    ENVIRONMENT,
    LOCAL_PACKAGE,
    NOT_FOR_BINDER,
    normalize,
    load_environment,
    parse_pins,
    read_constraints,
    resolve_environment,
    resolve_pip_list,
)
from tools.toc import REPO


def test_conda_part_is_only_python_311_and_pip():
    conda, _pip = load_environment(ENVIRONMENT)
    assert conda == CONDA_PART


def test_pip_list_installs_this_repository_and_only_exact_pins():
    _conda, pip = load_environment(ENVIRONMENT)
    assert pip.count(LOCAL_PACKAGE) == 1
    others = [line for line in pip if line != LOCAL_PACKAGE]
    assert len(parse_pins(others)) == len(others), "every other line must be name==version"


def test_pip_list_pins_the_same_versions_as_the_constraints():
    _conda, pip = load_environment(ENVIRONMENT)
    constraints = read_constraints(CONSTRAINTS)
    constraints.pop("pip")  # conda provides pip itself
    assert parse_pins(pip) == constraints


def test_pip_list_resolves_to_the_pinned_versions():
    would_install = resolve_environment(ENVIRONMENT)
    assert "netsim" in would_install
    expected = read_constraints(CONSTRAINTS)
    expected.pop("pip")
    resolved = {name: version for name, version in would_install.items() if name != "netsim"}
    assert resolved == expected


# ---------------------------------------------------------------- binder/environment.yml

def _binder_pins() -> dict[str, str]:
    _conda, pip = load_environment(BINDER_ENVIRONMENT)
    assert len(parse_pins(pip)) == len(pip), "every line must be name==version"
    return parse_pins(pip)


def test_binder_conda_part_is_only_python_311_and_pip():
    conda, _pip = load_environment(BINDER_ENVIRONMENT)
    assert conda == CONDA_PART


def test_binder_pins_are_the_constraints_versions_and_leave_out_the_book_and_test_toolchain():
    pins, constraints = _binder_pins(), read_constraints(CONSTRAINTS)
    assert {name: constraints.get(name) for name in pins} == pins
    for wanted in ("jupyterlab", "jupyterlab-myst", "ipywidgets", "jupytext", "ipykernel", "scapy", "matplotlib"):
        assert wanted in pins, wanted
    unwanted = [name for name in pins if name.startswith(tuple(normalize(n) for n in NOT_FOR_BINDER))]
    assert unwanted == []
    assert len(pins) < len(constraints) - 30


def test_binder_pins_resolve_and_cover_everything_netsim_and_the_lab_need():
    """One resolution: the pins plus netsim[lab] and the kernel install exactly the pins and netsim."""
    pins = _binder_pins()
    _conda, pip = load_environment(BINDER_ENVIRONMENT)
    report = resolve_pip_list([*pip, "-e .[lab]", "ipykernel"], cwd=REPO)
    would_install = {normalize(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    assert would_install.pop("netsim") is not None
    assert would_install == pins


def test_binder_postbuild_installs_netsim_trusts_the_books_notebooks_and_the_server_config():
    post = (REPO / "binder" / "postBuild").read_text()
    assert (REPO / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install --no-deps" in post and "--editable ." in post
    assert "tools/book_notebooks.py" in post and "jupyter trust" in post
    assert 'cp jupyter_server_config.py "$HOME/.jupyter/jupyter_server_config.py"' in post
