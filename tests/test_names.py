"""The quick name test (netsim.names.quick_match, run once per pod of a big cluster) never
accepts a name the full check refuses, and accepts the names clusters use."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from netsim.errors import InvalidNameError
from netsim.names import MAX_LABEL, RULES, check_name, quick_match

NAMEISH = st.text(alphabet="abz09-.xA_/ ", max_size=MAX_LABEL + 2)


def accepted(kind: str, name: str) -> bool:
    try:
        check_name(kind, name)
    except InvalidNameError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), name=NAMEISH)
def test_what_the_quick_test_accepts_the_full_check_accepts(kind, name):
    if quick_match(kind)(name):
        assert accepted(kind, name)


@pytest.mark.parametrize("kind, name, quick, full", [
    ("pod", "pod-1-0", True, True), ("pod", "a" * MAX_LABEL, True, True), ("pod", "a" * (MAX_LABEL + 1), False, False),
    ("pod", "4", False, False), ("pod", "0x7f", False, False), ("pod", "9pod", False, True),
    ("pod", "pod-", False, False), ("pod", "Pod", False, False), ("service", "1web", False, False),
    ("service", "web", True, True),
])
def test_quick_and_full_checks_on_the_edges(kind, name, quick, full):
    assert (bool(quick_match(kind)(name)), accepted(kind, name)) == (quick, full)
