"""``Listings`` in memory (``tenure.store.listings``), over the transaction's
projection."""

from __future__ import annotations

from typing import Any

from tenure.domain.state import Row
from tenure.store.unit import Projection


class MemoryListings:
    """``Listings`` as filters over the memory projection."""

    def __init__(self, tables: dict[str, Any], projection: Projection) -> None:
        self._stored: dict[tuple[str, str], Any] = tables.setdefault("projection", {})
        self._projection = projection

    def activations_of(self, account: str, serial: str) -> list[Row]:
        rows = self._projection.rows(account, "activations")
        return [row for row in rows if row["serial"] == serial]

    def plan_in_use(self, account: str, plan: str) -> bool:
        return any(row["plan"] == plan for row in self._projection.rows(account, "licenses"))

    def license_statuses(self, account: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._projection.rows(account, "licenses"):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def expired_active(self, account: str, now: str) -> list[str]:
        return [
            row["serial"]
            for row in self._projection.rows(account, "licenses")
            if row["status"] == "active" and row["expires_at"] is not None
            and row["expires_at"] <= now
        ]  # fmt: skip

    def customer_ids(
        self, account: str, after: str | None, prefix: str | None, limit: int
    ) -> list[str]:
        ids = [row["customer"] for row in self._projection.rows(account, "customers")]
        ids = [c for c in ids if (not after or c > after) and c.startswith(prefix or "")]
        return ids[:limit]

    def erased_customers(self) -> list[tuple[str, str]]:
        owners = sorted(account for account, table in self._stored if table == "customer_erasures")
        return [
            (account, row["customer"])
            for account in owners
            for row in self._projection.rows(account, "customer_erasures")
        ]
