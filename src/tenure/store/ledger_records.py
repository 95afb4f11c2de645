"""The SQL of the ledger noun (``unit.LedgerRecords`` and ``unit.Idempotency``): each
account's head, events, Merkle nodes, signed checkpoints, verifier keys and
idempotency records.

All functions take an open ``Connection`` so that the caller (the ledger writer,
the rebuild, a read) decides the transaction: an event, its Merkle nodes, the head,
the projection changes and the idempotency record commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from tenure.canonical import canonical_json
from tenure.errors import LedgerTampered
from tenure.ledger.merkle import Frontier, NodeId
from tenure.ledger.statemap import ZERO
from tenure.store import columns, notify, raw
from tenure.store import tables as t
from tenure.store.records import EventRow, Head, IdempotencyRecord, StoredCheckpoint


def read_head(conn: sa.Connection, account: str) -> Head | None:
    """The head of ``account``'s ledger, None if it has none; ``LedgerTampered`` if the
    stored row does not hold an origin and a size."""
    row = raw.execute(
        conn, "SELECT origin, size FROM ledger_heads WHERE account = :account", {"account": account}
    ).fetchone()
    if row is None:
        return None
    what = f"the ledger head of {account}"
    origin = columns.text(row[0], f"the origin of {what}", None)
    return Head(account, origin, columns.integer(row[1], f"the size of {what}", None))


def create_head(conn: sa.Connection, account: str, origin: str) -> Head:
    # A new account's state map is built (and empty): its root is the empty map's.
    conn.execute(
        sa.insert(t.ledger_heads).values(account=account, origin=origin, size=0, state_root=ZERO)
    )
    return Head(account, origin, 0)


def set_head_size(conn: sa.Connection, account: str, old: int, new: int) -> None:
    """Move the head from ``old`` to ``new``; fails loudly if another writer moved it."""
    moved = raw.execute(
        conn,
        "UPDATE ledger_heads SET size = :new WHERE account = :account AND size = :old",
        {"new": new, "account": account, "old": old},
    )
    if moved.rowcount != 1:
        raise LedgerTampered(f"ledger head of {account} moved during an append", seq=old)


def accounts(conn: sa.Connection) -> list[str]:
    return list(
        conn.scalars(sa.select(t.ledger_heads.c.account).order_by(t.ledger_heads.c.account))
    )


def external_write_marker(conn: sa.Connection) -> int | None:
    """A number that changes whenever a connection other than ``conn`` commits.

    SQLite's ``data_version``. PostgreSQL has no such marker: there it is the marker
    of the process's ``LISTEN tenure_ledger`` listener (``tenure.store.notify``),
    which moves when another process announces a write; without a connected listener
    every call returns a new number, so a caller that caches rows between
    transactions re-reads them in each one.
    """
    if conn.dialect.name != "sqlite":
        listener = notify.listener_of(conn.engine)
        marker = listener.marker() if listener is not None else None
        return notify.fresh_marker() if marker is None else marker
    row = raw.execute(conn, "PRAGMA data_version", {}).fetchone()
    return int(row[0])


_INSERT_EVENT = (
    "INSERT INTO ledger_events (account, seq, id, type, subject, time, idempotency_key, leaf) "
    "VALUES (:account, :seq, :id, :type, :subject, :time, :idempotency_key, :leaf)"
)


_INSERT_NODE = (
    "INSERT INTO ledger_nodes (account, level, idx, hash) VALUES (:account, :level, :idx, :hash)"
)


def insert_events(conn: sa.Connection, account: str, rows: Sequence[EventRow]) -> None:
    raw.executemany(
        conn,
        _INSERT_EVENT,
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
    raw.executemany(
        conn,
        _INSERT_NODE,
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
    """Yield ``(seq, leaf)`` in seq order from ``start`` up to ``stop`` (exclusive).

    Raises ``LedgerTampered`` naming the seq of a row whose seq is not an integer (the
    seq expected there) or whose leaf is not a blob."""
    text = (
        "SELECT seq, leaf FROM ledger_events WHERE account = :account AND seq >= :at "
        "ORDER BY seq LIMIT :limit"
    )
    at = start
    while stop is None or at < stop:
        limit = chunk if stop is None else min(chunk, stop - at)
        rows = raw.execute(conn, text, {"account": account, "at": at, "limit": limit}).fetchall()
        if not rows:
            return
        for seq, leaf in rows:
            if type(seq) is not int or type(leaf) is not bytes:
                seq, leaf = _typed_event(seq, leaf, at)
            yield seq, leaf
            at = seq + 1


def _typed_event(seq: object, leaf: object, expected: int) -> tuple[int, bytes]:
    """A stored event's seq and leaf of the wrong types (a driver's memoryview) as
    int and bytes; ``LedgerTampered`` for anything else, naming the seq."""
    number = columns.integer(seq, f"the seq of the event after {expected - 1}", expected)
    return number, columns.blob(leaf, f"the leaf of event {number}", number)


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
        # One primary-key lookup per node: O(log n) index probes. (A tuple IN list
        # is planned by SQLite as a scan of all the account's nodes.)
        text = (
            "SELECT hash FROM ledger_nodes "
            "WHERE account = :account AND level = :level AND idx = :idx"
        )
        hashes: list[bytes] = []
        for level, index in ids:
            params = {"account": self.account, "level": level, "idx": index}
            row = raw.execute(self.conn, text, params).fetchone()
            if row is None:
                raise LedgerTampered(
                    f"Merkle node {(level, index)} of {self.account} is missing", seq=index << level
                )
            digest = row[0]
            if type(digest) is not bytes:
                what = f"Merkle node {(level, index)} of {self.account}"
                digest = columns.blob(digest, what, index << level)
            hashes.append(digest)
        return hashes


def level_nodes(conn: sa.Connection, account: str, level: int) -> Iterator[tuple[int, bytes]]:
    """``(idx, hash)`` of the stored nodes of ``level`` in index order; ``LedgerTampered``
    naming the first seq under a node whose index or hash is of the wrong type."""
    nodes = t.ledger_nodes
    query = (
        sa.select(nodes.c.idx, nodes.c.hash)
        .where(nodes.c.account == account, nodes.c.level == level)
        .order_by(nodes.c.idx)
    )
    after = -1
    for stored_idx, stored_hash in conn.execute(query):
        what = f"the index of the stored Merkle node of level {level} after index {after}"
        idx = columns.integer(stored_idx, what, (after + 1) << level)
        what = f"stored Merkle node (level {level}, index {idx})"
        yield idx, columns.blob(stored_hash, what, idx << level)
        after = idx


def lowest_level_from(conn: sa.Connection, account: str, level: int) -> int | None:
    """The lowest level at or above ``level`` holding a stored node of ``account``."""
    nodes = t.ledger_nodes
    lowest: int | None = conn.scalar(
        sa.select(sa.func.min(nodes.c.level)).where(
            nodes.c.account == account, nodes.c.level >= level
        )
    )
    return lowest


def read_frontier(conn: sa.Connection, account: str, size: int) -> Frontier:
    return Frontier(size, NodeReader(conn, account).read_hashes(Frontier.node_ids(size)))


def insert_checkpoint(conn: sa.Connection, account: str, cp: StoredCheckpoint) -> None:
    conn.execute(
        sa.insert(t.ledger_checkpoints).values(
            account=account, size=cp.size, root=cp.root, note=cp.note, signed_at=cp.signed_at
        )
    )


def read_checkpoint(
    conn: sa.Connection, account: str, size: int | None = None
) -> StoredCheckpoint | None:
    """The stored checkpoint of exactly ``size``, or the latest one when ``size`` is None.

    On every check's path: straight to the driver."""
    if size is None:
        row = raw.execute(conn, _LATEST_CHECKPOINT, {"account": account}).fetchone()
    else:
        row = raw.execute(conn, _CHECKPOINT_OF_SIZE, {"account": account, "size": size}).fetchone()
    return None if row is None else _stored_checkpoint(account, row)


_CHECKPOINT_COLUMNS = "SELECT size, root, note, signed_at FROM ledger_checkpoints "


_LATEST_CHECKPOINT = _CHECKPOINT_COLUMNS + "WHERE account = :account ORDER BY size DESC LIMIT 1"


_CHECKPOINT_OF_SIZE = _CHECKPOINT_COLUMNS + "WHERE account = :account AND size = :size"


def all_checkpoints(conn: sa.Connection, account: str) -> list[StoredCheckpoint]:
    cps = t.ledger_checkpoints
    query = (
        sa.select(cps.c.size, cps.c.root, cps.c.note, cps.c.signed_at)
        .where(cps.c.account == account)
        .order_by(cps.c.size)
    )
    return [_stored_checkpoint(account, row) for row in conn.execute(query)]


def _stored_checkpoint(account: str, row: Sequence[Any]) -> StoredCheckpoint:
    """A checkpoint row (size, root, note, signed_at); ``LedgerTampered`` if a column
    holds another type than the schema's."""
    what = f"a stored checkpoint of {account}"
    size = columns.integer(row[0], f"the size of {what}", None)
    what = f"stored checkpoint {size} of {account}"
    return StoredCheckpoint(
        size,
        columns.blob(row[1], f"the root of {what}", None),
        columns.text(row[2], f"the note of {what}", None),
        columns.text(row[3], f"the signing time of {what}", None),
    )


def verifier_keys(conn: sa.Connection, account: str) -> list[str]:
    keys = t.ledger_keys
    query = sa.select(keys.c.verifier).where(keys.c.account == account).order_by(keys.c.created_at)
    what = f"a verifier key of {account}"
    return [columns.text(key, what, None) for key in conn.scalars(query)]


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


def read_idempotency(conn: sa.Connection, account: str, key: str) -> IdempotencyRecord | None:
    text = (
        "SELECT request_hash, first_seq, event_count, result FROM idempotency_keys "
        "WHERE account = :account AND key = :key"
    )
    row = raw.execute(conn, text, {"account": account, "key": key}).fetchone()
    if row is None:
        return None
    return IdempotencyRecord(row[0], row[1], row[2], orjson.loads(row[3]))


def insert_idempotency(
    conn: sa.Connection, account: str, records: Sequence[tuple[str, IdempotencyRecord, str]]
) -> None:
    raw.executemany(
        conn,
        "INSERT INTO idempotency_keys "
        "(account, key, request_hash, first_seq, event_count, result, created_at) VALUES "
        "(:account, :key, :request_hash, :first_seq, :event_count, :result, :created_at)",
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


def first_seq_since(conn: sa.Connection, account: str, since: str) -> int:
    """The first seq of ``account`` whose event time is at or after ``since`` (an RFC
    3339 time as stored). Event times never run backwards within a ledger, so this is
    a bisection on the primary key; a lost event row (awaiting a restore) counts as
    inside the window."""
    events = t.ledger_events.c
    head = read_head(conn, account)
    low, high = 0, head.size if head else 0
    while low < high:
        middle = (low + high) // 2
        stamp = conn.scalar(
            sa.select(events.time).where(events.account == account, events.seq == middle)
        )
        if stamp is not None and stamp < since:
            low = middle + 1
        else:
            high = middle
    return low
