"""``Revocations`` in memory (``tenure.store.revocations``), over the events of the
memory ledger (``tenure.store.memory.ledger``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tenure.store.records import EventRow


class MemoryRevocations:
    """``Revocations`` over the memory ledger's events."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._ledgers: dict[str, Any] = tables.setdefault("ledger", {})

    def _events(self, account: str) -> list[EventRow]:
        ledger = self._ledgers.get(account)
        return list(ledger.events) if ledger else []

    def events(self, account: str, since: int, types: Collection[str]) -> list[tuple[int, bytes]]:
        return [
            (e.seq, e.leaf) for e in self._events(account) if e.seq >= since and e.type in types
        ]

    def revoked_since(self, account: str, since: str) -> int:
        return sum(
            1 for e in self._events(account) if e.type == "license.revoked" and e.time >= since
        )
