"""Anomaly alerts (docs/webhooks.md, "Anomaly alerts"): raised alerts, and the event
times the detector counts (ledger events of a type, license expiries).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import ledger_records
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class StoredAlert:
    """A raised alert; ``cleared_at`` is None while it is open."""

    id: str
    kind: str
    window_start: str
    window_end: str
    observed: int
    baseline: float
    threshold: float
    created_at: str
    cleared_at: str | None = None


class Alerts(Protocol):
    """Alerts of every account, and the times the detector counts."""

    def open_alert(self, account: str, kind: str) -> str | None:
        """The id of the open alert of ``kind``, if one is open."""
        ...

    def add(self, account: str, alert: StoredAlert) -> None: ...

    def clear(self, account: str, kind: str, at: str) -> None:
        """Clear the open alerts of ``kind`` at ``at``."""
        ...

    def recent(self, account: str, limit: int) -> list[StoredAlert]:
        """The latest ``limit`` alerts, newest first."""
        ...

    def open_counts(self, account: str) -> dict[str, int]:
        """Kind → open alerts (kinds with none are absent)."""
        ...

    def event_times(self, account: str, event_type: str, since: str) -> list[str]:
        """The times of the account's ledger events of ``event_type`` from the first
        event at or after ``since`` on."""
        ...

    def expiries(self, account: str, since: str, until: str) -> list[str]:
        """The ``expires_at`` of licenses expiring in ``[since, until)``."""
        ...


# ---------------------------------------------------------------- SQL

_a = t.alerts.c


class SqlAlerts(OnConnection):
    """``Alerts`` on an open connection (SQLite and PostgreSQL)."""

    def open_alert(self, account: str, kind: str) -> str | None:
        query = sa.select(_a.id).where(
            _a.account == account, _a.kind == kind, _a.cleared_at.is_(None)
        )
        found = self._conn.scalar(query.limit(1))
        return None if found is None else str(found)

    def add(self, account: str, alert: StoredAlert) -> None:
        self._conn.execute(sa.insert(t.alerts).values(account=account, **asdict(alert)))

    def clear(self, account: str, kind: str, at: str) -> None:
        self._conn.execute(
            sa.update(t.alerts)
            .where(_a.account == account, _a.kind == kind, _a.cleared_at.is_(None))
            .values(cleared_at=at)
        )

    def recent(self, account: str, limit: int) -> list[StoredAlert]:
        return [StoredAlert(*row) for row in self._newest(t.alerts, account, limit)]

    def open_counts(self, account: str) -> dict[str, int]:
        query = (
            sa.select(_a.kind, sa.func.count())
            .where(_a.account == account, _a.cleared_at.is_(None))
            .group_by(_a.kind)
        )
        return {str(kind): int(n) for kind, n in self._conn.execute(query)}

    def event_times(self, account: str, event_type: str, since: str) -> list[str]:
        e = t.ledger_events.c
        first = ledger_records.first_seq_since(self._conn, account, since)
        query = sa.select(e.time).where(e.account == account, e.seq >= first, e.type == event_type)
        return list(self._conn.scalars(query))

    def expiries(self, account: str, since: str, until: str) -> list[str]:
        lic = t.projection["licenses"].c
        query = sa.select(lic.expires_at).where(
            lic.account == account, lic.expires_at >= since, lic.expires_at < until
        )
        return list(self._conn.scalars(query))
