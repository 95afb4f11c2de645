"""The PostgreSQL write listener (``tenure.store.notify.WriteListener``), a
``tenure.workers.Worker``: it listens as soon as it starts, moves its marker for
other senders' announcements only, and keeps retrying a server it cannot reach."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from support.postgres import pg_url
from tenure.store import notify
from tenure.store.engine import create_engine, transaction_on


def _conninfo(database: str) -> str:
    url = sa.engine.make_url(pg_url(database)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def test_the_marker_moves_for_another_senders_write_only(pg_database: str) -> None:
    listener = notify.WriteListener(_conninfo(pg_database)).start()
    engine = create_engine(pg_url(pg_database))
    try:
        assert listener.wait_until_listening(5.0)
        first = listener.marker()
        with engine.connect() as conn, transaction_on(conn):
            notify.announce(conn, listener.sender, ["acme"])
        time.sleep(3 * notify.POLL)
        assert listener.marker() == first
        with engine.connect() as conn, transaction_on(conn):
            notify.announce(conn, "someone-else", ["acme"])
        deadline = time.monotonic() + 5.0
        while listener.marker() == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listener.marker() not in (first, None)
    finally:
        listener.stop()
        engine.dispose()
    assert listener.marker() is None


def test_an_unreachable_server_leaves_no_marker_and_stops_promptly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = notify.WriteListener("host=127.0.0.1 port=1 dbname=nothing user=nobody").start()
    try:
        assert not listener.wait_until_listening(0.5)
        assert listener.marker() is None
    finally:
        started = time.monotonic()
        listener.stop()
    assert time.monotonic() - started < notify.RECONNECT + notify.POLL + 1.0
    assert any("LISTEN tenure_ledger" in record.getMessage() for record in caplog.records)
