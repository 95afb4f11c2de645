"""Drill results in memory (``tenure.store.drills.Drills``)."""

from __future__ import annotations

from typing import Any

from tenure.store.drills import DrillReport


class MemoryDrills:
    """``Drills`` in memory."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._drills: dict[tuple[str, str], DrillReport] = tables.setdefault("drills", {})

    def record(self, report: DrillReport) -> None:
        self._drills[report.account, report.at] = report

    def latest(self, account: str) -> DrillReport | None:
        mine = [report for (owner, _), report in self._drills.items() if owner == account]
        return max(mine, key=lambda report: report.at, default=None)
