"""Proving an account's stored state (docs/state.md): its projection rows, state-map
leaves, buckets and head root, against the signed state roots.

``check_state`` replays the ledger into a scratch projection and, stopping at the
first difference with ``StateTampered``:

1. at every verified checkpoint that carries a ``tenure-state`` line, the state map
   of the replayed projection after exactly its ``size`` events has that root;
2. every stored projection row equals the replayed one (the first differing row is
   named by table and key; a missing or extra row too);
3. every stored state-map leaf, bucket and the root at the head equal the ones
   recomputed from the replayed rows.

``prove_state`` skips the replay when the newest checkpoint is of the head's size and
states a root: the stored rows' map must then equal the stored one and hash to it.
``proven_root`` proves the rows a snapshot is taken of; ``build_state_map`` builds the
map of an account written before 0.3.0.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tenure.domain.state import TABLE_ORDER, TABLES, Key, MemoryState
from tenure.errors import StateTampered, TenureError
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.note import NoteVerifier
from tenure.ledger.statemap import (
    ZERO,
    MapTop,
    bucket_hash,
    bucket_of,
    map_leaf,
    map_root,
    row_leaf,
    state_key,
    value_hash,
)
from tenure.service.replay import replay
from tenure.store.unit import Transaction

_log = logging.getLogger("tenure.state")


class _RowMap:
    """The state map of projection rows held in memory (replayed, or read), kept up to
    date bucket by bucket."""

    def __init__(self) -> None:
        self.top = MapTop()
        self.buckets: dict[int, dict[bytes, bytes]] = {}
        self.keys: dict[bytes, tuple[str, Key]] = {}

    def take(self, state: MemoryState, changed: set[tuple[str, Key]]) -> None:
        touched = set()
        for table, key in changed:
            row = state.tables[table].get(key)
            k = state_key(table, key)
            bucket = self.buckets.setdefault(bucket_of(k), {})
            if row is None:
                bucket.pop(k, None)
                self.keys.pop(k, None)
            else:
                bucket[k] = map_leaf(k, value_hash(row))
                self.keys[k] = (table, key)
            touched.add(bucket_of(k))
        self.top.update({b: bucket_hash(list(self.buckets[b].items())) for b in touched})
        changed.clear()


def build_state_map(tx: Transaction, account: str) -> bytes:
    """The root stored at the head of ``account``; for an account written before 0.3.0
    (none stored), its map is built from its projection rows first."""
    root = tx.state_map.root(account)
    if root is None:
        _log.info("building the state map of account %s from its projection rows", account)
        for table in TABLE_ORDER:
            tx.state_map.index(account, table, tx.projection.rows(account, table))
        root = tx.state_map.rebuild(account)
    return root


def memory_root(state: MemoryState) -> bytes:
    """The state map's root of a projection held in memory."""
    return map_root(
        row_leaf(table, key, row)
        for table, rows in state.tables.items()
        for key, row in rows.items()
    )


def proven_root(
    tx: Transaction, account: str, size: int, state: MemoryState, verifiers: list[NoteVerifier]
) -> bytes:
    """The state root of ``state``, the stored projection of ``account`` at ledger size
    ``size``, once proven: equal to the ``tenure-state`` line of the stored checkpoint of
    that size when one verifies with ``verifiers``, else to a replay of the ledger
    (``check_state``). Raises ``StateTampered``."""
    root = memory_root(state)
    stored = tx.ledger.checkpoint(account, size)
    signed = None
    if stored is not None:
        try:
            signed = open_checkpoint(stored.note, verifiers)
        except TenureError as exc:
            raise StateTampered(f"stored checkpoint {size} does not verify: {exc}") from exc
    if signed is not None and signed.state is not None:
        if signed.state != root:
            _compare_map(tx, account, _map_of(state))  # names the row whose leaf differs
            raise StateTampered(f"the rows do not hash to the state root signed at size {size}")
        return root
    check_state(tx, account, size, [])
    return root


@dataclass(frozen=True)
class ProvenState:
    """What proving the state of an account found: how many signed state roots it
    checked, and the state map above its buckets, proven."""

    state_roots: int
    top: MapTop


def check_state(
    tx: Transaction, account: str, size: int, checkpoints: Sequence[Checkpoint]
) -> ProvenState:
    """Prove ``account``'s stored state (see the module doc). ``checkpoints`` are
    verified ones, in size order."""
    state, replayed, changed = MemoryState(), _RowMap(), set[tuple[str, Key]]()
    done, proven = 0, 0
    for checkpoint in [*checkpoints, None]:
        stop = size if checkpoint is None else checkpoint.size
        if checkpoint is not None and checkpoint.state is None:
            continue
        replay(tx.ledger.leaves(account, done, stop), state, start=done, changed=changed)
        done = stop
        replayed.take(state, changed)
        if checkpoint is not None:
            if replayed.top.root() != checkpoint.state:
                raise StateTampered(
                    f"signed checkpoint {checkpoint.size} states a root that is not the state "
                    f"of the ledger's first {checkpoint.size} events"
                )
            proven += 1
    _compare_rows(tx, account, state)
    _compare_map(tx, account, replayed)
    return ProvenState(proven, replayed.top)


def prove_state(
    tx: Transaction,
    account: str,
    size: int,
    checkpoints: Sequence[Checkpoint],
    replay: bool = True,
) -> ProvenState:
    """``check_state``, or without ``replay``, when the newest checkpoint is of the
    head's size and states a root: every stored row's leaf, the stored leaves, buckets
    and head root against that signed root (no replay). Returns the signed state roots
    checked, and the proven map."""
    newest = checkpoints[-1] if checkpoints else None
    if replay or newest is None or newest.size != size or newest.state is None:
        return check_state(tx, account, size, checkpoints)
    stored_root = tx.state_map.root(account)
    if stored_root is None:
        return check_state(tx, account, size, checkpoints)
    replayed = _stored_map(tx, account)
    _compare_map(tx, account, replayed)
    if replayed.top.root() != newest.state:
        raise StateTampered(
            f"the stored rows do not hash to the state root signed in checkpoint {newest.size}"
        )
    return ProvenState(1, replayed.top)


def _stored_map(tx: Transaction, account: str) -> _RowMap:
    """The state map of the stored rows of ``account``, each row hashed as it is read
    (no key order, no scratch projection)."""
    built = _RowMap()
    buckets, keys = built.buckets, built.keys
    for table in TABLE_ORDER:
        columns = TABLES[table].key
        for row in tx.projection.rows(account, table, ordered=False):
            key = tuple(row[column] for column in columns)
            k = state_key(table, key)
            buckets.setdefault(bucket_of(k), {})[k] = map_leaf(k, value_hash(row))
            keys[k] = (table, key)
    built.top.update({b: bucket_hash(list(leaves.items())) for b, leaves in buckets.items()})
    return built


def _map_of(state: MemoryState) -> _RowMap:
    """The state map of the rows of ``state``."""
    built = _RowMap()
    built.take(state, {(table, key) for table, rows in state.tables.items() for key in rows})
    return built


def _compare_rows(tx: Transaction, account: str, state: MemoryState) -> None:
    for table in TABLE_ORDER:
        key_of = TABLES[table].key_of
        stored = {key_of(row): row for row in tx.projection.rows(account, table)}
        expected = state.tables[table]
        for key in sorted(stored.keys() | expected.keys()):
            if stored.get(key) != expected.get(key):
                if key not in stored:
                    how = "is missing (a replay of the ledger has it)"
                elif key not in expected:
                    how = "is not in a replay of the ledger"
                else:
                    how = "differs from a replay of the ledger"
                raise StateTampered(
                    f"projection row {table} {list(key)} {how}", table=table, key=list(key)
                )


def _compare_map(tx: Transaction, account: str, replayed: _RowMap) -> None:
    root = tx.state_map.root(account)
    if root is None:  # written before 0.3.0: the writer builds the map when it opens it
        return
    if not _leaves_match(tx, account, replayed):
        _name_leaf(tx, account, replayed)
    buckets = tx.state_map.buckets(account)
    for bucket in sorted(buckets.keys() | replayed.top.levels[-1].keys()):
        if buckets.get(bucket, (0, ZERO)) != replayed.top.bucket(bucket):
            raise StateTampered(f"state-map bucket {bucket} does not hash its leaves")
    if root != replayed.top.root():
        raise StateTampered("the state root stored at the head is not the replayed state's")


def _leaves_match(tx: Transaction, account: str, replayed: _RowMap) -> bool:
    """Whether the stored leaves are exactly the replayed ones (one pass, no sort)."""
    buckets, count = replayed.buckets, 0
    for k, leaf in tx.state_map.leaves(account):
        held = buckets.get(bucket_of(k))
        if held is None or held.get(k) != leaf:
            return False
        count += 1
    return count == sum(len(held) for held in buckets.values())


def _name_leaf(tx: Transaction, account: str, replayed: _RowMap) -> None:
    """Raise ``StateTampered`` naming the first (by k) stored leaf that differs from
    the replayed one."""
    expected = {k: leaf for bucket in replayed.buckets.values() for k, leaf in bucket.items()}
    stored = dict(tx.state_map.leaves(account))
    for k in sorted(stored.keys() | expected.keys()):
        if stored.get(k) != expected.get(k):
            table, key = replayed.keys.get(k, (None, None))
            named = f"of row {table} {list(key)}" if key is not None else "that matches no row"
            raise StateTampered(
                f"the state-map leaf {named} (k {base64.b64encode(k).decode()}) is not the "
                "hash of the row",
                table=table,
                key=None if key is None else list(key),
            )
