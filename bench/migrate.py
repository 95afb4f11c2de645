"""Benchmark 8 (issue 6): ``tenure migrate`` rate, SQLite → PostgreSQL.

A demo store of N events (``bench.builder``; N = 1,000,000 in the full run, 20,000
with ``--quick``) is migrated into a fresh PostgreSQL database with
``tenure.durability.migration.copy_account``: events streamed in chunks, Merkle nodes
built by a ``Frontier``, the projection replayed, service rows copied, and the result
proven by reading back digest and root (all timed).

The limit, in the same run: the same event rows read from the SQLite file with plain
``sqlite3`` and written with psycopg ``COPY`` into a bare table with the same columns
and primary key, in one transaction, in a second fresh database. Figures: events/s.

PostgreSQL is taken from ``TENURE_TEST_PG`` (default: trust auth, user ``postgres`` on
127.0.0.1:5432, database ``test``); without it the benchmark is skipped, saying why.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench.builder import ACCOUNT, BuiltStore
from bench.common import Options, Result, Timer, pg_url
from tenure.durability import migration
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore

PG_ADMIN = os.environ.get("TENURE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")
FULL_EVENTS = 1_000_000
QUICK_EVENTS = 20_000
GOAL_SECONDS = 60.0
"""Issue 18: 1 M events migrated SQLite → PostgreSQL in 60 s."""


def size(opts: Options) -> int:
    return QUICK_EVENTS if opts.quick else FULL_EVENTS


def missing_server() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {PG_ADMIN!r}: {exc}"
    return None


@contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped afterwards."""
    name = f"tenure_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_of(database: str) -> str:
    """The SQLAlchemy URL of PostgreSQL ``database`` on the bench's server."""
    return pg_url(PG_ADMIN, database)


def _conninfo(database: str) -> str:
    info: dict[str, Any] = dict(conninfo_to_dict(PG_ADMIN))
    info["dbname"] = database
    return " ".join(f"{k}={v}" for k, v in info.items())


def migrate_once(store: BuiltStore, database: str) -> tuple[float, migration.Proof]:
    """Seconds to migrate (and prove) the store's account into ``database``."""
    target = create_engine(url_of(database))
    upgrade(target)  # the schema is made by ``tenure migrate`` too, but not timed here
    try:
        timer = Timer()
        proof = migration.copy_account(store.runtime.store, SqlStore(target), ACCOUNT)
        return timer.elapsed(), proof
    finally:
        target.dispose()


_BARE = (
    "CREATE TABLE bare (account text, seq bigint, id text, type text, subject text, "
    "time text, idempotency_key text, leaf bytea, PRIMARY KEY (account, seq))"
)


def raw_copy(store: BuiltStore, database: str) -> tuple[float, int]:
    """Seconds to read the event rows with sqlite3 and COPY them into a bare table."""
    db = sqlite3.connect(store.runtime.settings.data_dir / "tenure.db")
    rows = 0
    with psycopg.connect(_conninfo(database)) as conn:
        conn.execute(_BARE)
        conn.commit()
        timer = Timer()
        cursor = db.execute(
            "SELECT account, seq, id, type, subject, time, idempotency_key, leaf "
            "FROM ledger_events WHERE account = ? ORDER BY seq",
            (ACCOUNT,),
        )
        with conn.cursor() as cur, cur.copy("COPY bare FROM STDIN") as copy:
            for row in cursor:
                copy.write_row(row)
                rows += 1
        conn.commit()
        seconds = timer.elapsed()
    db.close()
    return seconds, rows


def run(opts: Options, store: BuiltStore) -> list[Result]:
    why = missing_server()
    if why is not None:
        print(f"  skipped: {why}")
        return []
    with fresh_database() as database:
        seconds, proof = migrate_once(store, database)
    with fresh_database() as database:
        raw_seconds, rows = raw_copy(store, database)
    rate, raw_rate = proof.size / seconds, rows / raw_seconds
    print(
        f"  migrated {proof.size:,} events in {seconds:.1f} s ({rate:,.0f} ev/s), proven "
        f"(digest {proof.digest[:16]}, root {proof.root[:16]}); raw COPY of the same "
        f"{rows:,} rows: {raw_seconds:.1f} s ({raw_rate:,.0f} ev/s)"
    )
    full = proof.size >= FULL_EVENTS
    result = Result(
        f"migrate SQLite → PostgreSQL, {proof.size:,} events",
        rate,
        "ev/s",
        raw_rate,
        "raw psycopg COPY of the event rows",
        "ev/s",
        f"goal 1 M in <= {GOAL_SECONDS:.0f} s"
        if full
        else f"1 M goal <= {GOAL_SECONDS:.0f} s; linear projection "
        f"{seconds * FULL_EVENTS / proof.size:.0f} s",
        seconds <= GOAL_SECONDS if full else None,
    )
    print("  " + result.line())
    return [result]
