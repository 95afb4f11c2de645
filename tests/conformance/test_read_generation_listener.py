"""The read generations a PostgreSQL listener keeps (``WriteListener.generation``):
the triggers of migration 0014 announce every change of a row a check reads, and the
listener gives that account — and only that account — a new generation; this
process's own writes move them at once (``moved``); not listening, it knows none."""

from __future__ import annotations

import time

import sqlalchemy as sa

from support.postgres import pg_url
from tenure.store import notify
from tenure.store import tables as t
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore


def _conninfo(database: str) -> str:
    url = sa.engine.make_url(pg_url(database)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _wait_for_change(listener: notify.WriteListener, account: str, before: int | None) -> None:
    deadline = time.monotonic() + 5.0
    while listener.generation(account) == before and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_change_written_anywhere_moves_that_accounts_generation_only(pg_database: str) -> None:
    engine = create_engine(pg_url(pg_database))
    upgrade(engine)
    listener = notify.WriteListener(_conninfo(pg_database)).start()
    keys = t.api_keys
    row = {"account": "acme", "role": "owner", "name": "k", "created_at": "2026-12-08T00:00:00Z"}
    try:
        assert listener.wait_until_listening(5.0)
        acme, other = listener.generation("acme"), listener.generation("other")
        assert acme is not None
        assert other is not None
        with engine.begin() as conn:  # a plain write, as an operator's psql would make
            conn.execute(sa.insert(keys).values(id="key_1", key_hash="h1", **row))
        _wait_for_change(listener, "acme", acme)
        moved = listener.generation("acme")
        assert moved not in (acme, None)
        assert listener.generation("other") == other

        with engine.begin() as conn:  # a write that changes no row announces nothing
            conn.execute(sa.update(keys).where(keys.c.id == "nobody").values(name="x"))
        time.sleep(3 * notify.POLL)
        assert listener.generation("acme") == moved

        listener.moved(["other"])
        assert listener.generation("other") not in (other, None)
        assert listener.generation("acme") == moved
        listener.moved(None)
        assert listener.generation("acme") not in (moved, None)
    finally:
        listener.stop()
        engine.dispose()
    assert listener.generation("acme") is None


def test_without_a_listener_the_store_reads_the_counter(pg_database: str) -> None:
    engine = create_engine(pg_url(pg_database))
    upgrade(engine)
    store = SqlStore(engine)
    keys = t.api_keys
    row = {"account": "acme", "role": "owner", "name": "k", "created_at": "2026-12-08T00:00:00Z"}
    try:
        assert notify.listener_of(engine) is None
        before = store.generation("acme")
        with engine.begin() as conn:
            conn.execute(sa.insert(keys).values(id="key_1", key_hash="h1", **row))
        after = store.generation("acme")
        assert after != before
        assert store.generation("acme") == after
    finally:
        engine.dispose()
