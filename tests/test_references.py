"""book/references.md: each section's key in brackets names one source only (a reader meets
`[KEY]` in a chapter and must land on one section)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

REFERENCES = Path(__file__).resolve().parents[1] / "book" / "references.md"


def test_every_reference_key_is_used_by_one_section():
    keys = re.findall(r"^## \[([^\]]+)\]", REFERENCES.read_text(encoding="utf-8"), flags=re.M)
    assert len(keys) > 10
    assert [k for k, n in Counter(keys).items() if n > 1] == []
