"""What the scrape-time state gauges and readiness read that no other noun answers
(docs/observability.md): the latest restore drill, the approvals waiting, and the
schema revision of the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class LatestDrill:
    """When the latest drill ran, whether it passed and its restore time."""

    at: str
    passed: bool
    rto_seconds: float


class Gauges(Protocol):
    """Counts and latest rows for gauges."""

    def latest_drill(self, account: str) -> LatestDrill | None: ...

    def pending_approvals(self, account: str) -> int:
        """Approval requests waiting for a decision."""
        ...

    def schema_revision(self) -> str | None:
        """The schema revision of the database (None if it has none)."""
        ...


class SqlGauges(OnConnection):
    """``Gauges`` on an open connection (SQLite and PostgreSQL)."""

    def latest_drill(self, account: str) -> LatestDrill | None:
        d = t.drills.c
        query = sa.select(d.at, d.passed, d.rto_seconds).where(d.account == account)
        row = self._conn.execute(query.order_by(d.at.desc()).limit(1)).first()
        return None if row is None else LatestDrill(row.at, bool(row.passed), row.rto_seconds)

    def pending_approvals(self, account: str) -> int:
        a = t.projection["approvals"].c
        query = sa.select(sa.func.count()).where(a.account == account, a.status == "pending")
        return int(self._conn.scalar(query) or 0)

    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext  # slow import: when needed

        revision = MigrationContext.configure(self._conn).get_current_revision()
        return None if revision is None else str(revision)
