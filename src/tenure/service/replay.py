"""Replay and rebuild: the projection as a pure function of the ledger.

``replay`` folds leaves through the projector into a ``MemoryState``.
``rebuild`` replaces an account's stored projection by a replay of its whole
ledger, in one transaction, and refuses (rolling back) when the digest changes
unless told that repairing a damaged projection is the point.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from tenure.domain.projector import apply_data
from tenure.domain.state import TABLE_ORDER, Key, MemoryState
from tenure.errors import DigestMismatch, LedgerTampered, MalformedEvent, NotFound
from tenure.ledger.digest import state_digest
from tenure.store.unit import Store, Transaction

Progress = Callable[[int], None]
"""Called with the number of events replayed so far (every few thousand)."""


def replay(
    leaves: Iterable[tuple[int, bytes]],
    state: MemoryState | None = None,
    start: int = 0,
    progress: Progress | None = None,
    changed: set[tuple[str, Key]] | None = None,
) -> MemoryState:
    """Apply leaves (``(seq, leaf)`` from ``start``, gap-free) to ``state``; add the
    ``(table, key)`` of every row they wrote or deleted to ``changed`` if given."""
    loads = orjson.loads
    events = ((seq, loads(leaf)) for seq, leaf in leaves)
    return replay_events(events, state, start, progress, changed)


def replay_events(
    events: Iterable[tuple[int, Any]],
    state: MemoryState | None = None,
    start: int = 0,
    progress: Progress | None = None,
    changed: set[tuple[str, Key]] | None = None,
) -> MemoryState:
    """``replay`` of leaves already parsed (``(seq, event object)``), for a caller
    that reads the events for something else too (a restore makes their rows)."""
    with cyclic_gc_paused():
        state = state if state is not None else MemoryState()
        return _replay(events, state, start, progress, changed)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Replay (and a restore or migration around it) creates hundreds of thousands
    of acyclic row dicts; the cyclic collector would rescan all of them again and
    again (it halved replay speed at 100k events). Reference counting still frees
    everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _replay(
    events: Iterable[tuple[int, Any]],
    state: MemoryState,
    start: int,
    progress: Progress | None,
    changed: set[tuple[str, Key]] | None,
) -> MemoryState:
    expected = start
    tables = state.tables  # changes are applied inline: this loop bounds rebuild and restore
    for seq, obj in events:
        if seq != expected:
            raise LedgerTampered(f"event {expected} is missing", seq=expected)
        # Replay trusts the ledger's own leaves (``ledger verify`` checks them in
        # full) and skips building an Event per leaf; a leaf without the envelope
        # fields replay needs still fails with MalformedEvent.
        try:
            changes = apply_data(state, obj["type"], obj["schema"], obj["data"], seq)
        except (KeyError, TypeError) as exc:
            raise MalformedEvent(f"event {seq} lacks envelope field {exc}") from exc
        for table, key, row in changes:
            if row is None:
                tables[table].pop(key, None)
            else:
                tables[table][key] = row
        if changed is not None:
            changed.update((table, key) for table, key, _ in changes)
        expected += 1
        if progress is not None and expected % 5000 == 0:
            progress(expected - start)
    if progress is not None:
        progress(expected - start)
    return state


def stored_digest(tx: Transaction, account: str) -> str:
    """The state digest of the projection as stored in the database."""
    return state_digest((table, tx.projection.rows(account, table)) for table in TABLE_ORDER)


@dataclass(frozen=True)
class DigestReport:
    account: str
    size: int
    digest: str


def digest_of(store: Store, account: str) -> DigestReport:
    """The stored digest and the ledger size it corresponds to (one snapshot)."""
    with store.read() as tx:
        head = tx.ledger.head(account)
        if head is None:
            raise NotFound(f"account {account} has no ledger")
        return DigestReport(account, head.size, stored_digest(tx, account))


@dataclass(frozen=True)
class RebuildReport:
    account: str
    size: int
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def rebuild(
    store: Store,
    account: str,
    progress: Progress | None = None,
    accept_change: bool = False,
) -> RebuildReport:
    """Drop the projection of ``account`` and replay its whole ledger into it.

    Raises ``DigestMismatch`` and rolls back if the rebuilt digest differs from the
    one before, unless ``accept_change`` (repairing a damaged projection).
    """
    with store.write() as tx:
        head = tx.ledger.head(account)
        if head is None:
            raise NotFound(f"account {account} has no ledger")
        before = stored_digest(tx, account)
        state = replay(tx.ledger.leaves(account, 0, head.size), progress=progress)
        tx.projection.clear(account)
        for table in TABLE_ORDER:
            tx.projection.insert_all(account, table, state.rows(table))
        tx.state_map.rebuild(account)
        after = stored_digest(tx, account)
        if after != state.digest():
            raise DigestMismatch("stored projection does not read back as replayed")
        report = RebuildReport(account, head.size, before, after)
        if report.changed and not accept_change:
            raise DigestMismatch(
                f"replaying {head.size} events gives digest {after}, "
                f"but the projection had {before}; nothing was changed "
                "(use --accept-change to repair a damaged projection)"
            )
        return report
