"""`make test` as root runs with NETSIM_NO_SKIPS=1 (tests/conftest.py): a skipped test fails
there with its reason, a strict xfail stays an xfail; without it a skip is a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.tools        # runs pytest in a fresh interpreter

SAMPLE = '''
import pytest

@pytest.mark.skipif(True, reason="missing frobnicator")
def test_marked(): pass

def test_called(): pytest.skip("no widget")

@pytest.mark.xfail(strict=True, reason="a known deviation")
def test_known(): assert False
'''


def run(tmp_path: Path, no_skips: str) -> subprocess.CompletedProcess[str]:
    sample = tmp_path / "test_sample.py"
    sample.write_text(SAMPLE)
    env = {**os.environ, "NETSIM_NO_SKIPS": no_skips}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "-rA", str(sample)], cwd=ROOT, env=env, capture_output=True, text=True)


def test_a_skip_fails_under_no_skips_naming_its_reason(tmp_path):
    done = run(tmp_path, "1")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 xfailed, 1 error" in done.stdout
    assert "NETSIM_NO_SKIPS=1): Skipped: missing frobnicator" in done.stdout
    assert "NETSIM_NO_SKIPS=1): Skipped: no widget" in done.stdout


def test_a_skip_is_a_skip_otherwise(tmp_path):
    done = run(tmp_path, "0")
    assert done.returncode == 0, done.stdout
    assert "2 skipped, 1 xfailed" in done.stdout
