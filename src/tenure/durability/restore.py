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
5. The events from N to T are replayed onto the snapshot's projection, and the
   site's audit chain is proven against its signed audit head and cut to T
   (``tenure.durability.audit_shipping``).
6. Events, Merkle nodes, head, projection, checkpoint, the service rows (the
   snapshot's, then the site's signed row files and the idempotency records
   shipped with the segments: ``keyrows``, ``idemrows``) and the audit chain are
   written into the target database in one transaction (a chain that could not be
   proven refuses it). Only then is the result read back and compared: the state
   digest must equal the replayed one and the stored root the proven one.

The target must hold no ledger for the account. Restoring over a live store is a
decision for an operator (``--force`` is not offered here).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tenure.domain.events import EVENT_TYPES
from tenure.domain.fields import field_values
from tenure.domain.state import TABLE_ORDER, MemoryState
from tenure.domain.timefmt import format_time, parse_time
from tenure.durability import audit_shipping, epochs, idemrows, keyrows, segments, snapshots
from tenure.durability.segments import BadSegment
from tenure.durability.sites import Site
from tenure.durability.snapshots import BadSnapshot, Snapshot
from tenure.errors import Conflict, DigestMismatch, LedgerTampered, MalformedEvent
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.merkle import Frontier, leaf_hash, root_of
from tenure.ledger.note import NoteVerifier
from tenure.service.personal import drop_erased_keys
from tenure.service.replay import cyclic_gc_paused, replay_events, stored_digest
from tenure.service.state_check import memory_root
from tenure.store.records import EventRow, Head, StoredCheckpoint
from tenure.store.unit import Store, Transaction

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total)."""


class RestoreRefused(Conflict):
    """The site cannot prove a restore, or the target is not empty (or, replacing
    it, would lose events)."""

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
    (shipped continuously), ``snapshot``, ``none``, or ``kept`` (a restore onto a
    live store keeps its own)."""
    replaced: int | None = None
    """With ``replace``: the size of the ledger the restore replaced."""
    lost: int = 0
    """With ``new_epoch``: the signed events no site holds any more."""
    epoch: int = 1
    """The epoch of the site's ledger the restore read (see ``epochs``)."""
    signed_note: str = ""
    """The site's signed checkpoint the restore verified (a new epoch quotes it)."""
    audit: str = "none"
    """Where the audit chain came from: ``site`` (proven, see ``audit_shipping``),
    ``none`` (the site has none), ``skipped`` (``without_audit``) or ``kept``."""
    audit_entries: int = 0
    """How many audit entries the restore wrote."""
    service_rows: str = "none"
    """Where webhooks, deployments and drift came from: ``site`` (``service.json``),
    ``none`` or ``kept``."""

    def to_json(self) -> dict[str, object]:
        """Its fields but the signed note, for the CLI and the API."""
        return {
            **field_values(self, omit=("signed_note",)),
            "skipped_snapshots": list(self.skipped_snapshots),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Proven:
    """A restore worked out and proven, nothing written yet (see ``prove``)."""

    account: str
    epoch: int
    signed: Checkpoint
    note: str
    size: int
    rows: list[EventRow]
    """The event rows to write (empty when they were written as they were proven)."""
    nodes: list[tuple[int, int, bytes]]
    """The Merkle nodes to write (empty when written as they were proven)."""
    root: bytes
    state: MemoryState
    service: dict[str, list[dict[str, Any]]]
    base: int | None
    skipped: list[str]
    key_rows: str
    lost: int
    started: float
    service_rows: str = "none"
    audit: audit_shipping.ShippedAudit = audit_shipping.NOT_SHIPPED
    streamed: bool = False
    """The events and Merkle nodes are already in the target transaction."""

    def root_at(self, size: int) -> bytes:
        """The root of the restored tree at ``size`` (at most ``self.size``)."""
        nodes = {(level, index): digest for level, index, digest in self.nodes}
        return root_of(size, _MemoryNodes(nodes))


def restore(
    site: Site,
    account: str,
    target: Store,
    verifiers: list[NoteVerifier],
    at_seq: int | None = None,
    progress: Progress | None = None,
    at_time: datetime | None = None,
    replace: bool = False,
    new_epoch: bool = False,
    without_audit: bool = False,
) -> RestoreReport:
    """Restore ``account`` from ``site`` into ``target``: everything the site holds,
    the first ``at_seq`` events, or the events up to and including ``at_time``.
    Raises ``RestoreRefused``, ``LedgerTampered`` or ``DigestMismatch``, never
    leaving a partial restore behind. See ``apply`` for ``replace`` and ``prove``
    for ``new_epoch``. The site's audit chain comes back too, proven, unless
    ``without_audit`` (``AuditUnproven`` if it cannot be proven)."""
    with cyclic_gc_paused():
        with target.read() as tx:
            live = tx.ledger.head(account) is not None
        if live:
            # Over a live ledger (``replace``) everything is proven first, outside
            # the write lock that its service needs.
            proven = prove(site, account, verifiers, at_seq, progress, at_time, new_epoch)
            with target.write() as tx:
                replaced = _apply(tx, proven, verifiers, replace, without_audit)
        else:
            # Into an empty store the events are written as they are proven.
            with target.write() as tx:
                proven = prove(site, account, verifiers, at_seq, progress, at_time, new_epoch, tx)
                replaced = _apply(tx, proven, verifiers, replace, without_audit)
        return check(target, proven, replaced)


def _apply(
    tx: Transaction,
    proven: Proven,
    verifiers: list[NoteVerifier],
    replace: bool,
    without_audit: bool,
) -> int | None:
    if without_audit:
        proven.audit = audit_shipping.ShippedAudit(source="skipped")
    return apply(tx, proven, verifiers, replace)


def prove(
    site: Site,
    account: str,
    verifiers: list[NoteVerifier],
    at_seq: int | None = None,
    progress: Progress | None = None,
    at_time: datetime | None = None,
    new_epoch: bool = False,
    into: Transaction | None = None,
) -> Proven:
    """Fetch and prove what a restore will write (steps 1 to 5 of the module doc).

    The site's segments are read one at a time and each leaf is parsed once: hashed
    into the tree, made into its event row, replayed, its idempotency key looked up.
    With ``into``, a write transaction whose target holds no ledger of ``account``,
    the head, events and Merkle nodes are written into it segment by segment, so a
    restore's memory does not grow with the ledger; the caller's transaction must
    then roll back if anything fails, this proof included. Without it they are kept
    in the ``Proven`` for ``apply``.

    With ``new_epoch`` the site must lack events its signed checkpoint covers (else
    there is nothing to give up): the events it holds without a gap are kept, each
    segment checked and, up to the newest good snapshot, proven by the snapshot's
    signed root; the rest is the events the new epoch records as lost."""
    started = time.monotonic()
    epoch = epochs.current(site, account)
    where = epochs.namespace(account, epoch)
    note = site.get(f"{where}/checkpoint")
    if note is None:
        raise RestoreRefused(f"{site.url} holds no checkpoint of {account}")
    signed = open_checkpoint(note.decode(), verifiers)
    names = [n for p in site.list(f"{where}/segments/") if (n := segments.parse_name(p))]
    run = segments.contiguous(names)
    available = run[-1].end if run else 0
    whole = at_seq is None and at_time is None  # not a moment for investigation
    if new_epoch:
        if not whole:
            raise RestoreRefused("--new-epoch restores everything a site holds, not a moment")
        if available >= signed.size:
            raise RestoreRefused(
                f"{site.url} holds every signed event of {account} ({available}): "
                "restore it without --new-epoch"
            )
        at_seq = available
    size = available if at_seq is None else at_seq
    fetched: list[bytes] | None = None
    if at_time is not None:
        # Event times never run backwards within a ledger: the last event at or
        # before the moment ends the prefix.
        parts = _fetch(site, account, where, run, available, progress)
        fetched = [leaf for _, part in parts for leaf in part]
        size = bisect.bisect_right(fetched, at_time, key=_event_time)
    if not new_epoch and available < max(signed.size, size):
        raise RestoreRefused(
            f"{site.url} holds {available} events of {account}, but the restore needs "
            f"{max(signed.size, size)} (signed checkpoint {signed.size}); if no site has "
            "them, --new-epoch keeps what is left and starts a new epoch"
        )
    claimed = size if new_epoch else max(signed.size, size)
    base, skipped = _newest_good_snapshot(site, account, where, size, verifiers)
    service = dict(base.service) if base else {}
    shipped_keys = _site_rows(site, account, verifiers, keyrows.KEYS, skipped)
    key_rows = "snapshot" if base else "none"
    if shipped_keys is not None and whole:
        service.update(shipped_keys)  # newer than any snapshot's
        key_rows = "site"
    service_rows = "none"
    if whole:
        shipped_service = _site_rows(site, account, verifiers, keyrows.SERVICE, skipped)
        shipped_data_keys = _site_rows(site, account, verifiers, keyrows.DATA_KEYS, skipped)
        service.update(shipped_data_keys or {})
        if shipped_service is not None:
            service.update(shipped_service)
            service_rows = "site"
    lost = signed.size - size if new_epoch else 0
    if into is not None:
        if into.ledger.head(account) is not None:
            raise RestoreRefused(f"the target already holds a ledger of {account}")
        into.bulk.prepare_large_write()
        into.ledger.create_head(
            account, epochs.next_origin(signed.origin) if lost else signed.origin
        )
    walk = _Walk(
        account,
        size,
        None if new_epoch else (signed.size, signed.root),
        base,
        into,
    )
    segment_leaves = (
        _fetch(site, account, where, run, claimed, progress)
        if fetched is None
        else ((name, fetched[name.first : name.end]) for name in run if name.first < claimed)
    )
    records: list[dict[str, Any]] = []
    missing: list[str] = []
    for name, leaves in segment_leaves:
        keys = walk.segment(name, leaves)
        if keys is not None and any(keys.values()):
            found, why = idemrows.load(site, where, account, name, keys, verifiers)
            records.extend(found)
            if why:
                missing.append(why)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        skipped.append(f"idempotency records not restored: {missing[0]}{more}")
    service["idempotency_keys"] = _merged(service.get("idempotency_keys", []), records, size)
    frontier = walk.finish()
    if size == signed.size and signed.state is not None and memory_root(walk.state) != signed.state:
        raise RestoreRefused(
            f"replaying {size} events of {account} does not give the state root signed in "
            f"{site.url}'s checkpoint {size}"
        )
    shipped_audit = audit_shipping.prove(site, account, where, verifiers, size, at_time, whole)
    return Proven(
        account,
        epoch,
        signed,
        note.decode(),
        size,
        walk.rows,
        walk.nodes,
        frontier.root(),
        walk.state,
        service,
        base.size if base else None,
        skipped,
        key_rows,
        lost,
        started,
        service_rows,
        shipped_audit,
        streamed=into is not None,
    )


def _site_rows(
    site: Site,
    account: str,
    verifiers: list[NoteVerifier],
    file: keyrows.RowFile,
    skipped: list[str],
) -> keyrows.Rows | None:
    """The site's rows of ``file`` if its signed note vouches for them; why not, when
    the site has an unusable one, goes to ``skipped``."""
    shipped, unusable = keyrows.load(site, account, verifiers, file)
    if unusable:
        skipped.append(unusable)
    return shipped


def apply(
    tx: Transaction, proven: Proven, verifiers: list[NoteVerifier], replace: bool = False
) -> int | None:
    """Write ``proven`` (step 6) in the caller's write transaction.

    Without ``replace`` the target must hold no ledger of the account. With it, the
    target's ledger is replaced, which is refused unless nothing of it is lost: the
    restored tree must have the live tree's root at the live size (computed from the
    stored Merkle nodes, so it also repairs lost or altered event rows) and the root
    of the live store's latest signed checkpoint. The target keeps its own service
    rows (API keys, idempotency records). Returns the replaced ledger's size."""
    account = proven.account
    head = None
    if not proven.streamed:
        tx.bulk.prepare_large_write()
        head = tx.ledger.head(account)
    replaced = None
    if head is not None:
        if not replace:
            raise RestoreRefused(f"the target already holds a ledger of {account}")
        _check_extends(tx, proven, head)
        replaced = head.size
        tx.bulk.delete(account)
    if not proven.streamed:
        origin = proven.signed.origin
        if proven.lost:
            origin = epochs.next_origin(origin)
        elif head is not None:
            origin = head.origin
        tx.ledger.create_head(account, origin)
        tx.bulk.append(account, proven.rows, proven.nodes)
    if proven.size:
        tx.ledger.move_head(account, 0, proven.size)
    for name in TABLE_ORDER:
        tx.bulk.insert_rows(account, name, proven.state.rows(name))
    tx.state_map.rebuild(account)
    stamp = format_time(datetime.now(UTC))
    signed = proven.signed
    for verifier in verifiers:
        if verifier.name == signed.origin:
            key_id = verifier.key_id.hex()
            tx.ledger.record_verifier_key(account, key_id, verifier.key_string(), stamp)
    newest = tx.ledger.checkpoint(account)
    if signed.size <= proven.size and (newest is None or newest.size < signed.size):
        stored = StoredCheckpoint(signed.size, signed.root, proven.note, stamp)
        tx.ledger.add_checkpoint(account, stored)
    if head is None:
        tx.service_rows.insert(account, proven.service)
        # A data key shipped before its customer's erasure must not outlive the
        # erasure the restored ledger holds (crypto-shredding, docs/personal-data.md).
        drop_erased_keys(tx, account)
        audit_shipping.write(tx, account, proven.audit)
    return replaced


def _check_extends(tx: Transaction, proven: Proven, head: Head) -> None:
    """Refuse to replace a live ledger the restored one does not extend."""
    account = proven.account
    if proven.lost:
        raise RestoreRefused("a new epoch is started in an empty database, not over a ledger")
    if proven.size < head.size:
        raise RestoreRefused(
            f"the target holds {head.size} events of {account}, the restore only "
            f"{proven.size}: replacing it would lose events"
        )
    try:
        live_root = root_of(head.size, tx.ledger.nodes(account))
    except LedgerTampered as exc:
        raise RestoreRefused(
            f"the target's Merkle tree of {account} is damaged ({exc.message}): "
            "restore into an empty database instead"
        ) from exc
    if proven.root_at(head.size) != live_root:
        raise RestoreRefused(
            f"the target's ledger of {account} is not a prefix of the site's: "
            "they have forked, replace nothing"
        )
    newest = tx.ledger.checkpoint(account)
    if newest is not None and (
        newest.size > proven.size or proven.root_at(newest.size) != newest.root
    ):
        raise RestoreRefused(
            f"the site's ledger of {account} disagrees with the target's signed checkpoint "
            f"{newest.size}"
        )


def check(target: Store, proven: Proven, replaced: int | None = None) -> RestoreReport:
    """Read the written restore back and compare it with what was proven."""
    with target.read() as tx:
        return verify_written(tx, proven, replaced)


def verify_written(tx: Transaction, proven: Proven, replaced: int | None = None) -> RestoreReport:
    """Read ``proven`` back through ``tx`` (also the transaction that wrote it, so
    that a mismatch rolls everything back) and compare; ``DigestMismatch`` or
    ``LedgerTampered`` when it differs."""
    digest = stored_digest(tx, proven.account)
    root = root_of(proven.size, tx.ledger.nodes(proven.account))
    if digest != proven.state.digest():
        raise DigestMismatch(
            f"restored digest {digest} is not the replayed {proven.state.digest()}"
        )
    if root != proven.root:
        raise LedgerTampered(f"restored tree of {proven.account} does not have the proven root")
    return RestoreReport(
        proven.account,
        proven.size,
        proven.signed.size,
        root.hex(),
        digest,
        proven.base,
        tuple(proven.skipped),
        time.monotonic() - proven.started,
        "kept" if replaced is not None else proven.key_rows,
        replaced,
        proven.lost,
        proven.epoch,
        proven.note,
        "kept" if replaced is not None else proven.audit.source,
        0 if replaced is not None else proven.audit.size,
        "kept" if replaced is not None else proven.service_rows,
    )


class _MemoryNodes:
    """A ``merkle.HashReader`` over subtree hashes held in memory."""

    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self.nodes = nodes

    def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.nodes[node] for node in ids]


def _newest_good_snapshot(
    site: Site, account: str, where: str, size: int, verifiers: list[NoteVerifier]
) -> tuple[Snapshot | None, list[str]]:
    skipped: list[str] = []
    for snap_size, path in snapshots.listed(site, where):
        if snap_size > size:
            continue
        try:
            return snapshots.load(site, path, account, verifiers), skipped
        except BadSnapshot as exc:
            skipped.append(f"{path}: {exc.message}")
    return None, skipped


def _fetch(
    site: Site,
    account: str,
    where: str,
    run: list[segments.SegmentName],
    need: int,
    progress: Progress | None = None,
) -> Iterator[tuple[segments.SegmentName, list[bytes]]]:
    """Each segment of ``run`` that holds events before ``need``, read and checked,
    with its leaves."""
    done = 0
    for name in run:
        if name.first >= need:
            break
        data = site.get(name.path(where))
        if data is None:
            raise RestoreRefused(f"segment {name.first}-{name.end} of {account} vanished")
        try:
            leaves = segments.decode(data, account, name)
        except BadSegment as exc:
            raise RestoreRefused(f"{exc.message}: restore from another site") from exc
        done += len(leaves)
        if progress:
            progress("fetch", done, need)
        yield name, leaves


class _Walk:
    """One pass over the proven ledger, a segment at a time (``prove``).

    Every leaf up to the claimed size is hashed into the tree, whose root must equal
    the snapshot's at its size and the signed checkpoint's at its size. Each leaf of
    the restored prefix is parsed once: its event row and Merkle nodes are written
    into ``into`` (or kept in ``rows`` and ``nodes``), and from the snapshot on it is
    replayed onto ``state``."""

    def __init__(
        self,
        account: str,
        size: int,
        signed: tuple[int, bytes] | None,
        base: Snapshot | None,
        into: Transaction | None,
    ) -> None:
        self.account = account
        self.size = size
        self.signed = signed
        self.base = base
        self.into = into
        self.start = base.size if base else 0
        self.state = base.state if base else MemoryState()
        self.frontier = Frontier()
        self.at_size: Frontier | None = self.frontier.copy() if size == 0 else None
        self.rows: list[EventRow] = []
        self.nodes: list[tuple[int, int, bytes]] = []

    def segment(
        self, name: segments.SegmentName, leaves: list[bytes]
    ) -> dict[int, str | None] | None:
        """Take one segment's leaves (from ``name.first``, no gap). Returns the
        idempotency key of each of its events when the segment holds events after
        the snapshot that are restored (their shipped records are wanted), else None."""
        size, start, frontier = self.size, self.start, self.frontier
        signed_size, signed_root = self.signed if self.signed else (-1, b"")
        base_size, base_root = (self.base.size, self.base.root) if self.base else (-1, b"")
        wanted = name.end > start and name.first < size
        keys: dict[int, str | None] = {}
        rows: list[EventRow] = []
        nodes: list[tuple[int, int, bytes]] = []
        replayed: list[tuple[int, dict[str, Any]]] = []
        loads = orjson.loads
        claimed = max(size, signed_size)
        for seq, leaf in enumerate(leaves, name.first):
            if seq < claimed:
                made = frontier.append(leaf_hash(leaf))
                done = seq + 1
                if done == base_size and frontier.root() != base_root:
                    raise LedgerTampered(
                        f"the site's events disagree with snapshot {base_size}", seq=seq
                    )
                if done == signed_size and frontier.root() != signed_root:
                    raise LedgerTampered(
                        f"the site's events disagree with its signed checkpoint {signed_size}",
                        seq=seq,
                    )
                if done == size:
                    self.at_size = frontier.copy()
            if seq < size:
                nodes.extend(made)
                event = loads(leaf)
                rows.append(_event_row(seq, event, leaf))
                if seq >= start:
                    replayed.append((seq, event))
                if wanted:
                    keys[seq] = _key_of(event)
            elif wanted:
                keys[seq] = _key_of(loads(leaf))
        if self.into is not None:
            self.into.bulk.append(self.account, rows, nodes)
        else:
            self.rows.extend(rows)
            self.nodes.extend(nodes)
        if replayed:
            replay_events(replayed, self.state, start=replayed[0][0])
        return keys if wanted else None

    def finish(self) -> Frontier:
        """The tree at the restored size, once every leaf up to the claim was taken."""
        claimed = max(self.size, self.signed[0] if self.signed else 0)
        if self.frontier.size < claimed or self.at_size is None:
            raise RestoreRefused(
                f"the site's segments of {self.account} end at {self.frontier.size}, "
                f"before {claimed}"
            )
        return self.at_size


def _merged(
    kept: list[dict[str, Any]], shipped: list[dict[str, Any]], size: int
) -> list[dict[str, Any]]:
    """The snapshot's idempotency records and the shipped ones, each key once,
    without records of events past ``size``."""
    by_key = {r["key"]: r for r in shipped}
    by_key.update({r["key"]: r for r in kept})
    return [r for _, r in sorted(by_key.items()) if r["first_seq"] is None or r["first_seq"] < size]


def _key_of(event: dict[str, Any]) -> str | None:
    key = event.get("idempotency_key")
    return key if isinstance(key, str) else None


def _event_time(leaf: bytes) -> datetime:
    return parse_time(orjson.loads(leaf)["time"])


def _event_row(seq: int, event: dict[str, Any], leaf: bytes) -> EventRow:
    """The stored row of a leaf. The leaves were proven to be the signed ledger (the
    root matched), so they are parsed, not validated again event by event."""
    try:
        kind = event["type"]
        field = _SUBJECTS.get(kind)
        subject = event["data"].get(field) if field else None
        return EventRow(
            seq,
            event["id"],
            kind,
            subject if isinstance(subject, str) else None,
            event["time"],
            event["idempotency_key"],
            leaf,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedEvent(f"event {seq} lacks envelope field {exc}") from exc


_SUBJECTS = {kind: known.subject for kind, known in EVENT_TYPES.items()}
