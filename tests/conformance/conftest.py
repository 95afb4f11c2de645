"""Fixtures for the backend conformance suite: every test runs once on SQLite and once
on PostgreSQL, each time against a fresh, empty database.

PostgreSQL is expected at ``TENURE_TEST_PG`` (default: trust auth, user ``postgres``
on 127.0.0.1:5432, database ``test``). Each test gets its own database, created from
an autocommit connection and dropped ``WITH (FORCE)`` afterwards. Under ``make test``
and on CI an unreachable server fails the PostgreSQL tests; elsewhere they are
skipped, saying why (``required``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict

from contract.conftest import ACCOUNT, ACTOR, Probe, Runtimes, Shop
from e2e.conftest import Server, running_server
from required import missing_tool
from tenure.app.runtime import Runtime
from tenure.service.ledger import Ledger

__all__ = ["ACCOUNT", "ACTOR", "BACKENDS", "Probe", "Runtimes", "Shop", "pg_url"]

BACKENDS = ["sqlite", "postgresql"]
PG_ADMIN = os.environ.get("TENURE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")


def _admin() -> psycopg.Connection[Any]:
    """An autocommit connection to the admin database, or fail/skip (see the module doc)."""
    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing_tool(f"PostgreSQL is not reachable at {PG_ADMIN!r}: {exc}")


def pg_url(database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the server of ``TENURE_TEST_PG``."""
    info = conninfo_to_dict(PG_ADMIN)
    url = sa.engine.URL.create(
        "postgresql+psycopg",
        username=str(info.get("user", "postgres")),
        password=str(info["password"]) if "password" in info else None,
        host=str(info.get("host", "127.0.0.1")),
        port=int(info.get("port", 5432)),
        database=database,
    )
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The name of a fresh PostgreSQL database, dropped after the test."""
    name = f"tenure_t_{secrets.token_hex(6)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of an empty store, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'store' / 'tenure.db').as_posix()}"
    name: str = request.getfixturevalue("pg_database")
    return pg_url(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def runtimes(store_url: str) -> Iterator[Runtimes]:
    # Depends on store_url so that the runtimes close before the database is dropped.
    opened = Runtimes()
    yield opened
    opened.close_all()


@pytest.fixture
def runtime(runtimes: Runtimes, data_dir: Path, store_url: str) -> Runtime:
    return runtimes.open(data_dir, database_url=store_url)


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
    return Probe(runtime.engine)


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    """``tenure serve --db`` on an empty store of each backend (it makes the bootstrap
    owner key on its first start)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    with running_server(tmp_path / "data", logs, "--db", store_url) as running:
        yield running
