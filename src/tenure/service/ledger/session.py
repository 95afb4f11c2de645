"""The append session of one account in a write batch: open the account (its head,
Merkle frontier and the projection rows kept from earlier batches, guarded by the
sidecar), run commands against it, and flush what they appended — events, Merkle
nodes, head, projection rows and idempotency records — into the batch's transaction.

The ``Appender`` keeps, between batches, what it knows about each account
(``AccountCache``): it is trusted only while nobody else wrote (the store's
"written elsewhere" marker, and the head read under the account's lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from tenure.canonical import canonical_json
from tenure.domain.commands import Context, Draft
from tenure.domain.events import CURRENT_SCHEMA, Event, event_from_json
from tenure.domain.projector import apply
from tenure.domain.state import Change, Key, Row
from tenure.domain.timefmt import format_time, parse_time
from tenure.errors import IdempotencyKeyReused, StateUnverified, StoreBehindCheckpoint
from tenure.ledger.merkle import Frontier, leaf_hash, tree_hash
from tenure.ledger.statemap import MapTop, bucket_of, state_key
from tenure.service import sidecar as sidecars
from tenure.service.ledger.requests import Outcome, Submission
from tenure.service.sidecar import Sidecar
from tenure.service.state_check import build_state_map
from tenure.service.state_guard import StateGuard
from tenure.service.units import BatchView, CommandView
from tenure.store.records import EventRow, IdempotencyRecord
from tenure.store.unit import Transaction
from tenure.store.writing import WriterTransaction

ROW_CACHE_LIMIT = 200_000
"""Projection rows the writer keeps in memory per account between batches."""


class PersonalSealing(Protocol):
    """What the writer needs of ``tenure.service.personal.PersonalData``."""

    def seal(
        self, tx: Transaction, account: str, event_id: str, type_name: str, data: dict[str, Any]
    ) -> dict[str, Any]: ...

    def opener(
        self, tx: Transaction, account: str
    ) -> Callable[[dict[str, Any]], dict[str, str | None] | None]: ...


class Sealer(Protocol):
    """Encrypts the personal fields of a draft's data under its event id."""

    def __call__(
        self, account: str, event_id: str, type_name: str, data: dict[str, Any]
    ) -> dict[str, Any]: ...


class Staging(Protocol):
    """A state view that collects the changes of the events being appended."""

    def get(self, table: str, key: tuple[str | int, ...]) -> dict[str, Any] | None: ...

    def stage(self, changes: list[Change]) -> None: ...


def open_state_map(tx: Transaction, account: str) -> MapTop:
    """The state map of ``account`` above its buckets, read from the store and checked
    against the root stored at its head (a writer without a ``StateGuard``); built from
    the projection rows first for an account written before 0.3.0.

    Raises ``StateUnverified`` when the stored buckets do not hash to the stored root.
    """
    root = build_state_map(tx, account)
    top = MapTop(tx.state_map.buckets(account))
    if top.root() != root:
        raise StateUnverified(
            f"the state map buckets of {account} do not hash to the root stored at its head"
        )
    return top


def append_drafts(
    view: Staging,
    frontier: Frontier,
    sub: Submission,
    drafts: list[Draft],
    stamp: str,
    random_bytes: Callable[[int], bytes],
    seal: Sealer | None = None,
) -> tuple[list[Event], list[EventRow], list[tuple[int, int, bytes]]]:
    """Turn a command's drafts into events: envelope, validation, projection, leaf.

    ``seal`` encrypts a draft's personal fields once its event id is drawn (the id
    is their associated data; ``tenure.service.personal``).

    Each event is checked (``event_from_json``), applied to ``view`` (which may
    refuse it with ``Conflict``), encoded canonically and appended to ``frontier``.
    Returns the events, their rows for ``ledger_events`` and the new Merkle nodes.
    """
    events: list[Event] = []
    rows: list[EventRow] = []
    nodes: list[tuple[int, int, bytes]] = []
    for draft in drafts:
        event_id = "evt_" + random_bytes(16).hex()
        data = seal(sub.account, event_id, draft.type, draft.data) if seal else draft.data
        envelope = {
            "id": event_id,
            "account": sub.account,
            "seq": frontier.size,
            "type": draft.type,
            "schema": CURRENT_SCHEMA[draft.type],
            "time": stamp,
            "actor": sub.actor.to_json(),
            "reason": sub.reason,
            "idempotency_key": sub.idempotency_key,
            "data": data,
        }
        event = event_from_json(envelope)
        view.stage(apply(view, event))
        leaf = canonical_json(envelope)
        nodes.extend(frontier.append(leaf_hash(leaf)))
        rows.append(
            EventRow(
                event.seq, event.id, event.type, event.subject, stamp, sub.idempotency_key, leaf
            )
        )
        events.append(event)
    return events, rows, nodes


@dataclass
class AccountBatch:
    """One account's part of a batch."""

    tx: Transaction
    origin: str
    head_size: int
    frontier: Frontier
    view: BatchView
    last_time: datetime | None
    signed_size: int
    rows: list[EventRow] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    idempotency: dict[str, IdempotencyRecord] = field(default_factory=dict)
    top: MapTop = field(default_factory=MapTop)
    """The state map above its buckets (the account's ``AccountCache.top``)."""
    checkpoint: str | None = None
    """The checkpoint the batch signed, if it signed one."""


@dataclass
class AccountCache:
    """What the writer remembers about an account between batches."""

    frontier: Frontier
    last_time: datetime | None
    signed_size: int
    signed_at: float
    sidecar_checked: bool = True
    rows: dict[tuple[str, Key], Row | None] = field(default_factory=dict)
    top: MapTop | None = None
    """The state map above its buckets, proven against the root at the head when read."""


@dataclass(eq=False)
class Appender:
    """Opens accounts in a batch, runs submissions against them and flushes them;
    keeps each account's ``AccountCache`` between batches."""

    origin_of: Callable[[str], str]
    sidecar: Sidecar | None
    clock: Callable[[], datetime]
    random_bytes: Callable[[int], bytes]
    license_key_hash: Callable[[str, str], str]
    personal: PersonalSealing | None
    guard: StateGuard | None = None
    cache: dict[str, AccountCache] = field(default_factory=dict)
    _write_marker: int | None = field(default=None, init=False)

    def forget_if_written_elsewhere(self, tx: WriterTransaction) -> None:
        """Forget the kept rows if somebody else wrote since the last batch."""
        # Another connection (a CLI rebuild, a second process) may have changed rows
        # this writer keeps in memory without moving any ledger head: forget the rows.
        # (A moved head is noticed in open, which then reloads everything: on
        # PostgreSQL the marker comes from NOTIFY, which may arrive after the commit
        # it announces, so the head check under the account lock is the guard.)
        marker = tx.written_elsewhere()
        if marker != self._write_marker:
            for cached in self.cache.values():
                cached.rows.clear()
                cached.sidecar_checked = False
            self._write_marker = marker

    def forget(self, accounts: dict[str, AccountBatch]) -> None:
        """After a failed transaction: what ``accounts`` and other writers hold is
        read afresh."""
        self._write_marker = None
        for account in accounts:
            self.cache.pop(account, None)
            if self.guard is not None:  # its map changed in place before the failure
                self.guard.forget(account)

    def open(self, tx: Transaction, account: str) -> AccountBatch:
        """The batch's state of ``account``, its head created if it has none.
        ``StoreBehindCheckpoint`` if the sidecar signed more (or other) events."""
        if self.guard is not None:
            self.guard.require(account)
        head = tx.ledger.head(account) or tx.ledger.create_head(account, self.origin_of(account))
        cached = self.cache.get(account)
        if cached is None or cached.frontier.size != head.size:
            frontier = tx.ledger.frontier(account, head.size)
            last = tx.ledger.last_event_time(account, head.size)
            stored = tx.ledger.checkpoint(account)
            cached = self.cache[account] = AccountCache(
                frontier,
                parse_time(last) if last else None,
                stored.size if stored else -1,
                time.monotonic(),
                sidecar_checked=False,
            )
        if len(cached.rows) > ROW_CACHE_LIMIT:
            cached.rows.clear()
        if not cached.sidecar_checked:
            self._check_sidecar(tx, account, head.origin, cached.frontier)
            cached.sidecar_checked = True
            cached.top = None
        if cached.top is None:
            if self.guard is None:
                cached.top = open_state_map(tx, account)
            else:
                build_state_map(tx, account)
                cached.top = self.guard.top_for(tx, account, head.size, self.sidecar)
        return AccountBatch(
            tx,
            head.origin,
            head.size,
            cached.frontier.copy(),
            BatchView(tx.projection, account, cached.rows),
            cached.last_time,
            cached.signed_size,
            top=cached.top,
        )

    def _check_sidecar(
        self, tx: Transaction, account: str, origin: str, frontier: Frontier
    ) -> None:
        signed = self.sidecar.read(account) if self.sidecar else None
        if signed is None:
            return

        def root_at(size: int) -> bytes:
            if size == frontier.size:
                return frontier.root()
            return tree_hash(size, tx.ledger.nodes(account))

        verdict = sidecars.compare(signed, origin, frontier.size, root_at)
        if verdict == "ahead":
            raise StoreBehindCheckpoint(
                f"the store holds {frontier.size} events of {account} but checkpoint "
                f"{signed.size} was signed: recover the missing events from a site "
                "(tenure restore) before appending"
            )
        if verdict == "disagrees":
            raise StoreBehindCheckpoint(
                f"the store's tree of size {signed.size} disagrees with the signed checkpoint "
                f"of {account}: this store is not the one that signed it"
            )

    def run(self, state: AccountBatch, sub: Submission) -> Outcome:
        """Run ``sub``'s command against ``state``: its events are staged in the
        batch, or nothing is if it raises (a ``TenureError`` answers it)."""
        key = sub.idempotency_key
        request_hash = sub.request_hash() if key else ""
        if key:
            record = state.idempotency.get(key) or state.tx.idempotency.read(sub.account, key)
            if record is not None:
                if record.request_hash != request_hash:
                    raise IdempotencyKeyReused(
                        f"idempotency key {key!r} was used for a different request"
                    )
                return Outcome(record.result, replayed=True)
        now = sub.at or self.clock()
        if state.last_time is not None and now < state.last_time:
            now = state.last_time  # event times never run backwards within a ledger
        ctx = Context(
            sub.account,
            now,
            lambda: self.random_bytes(20),
            lambda serial: self.license_key_hash(sub.account, serial),
            **(
                {"open_sealed": self.personal.opener(state.tx, sub.account)}
                if self.personal
                else {}
            ),
        )
        view = CommandView(state.view)
        decision = sub.command.decide(view, ctx)
        frontier = state.frontier.copy()
        seal = partial(self.personal.seal, state.tx) if self.personal else None
        events, rows, nodes = append_drafts(
            view, frontier, sub, decision.drafts, format_time(now), self.random_bytes, seal
        )
        view.commit()
        state.frontier = frontier
        state.rows.extend(rows)
        state.nodes.extend(nodes)
        state.last_time = now if events else state.last_time
        if key:
            first = events[0].seq if events else None
            state.idempotency[key] = IdempotencyRecord(
                request_hash, first, len(events), decision.result
            )
        return Outcome(decision.result, tuple(events))

    def flush(self, account: str, state: AccountBatch, stamp: str) -> None:
        """Write what the batch appended to ``account``: events, nodes, the moved
        head, projection rows, and idempotency records created at ``stamp``; delete
        the data key of every customer the batch erased."""
        ledger = state.tx.ledger
        ledger.append_events(account, state.rows)
        ledger.append_nodes(account, state.nodes)
        if state.frontier.size != state.head_size:
            ledger.move_head(account, state.head_size, state.frontier.size)
        written = state.view.flush()
        # Crypto-shredding commits with the customer.erased event, or neither does.
        for customer in [key[0] for table, key in written if table == "customer_erasures"]:
            state.tx.data_keys.delete(account, str(customer))
        if written:
            buckets = {bucket_of(state_key(table, key)) for table, key in written}
            if self.guard is not None:
                self.guard.changing(account, buckets)
            # The cached top changes before the commit: a batch that fails forgets it.
            state.top.update(state.tx.state_map.settle(account, buckets))
            state.tx.state_map.set_root(account, state.top.root())
        state.tx.idempotency.insert(
            account, [(key, rec, stamp) for key, rec in state.idempotency.items()]
        )

    def remember(self, accounts: dict[str, AccountBatch]) -> None:
        """After the commit: keep what the batch left, and write the sidecar of every
        checkpoint it signed (``OSError`` if one could not be written)."""
        for account, state in accounts.items():
            cached = self.cache[account]
            cached.frontier = state.frontier
            cached.last_time = state.last_time
            cached.signed_size = state.signed_size
            if self.guard is not None:
                self.guard.advance(account, state.frontier.size, state.top)
            if state.checkpoint is not None:
                cached.signed_at = time.monotonic()
                if self.sidecar is not None:
                    # Written only after the commit: a sidecar ahead of the store
                    # would make the store refuse to sign.
                    self.sidecar.write(account, state.checkpoint)
