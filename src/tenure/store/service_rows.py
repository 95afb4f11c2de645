"""Service rows: the rows of an account that the ledger does not derive (idempotency
records, API key hashes, public token keys, the account row, webhooks, deployments,
...), read and written whole, as plain JSON-ready objects (binary columns as
base64 text), for snapshots, shipped row files and restores.

``ServiceRows`` is the noun (``tx.service_rows``); ``SqlServiceRows`` holds its SQL.
The table copy of a backend migration is ``tenure.store.table_copy``.
"""

from __future__ import annotations

import base64
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

    def idempotency_of_events(self, account: str, first: int, end: int) -> list[dict[str, Any]]:
        """The account's idempotency records whose first event is one of ``first`` ..
        ``end - 1``, in key order, as ``read`` returns rows."""
        ...

    def counts(self, account: str, tables: Sequence[str]) -> dict[str, int]:
        """How many rows of the account each of ``tables`` holds."""
        ...


def _binary(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, sa.LargeBinary)]


def _json_ready(table: sa.Table, row: sa.Row[Any]) -> dict[str, Any]:
    plain = plain_row(row)
    for name in _binary(table):
        if plain[name] is not None:
            plain[name] = base64.b64encode(plain[name]).decode()
    return plain


def _from_json(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    stored = dict(row)
    for name in _binary(table):
        if isinstance(stored.get(name), str):
            stored[name] = base64.b64decode(stored[name])
    return stored


class SqlServiceRows(OnConnection):
    """``ServiceRows`` in SQL."""

    def read(self, account: str, tables: Sequence[str]) -> Rows:
        found: Rows = {}
        for name in tables:
            table = t.metadata.tables[name]
            query = sa.select(table).where(owned_by(table, account)).order_by(*table.primary_key)
            found[name] = [_json_ready(table, row) for row in self._conn.execute(query)]
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
            self._conn.execute(sa.insert(table), [_from_json(table, row) for row in values])

    def idempotency_of_events(self, account: str, first: int, end: int) -> list[dict[str, Any]]:
        # Through the events' own keys (a range of the events' primary key), so that
        # no scan of every record of the account is needed.
        events, records = t.ledger_events, t.idempotency_keys
        keys = (
            sa.select(events.c.idempotency_key)
            .where(events.c.account == account, events.c.seq >= first, events.c.seq < end)
            .where(events.c.idempotency_key.is_not(None))
        )
        query = (
            sa.select(records)
            .where(records.c.account == account, records.c.key.in_(keys))
            .where(records.c.first_seq >= first, records.c.first_seq < end)
            .order_by(records.c.key)
        )
        return [plain_row(row) for row in self._conn.execute(query)]

    def counts(self, account: str, tables: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for name in tables:
            table = t.metadata.tables[name]
            query = sa.select(sa.func.count()).select_from(table).where(owned_by(table, account))
            found[name] = self._conn.scalar(query) or 0
        return found
