"""``SqlWrite``: an operation of the ledger writer that runs any SQL on the batch's
connection, for tests of what the writer does with a change that waits, fails or
that the database refuses (production changes are typed operations on store nouns:
``tenure.service.handlers``, ``tenure.ops.handlers``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tenure.service.handlers.audited import AuditedChange
from tenure.store.unit import SqlTransaction, Transaction


@dataclass(frozen=True)
class SqlWrite(AuditedChange):
    """``apply`` on the transaction's SQL connection, audited with ``entry``."""

    apply: Callable[[sa.Connection], dict[str, Any]] = field(repr=False)

    def run(self, tx: Transaction) -> dict[str, Any]:
        assert isinstance(tx, SqlTransaction), "an SqlWrite needs a SQL transaction"
        return self.apply(tx.connection)
