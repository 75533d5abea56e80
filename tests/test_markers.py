"""tests/conftest.py: which test families a `-m` expression leaves out without importing them."""

from __future__ import annotations

import pytest

from tests.conftest import _never_selected, file_marker


@pytest.mark.parametrize("name, marker", [
    ("test_lab.py", "lab"), ("test_lab_mtu.py", "lab"), ("test_lab_state.py", "lab"),
    ("test_iptables_real.py", "lab"), ("test_pipeline_guards.py", "tools"), ("test_environment.py", "tools"),
    ("test_notebooks_meta.py", "tools"), ("test_bench_smoke.py", "tools"),
    ("test_packet.py", None), ("test_labels.py", None), ("test_stack.py", None),
])
def test_families_are_given_by_file_name(name, marker):
    assert file_marker(name) == marker


@pytest.mark.parametrize("expr, marker, skipped", [
    ("not lab and not tools", "lab", True),
    ("not lab and not tools", "tools", True),
    ("not lab", "tools", False),
    ("lab or tools", "lab", False),
    ("tools and slow", "tools", False),      # a tools test that is also `slow` is selected
    ("not (lab or slow)", "lab", True),
    ("", "lab", False),
])
def test_a_file_is_left_out_only_when_no_test_in_it_could_be_selected(expr, marker, skipped):
    assert _never_selected(expr, marker) is skipped


def test_every_test_marked_by_name_still_exists():
    from pathlib import Path

    from tests.conftest import TEST_MARKERS

    here = Path(__file__).parent
    for (file, function), _marker in TEST_MARKERS.items():
        assert f"\ndef {function}(" in (here / file).read_text(), (file, function)
