"""Bulk ledger writes: a whole ledger read, written or deleted at once, as a restore
and a backend migration do (``tx.bulk``). The row-at-a-time ``LedgerRecords`` and
``Projection`` serve the writer; these serve millions of rows in one transaction.

``BulkLedger`` is the noun; ``SqlBulkLedger`` holds its SQL (PostgreSQL ``COPY``
for events and nodes, a large SQLite page cache for a big write).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import sqlalchemy as sa

from tenure.domain.state import Row
from tenure.errors import LedgerTampered
from tenure.store import projection_rows, raw
from tenure.store import tables as t
from tenure.store.connected import OnConnection
from tenure.store.records import EventRow

CHUNK = 10_000


class BulkLedger(Protocol):
    """An account's ledger and projection, in bulk."""

    def prepare_large_write(self) -> None:
        """Tune this transaction for writing millions of rows (no effect on the data)."""
        ...

    def event_rows(self, account: str, start: int, stop: int) -> Iterator[list[EventRow]]:
        """The stored events ``start..stop-1`` in seq order, in chunks of at most
        ``CHUNK``; ``LedgerTampered`` naming the first missing seq."""
        ...

    def append(
        self, account: str, events: Iterable[EventRow], nodes: Iterable[tuple[int, int, bytes]]
    ) -> None:
        """Store events and Merkle nodes (``(level, index, hash)``) the ledger lacks
        (each iterated once)."""
        ...

    def insert_rows(self, account: str, table: str, rows: Iterable[Row]) -> None:
        """Insert rows into the account's empty projection table ``table``."""
        ...

    def delete(self, account: str) -> None:
        """Delete the account's events, Merkle nodes, head and projection (its signed
        checkpoints and verifier keys stay)."""
        ...


_EVENTS = (
    "SELECT seq, id, type, subject, time, idempotency_key, leaf FROM ledger_events "
    "WHERE account = :account AND seq >= :at ORDER BY seq LIMIT :limit"
)
_EVENT_COLUMNS = "account, seq, id, type, subject, time, idempotency_key, leaf"
_NODE_COLUMNS = "account, level, idx, hash"
_INSERT_EVENTS = f"INSERT INTO ledger_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_INSERT_NODES = f"INSERT INTO ledger_nodes ({_NODE_COLUMNS}) VALUES (?, ?, ?, ?)"  # noqa: S608


class SqlBulkLedger(OnConnection):
    """``BulkLedger`` in SQL."""

    def prepare_large_write(self) -> None:
        if self._conn.dialect.name == "sqlite":
            # Millions of rows into indexes on random keys (event ids): a page cache
            # of 256 MB instead of 2 MB keeps them off the disk.
            raw.execute(self._conn, "PRAGMA cache_size = -262144", {}).close()

    def event_rows(self, account: str, start: int, stop: int) -> Iterator[list[EventRow]]:
        at = start
        while at < stop:
            params = {"account": account, "at": at, "limit": min(CHUNK, stop - at)}
            rows = raw.execute(self._conn, _EVENTS, params).fetchall()
            if not rows or rows[0][0] != at:
                raise LedgerTampered(f"event {at} of {account} is missing at the source", seq=at)
            yield [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]
            at = rows[-1][0] + 1

    def append(
        self, account: str, events: Iterable[EventRow], nodes: Iterable[tuple[int, int, bytes]]
    ) -> None:
        if self._conn.dialect.name == "postgresql":
            rows = (
                (account, r.seq, r.id, r.type, r.subject, r.time, r.idempotency_key, r.leaf)
                for r in events
            )
            self._copy("ledger_events", _EVENT_COLUMNS, rows)
            self._copy("ledger_nodes", _NODE_COLUMNS, ((account, *n) for n in nodes))
        else:
            # Positional tuples straight to sqlite3: a dict per row cost more than
            # SQLite's own insert.
            driver = self._conn.connection.driver_connection
            assert driver is not None
            driver.executemany(_INSERT_EVENTS, ((account, *r) for r in events))
            driver.executemany(_INSERT_NODES, ((account, *n) for n in nodes))

    def _copy(self, table: str, columns: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """PostgreSQL ``COPY`` on the transaction's own connection: an executemany
        pipeline sends a statement per row and made a copy ~10 times slower."""
        driver = self._conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert_rows(self, account: str, table: str, rows: Iterable[Row]) -> None:
        projection_rows.bulk_insert_rows(self._conn, account, table, rows)

    def delete(self, account: str) -> None:
        for table in (t.ledger_events, t.ledger_nodes, t.ledger_heads):
            self._conn.execute(sa.delete(table).where(table.c.account == account))
        projection_rows.delete_projection(self._conn, account)
