"""The emulator's output is pinned: every case of tools/trace_digests.py must produce the hops,
bytes, verdicts, outcomes, decision sentences and state views stored in
tests/data/trace_digests.json. A refactoring of the core must leave all of them unchanged; a
deliberate change of behaviour regenerates the file (`python tools/trace_digests.py --write`)
and says why in its commit."""

from __future__ import annotations

import json

import pytest

from tools import trace_digests

STORED = json.loads(trace_digests.STORE.read_text())
CASES = dict(trace_digests.cases())


def test_the_stored_digests_cover_every_case():
    assert sorted(STORED) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_reproduces_its_stored_digest(name):
    got = trace_digests.digest(*CASES[name]())
    want = STORED[name]
    assert got["path"] == want["path"]
    assert got["outcome"] == want["outcome"]
    assert got["hops"] == want["hops"], "same capture points, different bytes on the wire"
    assert got["decisions"] == want["decisions"], "a decision's sentence changed"
    assert got["views"] == want["views"], "a state view (ip route, iptables-save, ...) changed"
