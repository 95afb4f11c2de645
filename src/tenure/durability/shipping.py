"""Ledger shipping: committed events go to every site, continuously, in segments.

Each pass (every ``interval`` seconds: the recovery point objective) sends, per
account and per site, the events the site does not hold yet, in segments of at
most ``SEGMENT_MAX`` events, then the account's latest signed checkpoint as
``<account>/checkpoint``, written after the segments it covers. Before the events
it ships the account's new audit entries and their signed head
(``tenure.durability.audit_shipping``), read in the same transaction as the ledger
head, so that a site's audit chain accounts for every event it holds. Segments are
derived from committed events only, so a pass interrupted by a crash is simply
done again; a range shipped twice holds the same leaves. With each segment go the
idempotency records of its events (``idemrows``, written first), and with each
pass the signed row files (``keyrows``: API keys, webhooks, deployments, ...)
whose rows changed.

With several server processes on one store only one of them ships: the one that
holds the shipper lock (an ``flock`` beside the database).

The same thread takes snapshots (``tenure.durability.snapshots``) when an account
has grown by ``every_events`` since its last snapshot, or has changed at all and the
last one is older than ``interval``: a restore then replays at most that much.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.crypto.files import ProcessLock
from tenure.domain.timefmt import format_time
from tenure.durability import audit_shipping, epochs, idemrows, keyrows, segments, snapshots
from tenure.durability.segments import SegmentName
from tenure.durability.sites import Site
from tenure.errors import AuditTampered
from tenure.ledger.note import NoteSigner
from tenure.store.records import StoredCheckpoint
from tenure.store.unit import Store, Transaction
from tenure.workers import Worker

_log = logging.getLogger("tenure.shipping")

SEGMENT_MAX = 10_000


def site_end(site: Site, where: str) -> int:
    """How many events the site holds without a gap under ``where`` (an account's
    namespace, see ``epochs``); 0 for none."""
    names = [n for p in site.list(f"{where}/segments/") if (n := segments.parse_name(p))]
    run = segments.contiguous(names)
    return run[-1].end if run else 0


@dataclass(frozen=True)
class _AccountNow:
    """What one pass ships of an account, read in one transaction."""

    size: int
    checkpoint: StoredCheckpoint | None
    rowfiles: dict[keyrows.RowFile, bytes]
    where: str
    """The account's namespace at the sites (its current epoch's)."""
    audit: tuple[int, bytes] | None = None
    """The account's audit head, read with its ledger head (``audit_shipping``)."""


@dataclass
class ShipReport:
    """What one pass did: events shipped per site, and the lag left behind."""

    shipped: dict[str, int] = field(default_factory=dict)
    behind: dict[str, int] = field(default_factory=dict)
    """Events committed but not yet at the site, per site URL, after the pass."""


class Shipper:
    """Ships every account's new events to every site; see the module doc."""

    def __init__(
        self,
        store: Store,
        sites: list[Site],
        interval: float = 1.0,
        lock: Path | None = None,
        snapshots: SnapshotPolicy | None = None,
        signer: Signer | None = None,
        files: tuple[keyrows.RowFile, ...] = keyrows.FILES,
    ) -> None:
        self._store = store
        self._files = files
        self._snapshots = snapshots
        self._signer = signer or (snapshots.signer if snapshots else None)
        self._rowfiles: dict[tuple[str, str, str], str] = {}
        self._snapshotted: dict[str, tuple[int, float]] = {}
        self._sites = sites
        self._lock = ProcessLock(lock) if lock else None
        self._ends: dict[tuple[str, str], int] = {}
        self._checkpoints: dict[tuple[str, str], int] = {}
        self._audit = audit_shipping.AuditShipper(store)
        # A site down for a while: each pass tries again, loudly; once stopped, a last
        # pass, so that a clean shutdown leaves nothing behind.
        self._worker = Worker(
            "tenure-shipper",
            self.ship_once,
            interval,
            final=self._last_pass,
            logger=_log,
            what="shipping pass",
        )
        self.last: ShipReport = ShipReport()
        self.last_success: float | None = None

    def start(self) -> bool:
        """Ship in a thread of its own; False (and no thread) if another process on
        this store holds the shipper lock."""
        if not self._sites or (self._lock is not None and not self._lock.acquire()):
            return False
        self._worker.start()
        return True

    @property
    def running(self) -> bool:
        """Whether this process ships (its thread runs)."""
        return self._worker.running

    def status(self) -> dict[str, Any]:
        """``{"shipping", "behind", "last_shipped_at"}`` as ``GET /v1/durability`` and
        the console show them: ``shipping`` is false without sites or when another
        process on this store ships; ``behind`` counts committed events (all
        accounts) not yet at each site after the last pass."""
        last = self.last_success
        return {
            "shipping": self.running,
            "behind": dict(self.last.behind),
            "last_shipped_at": None
            if last is None
            else format_time(datetime.fromtimestamp(last, UTC)),
        }

    @property
    def snapshots(self) -> dict[str, tuple[int, float]]:
        """Per site namespace (``<account>[/epoch-n]``): the size of the newest snapshot
        and its age in seconds — since this process took it, or first found it on the
        first site (it cannot know how old a snapshot it did not take is)."""
        now = time.monotonic()
        return {where: (size, now - at) for where, (size, at) in self._snapshotted.items()}

    def stop(self) -> None:
        """Stop after a last pass, so that a clean shutdown leaves nothing behind."""
        if not self._worker.running:
            return
        self._worker.stop()
        if self._lock is not None:
            self._lock.release()

    def _last_pass(self) -> None:
        try:
            self.ship_once()
        except Exception as exc:  # a site that is down at shutdown: the next start retries
            _log.error("last shipping pass failed: %s", exc)

    def ship_once(self) -> ShipReport:
        """One pass over every account and site. The store is read once per pass
        (heads, checkpoints, key rows) and each new segment once, whatever the
        number of sites."""
        report = ShipReport()
        with self._store.read() as tx:
            now = {account: self._read_account(tx, account) for account in tx.ledger.accounts()}
        encoded: dict[tuple[str, int, int], tuple[bytes, bytes | None]] = {}
        for site in self._sites:
            shipped = behind = 0
            for account, state in now.items():
                shipped += self._ship_account(site, account, state, encoded)
                behind += state.size - self._ends[site.url, state.where]
            report.shipped[site.url] = shipped
            report.behind[site.url] = behind
        if self._snapshots is not None:
            for account, state in now.items():
                self._snapshot_if_due(account, state)
        self.last = report
        self.last_success = time.time()
        return report

    def _read_account(self, tx: Transaction, account: str) -> _AccountNow:
        files = {
            file: keyrows.encode(account, keyrows.read_rows(tx, account, file), file)
            for file in (self._files if self._signer else ())
        }
        head = tx.ledger.head(account)
        where = epochs.namespace(account, epochs.epoch_of(head.origin) if head else 1)
        size = head.size if head else 0
        audit = audit_shipping.read_head(tx, account)
        return _AccountNow(size, tx.ledger.checkpoint(account), files, where, audit)

    def _ship_account(
        self,
        site: Site,
        account: str,
        state: _AccountNow,
        encoded: dict[tuple[str, int, int], tuple[bytes, bytes | None]],
    ) -> int:
        key = (site.url, state.where)
        if key not in self._ends:
            self._ends[key] = site_end(site, state.where)
        start = self._ends[key]
        self._ship_audit(site, account, state)
        while self._ends[key] < state.size:
            first = self._ends[key]
            end = min(state.size, first + SEGMENT_MAX)
            if (account, first, end) not in encoded:
                encoded[account, first, end] = self._segment(account, first, end)
            segment, records = encoded[account, first, end]
            name = SegmentName(first, end)
            if records is not None and self._signer is not None:
                # Before the segment: a site holding a segment holds its records.
                signer = self._signer(account)[1]
                idemrows.publish(site, state.where, account, name, records, signer)
            site.put(name.path(state.where), segment)
            self._ends[key] = end
        self._ship_checkpoint(site, state.where, state.checkpoint)
        for file, body in state.rowfiles.items():
            self._ship_rowfile(site, account, file, body)
        return self._ends[key] - start

    def _ship_audit(self, site: Site, account: str, state: _AccountNow) -> None:
        """The audit chain before the ledger segments: see ``audit_shipping``. A
        damaged audit table is logged at every pass and does not hold the ledger's
        shipping back (``tenure audit verify`` names the damage)."""
        signer = self._signer
        if signer is None:
            return
        try:
            self._audit.ship(site, account, state.where, state.audit, lambda: signer(account)[1])
        except AuditTampered as exc:
            _log.error("audit chain of %s not shipped to %s: %s", account, site.url, exc)

    def _segment(self, account: str, first: int, end: int) -> tuple[bytes, bytes | None]:
        """The segment of events ``first`` .. ``end - 1`` and, when there is a
        signer, the idempotency records of those events."""
        with self._store.read() as tx:
            leaves = [leaf for _, leaf in tx.ledger.leaves(account, first, end)]
            found = tx.service_rows.idempotency_of_events(account, first, end)
        if len(leaves) != end - first:
            raise RuntimeError(f"events {first}..{end - 1} of {account} are not all stored")
        records = idemrows.encode(account, SegmentName(first, end), found)
        return segments.encode(account, first, leaves), records if self._signer else None

    def _ship_rowfile(self, site: Site, account: str, file: keyrows.RowFile, body: bytes) -> None:
        digest = hashlib.sha256(body).hexdigest()
        key = (site.url, account, file.name)
        if self._rowfiles.get(key) == digest or self._signer is None:
            return
        _, signer = self._signer(account)
        keyrows.publish(site, account, body, signer, file)
        self._rowfiles[key] = digest

    def _ship_checkpoint(self, site: Site, where: str, stored: StoredCheckpoint | None) -> None:
        key = (site.url, where)
        if stored is None or stored.size > self._ends[key]:
            return  # never publish a checkpoint ahead of the events the site holds
        if self._checkpoints.get(key) == stored.size:
            return
        site.put(f"{where}/checkpoint", stored.note.encode())
        self._checkpoints[key] = stored.size

    def _snapshot_if_due(self, account: str, state: _AccountNow) -> None:
        policy = self._snapshots
        assert policy is not None
        if state.where not in self._snapshotted:
            sizes = [n for n, _ in snapshots.listed(self._sites[0], state.where)]
            self._snapshotted[state.where] = (max(sizes, default=0), time.monotonic())
        last_size, last_time = self._snapshotted[state.where]
        grown = state.size - last_size
        stale = time.monotonic() - last_time >= policy.interval
        if grown <= 0 or (grown < policy.every_events and not stale):
            return
        origin, signer = policy.signer(account)
        snapshot = snapshots.take(self._store, account, origin, signer)
        snapshots.publish(snapshot, signer, self._sites)
        self._snapshotted[state.where] = (snapshot.size, time.monotonic())


Signer = Callable[[str], tuple[str, NoteSigner]]
"""``account`` → (origin, the signer whose key name is that origin)."""


@dataclass(frozen=True)
class SnapshotPolicy:
    """When the shipper takes snapshots, and with which ledger key it signs them."""

    every_events: int
    interval: float
    signer: Signer
