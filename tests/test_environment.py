"""environment.yml (what Binder installs) resolves, and pins exactly what the constraints pin."""

from __future__ import annotations

from tools.envcheck import (
    CONDA_PART,
    CONSTRAINTS,
    ENVIRONMENT,
    LOCAL_PACKAGE,
    load_environment,
    parse_pins,
    read_constraints,
    resolve_environment,
)


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
