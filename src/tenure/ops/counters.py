"""Operational counters per minute: cross-worker, restart-proof counts (SLOs, anomaly
baselines; docs/observability.md, "Per-minute counters").

``count`` adds to an in-memory tally (a dict under a lock: cheap enough for the
check path); a ``Flusher`` (a ``tenure.workers.Worker``) adds the tallies into the
store's counters (``tx.counters``) every few seconds, *adding* to the stored counts,
so several workers (or a restarted one) sum into the same minutes. ``read_minutes``
reads them back.

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

from tenure.store.counters import MinuteCount
from tenure.store.unit import Store, Transaction
from tenure.workers import Worker

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
    """The stored key of the minute holding ``at`` ("2026-11-29T08:01Z")."""
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


def flush(store: Store) -> int:
    """Add every pending count into the store; returns how many minutes it touched.

    On failure the counts are kept for the next flush and the error is raised."""
    taken = _take()
    if not taken:
        return 0
    counts = [
        MinuteCount(account, time.strftime(MINUTE_FORMAT, time.gmtime(minute * 60)), metric, n)
        for (account, minute, metric), n in taken.items()
    ]
    try:
        with store.shared_write() as tx:
            tx.counters.add(counts)
    except BaseException:
        _give_back(taken)
        raise
    return len(counts)


_ALMOST_A_MINUTE = timedelta(seconds=59, microseconds=999_999)


def _minutes(since: datetime, until: datetime) -> tuple[str, str]:
    """The minute keys bounding the minutes that start in ``[since, until)``."""
    return minute_key(since), minute_key(until + _ALMOST_A_MINUTE)


def read_minutes(
    tx: Transaction, account: str, metric: str, since: datetime, until: datetime
) -> list[tuple[datetime, int]]:
    """The flushed counts of ``metric`` of ``account`` per minute, for the minutes
    starting in ``[since, until)``, oldest first; minutes with no count are absent."""
    return [
        (datetime.strptime(minute, MINUTE_FORMAT).replace(tzinfo=UTC), n)
        for minute, n in tx.counters.minutes(account, metric, *_minutes(since, until))
    ]


def totals(tx: Transaction, account: str, since: datetime, until: datetime) -> dict[str, int]:
    """The sum of each metric of ``account`` over the minutes in ``[since, until)``."""
    return tx.counters.totals(account, *_minutes(since, until))


def discard_pending() -> None:
    """Forget counts not yet flushed (tests)."""
    _take()


class Flusher(Worker):
    """Flushes the pending counts into ``store`` every ``interval`` seconds, and once
    more on ``stop``; calls ``tick`` (if given) before each periodic flush. A failed
    flush or tick is logged (the counts wait for the next flush): stopping must not
    fail on a database that has gone."""

    def __init__(
        self, store: Store, interval: float = 10.0, tick: Callable[[], None] | None = None
    ) -> None:
        def run() -> None:
            if tick is not None:
                try:
                    tick()
                except Exception as exc:  # a gauge that could not be sampled: say so, go on
                    _log.error("sampling operational gauges failed: %s", exc)
            flush(store)

        def last() -> None:
            try:
                flush(store)
            except Exception as exc:  # kept in memory; the process is stopping anyway
                _log.error("flushing the per-minute counters failed: %s", exc)

        super().__init__(
            "tenure-counters",
            run,
            interval,
            final=last,
            logger=_log,
            what="flushing the per-minute counters",
        )
