"""``AuditLog`` in memory (``tenure.store.audit``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tenure.store.audit import AuditFilter, AuditRecord


@dataclass
class _Chain:
    records: list[AuditRecord] = field(default_factory=list)
    head: tuple[int, bytes] | None = None


def _matches(record: AuditRecord, where: AuditFilter) -> bool:
    return all(
        wanted is None or wanted == got
        for wanted, got in (
            (where.action, record.action),
            (where.outcome, record.outcome),
            (where.principal, record.principal),
            (where.target, record.target),
        )
    )


class MemoryAuditLog:
    """``AuditLog`` over a list of records per account."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._chains: dict[str, _Chain] = tables.setdefault("audit", {})

    def _records(self, account: str) -> list[AuditRecord]:
        chain = self._chains.get(account)
        return chain.records if chain else []

    def head(self, account: str) -> tuple[int, bytes] | None:
        chain = self._chains.get(account)
        return chain.head if chain else None

    def append(self, account: str, records: Sequence[AuditRecord], size: int, last: bytes) -> None:
        chain = self._chains.setdefault(account, _Chain())
        chain.records.extend(records)
        chain.head = (size, last)

    def page(
        self, account: str, after: int | None, limit: int, where: AuditFilter, newest_first: bool
    ) -> list[tuple[int, bytes, bytes]]:
        found = [r for r in self._records(account) if _matches(r, where)]
        if newest_first:
            found.reverse()
        if after is not None:
            found = [r for r in found if (r.seq < after if newest_first else r.seq > after)]
        return [(r.seq, r.entry, r.hash) for r in found[:limit]]

    def chain(self, account: str, after: int, limit: int) -> list[AuditRecord]:
        return [r for r in self._records(account) if r.seq > after][:limit]

    def accounts(self) -> list[str]:
        return sorted(account for account, chain in self._chains.items() if chain.head)

    def outcomes(self, account: str, action: str, since: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._records(account):
            if r.action == action and r.time >= since:
                counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return counts
