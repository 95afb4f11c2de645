"""Database engines: SQLite with the pragmas durability needs, or PostgreSQL.

SQLite: WAL, ``synchronous=FULL`` (a commit survives power loss), a busy timeout,
and explicit transactions. pysqlite's own transaction handling is switched off
(``isolation_level=None``) because it starts transactions lazily: a ``SELECT`` of
the ledger head would run outside the write transaction and two writers could
pick the same ``seq``. Write transactions start with ``BEGIN IMMEDIATE`` so the
write lock is taken before the head is read; read transactions use ``BEGIN`` and
see one consistent WAL snapshot.

PostgreSQL (``postgresql+psycopg://``, pooled): several processes may write to one
database, so nothing is serialized in the process. Write transactions run at READ
COMMITTED and serialize through transaction-scoped advisory locks taken as their
first statement (session locks would leak through the pool): the ledger writer
holds the store lock shared plus one lock per account it appends to
(``lock_accounts``); every other write transaction holds the store lock exclusively,
as SQLite's single writer would. READ COMMITTED matters: each later statement sees
what the previous lock holder committed. Read transactions run at REPEATABLE READ,
one snapshot for the head and the nodes and rows read with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from tenure.crypto.files import create_private_file
from tenure.errors import ConfigurationError
from tenure.store import notify, raw
from tenure.workers import Worker

_log = logging.getLogger("tenure.store")

WRITE = "tenure_write"
POOL_SIZE = 48
PG_POOL_SIZE = 8
"""Kept-open PostgreSQL connections per process (more open on demand, up to
``PG_POOL_MAX``): several processes share the server's ``max_connections``."""
PG_POOL_MAX = 40
PG_CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL connection, unless the URL says otherwise."""
READ_ISOLATION = "REPEATABLE READ"

STORE_LOCK = (0x54454E55, 0)
"""The advisory lock (two-int key space) every write transaction holds: shared by
ledger writers, exclusive by everything else."""


def create_engine(url: str) -> sa.Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://``).

    Raises ``ConfigurationError`` for anything else."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return _create_postgresql_engine(parsed)
    if backend != "sqlite":
        raise ConfigurationError(
            f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://"
        )
    if parsed.database and parsed.database != ":memory:":
        # Created 0600 before SQLite opens it: SQLite gives -wal and -shm its mode.
        create_private_file(Path(parsed.database))
    # As many pooled connections as the server has threads that read (AnyIO's pool
    # holds 40): an overflow connection is opened and closed per use, and opening one
    # (with its pragmas) costs more than the read it serves.
    engine = sa.create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )
    _install_sqlite_hooks(engine)
    return engine


def _create_postgresql_engine(parsed: sa.URL) -> sa.Engine:
    if parsed.get_driver_name() != "psycopg":
        if parsed.drivername != "postgresql":
            raise ConfigurationError(
                f"unsupported PostgreSQL driver {parsed.get_driver_name()!r}: "
                "use postgresql+psycopg://"
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
    # A server that does not answer (a host gone, packets dropped) fails a connection
    # after this long, so that requests get 503 instead of waiting on it for minutes.
    connect_args = (
        {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT}
    )
    return sa.create_engine(
        parsed,
        isolation_level="READ COMMITTED",
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_POOL_MAX - PG_POOL_SIZE,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def is_postgresql(bind: sa.Engine | sa.Connection) -> bool:
    """Whether ``bind`` talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"


def lock_store(connection: sa.Connection, shared: bool) -> None:
    """Hold the store's write lock until the transaction ends (PostgreSQL only:
    SQLite's ``BEGIN IMMEDIATE`` already serializes its writers)."""
    if is_postgresql(connection):
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"SELECT {function}(%s, %s)", STORE_LOCK)
        cursor.close()


def account_lock_key(account: str) -> int:
    """The advisory lock key (signed 64-bit) of ``account``'s ledger and audit heads."""
    digest = hashlib.sha256(b"tenure-account\x00" + account.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_accounts(connection: sa.Connection, accounts: Iterable[str]) -> None:
    """Hold the append lock of each of ``accounts`` until the transaction ends.

    PostgreSQL only (a no-op on SQLite, whose writers are already serialized). The
    locks are taken in one order (sorted) so that two writers never deadlock; the
    caller takes them before it reads any head."""
    if is_postgresql(connection):
        keys = sorted({account_lock_key(account) for account in accounts})
        if keys:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for key in keys:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            cursor.close()


def _install_sqlite_hooks(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        # Straight to the driver: this runs once per transaction on the append path.
        driver = connection.connection.driver_connection
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]


class _WriteGate:
    """Writers of one SQLite file queue here before ``BEGIN IMMEDIATE``.

    SQLite makes a writer that finds the lock taken sleep and retry (1, 2, 5, … up to
    100 ms per try), so two server processes appending to one file would add tens of
    milliseconds to each other's commits. Waiting on an ``flock`` of a file beside
    the database (and on a thread lock, since ``flock`` does not tell threads of one
    process apart) wakes the next writer as soon as the previous one is done.
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._path = path
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._path is None:
                yield
                return
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_gates: weakref.WeakKeyDictionary[sa.Engine, _WriteGate] = weakref.WeakKeyDictionary()


def _gate(engine: sa.Engine) -> _WriteGate:
    gate = _gates.get(engine)
    if gate is None:
        with _held_lock:
            gate = _gates.get(engine)
            if gate is None:
                database = engine.url.database
                on_disk = engine.url.get_backend_name() == "sqlite" and database not in (
                    None,
                    "",
                    ":memory:",
                )
                path = Path(f"{database}-writer.lock") if on_disk else None
                gate = _gates[engine] = _WriteGate(path)
    return gate


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that holds the database's write lock from its first statement.

    Commits when the block ends normally, rolls back if it raises.
    """
    with engine.connect() as connection, _gate(engine).held():
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            lock_store(connection, shared=False)
            # Rows other processes' writers cache may change here (rebuild, restore):
            # tell their listeners, on commit only.
            notify.announce(connection, notify.ANYONE, ["*"])
            yield connection
        # Committed: rows checks read may have changed (a key revoked, a restore);
        # this process's read generations move now, not when the triggers' notes come.
        listener = notify.listener_of(engine)
        if listener is not None:
            listener.moved(None)


@contextmanager
def transaction_on(connection: sa.Connection) -> Iterator[sa.Connection]:
    """A write transaction on a connection the caller keeps open (the ledger writer
    holds one for its lifetime instead of checking one out of the pool per batch).

    On PostgreSQL it holds the store lock shared: appends to different accounts
    proceed side by side, and the caller serializes each account's appends with
    ``lock_accounts``."""
    with _gate(connection.engine).held():
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            lock_store(connection, shared=True)
            yield connection


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only transaction over one consistent snapshot."""
    with engine.connect() as connection:
        if is_postgresql(connection):
            connection.execution_options(isolation_level=READ_ISOLATION)
        with connection.begin():
            yield connection


class _HeldReads:
    """One connection per thread, kept open, for ``quick_read``."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: list[sa.Connection] = []

    def connection(self, engine: sa.Engine) -> sa.Connection:
        conn: sa.Connection | None = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = engine.connect()
            self.local.conn = conn
            with self.lock:
                self.opened.append(conn)
        return conn

    def close(self) -> None:
        with self.lock:
            opened, self.opened = self.opened, []
        for conn in opened:
            conn.close()


_held: weakref.WeakKeyDictionary[sa.Engine, _HeldReads] = weakref.WeakKeyDictionary()
_held_lock = threading.Lock()


@contextmanager
def quick_read(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only transaction for the hot paths (authentication, checks) whose
    statements go straight to the driver (``tenure.store.raw``), never through
    SQLAlchemy Core.

    Each thread keeps one connection open and the transaction is begun and ended at
    the driver: about 8 µs instead of the 45 µs of a pooled ``read_transaction``.
    The connections close when the engine is disposed. On PostgreSQL this is a
    ``read_transaction``.
    """
    if is_postgresql(engine):
        # A pooled checkout: connections held per thread would pin the pool (and the
        # server's max_connections) to the number of threads that ever read.
        with read_transaction(engine) as connection:
            yield connection
        return
    conn = _held_connection(engine)
    driver = conn.connection.driver_connection
    driver.execute("BEGIN")  # type: ignore[union-attr]
    try:
        yield conn
    finally:
        driver.execute("COMMIT")  # type: ignore[union-attr]


def _held_connection(engine: sa.Engine) -> sa.Connection:
    """This thread's connection for ``quick_read`` (SQLite)."""
    held = _held.get(engine)
    if held is None:
        with _held_lock:
            held = _held.get(engine)
            if held is None:
                held = _held[engine] = _HeldReads()
                event.listen(engine, "engine_disposed", lambda _engine: held.close())
    return held.connection(engine)


def quick_scalar(engine: sa.Engine, sql: str, params: Mapping[str, Any]) -> Any:
    """The first column of the first row of one read-only statement (``:name``
    parameters; None without a row), for the hot paths: on SQLite straight on this
    thread's ``quick_read`` connection, one statement being its own snapshot."""
    if is_postgresql(engine):
        # One statement needs no transaction of its own: no BEGIN and COMMIT round trips.
        with engine.connect() as pooled:
            connection = pooled.execution_options(isolation_level="AUTOCOMMIT")
            found = raw.execute(connection, sql, params).fetchone()
    else:
        driver = _held_connection(engine).connection.driver_connection
        found = driver.execute(sql, params).fetchone()  # type: ignore[union-attr]
    return None if found is None else found[0]


class WalCheckpointer:
    """Copies the SQLite write-ahead log back into the database from a thread of its
    own, so that the ledger writer's commits never wait for it.

    SQLite otherwise checkpoints inside whichever commit crosses 1,000 WAL pages:
    that commit (and every decision waiting on it to be audited) stalls for the
    copy and its fsync. The writer's connection turns that off
    (``disable_autocheckpoint``) and this thread runs ``PASSIVE`` checkpoints, which
    never block writers, every ``interval`` seconds. Does nothing for other databases.
    """

    def __init__(self, engine: sa.Engine, interval: float = 0.5) -> None:
        self._engine = engine
        self._worker = Worker(
            "tenure-wal",
            self.checkpoint,
            interval,
            final=self.checkpoint,  # what the last commits left in the log
            retry=(sa.exc.SQLAlchemyError,),  # the next round tries again
            log_level=logging.WARNING,
            logger=_log,
            what="WAL checkpoint",
        )

    def start(self) -> None:
        if self._engine.url.get_backend_name() == "sqlite":
            self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def checkpoint(self) -> None:
        with self._engine.connect() as conn:
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_checkpoint(PASSIVE)"
            )


def disable_autocheckpoint(connection: sa.Connection) -> None:
    """Stop SQLite checkpointing inside this connection's commits (see
    ``WalCheckpointer``)."""
    if connection.dialect.name == "sqlite":
        driver = connection.connection.driver_connection
        driver.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
