"""``Gauges`` in memory (``tenure.store.gauges``): approvals from the transaction's
projection; drills as ``record_drill`` left them (the memory store runs none)."""

from __future__ import annotations

from typing import Any

from tenure.store.gauges import LatestDrill
from tenure.store.unit import Projection

MEMORY_REVISION = "memory"
"""The schema revision the memory store reports (it has no migrations)."""


class MemoryGauges:
    """``Gauges`` over dicts."""

    def __init__(self, tables: dict[str, Any], projection: Projection) -> None:
        self._drills: dict[str, LatestDrill] = tables.setdefault("gauges.drills", {})
        self._projection = projection

    def record_drill(self, account: str, drill: LatestDrill) -> None:
        """Remember ``drill`` as the account's latest (tests)."""
        self._drills[account] = drill

    def latest_drill(self, account: str) -> LatestDrill | None:
        return self._drills.get(account)

    def pending_approvals(self, account: str) -> int:
        rows = self._projection.rows(account, "approvals")
        return sum(1 for row in rows if row["status"] == "pending")

    def schema_revision(self) -> str | None:
        return MEMORY_REVISION
