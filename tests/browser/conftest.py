"""A browser shared by every page check (run by `make test-browser`, after `make html`)."""

import pytest

from tools import pagecheck


@pytest.fixture(scope="session")
def browser():
    with pagecheck.chromium() as browser:
        yield browser
