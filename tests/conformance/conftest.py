"""Fixtures for the backend conformance suite: every test runs once on SQLite and once
on PostgreSQL, each time against a fresh, empty database (support/postgres.py says
where PostgreSQL is expected). ``ledger``, ``shop``, ``probe`` and ``pg_database`` come
from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.postgres import BACKENDS, pg_url
from support.server import Server, running_server
from support.shop import Runtimes
from support.stores import STORE_KINDS, empty_store
from tenure.app.runtime import Runtime
from tenure.store.unit import Store


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of an empty store, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'store' / 'tenure.db').as_posix()}"
    name: str = request.getfixturevalue("pg_database")
    return pg_url(name)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind in turn: in memory, SQLite, PostgreSQL (the store
    nouns' conformance tests)."""
    with empty_store(request.param, request, tmp_path) as empty:
        yield empty


@pytest.fixture
def runtimes(store_url: str) -> Iterator[Runtimes]:
    # Depends on store_url so that the runtimes close before the database is dropped.
    with Runtimes() as opened:
        yield opened


@pytest.fixture
def runtime(runtimes: Runtimes, data_dir: Path, store_url: str) -> Runtime:
    return runtimes.open(data_dir, database_url=store_url)


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    """``tenure serve --db`` on an empty store of each backend (it makes the bootstrap
    owner key on its first start)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    with running_server(tmp_path / "data", logs, "--db", store_url) as running:
        yield running
