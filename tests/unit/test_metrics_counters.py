"""Per-minute operational counters (``tenure.ops.counters``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenure.ops import counters
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade
from tenure.store.tables import ops_minutes
from tenure.store.unit import SqlStore


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'tenure.db'}")
    upgrade(engine)
    counters.discard_pending()
    yield engine
    engine.dispose()


def _minutes(engine: sa.Engine, account: str, metric: str) -> list[tuple[datetime, int]]:
    now = datetime.now(UTC)
    with SqlStore(engine).read() as tx:
        return counters.read_minutes(tx, account, metric, now - timedelta(hours=1), now)


def test_counts_are_added_into_the_stored_minute_by_each_flush(engine: sa.Engine) -> None:
    counters.count("acme", counters.AUTH_FAILED)
    counters.count("acme", counters.AUTH_FAILED, 4)
    assert counters.flush(SqlStore(engine)) == 1
    counters.count("acme", counters.AUTH_FAILED, 2)
    counters.flush(SqlStore(engine))
    [(minute, n)] = _minutes(engine, "acme", counters.AUTH_FAILED)
    assert n == 7
    assert timedelta(0) <= datetime.now(UTC) - minute < timedelta(minutes=2)
    assert _minutes(engine, "other", counters.AUTH_FAILED) == []


def test_flush_without_counts_writes_nothing(engine: sa.Engine) -> None:
    assert counters.flush(SqlStore(engine)) == 0


def test_a_failed_flush_keeps_the_counts_for_the_next(engine: sa.Engine, tmp_path: Path) -> None:
    counters.count("", counters.AUTH_FAILED, 3)
    broken = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no ops_minutes table
    with pytest.raises(sa.exc.OperationalError):
        counters.flush(SqlStore(broken))
    counters.flush(SqlStore(engine))
    assert [n for _, n in _minutes(engine, "", counters.AUTH_FAILED)] == [3]


def test_read_minutes_keeps_to_the_window_and_totals_sum_it(engine: sa.Engine) -> None:
    rows = [
        {"account": "a", "minute": "2026-11-29T08:00Z", "metric": "check.total", "count": 5},
        {"account": "a", "minute": "2026-11-29T08:01Z", "metric": "check.total", "count": 7},
        {"account": "a", "minute": "2026-11-29T08:02Z", "metric": "check.total", "count": 9},
        {"account": "a", "minute": "2026-11-29T08:01Z", "metric": "check.error", "count": 1},
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(ops_minutes), rows)
    since = datetime(2026, 11, 29, 8, 1, tzinfo=UTC)
    until = datetime(2026, 11, 29, 8, 2, 30, tzinfo=UTC)
    with SqlStore(engine).read() as tx:
        minutes = counters.read_minutes(tx, "a", "check.total", since, until)
        assert minutes == [(since, 7), (since + timedelta(minutes=1), 9)]
        assert counters.totals(tx, "a", since, until) == {"check.total": 16, "check.error": 1}


def test_the_flusher_flushes_what_is_left_when_it_stops(engine: sa.Engine) -> None:
    flusher = counters.Flusher(SqlStore(engine), interval=3600).start()
    counters.count("acme", counters.CHECK_TOTAL, 2)
    flusher.stop()
    assert [n for _, n in _minutes(engine, "acme", counters.CHECK_TOTAL)] == [2]
