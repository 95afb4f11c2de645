"""The state map's storage (``tenure.ledger.statemap``, docs/state.md): a leaf per
projection row, each bucket's leaf count and hash, and the root at each account's head.

Leaves are written by the projection's own writes (``projection_rows`` calls
``leaf_changes`` and ``write_leaves`` here), so no path can change a row without
its leaf. Bucket hashes are recomputed by ``StateMap.settle`` for the buckets a
batch touched, or by ``StateMap.rebuild`` for a whole account after a bulk load.

``StateMap`` is the noun in domain terms (``tx.state_map``); ``SqlStateMap`` holds
its SQL.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from tenure.domain.state import TABLES, Key, Row
from tenure.ledger.statemap import (
    Bucket,
    Leaf,
    MapTop,
    bucket_hash,
    bucket_hashes,
    bucket_of,
    row_leaf,
    state_key,
)
from tenure.store import raw
from tenure.store.connected import OnConnection


class StateMap(Protocol):
    """The stored state map of each account."""

    def buckets(self, account: str) -> dict[int, Bucket]:
        """``(count, hash)`` of every non-empty bucket."""
        ...

    def bucket_leaves(self, account: str, buckets: Collection[int]) -> dict[int, list[Leaf]]:
        """The leaves ``(k, L)`` of each of ``buckets`` (an empty list for an empty one)."""
        ...

    def leaves(self, account: str) -> Iterator[Leaf]:
        """Every leaf of ``account``, in no particular order."""
        ...

    def index(self, account: str, table: str, rows: Iterable[Row]) -> None:
        """Write the leaves of ``rows`` of ``table`` (stored rows whose leaves are
        missing: an account written before 0.3.0)."""
        ...

    def settle(self, account: str, buckets: Collection[int]) -> dict[int, Bucket]:
        """Recompute and store the hash of each of ``buckets`` from its leaves; return
        them (``(0, ZERO)`` for a bucket left empty)."""
        ...

    def rebuild(self, account: str, buckets: Collection[int] | None = None) -> bytes:
        """Recompute ``buckets`` of ``account`` (every bucket when None) from their
        leaves, store the map's root at its head (``set_root``) and return it."""
        ...

    def root(self, account: str) -> bytes | None:
        """The root stored at the head; None when the account's map was never built
        (an account written before 0.3.0), it has no head, or the schema predates the
        state map (a database read before its upgrade)."""
        ...

    def set_root(self, account: str, root: bytes) -> None: ...


def leaf_changes(
    table: str, upserts: Iterable[Row], deletes: Iterable[Key]
) -> tuple[list[tuple[int, bytes, bytes]], list[tuple[int, bytes]]]:
    """The leaf rows ``(bucket, k, L)`` to write for ``upserts`` (whole rows) and the
    ``(bucket, k)`` to delete for ``deletes``."""
    spec = TABLES[table]
    written = []
    for row in upserts:
        k, leaf = row_leaf(table, spec.key_of(row), {c: row[c] for c in spec.columns})
        written.append((bucket_of(k), k, leaf))
    removed = []
    for key in deletes:
        k = state_key(table, key)
        removed.append((bucket_of(k), k))
    return written, removed


# ---------------------------------------------------------------- SQL

_UPSERT = (
    "INSERT INTO state_leaves (account, bucket, k, leaf) VALUES (:account, :bucket, :k, :leaf) "
    "ON CONFLICT (account, bucket, k) DO UPDATE SET leaf = excluded.leaf"
)
_DELETE = "DELETE FROM state_leaves WHERE account = :account AND bucket = :bucket AND k = :k"


def write_leaves(
    conn: sa.Connection,
    account: str,
    written: Sequence[tuple[int, bytes, bytes]],
    removed: Sequence[tuple[int, bytes]],
) -> None:
    """Delete ``removed`` and upsert ``written`` leaves (one driver call each)."""
    raw.executemany(conn, _DELETE, [{"account": account, "bucket": b, "k": k} for b, k in removed])
    raw.executemany(
        conn,
        _UPSERT,
        [{"account": account, "bucket": b, "k": k, "leaf": leaf} for b, k, leaf in written],
    )


def clear_map(conn: sa.Connection, account: str) -> None:
    """Delete every leaf and bucket of ``account``."""
    for table in ("state_leaves", "state_buckets"):
        raw.execute(conn, f"DELETE FROM {table} WHERE account = :account", {"account": account})  # noqa: S608


_MAPPED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
"""Engines whose database was found to have the state map (a column never goes away
while an engine lives, so it is looked up once per engine)."""


def _has_state_root(conn: sa.Connection) -> bool:
    """Whether the schema has the state map (``ledger_heads.state_root``, from 0012 on):
    a pre-upgrade snapshot reads a database at an older schema in place."""
    if conn.engine in _MAPPED:
        return True
    columns = sa.inspect(conn).get_columns("ledger_heads")
    if not any(column["name"] == "state_root" for column in columns):
        return False
    _MAPPED.add(conn.engine)
    return True


class SqlStateMap(OnConnection):
    """``StateMap`` on an open connection (SQLite and PostgreSQL)."""

    def buckets(self, account: str) -> dict[int, Bucket]:
        found = raw.execute(
            self._conn,
            "SELECT bucket, count, hash FROM state_buckets WHERE account = :account",
            {"account": account},
        )
        return {int(b): (int(count), bytes(h)) for b, count, h in found.fetchall()}

    def bucket_leaves(self, account: str, buckets: Collection[int]) -> dict[int, list[Leaf]]:
        wanted = sorted(set(buckets))
        found: dict[int, list[Leaf]] = {bucket: [] for bucket in wanted}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            params: dict[str, Any] = {"account": account}
            params.update((f"b{i}", bucket) for i, bucket in enumerate(chunk))
            names = ", ".join(f":b{i}" for i in range(len(chunk)))
            rows = raw.execute(
                self._conn,
                "SELECT bucket, k, leaf FROM state_leaves "  # noqa: S608 - names are ours
                f"WHERE account = :account AND bucket IN ({names})",
                params,
            ).fetchall()
            for bucket, k, leaf in rows:
                found[int(bucket)].append((bytes(k), bytes(leaf)))
        return found

    def leaves(self, account: str) -> Iterator[Leaf]:
        cursor = raw.execute(
            self._conn,
            "SELECT k, leaf FROM state_leaves WHERE account = :account",
            {"account": account},
        )
        while rows := cursor.fetchmany(10_000):
            for k, leaf in rows:
                yield bytes(k), bytes(leaf)

    def index(self, account: str, table: str, rows: Iterable[Row]) -> None:
        write_leaves(self._conn, account, leaf_changes(table, rows, ())[0], ())

    def settle(self, account: str, buckets: Collection[int]) -> dict[int, Bucket]:
        settled = {
            b: bucket_hash(leaves) for b, leaves in self.bucket_leaves(account, buckets).items()
        }
        self._store(account, settled)
        return settled

    def _store(self, account: str, settled: dict[int, Bucket]) -> None:
        empty = [
            {"account": account, "bucket": b} for b, (count, _) in settled.items() if not count
        ]
        raw.executemany(
            self._conn,
            "DELETE FROM state_buckets WHERE account = :account AND bucket = :bucket",
            empty,
        )
        raw.executemany(
            self._conn,
            "INSERT INTO state_buckets (account, bucket, count, hash) "
            "VALUES (:account, :bucket, :count, :hash) "
            "ON CONFLICT (account, bucket) "
            "DO UPDATE SET count = excluded.count, hash = excluded.hash",
            [
                {"account": account, "bucket": b, "count": count, "hash": h}
                for b, (count, h) in settled.items()
                if count
            ],
        )

    def rebuild(self, account: str, buckets: Collection[int] | None = None) -> bytes:
        if buckets is not None:
            self.settle(account, buckets)
        else:
            settled = bucket_hashes(self.leaves(account))
            delete = "DELETE FROM state_buckets WHERE account = :account"
            raw.execute(self._conn, delete, {"account": account})
            self._store(account, settled)
        root = MapTop(self.buckets(account)).root()
        self.set_root(account, root)
        return root

    def root(self, account: str) -> bytes | None:
        if not _has_state_root(self._conn):
            return None  # a schema before 0012 (read before its upgrade): no map yet
        found = raw.execute(
            self._conn,
            "SELECT state_root FROM ledger_heads WHERE account = :account",
            {"account": account},
        ).fetchone()
        return None if found is None or found[0] is None else bytes(found[0])

    def set_root(self, account: str, root: bytes) -> None:
        raw.execute(
            self._conn,
            "UPDATE ledger_heads SET state_root = :root WHERE account = :account",
            {"root": root, "account": account},
        )
