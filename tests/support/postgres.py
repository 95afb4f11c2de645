"""PostgreSQL for the tests: each test that needs it gets a fresh database.

The server is expected at ``TENURE_TEST_PG`` (default: trust auth, user ``postgres``
on 127.0.0.1:5432, database ``test``). A database is created from an autocommit
connection and dropped ``WITH (FORCE)`` afterwards. Under ``make test`` and on CI an
unreachable server fails the PostgreSQL tests; elsewhere they are skipped, saying why
(``support.required``)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from support.required import missing_tool
from tenure.store.databases import postgres_url

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
    return postgres_url(PG_ADMIN, database)


@contextmanager
def fresh_database() -> Iterator[str]:
    """The name of a new, empty PostgreSQL database, dropped on leaving."""
    name = f"tenure_t_{secrets.token_hex(6)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
