"""Restore: a site's ledger into an empty database, proven.

The plan, in order:

1. The site's latest checkpoint must verify with the ledger key (size S, root R).
2. The site's segments are read from 0 with no gap, each checked. They must reach
   at least S and the target size T (default: everything the site holds).
3. The newest snapshot at or before T that proves itself (see
   ``snapshots.load``) gives the projection at its size N; a bad one is skipped
   for an older one, and with none the projection is replayed from genesis.
4. Every leaf is hashed into the Merkle tree. The tree at N must have the
   snapshot's root and the tree at S must have R, so the restored events are the
   signed ledger.
5. The events from N to T are replayed onto the snapshot's projection.
6. Events, Merkle nodes, head, projection, checkpoint and the snapshot's service
   rows are written into the target database in one transaction. Only then is the
   result read back and compared: the state digest must equal the replayed one and
   the stored root the proven one.

The target must hold no ledger for the account. Restoring over a live store is a
decision for an operator (``--force`` is not offered here).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from tenure.domain.events import EVENT_TYPES
from tenure.domain.state import TABLE_ORDER, MemoryState
from tenure.domain.timefmt import format_time, parse_time
from tenure.durability import keyrows, segments, snapshots
from tenure.durability.segments import BadSegment
from tenure.durability.sites import Site
from tenure.durability.snapshots import BadSnapshot, Snapshot
from tenure.errors import DigestMismatch, LedgerTampered, TenureError
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.merkle import EMPTY_ROOT, Frontier, leaf_hash, tree_hash
from tenure.ledger.note import NoteVerifier
from tenure.service.replay import replay, stored_digest
from tenure.store import raw, sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction, write_transaction

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total)."""


class RestoreRefused(TenureError):
    """The site cannot prove a restore, or the target is not empty."""

    code = "restore_refused"


@dataclass(frozen=True)
class RestoreReport:
    account: str
    size: int
    signed_size: int
    root: str
    digest: str
    snapshot: int | None
    skipped_snapshots: tuple[str, ...]
    seconds: float
    key_rows: str = "none"
    """Where API keys, public token keys and the account row came from: ``site``
    (shipped continuously), ``snapshot`` or ``none``."""

    def to_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "size": self.size,
            "signed_size": self.signed_size,
            "root": self.root,
            "digest": self.digest,
            "snapshot": self.snapshot,
            "skipped_snapshots": list(self.skipped_snapshots),
            "seconds": round(self.seconds, 3),
            "key_rows": self.key_rows,
        }


def restore(
    site: Site,
    account: str,
    target: sa.Engine,
    verifiers: list[NoteVerifier],
    at_seq: int | None = None,
    progress: Progress | None = None,
    at_time: datetime | None = None,
) -> RestoreReport:
    """Restore ``account`` from ``site`` into ``target``: everything the site holds,
    the first ``at_seq`` events, or the events up to and including ``at_time``.
    Raises ``RestoreRefused``, ``LedgerTampered`` or ``DigestMismatch``, never
    leaving a partial restore behind."""
    started = time.monotonic()
    note = site.get(f"{account}/checkpoint")
    if note is None:
        raise RestoreRefused(f"{site.url} holds no checkpoint of {account}")
    signed = open_checkpoint(note.decode(), verifiers)
    names = [n for p in site.list(f"{account}/segments/") if (n := segments.parse_name(p))]
    run = segments.contiguous(names)
    available = run[-1].end if run else 0
    size = available if at_seq is None else at_seq
    leaves: list[bytes] = []
    if at_time is not None:
        # Event times never run backwards within a ledger: the last event at or
        # before the moment ends the prefix.
        leaves = _leaves(site, account, run, available, progress)
        size = bisect.bisect_right(leaves, at_time, key=_event_time)
    if available < max(signed.size, size):
        raise RestoreRefused(
            f"{site.url} holds {available} events of {account}, but the restore needs "
            f"{max(signed.size, size)} (signed checkpoint {signed.size})"
        )
    base, skipped = _newest_good_snapshot(site, account, size, verifiers)
    service = dict(base.service) if base else {}
    shipped_keys, unusable = keyrows.load(site, account, verifiers)
    if unusable:
        skipped.append(f"{account}/keys.json: {unusable}")
    key_rows = "snapshot" if base else "none"
    if shipped_keys is not None and at_seq is None and at_time is None:
        service.update(shipped_keys)  # newer than any snapshot's
        key_rows = "site"
    if len(leaves) < max(signed.size, size):
        leaves = _leaves(site, account, run, max(signed.size, size), progress)
    frontier, nodes = _prove_tree(leaves, size, signed.size, signed.root, base)
    state = base.state if base else MemoryState()
    start = base.size if base else 0
    replay(((seq, leaves[seq]) for seq in range(start, size)), state, start=start)
    _write(target, account, leaves[:size], nodes, state, service, note.decode(), signed, verifiers)
    digest, root = _read_back(target, account, size)
    if digest != state.digest():
        raise DigestMismatch(f"restored digest {digest} is not the replayed {state.digest()}")
    if root != frontier.root():
        raise LedgerTampered(f"restored tree of {account} does not have the proven root")
    return RestoreReport(
        account,
        size,
        signed.size,
        root.hex(),
        digest,
        base.size if base else None,
        tuple(skipped),
        time.monotonic() - started,
        key_rows,
    )


def _newest_good_snapshot(
    site: Site, account: str, size: int, verifiers: list[NoteVerifier]
) -> tuple[Snapshot | None, list[str]]:
    skipped: list[str] = []
    for snap_size, path in snapshots.listed(site, account):
        if snap_size > size:
            continue
        try:
            return snapshots.load(site, path, account, verifiers), skipped
        except BadSnapshot as exc:
            skipped.append(f"{path}: {exc.message}")
    return None, skipped


def _leaves(
    site: Site, account: str, run: list[segments.SegmentName], need: int, progress: Progress | None
) -> list[bytes]:
    leaves: list[bytes] = []
    for name in run:
        if name.first >= need:
            break
        data = site.get(name.path(account))
        if data is None:
            raise RestoreRefused(f"segment {name.first}-{name.end} of {account} vanished")
        try:
            leaves.extend(segments.decode(data, account, name))
        except BadSegment as exc:
            raise RestoreRefused(f"{exc.message}: restore from another site") from exc
        if progress:
            progress("fetch", len(leaves), need)
    return leaves


def _prove_tree(
    leaves: list[bytes], size: int, signed_size: int, signed_root: bytes, base: Snapshot | None
) -> tuple[Frontier, list[tuple[int, int, bytes]]]:
    """Hash the leaves into the tree; check the snapshot's and the signed root on the
    way; return the frontier at ``size`` and the nodes of its tree."""
    frontier = Frontier()
    nodes: list[tuple[int, int, bytes]] = []
    at_size: Frontier | None = frontier.copy() if size == 0 else None
    for seq in range(max(size, signed_size)):
        made = frontier.append(leaf_hash(leaves[seq]))
        if seq < size:
            nodes.extend(made)
        done = seq + 1
        if base is not None and done == base.size and frontier.root() != base.root:
            raise LedgerTampered(f"the site's events disagree with snapshot {base.size}", seq=seq)
        if done == signed_size and frontier.root() != signed_root:
            raise LedgerTampered(
                f"the site's events disagree with its signed checkpoint {signed_size}", seq=seq
            )
        if done == size:
            at_size = frontier.copy()
    assert at_size is not None
    return at_size, nodes


def _write(
    target: sa.Engine,
    account: str,
    leaves: list[bytes],
    nodes: list[tuple[int, int, bytes]],
    state: MemoryState,
    service: dict[str, list[dict[str, Any]]],
    note: str,
    signed: Checkpoint,
    verifiers: list[NoteVerifier],
) -> None:
    rows = [_event_row(seq, leaf) for seq, leaf in enumerate(leaves)]
    with write_transaction(target) as conn:
        if conn.dialect.name == "sqlite":
            # A restore writes millions of rows into indexes on random keys (event
            # ids): a page cache of 256 MB instead of 2 MB keeps them off the disk.
            raw.execute(conn, "PRAGMA cache_size = -262144", {}).close()
        if sql.read_head(conn, account) is not None:
            raise RestoreRefused(f"the target already holds a ledger of {account}")
        sql.create_head(conn, account, signed.origin)
        sql.insert_events(conn, account, rows)
        sql.insert_nodes(conn, account, nodes)
        if leaves:
            sql.set_head_size(conn, account, 0, len(leaves))
        for name in TABLE_ORDER:
            sql.bulk_insert_rows(conn, account, name, state.rows(name))
        stamp = format_time(datetime.now(UTC))
        for verifier in verifiers:
            if verifier.name == signed.origin:
                key_id = verifier.key_id.hex()
                sql.record_verifier_key(conn, account, key_id, verifier.key_string(), stamp)
        if signed.size <= len(leaves):
            stored = sql.StoredCheckpoint(signed.size, signed.root, note, stamp)
            sql.insert_checkpoint(conn, account, stored)
        _write_service_rows(conn, account, service)


def _event_time(leaf: bytes) -> datetime:
    return parse_time(orjson.loads(leaf)["time"])


def _event_row(seq: int, leaf: bytes) -> sql.EventRow:
    """The stored row of a leaf. The leaves were proven to be the signed ledger (the
    root matched), so they are parsed, not validated again event by event."""
    event = orjson.loads(leaf)
    known = EVENT_TYPES.get(event["type"])
    subject = event["data"].get(known.subject) if known else None
    return sql.EventRow(
        seq,
        event["id"],
        event["type"],
        subject if isinstance(subject, str) else None,
        event["time"],
        event["idempotency_key"],
        leaf,
    )


def _write_service_rows(
    conn: sa.Connection, account: str, service: dict[str, list[dict[str, Any]]]
) -> None:
    for name, rows in service.items():
        if not rows:
            continue
        table = t.metadata.tables[name]
        if name == "accounts":
            exists = conn.scalar(sa.select(table.c.id).where(table.c.id == account))
            if exists is not None:
                continue
        conn.execute(sa.insert(table), rows)


def _read_back(target: sa.Engine, account: str, size: int) -> tuple[str, bytes]:
    with read_transaction(target) as conn:
        digest = stored_digest(conn, account)
        root = tree_hash(size, sql.NodeReader(conn, account)) if size else EMPTY_ROOT
    return digest, root
