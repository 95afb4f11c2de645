"""The SQL store: every read and write of ledger and projection rows.

All functions take an open ``Connection`` so that the caller (the ledger writer,
the rebuild, the API) decides the transaction: an event, its Merkle nodes, the
head, the projection changes and the idempotency record commit together or not
at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tenure.domain.state import TABLE_ORDER, TABLES, Key, Row
from tenure.errors import LedgerTampered
from tenure.ledger.canonical import canonical_json
from tenure.ledger.merkle import Frontier, NodeId
from tenure.store import tables as t


@dataclass(frozen=True)
class Head:
    """The ledger head of one account: its origin and number of events."""

    account: str
    origin: str
    size: int


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at: str


@dataclass(frozen=True)
class EventRow:
    """A stored event as it goes into ``ledger_events``."""

    seq: int
    id: str
    type: str
    subject: str | None
    time: str
    idempotency_key: str | None
    leaf: bytes


# ---------------------------------------------------------------- ledger head


def read_head(conn: sa.Connection, account: str) -> Head | None:
    row = conn.execute(
        sa.select(t.ledger_heads.c.origin, t.ledger_heads.c.size).where(
            t.ledger_heads.c.account == account
        )
    ).first()
    return None if row is None else Head(account, row.origin, row.size)


def create_head(conn: sa.Connection, account: str, origin: str) -> Head:
    conn.execute(sa.insert(t.ledger_heads).values(account=account, origin=origin, size=0))
    return Head(account, origin, 0)


def set_head_size(conn: sa.Connection, account: str, old: int, new: int) -> None:
    """Move the head from ``old`` to ``new``; fails loudly if another writer moved it."""
    moved = conn.execute(
        sa.update(t.ledger_heads)
        .where(t.ledger_heads.c.account == account, t.ledger_heads.c.size == old)
        .values(size=new)
    )
    if moved.rowcount != 1:
        raise LedgerTampered(f"ledger head of {account} moved during an append", seq=old)


def accounts(conn: sa.Connection) -> list[str]:
    return list(
        conn.scalars(sa.select(t.ledger_heads.c.account).order_by(t.ledger_heads.c.account))
    )


# ---------------------------------------------------------------- events and nodes


def insert_events(conn: sa.Connection, account: str, rows: Sequence[EventRow]) -> None:
    if rows:
        conn.execute(
            sa.insert(t.ledger_events),
            [
                {
                    "account": account,
                    "seq": r.seq,
                    "id": r.id,
                    "type": r.type,
                    "subject": r.subject,
                    "time": r.time,
                    "idempotency_key": r.idempotency_key,
                    "leaf": r.leaf,
                }
                for r in rows
            ],
        )


def insert_nodes(
    conn: sa.Connection, account: str, nodes: Sequence[tuple[int, int, bytes]]
) -> None:
    if nodes:
        conn.execute(
            sa.insert(t.ledger_nodes),
            [{"account": account, "level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes],
        )


def last_event_time(conn: sa.Connection, account: str, size: int) -> str | None:
    if size == 0:
        return None
    return conn.scalar(
        sa.select(t.ledger_events.c.time).where(
            t.ledger_events.c.account == account, t.ledger_events.c.seq == size - 1
        )
    )


def iter_leaves(
    conn: sa.Connection, account: str, start: int = 0, stop: int | None = None, chunk: int = 5000
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(seq, leaf)`` in seq order from ``start`` up to ``stop`` (exclusive)."""
    events = t.ledger_events
    at = start
    while stop is None or at < stop:
        query = (
            sa.select(events.c.seq, events.c.leaf)
            .where(events.c.account == account, events.c.seq >= at)
            .order_by(events.c.seq)
            .limit(chunk if stop is None else min(chunk, stop - at))
        )
        rows = conn.execute(query).all()
        if not rows:
            return
        yield from ((seq, leaf) for seq, leaf in rows)
        at = rows[-1][0] + 1


def events_about(conn: sa.Connection, account: str, subject: str) -> list[tuple[int, bytes]]:
    events = t.ledger_events
    query = (
        sa.select(events.c.seq, events.c.leaf)
        .where(events.c.account == account, events.c.subject == subject)
        .order_by(events.c.seq)
    )
    return [(seq, leaf) for seq, leaf in conn.execute(query)]


class NodeReader:
    """Reads stored subtree hashes of one account (a ``merkle.HashReader``)."""

    def __init__(self, conn: sa.Connection, account: str) -> None:
        self.conn = conn
        self.account = account

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        if not ids:
            return []
        nodes = t.ledger_nodes
        query = sa.select(nodes.c.level, nodes.c.idx, nodes.c.hash).where(
            nodes.c.account == self.account,
            sa.tuple_(nodes.c.level, nodes.c.idx).in_(list(set(ids))),
        )
        found = {(lv, ix): h for lv, ix, h in self.conn.execute(query)}
        missing = [node for node in ids if node not in found]
        if missing:
            level, index = missing[0]
            raise LedgerTampered(
                f"Merkle node {missing[0]} of {self.account} is missing", seq=index << level
            )
        return [found[node] for node in ids]


def read_frontier(conn: sa.Connection, account: str, size: int) -> Frontier:
    return Frontier(size, NodeReader(conn, account).read_hashes(Frontier.node_ids(size)))


# ---------------------------------------------------------------- checkpoints and keys


def insert_checkpoint(conn: sa.Connection, account: str, cp: StoredCheckpoint) -> None:
    conn.execute(
        sa.insert(t.ledger_checkpoints).values(
            account=account, size=cp.size, root=cp.root, note=cp.note, signed_at=cp.signed_at
        )
    )


def read_checkpoint(
    conn: sa.Connection, account: str, size: int | None = None
) -> StoredCheckpoint | None:
    """The stored checkpoint of exactly ``size``, or the latest one when ``size`` is None."""
    cps = t.ledger_checkpoints
    query = sa.select(cps.c.size, cps.c.root, cps.c.note, cps.c.signed_at).where(
        cps.c.account == account
    )
    if size is None:
        query = query.order_by(cps.c.size.desc()).limit(1)
    else:
        query = query.where(cps.c.size == size)
    row = conn.execute(query).first()
    return None if row is None else StoredCheckpoint(row.size, row.root, row.note, row.signed_at)


def all_checkpoints(conn: sa.Connection, account: str) -> list[StoredCheckpoint]:
    cps = t.ledger_checkpoints
    query = (
        sa.select(cps.c.size, cps.c.root, cps.c.note, cps.c.signed_at)
        .where(cps.c.account == account)
        .order_by(cps.c.size)
    )
    return [StoredCheckpoint(r.size, r.root, r.note, r.signed_at) for r in conn.execute(query)]


def verifier_keys(conn: sa.Connection, account: str) -> list[str]:
    keys = t.ledger_keys
    query = sa.select(keys.c.verifier).where(keys.c.account == account).order_by(keys.c.created_at)
    return list(conn.scalars(query))


def record_verifier_key(
    conn: sa.Connection, account: str, key_id: str, verifier: str, at: str
) -> None:
    keys = t.ledger_keys
    exists = conn.scalar(
        sa.select(sa.func.count()).where(keys.c.account == account, keys.c.key_id == key_id)
    )
    if not exists:
        conn.execute(
            sa.insert(keys).values(account=account, key_id=key_id, verifier=verifier, created_at=at)
        )


# ---------------------------------------------------------------- idempotency


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    first_seq: int | None
    event_count: int
    result: dict[str, Any]


_IDEMPOTENCY_QUERY = sa.select(
    t.idempotency_keys.c.request_hash,
    t.idempotency_keys.c.first_seq,
    t.idempotency_keys.c.event_count,
    t.idempotency_keys.c.result,
).where(
    t.idempotency_keys.c.account == sa.bindparam("account"),
    t.idempotency_keys.c.key == sa.bindparam("key"),
)


def read_idempotency(conn: sa.Connection, account: str, key: str) -> IdempotencyRecord | None:
    row = conn.execute(_IDEMPOTENCY_QUERY, {"account": account, "key": key}).first()
    if row is None:
        return None
    return IdempotencyRecord(
        row.request_hash, row.first_seq, row.event_count, orjson.loads(row.result)
    )


def insert_idempotency(
    conn: sa.Connection, account: str, records: Sequence[tuple[str, IdempotencyRecord, str]]
) -> None:
    if records:
        conn.execute(
            sa.insert(t.idempotency_keys),
            [
                {
                    "account": account,
                    "key": key,
                    "request_hash": rec.request_hash,
                    "first_seq": rec.first_seq,
                    "event_count": rec.event_count,
                    "result": canonical_json(rec.result).decode(),
                    "created_at": at,
                }
                for key, rec, at in records
            ],
        )


# ---------------------------------------------------------------- projection


def _to_sql(table: str, account: str, row: Row) -> dict[str, Any]:
    json_columns = TABLES[table].json_columns
    params = {"account": account}
    for column, value in row.items():
        params[column] = canonical_json(value).decode() if column in json_columns else value
    return params


def _from_sql(table: str, record: sa.Row[Any]) -> Row:
    spec = TABLES[table]
    row = {str(column): value for column, value in record._mapping.items()}
    row.pop("account", None)
    for column in spec.json_columns:
        row[column] = orjson.loads(row[column])
    return row


@functools.cache
def _row_query(table: str) -> sa.Select[Any]:
    spec = TABLES[table]
    sql = t.projection[table]
    return sa.select(sql).where(
        sql.c.account == sa.bindparam("account"),
        *(sql.c[col] == sa.bindparam(f"k_{col}") for col in spec.key),
    )


def read_row(conn: sa.Connection, account: str, table: str, key: Key) -> Row | None:
    """One projection row by key (the statement is built once per table and cached)."""
    params: dict[str, Any] = {"account": account}
    for column, value in zip(TABLES[table].key, key, strict=True):
        params[f"k_{column}"] = value
    record = conn.execute(_row_query(table), params).first()
    return None if record is None else _from_sql(table, record)


def _insert_for(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(dialect)


def write_rows(
    conn: sa.Connection, account: str, table: str, upserts: Sequence[Row], deletes: Sequence[Key]
) -> None:
    """Upsert and delete projection rows of ``table`` in two statements."""
    spec = TABLES[table]
    sql = t.projection[table]
    if deletes:
        conditions = [sql.c[col] == sa.bindparam(f"k_{col}") for col in spec.key]
        conn.execute(
            sa.delete(sql).where(sql.c.account == account, *conditions),
            [
                {f"k_{col}": value for col, value in zip(spec.key, key, strict=True)}
                for key in deletes
            ],
        )
    if upserts:
        stmt = _insert_for(conn, sql)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account", *spec.key],
            set_={col: stmt.excluded[col] for col in spec.columns if col not in spec.key},
        )
        conn.execute(stmt, [_to_sql(table, account, row) for row in upserts])


def bulk_insert_rows(conn: sa.Connection, account: str, table: str, rows: Iterable[Row]) -> None:
    """Insert rows into an empty projection table (used by rebuild)."""
    params = [_to_sql(table, account, row) for row in rows]
    for start in range(0, len(params), 10_000):
        conn.execute(sa.insert(t.projection[table]), params[start : start + 10_000])


def delete_projection(conn: sa.Connection, account: str) -> None:
    for table in TABLE_ORDER:
        sql = t.projection[table]
        conn.execute(sa.delete(sql).where(sql.c.account == account))


def projection_rows(conn: sa.Connection, account: str, table: str) -> list[Row]:
    """All rows of ``table`` in ascending key order (sorted here, not by SQL collation)."""
    spec = TABLES[table]
    sql = t.projection[table]
    rows = [
        _from_sql(table, r) for r in conn.execute(sa.select(sql).where(sql.c.account == account))
    ]
    rows.sort(key=spec.key_of)
    return rows
