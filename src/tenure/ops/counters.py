"""Operational counters per minute: cross-worker, restart-proof counts (SLOs, anomaly
baselines; docs/observability.md, "Per-minute counters").

``count`` adds to an in-memory tally (a dict under a lock: cheap enough for the
check path); a ``Flusher`` thread adds the tallies into ``ops_minutes`` every few
seconds with an upsert that *adds* to the stored count, so several workers (or a
restarted one) sum into the same rows. ``read_minutes`` reads them back.

Metric names in use (``METRICS``): ``auth.failed`` (account ``""`` when the caller
is unauthenticated), ``check.total``, ``check.denied``, ``check.error`` (5xx answers
on ``/v1/check*``) and ``check.slow`` (answers slower than ``slo_latency_ms``).
Counts not yet flushed when a process dies are lost: at most one flush interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tenure.store.engine import transaction_on
from tenure.store.tables import ops_minutes

_log = logging.getLogger("tenure.observability")

AUTH_FAILED = "auth.failed"
CHECK_TOTAL = "check.total"
CHECK_DENIED = "check.denied"
CHECK_ERROR = "check.error"
CHECK_SLOW = "check.slow"
METRICS = (AUTH_FAILED, CHECK_TOTAL, CHECK_DENIED, CHECK_ERROR, CHECK_SLOW)

MINUTE_FORMAT = "%Y-%m-%dT%H:%MZ"

_Key = tuple[str, int, str]
"""(account, minute since the epoch, metric)."""

_lock = threading.Lock()
_pending: defaultdict[_Key, int] = defaultdict(int)


def count(account: str, metric: str, n: int = 1) -> None:
    """Add ``n`` to ``metric`` of ``account`` in the current minute (in memory until
    the next ``flush``). Thread-safe; never touches the database."""
    key = (account, int(time.time()) // 60, metric)
    with _lock:
        _pending[key] += n


def minute_key(at: datetime) -> str:
    """The ``ops_minutes.minute`` of the minute holding ``at`` ("2026-11-29T08:01Z")."""
    return at.astimezone(UTC).strftime(MINUTE_FORMAT)


def _take() -> dict[_Key, int]:
    global _pending
    with _lock:
        taken, _pending = _pending, defaultdict(int)
    return dict(taken)


def _give_back(taken: dict[_Key, int]) -> None:
    with _lock:
        for key, n in taken.items():
            _pending[key] += n


def flush(engine: sa.Engine) -> int:
    """Add every pending count into ``ops_minutes``; returns how many rows it touched.

    On failure the counts are kept for the next flush and the error is raised."""
    taken = _take()
    if not taken:
        return 0
    rows = [
        {
            "account": account,
            "minute": time.strftime(MINUTE_FORMAT, time.gmtime(minute * 60)),
            "metric": metric,
            "count": n,
        }
        for (account, minute, metric), n in taken.items()
    ]
    try:
        with engine.connect() as conn, transaction_on(conn):
            conn.execute(_upsert(conn), rows)
    except BaseException:
        _give_back(taken)
        raise
    return len(rows)


def _upsert(conn: sa.Connection) -> sa.Insert:
    """INSERT … ON CONFLICT DO UPDATE SET count = stored + new (SQLite and PostgreSQL
    spell it the same; SQLAlchemy builds it per dialect)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(ops_minutes)
    upsert: sa.Insert = insert.on_conflict_do_update(
        index_elements=[ops_minutes.c.account, ops_minutes.c.minute, ops_minutes.c.metric],
        set_={"count": ops_minutes.c.count + insert.excluded["count"]},
    )
    return upsert


def read_minutes(
    conn: sa.Connection, account: str, metric: str, since: datetime, until: datetime
) -> list[tuple[datetime, int]]:
    """The flushed counts of ``metric`` of ``account`` per minute, for the minutes
    starting in ``[since, until)``, oldest first; minutes with no count are absent."""
    t = ops_minutes.c
    query = (
        sa.select(t.minute, t.count)
        .where(t.account == account, t.metric == metric)
        .where(t.minute >= minute_key(since), t.minute < minute_key(until + _ALMOST_A_MINUTE))
        .order_by(t.minute)
    )
    return [
        (datetime.strptime(minute, MINUTE_FORMAT).replace(tzinfo=UTC), int(n))
        for minute, n in conn.execute(query)
    ]


_ALMOST_A_MINUTE = timedelta(seconds=59, microseconds=999_999)


def totals(conn: sa.Connection, account: str, since: datetime, until: datetime) -> dict[str, int]:
    """The sum of each metric of ``account`` over the minutes in ``[since, until)``."""
    t = ops_minutes.c
    query = (
        sa.select(t.metric, sa.func.sum(t.count))
        .where(t.account == account)
        .where(t.minute >= minute_key(since), t.minute < minute_key(until + _ALMOST_A_MINUTE))
        .group_by(t.metric)
    )
    return {metric: int(n or 0) for metric, n in conn.execute(query)}


def discard_pending() -> None:
    """Forget counts not yet flushed (tests)."""
    _take()


class Flusher:
    """Flushes the pending counts into ``engine`` every ``interval`` seconds, and once
    more on ``stop``; calls ``tick`` (if given) before each periodic flush."""

    def __init__(
        self, engine: sa.Engine, interval: float = 10.0, tick: Callable[[], None] | None = None
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._tick = tick
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Flusher:
        # phase b: ops (a tenure.workers.Worker replaces this hand-rolled thread)
        self._thread = threading.Thread(target=self._run, name="tenure-counters", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then flush what is left (errors are logged: stopping must
        not fail on a database that has gone)."""
        if self._thread is None:
            return
        self._stopped.set()
        self._thread.join()
        self._thread = None
        self._flush_logged()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            if self._tick is not None:
                try:
                    self._tick()
                except Exception as exc:  # a gauge that could not be sampled: say so, go on
                    _log.error("sampling operational gauges failed: %s", exc)
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            flush(self._engine)
        except Exception as exc:  # kept in memory for the next try
            _log.error("flushing the per-minute counters failed: %s", exc)
