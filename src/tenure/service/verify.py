"""``ledger verify``: recompute everything from the stored leaves and compare.

Checks, in order, and stops at the first failure with ``LedgerTampered`` naming
the first bad ``seq``:

1. events are gap-free from 0 to the head, each leaf parses as a valid event of
   its account whose ``seq`` is its position;
2. every stored Merkle node equals the hash recomputed from the leaves;
3. every stored checkpoint is signed by a key of the account whose name is its
   origin, and its size and root match the recomputed tree;
4. consecutive checkpoints are consistent (RFC 9162 proofs from stored nodes);
5. the sidecar's checkpoint (if any) verifies and is not ahead of the store;
6. the stored state — projection rows, state-map leaves, buckets and root — and
   every checkpoint's ``tenure-state`` line equal a replay of the ledger
   (``tenure.service.state_check``; ``StateTampered`` names the first differing row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import orjson
from typing_extensions import Unpack

from tenure.domain.events import event_from_json
from tenure.errors import InvalidProof, LedgerTampered, MalformedNote, NotFound, TenureError
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.merkle import (
    consistency_proof,
    leaf_hash,
    node_hash,
    tree_hash,
    verify_consistency,
)
from tenure.ledger.note import NoteVerifier
from tenure.ledger.statemap import MapTop
from tenure.service import sidecar as sidecars
from tenure.service.sidecar import Sidecar
from tenure.service.state_check import prove_state
from tenure.store.records import Head
from tenure.store.unit import LedgerRecords, Store, Transaction

Progress = Callable[[int], None]
Confirm = Callable[[NoteVerifier], bool]
"""Whether a verifier key stored in the database is one to trust."""


@dataclass(frozen=True)
class VerifyReport:
    account: str
    size: int
    root: bytes
    checkpoints: int
    state_roots: int = 0
    """Checkpoints whose ``tenure-state`` line the replayed state proved."""
    state: MapTop = field(default_factory=MapTop, compare=False)
    """The state map above its buckets, proven."""


class _Levels:
    """Recomputed tree levels held in memory (32 bytes per node); a HashReader."""

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]

    def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return [bytes(self.levels[lv][ix * 32 : ix * 32 + 32]) for lv, ix in ids]

    def build_parents(self) -> None:
        level = self.levels[0]
        while len(level) >= 64:
            parents = bytearray()
            for at in range(0, len(level) - 32, 64):
                parents += node_hash(bytes(level[at : at + 32]), bytes(level[at + 32 : at + 64]))
            self.levels.append(parents)
            level = parents


class VerifyOptions(TypedDict, total=False):
    """How ``verify_ledger`` verifies, beyond the store and the sidecar."""

    pinned: Sequence[str]
    progress: Progress | None
    replay_state: bool
    kept: str | None
    confirm: Confirm | None


def verify_ledger(
    store: Store, account: str, sidecar: Sidecar | None = None, **options: Unpack[VerifyOptions]
) -> VerifyReport:
    """Verify the ledger of ``account``; see the module doc. Raises ``LedgerTampered``.

    ``pinned`` verifier keys are trusted beside the stored ones; ``progress`` is called
    with the events read so far.

    ``confirm`` says which of the verifier keys stored in the database to trust (the
    service's key store confirms its own); without it every stored key is trusted,
    as a command run by the operator on their own database does.

    ``kept`` is a signed checkpoint kept outside the store (``--since-checkpoint``):
    the store must hold its events, with its root (and state root).

    Without ``replay_state``, the state is proven against the signed state root of the
    checkpoint at the head when there is one, which needs no replay
    (``state_check.prove_state``)."""
    with store.read() as tx:
        return verify_in(tx, account, sidecar, **options)


def verify_in(
    tx: Transaction,
    account: str,
    sidecar: Sidecar | None = None,
    pinned: Sequence[str] = (),
    progress: Progress | None = None,
    replay_state: bool = True,
    kept: str | None = None,
    confirm: Confirm | None = None,
) -> VerifyReport:
    """``verify_ledger`` in the caller's transaction."""
    ledger = tx.ledger
    head = ledger.head(account)
    if head is None:
        raise NotFound(f"account {account} has no ledger")
    tree = _check_leaves(ledger, account, head.size, progress)
    tree.build_parents()
    _check_nodes(ledger, account, tree)
    root = tree_hash(head.size, tree)
    verifiers = trusted_verifiers(ledger, account, pinned, confirm)
    checkpoints = _check_checkpoints(ledger, account, head, tree, verifiers)
    if sidecar is not None:
        _check_sidecar(sidecar, account, head, tree, verifiers)
    if kept is not None:
        outside = _check_kept(kept, head, tree, verifiers)
        others = [cp for cp in checkpoints if cp.size != outside.size]
        checkpoints = sorted([*others, outside], key=lambda cp: cp.size)
    proven = prove_state(tx, account, head.size, checkpoints, replay_state)
    return VerifyReport(account, head.size, root, len(checkpoints), proven.state_roots, proven.top)


def _check_leaves(
    ledger: LedgerRecords, account: str, size: int, progress: Progress | None
) -> _Levels:
    tree = _Levels()
    expected = 0
    for seq, leaf in ledger.leaves(account):
        if seq != expected:
            raise LedgerTampered(f"event {expected} is missing", seq=expected)
        if seq >= size:
            raise LedgerTampered(f"event {seq} lies beyond the ledger head ({size})", seq=seq)
        try:
            event = event_from_json(orjson.loads(leaf))
        except (TenureError, orjson.JSONDecodeError) as exc:
            raise LedgerTampered(f"event {seq} is not a valid event: {exc}", seq=seq) from exc
        if event.seq != seq or event.account != account:
            raise LedgerTampered(
                f"event {seq} claims to be event {event.seq} of account {event.account}", seq=seq
            )
        tree.levels[0] += leaf_hash(leaf)
        expected += 1
        if progress is not None and expected % 5000 == 0:
            progress(expected)
    if expected != size:
        raise LedgerTampered(f"ledger has {expected} events but its head says {size}", seq=expected)
    if progress is not None:
        progress(expected)
    return tree


def _check_nodes(ledger: LedgerRecords, account: str, tree: _Levels) -> None:
    for level, hashes in enumerate(tree.levels):
        count = len(hashes) // 32
        index = 0
        for idx, digest in ledger.level(account, level):
            if idx != index or idx >= count:
                bad = min(idx, index)
                raise LedgerTampered(
                    f"stored Merkle node (level {level}, index {bad}) is missing or extra",
                    seq=bad << level,
                )
            if digest != hashes[idx * 32 : idx * 32 + 32]:
                what = "leaf hash" if level == 0 else f"node (level {level}, index {idx})"
                raise LedgerTampered(
                    f"stored {what} of event {idx << level} does not match its leaf",
                    seq=idx << level,
                )
            index += 1
        if index != count:
            raise LedgerTampered(
                f"stored Merkle node (level {level}, index {index}) is missing", seq=index << level
            )
    extra = ledger.lowest_level_from(account, len(tree.levels))
    if extra is not None:
        raise LedgerTampered(f"stored Merkle nodes at level {extra} cannot exist", seq=None)


def trusted_verifiers(
    ledger: LedgerRecords, account: str, pinned: Sequence[str] = (), confirm: Confirm | None = None
) -> list[NoteVerifier]:
    """``pinned`` keys, and the keys stored for ``account`` that ``confirm`` confirms
    (all of them without it)."""
    try:
        stored = [NoteVerifier.from_key_string(k) for k in ledger.verifier_keys(account)]
        chosen = [NoteVerifier.from_key_string(k) for k in pinned]
    except MalformedNote as exc:
        raise LedgerTampered(f"a stored verifier key is malformed: {exc}") from exc
    return chosen + [v for v in stored if confirm is None or confirm(v)]


def _check_checkpoints(
    ledger: LedgerRecords,
    account: str,
    head: Head,
    tree: _Levels,
    verifiers: list[NoteVerifier],
) -> list[Checkpoint]:
    checked: list[Checkpoint] = []
    reader = ledger.nodes(account)
    for stored in ledger.checkpoints(account):
        if stored.size > head.size:
            raise LedgerTampered(
                f"checkpoint {stored.size} was signed but the ledger holds only {head.size} events",
                seq=head.size,
            )
        cp = _open(stored.note, verifiers, f"stored checkpoint {stored.size}")
        if (cp.size, cp.root, cp.origin) != (stored.size, stored.root, head.origin):
            raise LedgerTampered(f"stored checkpoint {stored.size} disagrees with its columns")
        if cp.root != tree_hash(cp.size, tree):
            raise LedgerTampered(
                f"events before {cp.size} do not hash to signed checkpoint {cp.size}",
                # The bad events lie after the last checkpoint that still matched.
                seq=checked[-1].size if checked else 0,
            )
        if checked:
            previous = checked[-1]
            try:
                proof = consistency_proof(previous.size, cp.size, reader)
                verify_consistency(previous.size, cp.size, previous.root, cp.root, proof)
            except InvalidProof as exc:
                raise LedgerTampered(
                    f"checkpoints {previous.size} and {cp.size} are inconsistent: {exc}"
                ) from exc
        checked.append(cp)
    return checked


def _open(note: str, verifiers: list[NoteVerifier], what: str) -> Checkpoint:
    try:
        return open_checkpoint(note, verifiers)
    except TenureError as exc:
        raise LedgerTampered(f"{what} does not verify: {exc}", seq=None) from exc


def _check_kept(note: str, head: Head, tree: _Levels, verifiers: list[NoteVerifier]) -> Checkpoint:
    """The checkpoint kept outside the store, proven to be of this store's history."""
    cp = _open(note, verifiers, "the kept checkpoint")
    if cp.origin != head.origin:
        raise LedgerTampered(f"the kept checkpoint is of {cp.origin}, not of {head.origin}")
    if cp.size > head.size:
        raise LedgerTampered(
            f"the kept checkpoint was signed over {cp.size} events, the store holds "
            f"{head.size}: events were cut from the ledger",
            seq=head.size,
        )
    if tree_hash(cp.size, tree) != cp.root:
        raise LedgerTampered(
            f"the store's first {cp.size} events are not those of the kept checkpoint: "
            "the history was rewritten"
        )
    return cp


def _check_sidecar(
    sidecar: Sidecar, account: str, head: Head, tree: _Levels, verifiers: list[NoteVerifier]
) -> None:
    note = sidecar.read_note(account)
    if note is None:
        return
    cp = _open(note, verifiers, f"sidecar {sidecar.path(account)}")
    size = head.size
    verdict = sidecars.compare(cp, head.origin, size, lambda n: tree_hash(n, tree))
    if verdict == "ahead":
        raise LedgerTampered(
            f"the sidecar's signed checkpoint has {cp.size} events but the store only {size}: "
            f"events from {size} on are missing",
            seq=size,
        )
    if verdict == "disagrees":
        raise LedgerTampered(f"events before {cp.size} do not hash to the sidecar's checkpoint")
