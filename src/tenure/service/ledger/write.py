"""The generic writer ``Operation`` over a SQL connection (issue 16 phase b removes
it: each use becomes a typed operation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from tenure.errors import TenureError
from tenure.service.audit import AuditEntry
from tenure.service.ledger.requests import Outcome
from tenure.store.unit import SqlTransaction, Transaction


@dataclass(frozen=True)
class Write:
    """The generic ``Operation``: ``apply`` on the transaction's SQL connection.

    An adapter for the changes whose SQL is not yet behind a store noun: issue 16
    phase b replaces each use by a typed operation (each is marked with its group).
    ``entry`` is the audit entry to write; its outcome and code are filled in here,
    and its target from the result's ``"id"`` when it names none. It must belong to
    ``account``.
    """

    account: str
    apply: Callable[[sa.Connection], dict[str, Any]]
    entry: AuditEntry

    def __post_init__(self) -> None:
        if self.entry.account != self.account:
            raise ValueError("a Write's audit entry must belong to its account")

    def run(self, tx: Transaction) -> dict[str, Any]:
        if not isinstance(tx, SqlTransaction):
            raise TypeError("a Write needs a SQL transaction")
        return self.apply(tx.connection)

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry:
        if error is not None:
            return replace(self.entry, outcome="denied", code=error.code)
        target = self.entry.target or (outcome.result.get("id") if outcome else None)
        return replace(self.entry, outcome="allowed", code="ok", target=target)
