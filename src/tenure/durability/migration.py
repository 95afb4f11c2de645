"""Backend migration: an account's ledger copied from one database to another, proven.

``copy_account`` streams the source's leaves in seq order, in chunks, into the
target: event rows as they are, Merkle nodes made by a ``Frontier`` as it goes, the
projection replayed from the leaves (never copied), then the service rows the events
do not carry. It refuses a target that already holds a ledger of the account, and
proves the result by reading it back: the target's stored state digest must equal
the source's, and the target's Merkle root the source's at the same size.

``sync_account`` is the incremental form the dual-write mirror and the cutover use:
it appends the events the target lacks (after checking that the target's tree is a
prefix of the source's) and applies them to the target's stored projection.

The migration's phase lives in ``<data-dir>/migration.json`` (see
``docs/migration.md``); ``Settings.database()`` reads it to pick the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from tenure.config import MIGRATION_FILE
from tenure.crypto.files import write_atomic
from tenure.domain.projector import apply_data
from tenure.domain.state import TABLE_ORDER, TABLES, Key, MemoryState, Row
from tenure.errors import Conflict, DigestMismatch, LedgerTampered
from tenure.ledger.merkle import EMPTY_ROOT, Frontier, leaf_hash, tree_hash
from tenure.service.replay import replay, stored_digest
from tenure.store import raw, sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction, write_transaction
from tenure.store.unit import SqlTransaction

CHUNK = 10_000
Progress = Callable[[int, int], None]
"""Called with (events copied, events to copy)."""

PHASES = ("dual-write", "cutover", "rolled-back", "done")

# Service rows compared by primary key on each sync (small, or rows that change).
_KEYED = ("accounts", "api_keys", "signing_keys", "ledger_keys", "audit_heads", "drills")
# Append-only rows: only those past the target's largest ``column`` are copied.
_APPENDED = {"ledger_checkpoints": "size", "audit_log": "seq"}
# Immutable rows: those whose key the target lacks are copied.
_INSERTED = ("idempotency_keys",)


class MigrationRefused(Conflict):
    """The migration cannot go on: the target is not empty, the two ledgers have
    forked, or the phase does not allow the step."""

    code = "migration_refused"


@dataclass(frozen=True)
class Proof:
    """What a proven migration step found equal on both databases."""

    account: str
    size: int
    digest: str
    root: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Sides:
    """An account's ledger size on the source and on the target."""

    account: str
    source: int
    target: int

    @property
    def lag(self) -> int:
        return self.source - self.target


# ---------------------------------------------------------------- copy and sync


def source_accounts(source: sa.Engine) -> list[str]:
    """The accounts that have a ledger on ``source``."""
    with read_transaction(source) as conn:
        return sql.accounts(conn)


def refuse_nonempty(target: sa.Engine, accounts: list[str]) -> None:
    """Raise ``MigrationRefused`` if ``target`` holds a ledger of any of ``accounts``."""
    with read_transaction(target) as conn:
        held = [a for a in accounts if sql.read_head(conn, a) is not None]
    if held:
        raise MigrationRefused(
            f"the target already holds a ledger of {', '.join(held)}: migrate into an "
            "empty database"
        )


def copy_account(
    source: sa.Engine, target: sa.Engine, account: str, progress: Progress | None = None
) -> Proof:
    """Copy ``account`` into ``target``, which must hold no ledger of it, and prove
    it (see the module doc). Raises ``MigrationRefused``, ``DigestMismatch`` or
    ``LedgerTampered``; a failed copy writes nothing."""
    refuse_nonempty(target, [account])
    sync_account(source, target, account, progress)
    return prove_equal(source, target, account)


def sync_account(
    source: sa.Engine, target: sa.Engine, account: str, progress: Progress | None = None
) -> Sides:
    """Bring ``target``'s copy of ``account`` up to ``source``'s, in one target
    transaction: missing events, their nodes and projection changes, service rows.
    Raises ``MigrationRefused`` if the target is not a prefix of the source."""
    with read_transaction(source) as src, write_transaction(target) as dst:
        head = sql.read_head(src, account)
        if head is None:
            raise MigrationRefused(f"the source holds no ledger of {account}")
        there = sql.read_head(dst, account)
        start = there.size if there else 0
        if start > head.size or _root(dst, account, start) != _root(src, account, start):
            raise MigrationRefused(
                f"the target's ledger of {account} ({start} events) is not a prefix of the "
                f"source's ({head.size}): they have forked, nothing was copied"
            )
        if there is None:
            sql.create_head(dst, account, head.origin)
        if head.size > start:
            _copy_events(src, dst, account, start, head.size, progress)
            sql.set_head_size(dst, account, start, head.size)
            if _root(dst, account, head.size) != _root(src, account, head.size):
                raise LedgerTampered(f"the copied tree of {account} lost the source's root")
        sync_service_rows(src, dst, account)
        return Sides(account, head.size, head.size)


def prove_equal(source: sa.Engine, target: sa.Engine, account: str) -> Proof:
    """Read both databases back: same size, state digest and Merkle root, else
    ``DigestMismatch`` / ``LedgerTampered`` / ``MigrationRefused`` (source ahead)."""
    with read_transaction(source) as src, read_transaction(target) as dst:
        ours, theirs = sql.read_head(src, account), sql.read_head(dst, account)
        size = ours.size if ours else 0
        if theirs is None or theirs.size != size:
            there = theirs.size if theirs else 0
            raise MigrationRefused(
                f"{account}: the source holds {size} events, the target {there}: sync first"
            )
        digest = stored_digest(SqlTransaction(src), account)
        copied = stored_digest(SqlTransaction(dst), account)
        if digest != copied:
            raise DigestMismatch(f"{account}: target digest {copied} is not the source's {digest}")
        root = _root(src, account, size)
        if _root(dst, account, size) != root:
            raise LedgerTampered(f"{account}: the target's Merkle root is not the source's")
    return Proof(account, size, digest, root.hex())


def sizes(source: sa.Engine, target: sa.Engine, account: str) -> Sides:
    """The account's ledger size on each side (0 where it has none)."""
    with read_transaction(source) as src, read_transaction(target) as dst:
        ours, theirs = sql.read_head(src, account), sql.read_head(dst, account)
    return Sides(account, ours.size if ours else 0, theirs.size if theirs else 0)


def _root(conn: sa.Connection, account: str, size: int) -> bytes:
    return tree_hash(size, sql.NodeReader(conn, account)) if size else EMPTY_ROOT


_EVENTS = (
    "SELECT seq, id, type, subject, time, idempotency_key, leaf FROM ledger_events "
    "WHERE account = :account AND seq >= :at ORDER BY seq LIMIT :limit"
)


def _event_chunks(
    conn: sa.Connection, account: str, start: int, stop: int
) -> Iterator[list[sql.EventRow]]:
    at = start
    while at < stop:
        params = {"account": account, "at": at, "limit": min(CHUNK, stop - at)}
        rows = raw.execute(conn, _EVENTS, params).fetchall()
        if not rows or rows[0][0] != at:
            raise LedgerTampered(f"event {at} of {account} is missing at the source", seq=at)
        yield [sql.EventRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]
        at = rows[-1][0] + 1


def _copy_events(
    src: sa.Connection,
    dst: sa.Connection,
    account: str,
    start: int,
    stop: int,
    progress: Progress | None,
) -> None:
    """Events, nodes and projection changes ``start..stop``. An empty target gets a
    replay in memory and a bulk insert; a non-empty one gets its stored rows updated."""
    frontier = sql.read_frontier(dst, account, start) if start else Frontier()
    memory = MemoryState() if start == 0 else None
    pending = _Pending(dst, account)
    for rows in _event_chunks(src, account, start, stop):
        nodes = [node for r in rows for node in frontier.append(leaf_hash(r.leaf))]
        if dst.dialect.name == "postgresql":
            _copy_rows(
                dst, "ledger_events", _EVENT_COLUMNS, (_event_tuple(account, r) for r in rows)
            )
            _copy_rows(dst, "ledger_nodes", _NODE_COLUMNS, ((account, *n) for n in nodes))
        else:
            sql.insert_events(dst, account, rows)
            sql.insert_nodes(dst, account, nodes)
        if memory is not None:
            replay(((r.seq, r.leaf) for r in rows), memory, start=rows[0].seq)
        else:
            for r in rows:
                pending.apply(r.seq, r.leaf)
        if progress is not None:
            progress(rows[-1].seq + 1 - start, stop - start)
    if memory is not None:
        for name in TABLE_ORDER:
            sql.bulk_insert_rows(dst, account, name, memory.rows(name))
    else:
        pending.flush()


_EVENT_COLUMNS = "account, seq, id, type, subject, time, idempotency_key, leaf"
_NODE_COLUMNS = "account, level, idx, hash"


def _event_tuple(account: str, r: sql.EventRow) -> tuple[Any, ...]:
    return (account, r.seq, r.id, r.type, r.subject, r.time, r.idempotency_key, r.leaf)


def _copy_rows(
    conn: sa.Connection, table: str, columns: str, rows: Iterable[tuple[Any, ...]]
) -> None:
    """PostgreSQL ``COPY`` on the transaction's own connection: an executemany
    pipeline sends a statement per row and made the copy ~10 times slower."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class _Pending:
    """The target's stored projection plus the changes not yet written (a
    ``StateView`` for the projector)."""

    def __init__(self, conn: sa.Connection, account: str) -> None:
        self.conn = conn
        self.account = account
        self.changes: dict[str, dict[Key, Row | None]] = {name: {} for name in TABLES}

    def get(self, table: str, key: Key) -> Row | None:
        changed = self.changes[table]
        if key in changed:
            return changed[key]
        return sql.read_row(self.conn, self.account, table, key)

    def apply(self, seq: int, leaf: bytes) -> None:
        event = orjson.loads(leaf)
        for table, key, row in apply_data(self, event["type"], event["schema"], event["data"], seq):
            self.changes[table][key] = row

    def flush(self) -> None:
        for table in TABLE_ORDER:
            changed = self.changes[table]
            upserts = [row for row in changed.values() if row is not None]
            deletes = [key for key, row in changed.items() if row is None]
            sql.write_rows(self.conn, self.account, table, upserts, deletes)


# ---------------------------------------------------------------- service rows


def sync_service_rows(src: sa.Connection, dst: sa.Connection, account: str) -> None:
    """Make the target's service rows of ``account`` (API keys, idempotency records,
    token signing keys, the account row, checkpoints, verifier keys, audit log,
    drills) the source's."""
    for name in _KEYED:
        _sync_keyed(src, dst, t.metadata.tables[name], account)
    for name, column in _APPENDED.items():
        _sync_appended(src, dst, t.metadata.tables[name], column, account)
    for name in _INSERTED:
        _sync_inserted(src, dst, t.metadata.tables[name], account)


def _owned(table: sa.Table, account: str) -> sa.ColumnElement[bool]:
    return (table.c.id if table.name == "accounts" else table.c.account) == account


def _plain(row: sa.Row[Any]) -> dict[str, Any]:
    return {str(k): bytes(v) if isinstance(v, memoryview) else v for k, v in row._mapping.items()}


def _keyed_rows(
    conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key]
    rows = (_plain(r) for r in conn.execute(sa.select(table).where(where)))
    return {tuple(row[k] for k in keys): row for row in rows}


def _sync_keyed(src: sa.Connection, dst: sa.Connection, table: sa.Table, account: str) -> None:
    want = _keyed_rows(src, table, _owned(table, account))
    have = _keyed_rows(dst, table, _owned(table, account))
    stale = [key for key, row in have.items() if want.get(key) != row]
    missing = [row for key, row in want.items() if have.get(key) != row]
    if stale:
        keys = [c.name for c in table.primary_key]
        match = sa.and_(*(table.c[k] == sa.bindparam(f"pk_{k}") for k in keys))
        conn_params = [{f"pk_{k}": v for k, v in zip(keys, key, strict=True)} for key in stale]
        dst.execute(sa.delete(table).where(match), conn_params)
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


# ---------------------------------------------------------------- the state file


@dataclass(frozen=True)
class MigrationState:
    """``<data-dir>/migration.json``: which databases, and which one is in use."""

    source: str
    target: str
    phase: str

    @property
    def current(self) -> str:
        """The database the service uses in this phase."""
        return self.target if self.phase in ("cutover", "done") else self.source

    @property
    def mirror(self) -> tuple[str, str] | None:
        """(from, to) of the mirror in this phase, or None when it does not run."""
        if self.phase == "dual-write":
            return self.source, self.target
        if self.phase == "cutover":
            return self.target, self.source
        return None


def read_state(data_dir: Path) -> MigrationState | None:
    """The migration recorded in ``data_dir``, or None."""
    path = data_dir / MIGRATION_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return MigrationState(data["source"], data["target"], data["phase"])


def write_state(data_dir: Path, state: MigrationState) -> None:
    """Write the state file crash-safely: a reader sees the old phase or the new one."""
    write_atomic(data_dir / MIGRATION_FILE, (json.dumps(asdict(state), indent=2) + "\n").encode())
