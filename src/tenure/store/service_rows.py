"""Service rows: the rows of an account that the ledger does not derive (idempotency
records, API key hashes, public token keys, the account row, webhooks, deployments,
...), read and written whole, as plain JSON-ready objects (binary columns as
base64 text), for snapshots, shipped row files and restores.

``ServiceRows`` is the noun (``tx.service_rows``); ``SqlServiceRows`` holds its SQL.
``copy_service_rows`` is the generic table copy of a backend migration: every
service table of an account, from one SQL store to another.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection

Rows = dict[str, list[dict[str, Any]]]
"""Rows per table name, each a ``{column: value}`` object."""

CHUNK = 10_000

# What a backend migration copies, by how each table changes. Compared by primary
# key on each sync (small, or rows that change):
_KEYED = ("accounts", "api_keys", "signing_keys", "ledger_keys", "audit_heads", "drills")
# Append-only: only the rows past the target's largest ``column``:
_APPENDED = {"ledger_checkpoints": "size", "audit_log": "seq"}
# Immutable: the rows whose key the target lacks:
_INSERTED = ("idempotency_keys",)


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


def _owner(table: sa.Table, account: str) -> sa.ColumnElement[bool]:
    return (table.c.id if table.name == "accounts" else table.c.account) == account


def _binary(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, sa.LargeBinary)]


def _json_ready(table: sa.Table, row: sa.Row[Any]) -> dict[str, Any]:
    plain = _plain(row)
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


def _plain(row: sa.Row[Any]) -> dict[str, Any]:
    # SQLAlchemy names columns with ``quoted_name``, a str subclass canonical JSON
    # (rightly) refuses as an object key; PostgreSQL may hand bytes as memoryview.
    return {str(k): bytes(v) if isinstance(v, memoryview) else v for k, v in row._mapping.items()}


class SqlServiceRows(OnConnection):
    """``ServiceRows`` in SQL."""

    def read(self, account: str, tables: Sequence[str]) -> Rows:
        found: Rows = {}
        for name in tables:
            table = t.metadata.tables[name]
            query = sa.select(table).where(_owner(table, account)).order_by(*table.primary_key)
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
        return [_plain(row) for row in self._conn.execute(query)]

    def counts(self, account: str, tables: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for name in tables:
            table = t.metadata.tables[name]
            query = sa.select(sa.func.count()).select_from(table).where(_owner(table, account))
            found[name] = self._conn.scalar(query) or 0
        return found


# ---------------------------------------------------------------- table copy


def copy_service_rows(source: sa.Connection, target: sa.Connection, account: str) -> None:
    """Make ``target``'s service rows of ``account`` (API keys, idempotency records,
    token signing keys, the account row, checkpoints, verifier keys, audit log,
    drills) ``source``'s."""
    for name in _KEYED:
        _sync_keyed(source, target, t.metadata.tables[name], account)
    for name, column in _APPENDED.items():
        _sync_appended(source, target, t.metadata.tables[name], column, account)
    for name in _INSERTED:
        _sync_inserted(source, target, t.metadata.tables[name], account)


def _keyed_rows(
    conn: sa.Connection, table: sa.Table, account: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key]
    rows = (_plain(r) for r in conn.execute(sa.select(table).where(_owner(table, account))))
    return {tuple(row[k] for k in keys): row for row in rows}


def _sync_keyed(src: sa.Connection, dst: sa.Connection, table: sa.Table, account: str) -> None:
    want = _keyed_rows(src, table, account)
    have = _keyed_rows(dst, table, account)
    stale = [key for key, row in have.items() if want.get(key) != row]
    missing = [row for key, row in want.items() if have.get(key) != row]
    if stale:
        keys = [c.name for c in table.primary_key]
        match = sa.and_(*(table.c[k] == sa.bindparam(f"pk_{k}") for k in keys))
        params = [{f"pk_{k}": v for k, v in zip(keys, key, strict=True)} for key in stale]
        dst.execute(sa.delete(table).where(match), params)
    if missing:
        dst.execute(sa.insert(table), missing)


def _sync_appended(
    src: sa.Connection, dst: sa.Connection, table: sa.Table, column: str, account: str
) -> None:
    last = dst.scalar(sa.select(sa.func.max(table.c[column])).where(table.c.account == account))
    query = sa.select(table).where(table.c.account == account)
    if last is not None:
        query = query.where(table.c[column] > last)
    rows = [_plain(r) for r in src.execute(query.order_by(table.c[column]))]
    for start in range(0, len(rows), CHUNK):
        dst.execute(sa.insert(table), rows[start : start + CHUNK])


def _sync_inserted(src: sa.Connection, dst: sa.Connection, table: sa.Table, account: str) -> None:
    keys = [table.c[c.name] for c in table.primary_key]
    have = {tuple(r) for r in dst.execute(sa.select(*keys).where(table.c.account == account))}
    if not have:  # a first copy: every row, without comparing keys
        _sync_appended(src, dst, table, table.primary_key.columns.values()[-1].name, account)
        return
    want = {tuple(r) for r in src.execute(sa.select(*keys).where(table.c.account == account))}
    missing = sorted(want - have)
    for start in range(0, len(missing), 500):
        batch = missing[start : start + 500]
        match = sa.tuple_(*keys).in_(batch)
        rows = [_plain(r) for r in src.execute(sa.select(table).where(match))]
        dst.execute(sa.insert(table), rows)
