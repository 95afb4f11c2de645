"""Fixtures for the contract tests: real SQLite stores in temporary directories and the
real ledger writer thread (``ledger``, ``shop``, ``probe`` and ``runtimes`` come from
tests/conftest.py); helpers, among them the real ``tenure`` executable in a
subprocess, from tests/support/."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.shop import Runtimes
from tenure.app.runtime import Runtime


@pytest.fixture
def runtime(runtimes: Runtimes, data_dir: Path) -> Runtime:
    return runtimes.open(data_dir)
