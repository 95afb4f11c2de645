"""``Notices`` in memory (``tenure.store.notices``); the licenses it looks at come
from the transaction's projection."""

from __future__ import annotations

from typing import Any

from tenure.domain.state import Row
from tenure.store.notices import StoredNotice
from tenure.store.unit import Projection

_LICENSE_COLUMNS = ("serial", "customer", "plan", "plan_version", "status", "expires_at")


class MemoryNotices:
    """``Notices`` over dicts."""

    def __init__(self, tables: dict[str, Any], projection: Projection) -> None:
        self._notices: dict[tuple[str, str], StoredNotice] = tables.setdefault("notices", {})
        self._projection = projection

    def add(self, account: str, notice: StoredNotice) -> bool:
        if (account, notice.id) in self._notices:
            return False
        self._notices[(account, notice.id)] = notice
        return True

    def recent(self, account: str, limit: int) -> list[StoredNotice]:
        mine = [n for (owner, _), n in self._notices.items() if owner == account]
        mine.sort(key=lambda n: n.id)
        mine.sort(key=lambda n: n.created_at, reverse=True)
        return mine[:limit]

    def expiring(self, account: str, since: str, until: str) -> list[Row]:
        return [
            {column: row[column] for column in _LICENSE_COLUMNS}
            for row in self._projection.rows(account, "licenses")
            if row["status"] == "active"
            and row["expires_at"] is not None
            and since <= row["expires_at"] <= until
        ]
