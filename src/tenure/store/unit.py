"""The persistence seam: a ``Store`` opens ``Transaction``s, and a transaction gives
one object per noun of the store (``tx.ledger``, ``tx.projection``,
``tx.idempotency``, ...), each a ``Protocol`` in domain terms: no SQLAlchemy type
in any signature, so that services can take a ``Store`` and tests can give them an
implementation in memory (cosmicpython's unit of work, eventsourcing's recorders).

``SqlStore(engine)`` and ``SqlTransaction(conn)`` implement them (SQLite and
PostgreSQL) over each noun's SQL module (``ledger_records``, ``projection_rows``,
``webhooks``, ...): each noun object is created on first use and only forwards to
the functions there. A noun joins with its ``Protocol`` and SQL class in
``store/<noun>.py``, an attribute of ``Transaction`` and ``SqlTransaction`` here, and
its implementation in memory (``store/memory/<noun>.py``).

Transactions are those of ``tenure.store.engine``: ``write`` serializes with every
other writer (``BEGIN IMMEDIATE`` on SQLite, the store-wide advisory lock on
PostgreSQL) and rolls back unless the block completes; ``read`` sees one snapshot;
``quick_read`` is the hot path's short read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Protocol, TypeVar, overload

import sqlalchemy as sa

from tenure.domain.state import Key, Row
from tenure.ledger.merkle import Frontier, HashReader
from tenure.store import ledger_records, notify, projection_rows
from tenure.store.accounts import Accounts, SqlAccounts
from tenure.store.alerts import Alerts, SqlAlerts
from tenure.store.apikeys import ApiKeys, SqlApiKeys
from tenure.store.audit import AuditLog, SqlAuditLog
from tenure.store.bulk import BulkLedger, SqlBulkLedger
from tenure.store.connected import OnConnection
from tenure.store.counters import Counters, SqlCounters
from tenure.store.data_keys import DataKeys, SqlDataKeys
from tenure.store.deployments import Deployments, SqlDeployments
from tenure.store.drift import Drift, SqlDrift
from tenure.store.drills import Drills, SqlDrills
from tenure.store.engine import (
    is_postgresql,
    quick_read,
    quick_scalar,
    read_transaction,
    transaction_on,
    write_transaction,
)
from tenure.store.gauges import Gauges, SqlGauges
from tenure.store.licenses import Licenses, SqlLicenses
from tenure.store.listings import Listings, SqlListings
from tenure.store.notices import Notices, SqlNotices
from tenure.store.records import EventRow, Head, IdempotencyRecord, StoredCheckpoint
from tenure.store.revocations import Revocations, SqlRevocations
from tenure.store.service_rows import ServiceRows, SqlServiceRows
from tenure.store.signing_keys import SigningKeys, SqlSigningKeys
from tenure.store.state_map import SqlStateMap, StateMap
from tenure.store.webhooks import SqlWebhooks, Webhooks


class LedgerRecords(Protocol):
    """The ledger of each account: its head, events, Merkle nodes, signed
    checkpoints and the verifier keys it was signed with."""

    def head(self, account: str) -> Head | None:
        """The head; None before the first event. ``LedgerTampered`` if malformed."""
        ...

    def create_head(self, account: str, origin: str) -> Head:
        """A head of size 0 for ``account``, whose checkpoints name ``origin``."""
        ...

    def move_head(self, account: str, old: int, new: int) -> None:
        """Move the head from ``old`` to ``new``; ``LedgerTampered`` if it was not at
        ``old`` (another writer moved it)."""
        ...

    def accounts(self) -> list[str]:
        """Every account with a ledger, in name order."""
        ...

    def append_events(self, account: str, rows: Sequence[EventRow]) -> None: ...

    def append_nodes(self, account: str, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store subtree hashes ``(level, index, hash)``."""
        ...

    def leaves(
        self, account: str, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf)`` in seq order from ``start`` up to ``stop`` (exclusive)."""
        ...

    def events_about(self, account: str, subject: str) -> list[tuple[int, bytes]]:
        """``(seq, leaf)`` of every event whose subject is ``subject``, in seq order."""
        ...

    def last_event_time(self, account: str, size: int) -> str | None:
        """The stored time of event ``size - 1`` (None for 0, or if it is missing)."""
        ...

    def nodes(self, account: str) -> HashReader:
        """Reads stored subtree hashes (``LedgerTampered`` for a missing one)."""
        ...

    def frontier(self, account: str, size: int) -> Frontier:
        """The Merkle frontier of the first ``size`` events."""
        ...

    def level(self, account: str, level: int) -> Iterator[tuple[int, bytes]]:
        """``(index, hash)`` of the stored nodes of ``level``, by index;
        ``LedgerTampered`` (naming the first seq under it) for a node whose index
        or hash is not of the schema's type."""
        ...

    def lowest_level_from(self, account: str, level: int) -> int | None:
        """The lowest level at or above ``level`` with a stored node, or None."""
        ...

    def add_checkpoint(self, account: str, checkpoint: StoredCheckpoint) -> None: ...

    def checkpoint(self, account: str, size: int | None = None) -> StoredCheckpoint | None:
        """The checkpoint of exactly ``size``, or the latest when ``size`` is None."""
        ...

    def checkpoints(self, account: str) -> list[StoredCheckpoint]:
        """Every stored checkpoint, by size."""
        ...

    def verifier_keys(self, account: str) -> list[str]:
        """Every verifier key the account's checkpoints were signed with, oldest first."""
        ...

    def record_verifier_key(self, account: str, key_id: str, verifier: str, at: str) -> None:
        """Remember ``verifier`` (once per ``key_id``)."""
        ...


class Projection(Protocol):
    """The projection rows of each account (``tenure.domain.state.TABLES``)."""

    def row(self, account: str, table: str, key: Key) -> Row | None: ...

    def rows(self, account: str, table: str, ordered: bool = True) -> list[Row]:
        """Every row of ``table``, in key order unless not ``ordered``."""
        ...

    def write(
        self, account: str, table: str, upserts: Sequence[Row], deletes: Sequence[Key]
    ) -> None:
        """Insert or replace ``upserts`` and delete the rows of ``deletes``."""
        ...

    def update(
        self, account: str, table: str, columns: tuple[str, ...], rows: Sequence[Row]
    ) -> None:
        """Set ``columns`` of the existing rows of ``rows`` to their values there."""
        ...

    def clear(self, account: str) -> None:
        """Delete every projection row of ``account``."""
        ...

    def insert_all(self, account: str, table: str, rows: Iterable[Row]) -> None:
        """Insert ``rows`` into ``table``, empty for ``account`` (rebuild, restore)."""
        ...


class Idempotency(Protocol):
    """What an ``Idempotency-Key`` answered the first time."""

    def read(self, account: str, key: str) -> IdempotencyRecord | None: ...

    def insert(self, account: str, records: Sequence[tuple[str, IdempotencyRecord, str]]) -> None:
        """Store ``(key, record, created_at)`` for each record."""
        ...


class Transaction(Protocol):
    """One transaction of the store, with an object per noun."""

    @property
    def ledger(self) -> LedgerRecords: ...

    @property
    def projection(self) -> Projection: ...

    @property
    def idempotency(self) -> Idempotency: ...

    @property
    def state_map(self) -> StateMap: ...

    # --- operations (tenure.ops) ---

    @property
    def webhooks(self) -> Webhooks: ...

    @property
    def deployments(self) -> Deployments: ...

    @property
    def drift(self) -> Drift: ...

    @property
    def notices(self) -> Notices: ...

    @property
    def alerts(self) -> Alerts: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def gauges(self) -> Gauges: ...

    # --- durability (tenure.durability) ---

    @property
    def service_rows(self) -> ServiceRows: ...

    @property
    def bulk(self) -> BulkLedger: ...

    @property
    def drills(self) -> Drills: ...

    # --- governance (accounts, keys, audit, tokens) ---

    @property
    def accounts(self) -> Accounts: ...

    @property
    def apikeys(self) -> ApiKeys: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def signing_keys(self) -> SigningKeys: ...

    @property
    def revocations(self) -> Revocations: ...

    @property
    def listings(self) -> Listings: ...

    @property
    def data_keys(self) -> DataKeys: ...

    # --- licenses (checks and license pages) ---

    @property
    def licenses(self) -> Licenses: ...


class Store(Protocol):
    """Opens transactions: each a context manager that commits when its block
    completes and rolls back when it raises."""

    def read(self) -> AbstractContextManager[Transaction]:
        """A read transaction: one snapshot of the store."""
        ...

    def write(self) -> AbstractContextManager[Transaction]:
        """A write transaction, exclusive of every other writer."""
        ...

    def quick_read(self) -> AbstractContextManager[Transaction]:
        """A short read on the hot path (a check): the same snapshot guarantee."""
        ...

    def generation(self, account: str) -> int:
        """The read generation of ``account`` (migration 0014): a number that moves
        whenever a row of it a check or its credential reads changes, by whatever
        wrote it."""
        ...

    def shared_write(self) -> AbstractContextManager[Transaction]:
        """A write transaction beside the ledger writer's, for rows no writer caches
        (webhook deliveries, counters, notices): it holds the store lock shared, as
        the writer's batches do, and announces nothing to other processes."""
        ...


# ---------------------------------------------------------------- SQL implementation


class SqlLedgerRecords(OnConnection):
    """``LedgerRecords`` over ``tenure.store.ledger_records``."""

    def head(self, account: str) -> Head | None:
        return ledger_records.read_head(self._conn, account)

    def create_head(self, account: str, origin: str) -> Head:
        return ledger_records.create_head(self._conn, account, origin)

    def move_head(self, account: str, old: int, new: int) -> None:
        ledger_records.set_head_size(self._conn, account, old, new)

    def accounts(self) -> list[str]:
        return ledger_records.accounts(self._conn)

    def append_events(self, account: str, rows: Sequence[EventRow]) -> None:
        ledger_records.insert_events(self._conn, account, rows)

    def append_nodes(self, account: str, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        ledger_records.insert_nodes(self._conn, account, nodes)

    def leaves(
        self, account: str, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        return ledger_records.iter_leaves(self._conn, account, start, stop)

    def events_about(self, account: str, subject: str) -> list[tuple[int, bytes]]:
        return ledger_records.events_about(self._conn, account, subject)

    def last_event_time(self, account: str, size: int) -> str | None:
        return ledger_records.last_event_time(self._conn, account, size)

    def nodes(self, account: str) -> HashReader:
        return ledger_records.NodeReader(self._conn, account)

    def frontier(self, account: str, size: int) -> Frontier:
        return ledger_records.read_frontier(self._conn, account, size)

    def level(self, account: str, level: int) -> Iterator[tuple[int, bytes]]:
        return ledger_records.level_nodes(self._conn, account, level)

    def lowest_level_from(self, account: str, level: int) -> int | None:
        return ledger_records.lowest_level_from(self._conn, account, level)

    def add_checkpoint(self, account: str, checkpoint: StoredCheckpoint) -> None:
        ledger_records.insert_checkpoint(self._conn, account, checkpoint)

    def checkpoint(self, account: str, size: int | None = None) -> StoredCheckpoint | None:
        return ledger_records.read_checkpoint(self._conn, account, size)

    def checkpoints(self, account: str) -> list[StoredCheckpoint]:
        return ledger_records.all_checkpoints(self._conn, account)

    def verifier_keys(self, account: str) -> list[str]:
        return ledger_records.verifier_keys(self._conn, account)

    def record_verifier_key(self, account: str, key_id: str, verifier: str, at: str) -> None:
        ledger_records.record_verifier_key(self._conn, account, key_id, verifier, at)


class SqlProjection(OnConnection):
    """``Projection`` over ``tenure.store.projection_rows``."""

    def row(self, account: str, table: str, key: Key) -> Row | None:
        return projection_rows.read_row(self._conn, account, table, key)

    def rows(self, account: str, table: str, ordered: bool = True) -> list[Row]:
        return projection_rows.projection_rows(self._conn, account, table, ordered)

    def write(
        self, account: str, table: str, upserts: Sequence[Row], deletes: Sequence[Key]
    ) -> None:
        projection_rows.write_rows(self._conn, account, table, upserts, deletes)

    def update(
        self, account: str, table: str, columns: tuple[str, ...], rows: Sequence[Row]
    ) -> None:
        projection_rows.update_rows(self._conn, account, table, columns, rows)

    def clear(self, account: str) -> None:
        projection_rows.delete_projection(self._conn, account)

    def insert_all(self, account: str, table: str, rows: Iterable[Row]) -> None:
        projection_rows.bulk_insert_rows(self._conn, account, table, rows)


class SqlIdempotency(OnConnection):
    """``Idempotency`` over ``tenure.store.ledger_records``."""

    def read(self, account: str, key: str) -> IdempotencyRecord | None:
        return ledger_records.read_idempotency(self._conn, account, key)

    def insert(self, account: str, records: Sequence[tuple[str, IdempotencyRecord, str]]) -> None:
        ledger_records.insert_idempotency(self._conn, account, records)


_T = TypeVar("_T")


class noun(Generic[_T]):
    """``functools.cached_property`` without its lock (Python 3.11 takes one on every
    first access): a transaction belongs to one thread, and the check path creates
    a transaction, and each noun it reads, per request."""

    def __init__(self, make: Callable[[Any], _T]) -> None:
        self._make = make
        self._name = make.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> noun[_T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> noun[_T] | _T:
        if instance is None:
            return self
        value = instance.__dict__[self._name] = self._make(instance)
        return value


def on_connection(make: Callable[[sa.Connection], _T]) -> noun[_T]:
    """The noun ``make`` builds over its transaction's connection, on first use."""
    return noun(lambda transaction: make(transaction.connection))


class SqlTransaction:
    """A ``Transaction`` on an open connection whose transaction the caller owns
    (``SqlStore`` opens them; the ledger writer's batch transaction is one too).
    Each noun object is created on first use."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        """The connection the nouns share (inside the store, and tests that write raw
        SQL to play an attacker or a broken database)."""

    ledger: noun[LedgerRecords] = on_connection(SqlLedgerRecords)
    projection: noun[Projection] = on_connection(SqlProjection)
    idempotency: noun[Idempotency] = on_connection(SqlIdempotency)
    state_map: noun[StateMap] = on_connection(SqlStateMap)

    # --- operations (tenure.ops) ---

    webhooks: noun[Webhooks] = on_connection(SqlWebhooks)
    deployments: noun[Deployments] = on_connection(SqlDeployments)
    drift: noun[Drift] = on_connection(SqlDrift)
    notices: noun[Notices] = on_connection(SqlNotices)
    alerts: noun[Alerts] = on_connection(SqlAlerts)
    counters: noun[Counters] = on_connection(SqlCounters)
    gauges: noun[Gauges] = on_connection(SqlGauges)

    # --- durability (tenure.durability) ---

    service_rows: noun[ServiceRows] = on_connection(SqlServiceRows)
    bulk: noun[BulkLedger] = on_connection(SqlBulkLedger)
    drills: noun[Drills] = on_connection(SqlDrills)

    # --- governance (accounts, keys, audit, tokens) ---

    accounts: noun[Accounts] = on_connection(SqlAccounts)
    apikeys: noun[ApiKeys] = on_connection(SqlApiKeys)
    audit: noun[AuditLog] = on_connection(SqlAuditLog)
    signing_keys: noun[SigningKeys] = on_connection(SqlSigningKeys)
    revocations: noun[Revocations] = on_connection(SqlRevocations)
    listings: noun[Listings] = on_connection(SqlListings)
    data_keys: noun[DataKeys] = on_connection(SqlDataKeys)

    # --- licenses (checks and license pages) ---

    licenses: noun[Licenses] = on_connection(SqlLicenses)


_GENERATION = "SELECT n FROM read_generation WHERE account = :account"


class _QuickRead:
    """``SqlStore.quick_read``: a class, not a generator, since every check pays for
    each layer (a generator-based context manager costs about 1.5 µs more)."""

    __slots__ = ("_engine", "_inner")

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Transaction:
        self._inner = quick_read(self._engine)
        return SqlTransaction(self._inner.__enter__())

    def __exit__(self, *exc: Any) -> bool | None:
        return self._inner.__exit__(*exc)


class SqlStore:
    """A ``Store`` over a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        """Close the engine's connections (the store is not used afterwards)."""
        self.engine.dispose()

    def schema_revision(self) -> str | None:
        """The database's schema revision; None when it has no schema."""
        from tenure.store.migrations import current_revision

        return current_revision(self.engine)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with read_transaction(self.engine) as conn:
            yield SqlTransaction(conn)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        with write_transaction(self.engine) as conn:
            yield SqlTransaction(conn)

    def quick_read(self) -> AbstractContextManager[Transaction]:
        return _QuickRead(self.engine)

    def generation(self, account: str) -> int:
        if not is_postgresql(self.engine):
            found = quick_scalar(self.engine, _GENERATION, {"account": account})
            return 0 if found is None else int(found)
        # PostgreSQL: the listener's, kept from the triggers' notifications; else the
        # counter, as a negative number (never equal to a listener's value).
        listener = notify.listener_of(self.engine)
        kept = listener.generation(account) if listener is not None else None
        if kept is not None:
            return kept
        found = quick_scalar(self.engine, _GENERATION, {"account": account})
        return -1 - (0 if found is None else int(found))

    @contextmanager
    def shared_write(self) -> Iterator[Transaction]:
        with self.engine.connect() as conn, transaction_on(conn):
            yield SqlTransaction(conn)
