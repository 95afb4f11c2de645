"""The SQL of the projection noun (``unit.Projection``): the rows of each account's
projection tables (``tenure.domain.state.TABLES``), JSON columns as canonical JSON.

Every write here writes the rows' state-map leaves too (``tenure.store.state_map``)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from tenure.canonical import canonical_json
from tenure.domain.state import TABLE_ORDER, TABLES, Key, Row
from tenure.store import raw, state_map
from tenure.store import tables as t


def _to_sql(table: str, account: str, row: Row) -> dict[str, Any]:
    json_columns = TABLES[table].json_columns
    params = {"account": account}
    for column, value in row.items():
        params[column] = canonical_json(value).decode() if column in json_columns else value
    return params


def row_from_sql(table: str, values: Sequence[Any]) -> Row:
    """A projection row from its column values, in ``TableSpec.columns`` order."""
    spec = TABLES[table]
    row = dict(zip(spec.columns, values, strict=True))
    for column in spec.json_columns:
        row[column] = orjson.loads(row[column])
    return row


@functools.cache
def _projection_sql(table: str) -> tuple[str, str, str]:
    """The select-by-key, upsert and delete-by-key statements of a projection table.

    Table and column names come from ``TABLES`` (code), never from input; values
    are always bound parameters.
    """
    spec = TABLES[table]
    name = f"proj_{table}"
    where = " AND ".join(["account = :account", *(f"{col} = :{col}" for col in spec.key)])
    columns = ", ".join(spec.columns)
    updates = ", ".join(f"{col} = excluded.{col}" for col in spec.columns if col not in spec.key)
    select = f"SELECT {columns} FROM {name} WHERE {where}"  # noqa: S608
    upsert = (
        f"INSERT INTO {name} (account, {columns}) "  # noqa: S608
        f"VALUES (:account, {', '.join(':' + col for col in spec.columns)}) "
        f"ON CONFLICT (account, {', '.join(spec.key)}) "
        # A table of key columns only (customer_erasures) has nothing to update.
        + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    )
    return select, upsert, f"DELETE FROM {name} WHERE {where}"  # noqa: S608


def _key_params(table: str, account: str, key: Key) -> dict[str, Any]:
    params: dict[str, Any] = {"account": account}
    params.update(zip(TABLES[table].key, key, strict=True))
    return params


def read_row(conn: sa.Connection, account: str, table: str, key: Key) -> Row | None:
    """One projection row by key."""
    select = _projection_sql(table)[0]
    values = raw.execute(conn, select, _key_params(table, account, key)).fetchone()
    return None if values is None else row_from_sql(table, values)


class ConnectionView:
    """The projection of one account as a connection's transaction sees it
    (a ``StateView``; every ``get`` is one query)."""

    def __init__(self, conn: sa.Connection, account: str) -> None:
        self._conn = conn
        self._account = account

    def get(self, table: str, key: Key) -> Row | None:
        return read_row(self._conn, self._account, table, key)


def write_rows(
    conn: sa.Connection, account: str, table: str, upserts: Sequence[Row], deletes: Sequence[Key]
) -> None:
    """Upsert and delete projection rows of ``table`` (one driver call each)."""
    _, upsert, delete = _projection_sql(table)
    raw.executemany(conn, delete, [_key_params(table, account, key) for key in deletes])
    raw.executemany(conn, upsert, [_to_sql(table, account, row) for row in upserts])
    state_map.write_leaves(conn, account, *state_map.leaf_changes(table, upserts, deletes))


@functools.cache
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    spec = TABLES[table]
    assignments = ", ".join(f"{col} = :{col}" for col in columns)
    where = " AND ".join(["account = :account", *(f"{col} = :{col}" for col in spec.key)])
    return f"UPDATE proj_{table} SET {assignments} WHERE {where}"  # noqa: S608 - names from TABLES


def update_rows(
    conn: sa.Connection, account: str, table: str, columns: tuple[str, ...], rows: Sequence[Row]
) -> None:
    """Set ``columns`` of existing rows to the values in ``rows`` (whole rows; one
    driver call), and their leaves."""
    raw.executemany(conn, _update_sql(table, columns), [_to_sql(table, account, r) for r in rows])
    state_map.write_leaves(conn, account, *state_map.leaf_changes(table, rows, ()))


def bulk_insert_rows(conn: sa.Connection, account: str, table: str, rows: Iterable[Row]) -> None:
    """Insert rows into an empty projection table (rebuild, restore): straight to the
    driver, in chunks."""
    upsert = _projection_sql(table)[1]
    rows = list(rows)
    params = [_to_sql(table, account, row) for row in rows]
    for start in range(0, len(params), 10_000):
        raw.executemany(conn, upsert, params[start : start + 10_000])
    # In key order: random keys into the map's B-tree page by page, not at random.
    leaves = sorted(state_map.leaf_changes(table, rows, ())[0])
    for start in range(0, len(leaves), 10_000):
        state_map.write_leaves(conn, account, leaves[start : start + 10_000], ())


def delete_projection(conn: sa.Connection, account: str) -> None:
    """Delete every row of ``account``, and its state map."""
    for table in TABLE_ORDER:
        sql = t.projection[table]
        conn.execute(sa.delete(sql).where(sql.c.account == account))
    state_map.clear_map(conn, account)


def projection_rows(
    conn: sa.Connection, account: str, table: str, ordered: bool = True
) -> list[Row]:
    """All rows of ``table``, in ascending key order (sorted here, not by SQL collation)
    when ``ordered``."""
    spec = TABLES[table]
    sql = t.projection[table]
    query = sa.select(*(sql.c[col] for col in spec.columns)).where(sql.c.account == account)
    rows = [row_from_sql(table, r) for r in conn.execute(query)]
    if ordered:
        rows.sort(key=spec.key_of)
    return rows
