"""Backend migration: an account's ledger copied from one database to another, proven.

``copy_account`` streams the source's leaves in seq order, in chunks, into the
target: event rows as they are, Merkle nodes made by a ``Frontier`` as it goes, the
projection replayed from the leaves (never copied), then the service rows the events
do not carry (among them the customers' wrapped data keys, less those of customers
the ledger erased). It refuses a target that already holds a ledger of the account,
and proves the result by reading it back: the target's stored state digest must equal
the source's, and the target's Merkle root the source's at the same size.

``sync_account`` is the incremental form the dual-write mirror and the cutover use:
it appends the events the target lacks (after checking that the target's tree is a
prefix of the source's) and applies them to the target's stored projection.

The migration's phase lives in ``<data-dir>/migration.json`` (see
``docs/migration.md``); ``Settings.database()`` reads it to pick the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from tenure.config import MIGRATION_FILE
from tenure.crypto.files import write_atomic
from tenure.domain.projector import apply_data
from tenure.domain.state import TABLE_ORDER, TABLES, Key, MemoryState, Row
from tenure.errors import Conflict, DigestMismatch, LedgerTampered
from tenure.ledger.merkle import Frontier, leaf_hash, root_of
from tenure.ledger.statemap import bucket_of, state_key
from tenure.service.personal import drop_erased_keys
from tenure.service.replay import replay, stored_digest
from tenure.store.databases import copy_service_rows
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


def source_accounts(source: Store) -> list[str]:
    """The accounts that have a ledger on ``source``."""
    with source.read() as tx:
        return tx.ledger.accounts()


def refuse_nonempty(target: Store, accounts: list[str]) -> None:
    """Raise ``MigrationRefused`` if ``target`` holds a ledger of any of ``accounts``."""
    with target.read() as tx:
        held = [a for a in accounts if tx.ledger.head(a) is not None]
    if held:
        raise MigrationRefused(
            f"the target already holds a ledger of {', '.join(held)}: migrate into an "
            "empty database"
        )


def copy_account(
    source: Store, target: Store, account: str, progress: Progress | None = None
) -> Proof:
    """Copy ``account`` into ``target``, which must hold no ledger of it, and prove
    it (see the module doc). Raises ``MigrationRefused``, ``DigestMismatch`` or
    ``LedgerTampered``; a failed copy writes nothing."""
    refuse_nonempty(target, [account])
    sync_account(source, target, account, progress)
    return prove_equal(source, target, account)


def sync_account(
    source: Store, target: Store, account: str, progress: Progress | None = None
) -> Sides:
    """Bring ``target``'s copy of ``account`` up to ``source``'s, in one target
    transaction: missing events, their nodes and projection changes, service rows.
    Raises ``MigrationRefused`` if the target is not a prefix of the source."""
    with source.read() as src, target.write() as dst:
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
        copy_service_rows(src, dst, account)
        # A key the source still holds for a customer its ledger erased (keys restored
        # from an older backup) does not travel: crypto-shredding holds on the target.
        drop_erased_keys(dst, account)
        return Sides(account, head.size, head.size)


def prove_equal(source: Store, target: Store, account: str) -> Proof:
    """Read both databases back: same size, state digest and Merkle root, else
    ``DigestMismatch`` / ``LedgerTampered`` / ``MigrationRefused`` (source ahead)."""
    with source.read() as src, target.read() as dst:
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
    return Proof(account, size, digest, root.hex())


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
