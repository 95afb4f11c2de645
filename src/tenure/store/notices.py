"""Lifecycle notices (docs/webhooks.md): each notice recorded once, and the licenses
the notice job looks at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.domain.state import Row
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class StoredNotice:
    """A recorded notice; ``lead`` (days) is None for ``license.grace_started``."""

    id: str
    kind: str
    serial: str
    customer: str | None
    expires_at: str
    lead: int | None
    created_at: str


class Notices(Protocol):
    """Recorded notices of every account."""

    def add(self, account: str, notice: StoredNotice) -> bool:
        """Record ``notice``; False if one of its id is recorded already."""
        ...

    def recent(self, account: str, limit: int) -> list[StoredNotice]:
        """The latest ``limit`` notices, newest first."""
        ...

    def expiring(self, account: str, since: str, until: str) -> list[Row]:
        """Active licenses whose ``expires_at`` is in ``[since, until]``: their serial,
        customer, plan, plan_version, status and expires_at."""
        ...


# ---------------------------------------------------------------- SQL

_INSERT = sa.text(
    "INSERT INTO notices (account, id, kind, serial, customer, expires_at, lead, created_at) "
    "VALUES (:account, :id, :kind, :serial, :customer, :expires_at, :lead, :created_at) "
    "ON CONFLICT DO NOTHING"
)


class SqlNotices(OnConnection):
    """``Notices`` on an open connection (SQLite and PostgreSQL)."""

    def add(self, account: str, notice: StoredNotice) -> bool:
        return bool(self._conn.execute(_INSERT, {"account": account, **asdict(notice)}).rowcount)

    def recent(self, account: str, limit: int) -> list[StoredNotice]:
        return [StoredNotice(*row) for row in self._newest(t.notices, account, limit)]

    def expiring(self, account: str, since: str, until: str) -> list[Row]:
        lic = t.projection["licenses"].c
        query = sa.select(
            lic.serial, lic.customer, lic.plan, lic.plan_version, lic.status, lic.expires_at
        ).where(
            lic.account == account,
            lic.status == "active",
            lic.expires_at.is_not(None),
            lic.expires_at <= until,
            lic.expires_at >= since,
        )
        return [dict(row._mapping) for row in self._conn.execute(query)]
