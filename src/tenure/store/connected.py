"""The base of every SQL noun: its statements run on one open connection whose
transaction the caller owns (``SqlStore`` opens them; the ledger writer's batch
transaction is one too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa


class OnConnection:
    """A noun's SQL on ``conn`` (SQLite and PostgreSQL)."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def _newest(self, table: sa.Table, account: str, limit: int) -> Sequence[Sequence[Any]]:
        """The ``limit`` newest rows of ``account`` in ``table`` (by ``created_at``, then
        ``id``), with every column but ``account``, in the order of the table's."""
        c = table.c
        query = (
            sa.select(*[column for column in c if column.name != "account"])
            .where(c.account == account)
            .order_by(c.created_at.desc(), c.id)
            .limit(limit)
        )
        return self._conn.execute(query).all()
