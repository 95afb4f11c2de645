"""Fixtures shared by the suites: a runtime's ledger writer, the licensing workload
on it and the probe of its store (``runtime`` itself comes from the suite:
contract/ opens a SQLite store, conformance/ each backend), and fresh PostgreSQL
databases. The helpers behind them live in tests/support/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.postgres import fresh_database
from support.shop import Probe, Runtimes, Shop
from tenure.app.runtime import Runtime
from tenure.service.ledger import Ledger


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def runtimes() -> Iterator[Runtimes]:
    with Runtimes() as opened:
        yield opened


@pytest.fixture
def ledger(runtime: Runtime) -> Iterator[Ledger]:
    with runtime.ledger() as writer:
        yield writer


@pytest.fixture
def shop(ledger: Ledger) -> Shop:
    shop = Shop(ledger)
    shop.catalog()
    return shop


@pytest.fixture
def probe(runtime: Runtime) -> Probe:
    return Probe(runtime.store.engine)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The name of a fresh PostgreSQL database, dropped after the test."""
    with fresh_database() as name:
        yield name
