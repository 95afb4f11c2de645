"""Drill results (``tenure.durability.drill``): one row per drill of an account.

``Drills`` is the noun (``tx.drills``); ``SqlDrills`` holds its SQL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class DrillReport:
    """What a drill found: RTO, RPO, and whether the restore equals the live store."""

    account: str
    at: str
    site: str
    passed: bool
    rto_seconds: float
    rpo_events: int
    rpo_seconds: float
    restored_size: int
    live_size: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Drills(Protocol):
    """The drills of each account."""

    def record(self, report: DrillReport) -> None: ...

    def latest(self, account: str) -> DrillReport | None:
        """The account's newest drill, or None before the first."""
        ...


class SqlDrills(OnConnection):
    """``Drills`` in SQL."""

    def record(self, report: DrillReport) -> None:
        self._conn.execute(sa.insert(t.drills).values(**report.to_json()))

    def latest(self, account: str) -> DrillReport | None:
        drills = t.drills.c
        query = sa.select(t.drills).where(drills.account == account).order_by(drills.at.desc())
        row = self._conn.execute(query.limit(1)).first()
        return None if row is None else DrillReport(**{str(k): v for k, v in row._asdict().items()})
