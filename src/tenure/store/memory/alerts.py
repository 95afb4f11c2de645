"""``Alerts`` in memory (``tenure.store.alerts``); the times it counts come from the
transaction's ledger and projection."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import orjson

from tenure.store.alerts import StoredAlert
from tenure.store.unit import LedgerRecords, Projection


class MemoryAlerts:
    """``Alerts`` over dicts."""

    def __init__(
        self, tables: dict[str, Any], ledger: LedgerRecords, projection: Projection
    ) -> None:
        self._alerts: dict[tuple[str, str], StoredAlert] = tables.setdefault("alerts", {})
        self._ledger, self._projection = ledger, projection

    def _of(self, account: str) -> list[StoredAlert]:
        return [a for (owner, _), a in self._alerts.items() if owner == account]

    def open_alert(self, account: str, kind: str) -> str | None:
        found = [a.id for a in self._of(account) if a.kind == kind and a.cleared_at is None]
        return found[0] if found else None

    def add(self, account: str, alert: StoredAlert) -> None:
        if (account, alert.id) in self._alerts:
            raise KeyError(f"alert {alert.id} exists")
        self._alerts[(account, alert.id)] = alert

    def clear(self, account: str, kind: str, at: str) -> None:
        for alert in self._of(account):
            if alert.kind == kind and alert.cleared_at is None:
                self._alerts[(account, alert.id)] = replace(alert, cleared_at=at)

    def recent(self, account: str, limit: int) -> list[StoredAlert]:
        mine = sorted(self._of(account), key=lambda a: a.id)
        mine.sort(key=lambda a: a.created_at, reverse=True)
        return mine[:limit]

    def open_counts(self, account: str) -> dict[str, int]:
        return dict(Counter(a.kind for a in self._of(account) if a.cleared_at is None))

    def event_times(self, account: str, event_type: str, since: str) -> list[str]:
        events = [orjson.loads(leaf) for _, leaf in self._ledger.leaves(account)]
        first = next((i for i, e in enumerate(events) if e["time"] >= since), len(events))
        return [e["time"] for e in events[first:] if e["type"] == event_type]

    def expiries(self, account: str, since: str, until: str) -> list[str]:
        return [
            row["expires_at"]
            for row in self._projection.rows(account, "licenses")
            if row["expires_at"] is not None and since <= row["expires_at"] < until
        ]
