"""``TENURE_DECISION_SYNC=os``: a write batch of unsynced audit requests commits
without waiting for the disk, and only that batch — the next batch on the writer's
kept connection waits again (an entitlement append must never inherit it)."""

from __future__ import annotations

import sqlalchemy as sa

from tenure.store import raw
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade
from tenure.store.writing import SqlWriterLink


def _sync_setting(conn: sa.Connection) -> str:
    if conn.dialect.name == "sqlite":
        return {0: "off", 1: "normal", 2: "full", 3: "extra"}[
            raw.execute(conn, "PRAGMA synchronous", {}).fetchone()[0]
        ]
    return str(raw.execute(conn, "SHOW synchronous_commit", {}).fetchone()[0])


def test_an_unsynced_batch_waits_for_no_disk_and_the_next_one_does(store_url: str) -> None:
    engine = create_engine(store_url)
    upgrade(engine)
    link = SqlWriterLink(engine)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with link.batch(["acme"]) as tx:
            assert _sync_setting(tx.connection) == ("full" if sqlite else "on")
        with link.batch(["acme"], synced=False) as tx:
            assert _sync_setting(tx.connection) == ("normal" if sqlite else "off")
        with link.batch(["acme"]) as tx:
            assert _sync_setting(tx.connection) == ("full" if sqlite else "on")
    finally:
        link.stop()
        engine.dispose()
