"""The ledger writer's link to the store: its own connection, kept for its lifetime,
on which each write batch is one transaction (``tenure.service.ledger``).

What the writer needs beyond the nouns of a ``Transaction`` is connection-level:

- one connection for its lifetime (a pool checkout and return per batch would cost
  as much as SQLite's commit), on which SQLite does not checkpoint its write-ahead
  log inside commits (a ``WalCheckpointer`` thread does it instead);
- per-account append locks (PostgreSQL: other processes may append too), taken
  before any head is read;
- a marker that changes when somebody else wrote (SQLite's ``data_version``; on
  PostgreSQL the ``LISTEN`` of ``tenure.store.notify``), to know when the rows it
  keeps between batches are stale, and the announcement of its own writes;
- a savepoint around an operation that may fail and must leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import sqlalchemy as sa

from tenure.errors import TenureError
from tenure.store import ledger_records, notify, raw
from tenure.store.engine import (
    WalCheckpointer,
    disable_autocheckpoint,
    lock_accounts,
    transaction_on,
)
from tenure.store.unit import SqlTransaction, Transaction


class WriterTransaction(Transaction, Protocol):
    """One write batch's transaction, with what only the writer needs."""

    def written_elsewhere(self) -> int | None:
        """A marker that changes whenever somebody other than this writer committed
        (None or a fresh value when that cannot be known: assume somebody did)."""
        ...

    def announce(self, accounts: Iterable[str]) -> None:
        """Tell other processes' writers, on commit only, that the rows of
        ``accounts`` changed (PostgreSQL; nothing on SQLite)."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A block whose writes are undone if it raises a ``TenureError`` (which then
        propagates); the rest of the transaction stands."""
        ...


class WriterLink(Protocol):
    """The writer's connection to the store (see the module doc)."""

    def start(self) -> None:
        """Start what runs beside the writer: the write listener (PostgreSQL) and
        the WAL checkpointer (SQLite)."""
        ...

    def batch(
        self, accounts: Collection[str], synced: bool = True
    ) -> AbstractContextManager[WriterTransaction]:
        """A write transaction on the kept connection (opened if none is kept),
        holding the append locks of ``accounts``; commits when the block completes.
        With ``synced`` False the commit does not wait for the disk: SQLite
        ``synchronous=NORMAL`` (in WAL mode a process crash keeps the commit, a power
        loss may not), PostgreSQL ``synchronous_commit=off`` (a crash of PostgreSQL
        may lose the last commits)."""
        ...

    def moved(self, accounts: Collection[str]) -> None:
        """This process committed changes to rows of ``accounts`` that checks read:
        move their read generations here now (PostgreSQL: before the notifications
        of the triggers come back; ``tenure.store.notify``)."""
        ...

    @property
    def connected(self) -> bool:
        """Whether a connection from an earlier batch is kept."""
        ...

    def reset(self) -> None:
        """Drop the kept connection: the next batch opens a new one."""
        ...

    def stop(self) -> None:
        """Stop the listener and the WAL checkpointer and drop the connection."""
        ...


class SqlWriterTransaction(SqlTransaction):
    """A ``WriterTransaction`` on the writer's connection."""

    def __init__(self, connection: sa.Connection, sender: str) -> None:
        super().__init__(connection)
        self._sender = sender

    def written_elsewhere(self) -> int | None:
        return ledger_records.external_write_marker(self.connection)

    def announce(self, accounts: Iterable[str]) -> None:
        notify.announce(self.connection, self._sender, accounts)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        conn = self.connection
        raw.execute(conn, "SAVEPOINT tenure_write", {}).close()
        try:
            yield
        except TenureError:
            raw.execute(conn, "ROLLBACK TO SAVEPOINT tenure_write", {}).close()
            raise
        finally:
            raw.execute(conn, "RELEASE SAVEPOINT tenure_write", {}).close()


class SqlWriterLink:
    """A ``WriterLink`` over a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._conn: sa.Connection | None = None
        self._listener: notify.WriteListener | None = None
        self._wal = WalCheckpointer(engine)

    def start(self) -> None:
        # PostgreSQL: learn when other processes write, to keep rows between batches.
        self._listener = notify.start_listener(self._engine)
        self._wal.start()

    @contextmanager
    def batch(self, accounts: Collection[str], synced: bool = True) -> Iterator[WriterTransaction]:
        connection = self._connection()
        sqlite = connection.dialect.name == "sqlite"
        if sqlite and not synced:
            raw.execute(connection, "PRAGMA synchronous=NORMAL", {}).close()
        try:
            with transaction_on(connection) as conn:
                if not sqlite and not synced:
                    raw.execute(conn, "SET LOCAL synchronous_commit TO OFF", {}).close()
                # PostgreSQL: other processes may append to these accounts too.
                lock_accounts(conn, accounts)
                sender = self._listener.sender if self._listener else notify.ANYONE
                yield SqlWriterTransaction(conn, sender)
        finally:
            if sqlite and not synced:
                try:
                    raw.execute(connection, "PRAGMA synchronous=FULL", {}).close()
                except Exception:  # a connection left unsynced is never used again
                    self.reset()

    def moved(self, accounts: Collection[str]) -> None:
        if self._listener is not None and accounts:
            self._listener.moved(accounts)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self) -> None:
        self._wal.stop()
        if self._listener is not None:
            notify.stop_listener(self._engine, self._listener)
            self._listener = None
        self.reset()

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
            disable_autocheckpoint(self._conn)
        return self._conn
