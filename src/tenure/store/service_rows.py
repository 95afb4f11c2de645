"""Service rows: the rows of an account that the ledger does not derive (idempotency
records, API key hashes, public token keys, the account row, ...), read and written
whole, as plain JSON-ready objects, for snapshots, shipped key rows and restores.

``ServiceRows`` is the noun (``tx.service_rows``); ``SqlServiceRows`` holds its SQL.
The table copy of a backend migration is ``tenure.store.table_copy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection
from tenure.store.table_copy import owned_by, plain_row

Rows = dict[str, list[dict[str, Any]]]
"""Rows per table name, each a ``{column: value}`` object."""


class ServiceRows(Protocol):
    """An account's rows of the service tables (``tenure.store.tables``)."""

    def read(self, account: str, tables: Sequence[str]) -> Rows:
        """The account's rows of each of ``tables`` (for ``accounts``: its own row), in
        primary key order."""
        ...

    def insert(self, account: str, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Insert ``rows`` (as ``read`` returns them), keeping an account row that
        exists already."""
        ...


class SqlServiceRows(OnConnection):
    """``ServiceRows`` in SQL."""

    def read(self, account: str, tables: Sequence[str]) -> Rows:
        found: Rows = {}
        for name in tables:
            table = t.metadata.tables[name]
            query = sa.select(table).where(owned_by(table, account)).order_by(*table.primary_key)
            found[name] = [plain_row(row) for row in self._conn.execute(query)]
        return found

    def insert(self, account: str, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        for name, values in rows.items():
            if not values:
                continue
            table = t.metadata.tables[name]
            if name == "accounts":
                exists = self._conn.scalar(sa.select(table.c.id).where(table.c.id == account))
                if exists is not None:
                    continue
            self._conn.execute(sa.insert(table), list(values))
