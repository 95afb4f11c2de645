"""Backend migration: accounts copied from one database to another, proven.

``migrate`` copies accounts in one target transaction. For each it streams the
source's leaves in seq order, in chunks, into the target: event rows as they are,
Merkle nodes made by a ``Frontier`` as it goes, the projection and the state map
rebuilt from the leaves (never copied), then every other table as
``tenure.store.table_copy.TABLE_PLAN`` says (the customers' wrapped data keys less
those of customers the ledger erased). It refuses a target that holds any row
of the account (unless ``replace``), and proves each account before committing and
again by reading it back: the same state digest, Merkle root, state map root and
rows per table on both sides. ``undo_on_failure`` removes what a failed migration
made (a new SQLite file, a new schema).

``sync_account`` is the incremental form the dual-write mirror and the cutover use:
it appends the events the target lacks (after checking that the target's tree is a
prefix of the source's) and applies them to the target's stored projection.

The migration's phase lives in ``<data-dir>/migration.json`` (see
``docs/migration.md``); ``Settings.database()`` reads it to pick the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from tenure.config import MIGRATION_FILE
from tenure.crypto.files import write_atomic
from tenure.domain.projector import apply_data
from tenure.domain.state import TABLE_ORDER, TABLES, Key, MemoryState, Row
from tenure.errors import Conflict, DigestMismatch, LedgerTampered, StateTampered
from tenure.ledger.merkle import Frontier, leaf_hash, root_of
from tenure.ledger.statemap import bucket_of, state_key
from tenure.service.personal import drop_erased_keys
from tenure.service.replay import cyclic_gc_paused, replay, stored_digest
from tenure.service.state import state_root_in
from tenure.store.databases import (
    copy_tables,
    delete_account,
    drop_schema,
    remove_sqlite,
    row_counts,
    schema_revision,
    sqlite_file,
    table_digests,
)
from tenure.store.table_copy import PLAN_OF, How
from tenure.store.unit import Store, Transaction

Progress = Callable[[int, int], None]
"""Called with (events copied, events to copy)."""

PHASES = ("dual-write", "cutover", "rolled-back", "done")


class MigrationRefused(Conflict):
    """The migration cannot go on: the target is not empty, the two ledgers have
    forked, or the phase does not allow the step."""

    code = "migration_refused"


@dataclass(frozen=True)
class Proof:
    """What a proven migration step found equal on both databases: ledger size, state
    digest, Merkle root, state map root, and the rows of the account in every table
    of the schema (``table_copy.TABLE_PLAN``; the same on both sides for every
    copied, replayed and ledger table)."""

    account: str
    size: int
    digest: str
    root: str
    state_root: str
    rows: dict[str, int]

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


def source_accounts(source: Store) -> list[str]:
    """The accounts that have a ledger on ``source``."""
    with source.read() as tx:
        return tx.ledger.accounts()


def migrate(
    source: Store,
    target: Store,
    accounts: Sequence[str],
    *,
    replace: bool = False,
    progress: Progress | None = None,
    proven: Callable[[Proof], None] | None = None,
) -> list[Proof]:
    """Copy ``accounts`` from ``source`` into ``target`` in one target transaction,
    each proven before it commits (``proven`` is called with each proof), then read
    back. The target must hold no row of them, or with ``replace`` only ledgers the
    source's extend (their rows are then replaced). Raises ``MigrationRefused``,
    ``DigestMismatch`` or ``LedgerTampered`` (``StateTampered``); a refused or failed
    migration commits nothing."""
    proofs = []
    with cyclic_gc_paused(), source.read() as src, target.write() as dst:
        dst.bulk.prepare_large_write()
        for account in accounts:  # every refusal before any copy
            _make_room(src, dst, account, replace)
        for account in accounts:
            _sync(src, dst, account, progress)
            proofs.append(_proof(src, dst, account))
            if proven is not None:
                proven(proofs[-1])
    for proof in proofs:
        if prove_equal(source, target, proof.account) != proof:
            raise DigestMismatch(f"{proof.account}: the target read back is not what was proven")
    return proofs


def copy_account(
    source: Store, target: Store, account: str, progress: Progress | None = None
) -> Proof:
    """``migrate`` of one account into a target that holds none of its rows."""
    return migrate(source, target, [account], progress=progress)[0]


def _make_room(src: Transaction, dst: Transaction, account: str, replace: bool) -> None:
    """Refuse a target holding rows of ``account``; with ``replace``, delete them if
    the source's ledger extends the target's (same root at the target's size and at
    its latest checkpoint), as ``tenure restore --replace`` requires."""
    counts = row_counts(dst, account).items()
    held = [name for name, count in counts if count and PLAN_OF[name].how is not How.NOT_COPIED]
    if not held:
        return
    head = dst.ledger.head(account)
    what = f"a ledger of {account}" if head else f"rows of {account} ({', '.join(held[:3])})"
    if not replace:
        raise MigrationRefused(
            f"the target already holds {what}: migrate into an empty database, or pass --replace"
        )
    if head is not None:
        _check_extends(src, dst, account, head.size)
    delete_account(dst, account)


def _check_extends(src: Transaction, dst: Transaction, account: str, size: int) -> None:
    ours = src.ledger.head(account)
    if ours is None or ours.size < size:
        raise MigrationRefused(
            f"the target holds {size} events of {account}, the source "
            f"{ours.size if ours else 0}: replacing it would lose events"
        )
    newest = dst.ledger.checkpoint(account)
    forked = _root(dst, account, size) != _root(src, account, size)
    if newest is not None:
        forked |= newest.size > ours.size or _root(src, account, newest.size) != newest.root
    if forked:
        raise MigrationRefused(
            f"the target's ledger of {account} is not a prefix of the source's (or of its "
            "signed checkpoint): they have forked, nothing was replaced"
        )


def sync_account(
    source: Store, target: Store, account: str, progress: Progress | None = None
) -> Sides:
    """Bring ``target``'s copy of ``account`` up to ``source``'s, in one target
    transaction: missing events, their nodes and projection changes, copied tables.
    Raises ``MigrationRefused`` if the target is not a prefix of the source."""
    with source.read() as src, target.write() as dst:
        return _sync(src, dst, account, progress)


def _sync(src: Transaction, dst: Transaction, account: str, progress: Progress | None) -> Sides:
    head = src.ledger.head(account)
    if head is None:
        raise MigrationRefused(f"the source holds no ledger of {account}")
    there = dst.ledger.head(account)
    start = there.size if there else 0
    if start > head.size or _root(dst, account, start) != _root(src, account, start):
        raise MigrationRefused(
            f"the target's ledger of {account} ({start} events) is not a prefix of the "
            f"source's ({head.size}): they have forked, nothing was copied"
        )
    if there is None:
        dst.ledger.create_head(account, head.origin)
    if head.size > start:
        _copy_events(src, dst, account, start, head.size, progress)
        dst.ledger.move_head(account, start, head.size)
        if _root(dst, account, head.size) != _root(src, account, head.size):
            raise LedgerTampered(f"the copied tree of {account} lost the source's root")
    copy_tables(src, dst, account)
    # A key the source still holds for a customer its ledger erased (keys restored
    # from an older backup) does not travel: crypto-shredding holds on the target.
    drop_erased_keys(dst, account)
    return Sides(account, head.size, head.size)


def prove_equal(source: Store, target: Store, account: str) -> Proof:
    """Read both databases back and prove them equal (see ``_proof``)."""
    with source.read() as src, target.read() as dst:
        return _proof(src, dst, account)


def _proof(src: Transaction, dst: Transaction, account: str) -> Proof:
    """Same size, state digest, Merkle root, state root (recomputed from the target's
    rows, equal to its stored root, the source's and a signed one at the head) and
    rows per table, else ``DigestMismatch`` / ``LedgerTampered`` / ``StateTampered``
    / ``MigrationRefused`` (source ahead)."""
    ours, theirs = src.ledger.head(account), dst.ledger.head(account)
    size = ours.size if ours else 0
    if theirs is None or theirs.size != size:
        there = theirs.size if theirs else 0
        raise MigrationRefused(
            f"{account}: the source holds {size} events, the target {there}: sync first"
        )
    digest, copied = stored_digest(src, account), stored_digest(dst, account)
    if digest != copied:
        raise DigestMismatch(f"{account}: target digest {copied} is not the source's {digest}")
    root = _root(src, account, size)
    if _root(dst, account, size) != root:
        raise LedgerTampered(f"{account}: the target's Merkle root is not the source's")
    state = _state_root(src, dst, account)
    return Proof(account, size, digest, root.hex(), state.hex(), _same_rows(src, dst, account))


_PROVEN_APART = ("data_keys", "state_leaves", "state_buckets")
"""Tables whose rows are proven otherwise than by their count: the data keys by
``_same_keys``, the state map by its root (``_state_root``; a source upgraded from
0.2.0 and never opened by a writer has no map yet, which the target builds)."""


def _same_rows(src: Transaction, dst: Transaction, account: str) -> dict[str, int]:
    """The rows of ``account`` per table on the target: the same number as on the
    source in every table but those not copied, and the same rows in every copied
    one, else ``DigestMismatch``. The data keys are the source's less those of
    customers the ledger erased (``_same_keys``)."""
    rows = row_counts(dst, account)
    for name, count in row_counts(src, account).items():
        if name in _PROVEN_APART or PLAN_OF[name].how is How.NOT_COPIED:
            continue
        if rows[name] != count:
            raise DigestMismatch(
                f"{account}: table {name} holds {rows[name]} rows on the target, "
                f"{count} on the source"
            )
    carried = table_digests(dst, account)
    for name, rows_digest in table_digests(src, account).items():
        if name != "data_keys" and carried[name] != rows_digest:
            raise DigestMismatch(f"{account}: the rows of table {name} differ on the target")
    _same_keys(src, dst, account)
    return rows


def _same_keys(src: Transaction, dst: Transaction, account: str) -> None:
    """The target holds exactly the source's data keys of customers not erased."""
    erased = {customer for owner, customer in src.listings.erased_customers() if owner == account}
    wanted = set(src.data_keys.customers(account)) - erased
    held = set(dst.data_keys.customers(account))
    if held != wanted:
        raise DigestMismatch(
            f"{account}: the target holds the data keys of {len(held)} customers, the "
            f"source {len(wanted)} (erased customers' keys left out)"
        )
    for customer in sorted(held):
        if dst.data_keys.get(account, customer) != src.data_keys.get(account, customer):
            raise DigestMismatch(f"{account}: customer {customer}'s data key differs on the target")


def _state_root(src: Transaction, dst: Transaction, account: str) -> bytes:
    """The target's state map root, proven equal to the source's."""
    ours, theirs = state_root_in(src, account), state_root_in(dst, account)
    if ours.stored not in (None, ours.computed) or not theirs.consistent:
        raise StateTampered(f"{account}: a stored or signed state root disagrees with the rows")
    if theirs.computed != ours.computed:
        raise StateTampered(f"{account}: the target's state root is not the source's")
    return theirs.computed


@contextmanager
def undo_on_failure(url: str) -> Iterator[None]:
    """Run a migration into ``url``; if it raises, remove what it made there: the
    SQLite file when none existed, or the schema when the database had none. (A
    failed copy commits no row; a target that had a schema keeps it, unchanged.)"""
    path = sqlite_file(url)
    new_file = path is not None and not path.exists()
    had_schema = not new_file and schema_revision(url) is not None
    new_dir = None
    if path is not None and new_file:
        missing = [d for d in path.absolute().parents if not d.exists()]
        new_dir = missing[-1] if missing else None
    try:
        yield
    except BaseException:
        if path is not None and new_file:
            remove_sqlite(path.absolute(), new_dir)
        elif not had_schema:
            drop_schema(url)
        raise


def sizes(source: Store, target: Store, account: str) -> Sides:
    """The account's ledger size on each side (0 where it has none)."""
    with source.read() as src, target.read() as dst:
        ours, theirs = src.ledger.head(account), dst.ledger.head(account)
    return Sides(account, ours.size if ours else 0, theirs.size if theirs else 0)


def _root(tx: Transaction, account: str, size: int) -> bytes:
    return root_of(size, tx.ledger.nodes(account))


def _copy_events(
    src: Transaction,
    dst: Transaction,
    account: str,
    start: int,
    stop: int,
    progress: Progress | None,
) -> None:
    """Events, nodes and projection changes ``start..stop``. An empty target gets a
    replay in memory and a bulk insert; a non-empty one gets its stored rows updated."""
    frontier = dst.ledger.frontier(account, start) if start else Frontier()
    memory = MemoryState() if start == 0 else None
    pending = _Pending(dst, account)
    for rows in src.bulk.event_rows(account, start, stop):
        nodes = [node for r in rows for node in frontier.append(leaf_hash(r.leaf))]
        dst.bulk.append(account, rows, nodes)
        if memory is not None:
            replay(((r.seq, r.leaf) for r in rows), memory, start=rows[0].seq)
        else:
            for r in rows:
                pending.apply(r.seq, r.leaf)
        if progress is not None:
            progress(rows[-1].seq + 1 - start, stop - start)
    if memory is not None:
        for name in TABLE_ORDER:
            dst.bulk.insert_rows(account, name, memory.rows(name))
        dst.state_map.rebuild(account)
    else:
        dst.state_map.rebuild(account, pending.flush())


class _Pending:
    """The target's stored projection plus the changes not yet written (a
    ``StateView`` for the projector)."""

    def __init__(self, tx: Transaction, account: str) -> None:
        self.tx = tx
        self.account = account
        self.changes: dict[str, dict[Key, Row | None]] = {name: {} for name in TABLES}

    def get(self, table: str, key: Key) -> Row | None:
        changed = self.changes[table]
        if key in changed:
            return changed[key]
        return self.tx.projection.row(self.account, table, key)

    def apply(self, seq: int, leaf: bytes) -> None:
        event = orjson.loads(leaf)
        for table, key, row in apply_data(self, event["type"], event["schema"], event["data"], seq):
            self.changes[table][key] = row

    def flush(self) -> set[int]:
        """Write the changes; return the state-map buckets they touched."""
        buckets: set[int] = set()
        for table in TABLE_ORDER:
            changed = self.changes[table]
            upserts = [row for row in changed.values() if row is not None]
            deletes = [key for key, row in changed.items() if row is None]
            self.tx.projection.write(self.account, table, upserts, deletes)
            buckets.update(bucket_of(state_key(table, key)) for key in changed)
        return buckets


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
