"""Benchmarks 14c and 14d (``--only state``): proof verification as an SDK would do it,
and full verification of a store's state (``prove_state`` and ``check_state``).

A demo store (``bench.builder``) holds no state map: ``signed_at_head`` builds it
(``state_map.rebuild``) and re-signs the checkpoint at the head with its
``tenure-state`` line, as the writer signs every checkpoint since 0.3.0.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.builder import ACCOUNT, BuiltStore
from bench.common import Result, Timer, raw_connection
from bench.replay import best_rate
from tenure.domain.state import TABLE_ORDER, TABLES, Key, Row
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from tenure.ledger.statemap import (
    Bucket,
    Leaf,
    MapTop,
    bucket_hash,
    bucket_of,
    prove,
    root_from_path,
    row_leaf,
)
from tenure.service.state_check import ProvenState, prove_state

PROOF_GOAL = 20_000
VERIFY_GOAL_SECONDS = 20.0
VERIFY_GOAL_ROWS = 1_000_000


@dataclass
class SignedStore:
    """A built store whose head carries a state root signed in its checkpoint."""

    built: BuiltStore
    rows: int
    checkpoint: Checkpoint
    seconds: float


def signed_at_head(built: BuiltStore) -> SignedStore:
    """Build the state map of ``built`` and replace the checkpoint at its head by one
    that carries the map's root (the sidecar too)."""
    timer = Timer()
    runtime = built.runtime
    with runtime.store.write() as tx:
        state_root = tx.state_map.rebuild(ACCOUNT)
        head = tx.ledger.head(ACCOUNT)
        stored = tx.ledger.checkpoint(ACCOUNT)
        rows = sum(len(tx.projection.rows(ACCOUNT, table)) for table in TABLE_ORDER)
    if head is None or stored is None or stored.size != head.size:
        raise AssertionError("the builder signs a checkpoint at the head")
    origin, signer = runtime.ledger_signer(ACCOUNT)
    note = sign_checkpoint(Checkpoint(origin, head.size, stored.root, state_root), [signer])
    conn = raw_connection(runtime.settings.data_dir / "tenure.db")
    try:
        conn.execute(
            "UPDATE ledger_checkpoints SET note = ? WHERE account = ? AND size = ?",
            (note, ACCOUNT, head.size),
        )
    finally:
        conn.close()
    if runtime.sidecar is not None:
        runtime.sidecar.write(ACCOUNT, note)
    checkpoint = open_checkpoint(note, [signer.verifier])
    return SignedStore(built, rows, checkpoint, timer.elapsed())


# ---------------------------------------------------------------- full verification


def full_verification(signed: SignedStore) -> tuple[list[Result], ProvenState]:
    """``prove_state`` (fast path) and ``check_state`` (replay) on the whole store."""
    store = signed.built.runtime.store
    size, checkpoints = signed.checkpoint.size, [signed.checkpoint]
    results = []
    proven: ProvenState | None = None
    for label, replay in (("prove_state, signed root at the head", False), ("check_state", True)):
        timer = Timer()
        with store.read() as tx:
            found = prove_state(tx, ACCOUNT, size, checkpoints, replay=replay)
        seconds = timer.elapsed()
        if found.top.root() != signed.checkpoint.state:
            raise AssertionError(f"{label} proved a root that is not the signed one")
        proven = proven or found
        goal_rate = VERIFY_GOAL_ROWS / VERIFY_GOAL_SECONDS
        rate = signed.rows / seconds
        result = Result(
            f"state verify, {label} ({signed.rows:,} rows)",
            rate,
            "rows/s",
            goal_rate,
            f"goal rate ({VERIFY_GOAL_ROWS:,} rows in {VERIFY_GOAL_SECONDS:.0f} s)",
            "rows/s",
            "goal ratio >= 1.00",
            rate >= goal_rate,
        )
        result.notes.append(
            f"{seconds:.2f} s for {signed.rows:,} rows"
            + (f"; replays {size:,} events ({size / seconds:,.0f} ev/s)" if replay else "")
        )
        result.show()
        results.append(result)
    assert proven is not None
    return results, proven


# ---------------------------------------------------------------- proofs (SDK side)


@dataclass(frozen=True)
class RowProof:
    """What a proof-carrying check would return for one row."""

    table: str
    key: Key
    row: Row
    siblings: list[bytes]


def proof_rows(signed: SignedStore, count: int) -> list[tuple[str, Key, Row]]:
    """Up to ``count`` rows a check reads (licenses, then plan versions) from the store."""
    found: list[tuple[str, Key, Row]] = []
    with signed.built.runtime.store.read() as tx:
        for table in ("plan_versions", "licenses"):
            key_of = TABLES[table].key_of
            found += [(table, key_of(row), row) for row in tx.projection.rows(ACCOUNT, table)]
    random.Random(5).shuffle(found)
    return found[:count]


def map_with(
    rows: Sequence[tuple[str, Key, Row]], size: int
) -> tuple[MapTop, dict[int, list[Leaf]]]:
    """A map of ``size`` leaves: those of ``rows`` and random 32-byte keys and leaves."""
    rng = random.Random(17)
    by_bucket: dict[int, list[Leaf]] = {}
    for table, key, row in rows:
        k, leaf = row_leaf(table, key, row)
        by_bucket.setdefault(bucket_of(k), []).append((k, leaf))
    for _ in range(size - len(rows)):
        k = rng.randbytes(32)
        by_bucket.setdefault(bucket_of(k), []).append((k, rng.randbytes(32)))
    buckets: dict[int, Bucket] = {b: bucket_hash(leaves) for b, leaves in by_bucket.items()}
    return MapTop(buckets), by_bucket


def verify_proofs(proofs: Sequence[RowProof], root: bytes) -> int:
    """Verify each proof as docs/state.md says an SDK does; return the hashes computed."""
    hashes = 0
    for proof in proofs:
        k, leaf = row_leaf(proof.table, proof.key, proof.row)
        if root_from_path(k, leaf, proof.siblings) != root:
            raise AssertionError(f"the proof of {proof.table} {list(proof.key)} fails")
        hashes += 3 + len(proof.siblings)
    return hashes


def raw_hashes(count: int) -> None:
    sha256, block = hashlib.sha256, bytes(65)
    for _ in range(count):
        sha256(block).digest()


def proof_verification(signed: SignedStore, map_size: int, proofs_wanted: int) -> Result:
    """Benchmark 14c: proofs of rows of a map of ``map_size`` leaves, verified."""
    rows = proof_rows(signed, proofs_wanted)
    timer = Timer()
    top, by_bucket = map_with(rows, map_size)
    built = timer.elapsed()
    proofs = []
    for table, key, row in rows:
        k = row_leaf(table, key, row)[0]
        proofs.append(RowProof(table, key, row, prove(top, by_bucket[bucket_of(k)], k)))
    root = top.root()
    hashes = verify_proofs(proofs, root)
    rounds = 5
    rate = best_rate(len(proofs), lambda: verify_proofs(proofs, root), rounds)
    limit = best_rate(len(proofs), lambda: raw_hashes(hashes), rounds)
    result = Result(
        f"proof verification ({map_size:,}-leaf map)",
        rate,
        "proofs/s",
        limit,
        "raw SHA-256, same hash count",
        "proofs/s",
        f"goal >= {PROOF_GOAL:,} proofs/s absolute",
        rate >= PROOF_GOAL,
    )
    depth = sum(len(p.siblings) for p in proofs) / len(proofs)
    result.notes.append(
        f"{len(proofs):,} proofs of license and plan-version rows of the store, best of "
        f"{rounds}; {depth:.1f} siblings on average, {hashes / len(proofs):.1f} SHA-256 per "
        f"proof (row_leaf: 3, root_from_path: one per sibling); map built in {built:.1f} s"
    )
    result.notes.append(
        "not included: the checkpoint's Ed25519 signature (once per checkpoint, not per "
        "row) and the SDK's JSON/base64 decoding (tenure.sdk.verify_rows does both)"
    )
    result.show()
    return result
