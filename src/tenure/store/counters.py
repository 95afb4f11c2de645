"""Per-minute operational counters (docs/observability.md, "Per-minute counters"):
``ops_minutes`` rows that flushes *add* into, so that several processes (or a
restarted one) sum into the same minute.

Minutes are keys such as ``2026-11-29T08:01Z`` (``tenure.ops.counters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tenure.store.connected import OnConnection
from tenure.store.tables import ops_minutes


@dataclass(frozen=True)
class MinuteCount:
    """``count`` more of ``metric`` of ``account`` in ``minute``."""

    account: str
    minute: str
    metric: str
    count: int


class Counters(Protocol):
    """Counts per account, minute and metric."""

    def add(self, counts: Sequence[MinuteCount]) -> None:
        """Add each count to its stored minute (creating the row if needed)."""
        ...

    def minutes(self, account: str, metric: str, since: str, until: str) -> list[tuple[str, int]]:
        """``(minute, count)`` of ``metric`` for the minutes in ``[since, until)``,
        oldest first; minutes with no count are absent."""
        ...

    def totals(self, account: str, since: str, until: str) -> dict[str, int]:
        """Metric → the sum of its counts over the minutes in ``[since, until)``."""
        ...


class SqlCounters(OnConnection):
    """``Counters`` on an open connection (SQLite and PostgreSQL)."""

    def add(self, counts: Sequence[MinuteCount]) -> None:
        if counts:
            self._conn.execute(self._upsert(), [c.__dict__ for c in counts])

    def _upsert(self) -> sa.Insert:
        """INSERT … ON CONFLICT DO UPDATE SET count = stored + new (SQLite and
        PostgreSQL spell it the same; SQLAlchemy builds it per dialect)."""
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(ops_minutes)
        upsert: sa.Insert = insert.on_conflict_do_update(
            index_elements=[ops_minutes.c.account, ops_minutes.c.minute, ops_minutes.c.metric],
            set_={"count": ops_minutes.c.count + insert.excluded["count"]},
        )
        return upsert

    def minutes(self, account: str, metric: str, since: str, until: str) -> list[tuple[str, int]]:
        m = ops_minutes.c
        query = (
            sa.select(m.minute, m.count)
            .where(m.account == account, m.metric == metric)
            .where(m.minute >= since, m.minute < until)
            .order_by(m.minute)
        )
        return [(minute, int(n)) for minute, n in self._conn.execute(query)]

    def totals(self, account: str, since: str, until: str) -> dict[str, int]:
        m = ops_minutes.c
        query = (
            sa.select(m.metric, sa.func.sum(m.count))
            .where(m.account == account, m.minute >= since, m.minute < until)
            .group_by(m.metric)
        )
        return {metric: int(n or 0) for metric, n in self._conn.execute(query)}
