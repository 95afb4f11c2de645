"""A fast bulk builder of valid Tenure stores (for the verify and replay benchmarks).

The demo workload (``tenure.service.demo.demo_submissions``, what ``seed_demo``
submits) goes through an in-memory stand-in for the ledger writer that does what
``Appender.run`` (``tenure.service.ledger.session``) does: ``decide`` the command,
build the envelope, validate it with ``event_from_json``, ``apply`` it, encode the
canonical leaf and append its hash to a Merkle ``Frontier``. It keeps the projection
in a ``MemoryState`` and writes with raw ``executemany`` in large transactions:
events, Merkle nodes, idempotency records, the head, a checkpoint signed every
``every_events`` events with the store's ``FileKeyStore`` key (plus the sidecar),
and the projection rows via ``tenure.store.projection_rows.bulk_insert_rows``.

The result is the store the real writer makes from the same submissions (each its
own batch): same root, byte for byte; ``ledger verify`` and ``rebuild`` accept it.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Timer, raw_connection
from tenure.app.runtime import Runtime
from tenure.canonical import canonical_json
from tenure.config import Settings
from tenure.domain.commands import Context
from tenure.domain.state import TABLE_ORDER, Change, Key, MemoryState, Row
from tenure.domain.timefmt import format_time
from tenure.errors import IdempotencyKeyReused
from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint
from tenure.ledger.merkle import Frontier
from tenure.ledger.note import NoteSigner
from tenure.service.demo import demo_license_keys, demo_submissions, seed_demo
from tenure.service.ledger import Outcome, Submission, append_drafts
from tenure.service.verify import verify_ledger
from tenure.store import projection_rows, records
from tenure.store.engine import write_transaction

ACCOUNT = "default"
SEED = 7


class _Overlay:
    """One command's staged changes over the memory state (like ``CommandView``)."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state
        self.local: dict[tuple[str, Key], Row | None] = {}
        self.changes: list[Change] = []

    def get(self, table: str, key: Key) -> Row | None:
        slot = (table, key)
        if slot in self.local:
            return self.local[slot]
        return self.state.get(table, key)

    def stage(self, changes: list[Change]) -> None:
        for change in changes:
            self.local[(change[0], change[1])] = change[2]
            self.changes.append(change)


class MemoryLedger:
    """The ledger writer's append path over a ``MemoryState``; buffers rows for bulk insert."""

    def __init__(
        self,
        db_path: Path,
        origin: str,
        signer: NoteSigner,
        license_key_hash: Callable[[str, str], str],
        random_bytes: Callable[[int], bytes],
        every_events: int = 1000,
        flush_rows: int = 50_000,
    ) -> None:
        self.db_path = db_path
        self.origin = origin
        self.signer = signer
        self.license_key_hash = license_key_hash
        self.random = random_bytes
        self.every_events = every_events
        self.flush_rows = flush_rows
        self.state = MemoryState()
        self.frontier = Frontier()
        self.last_time: datetime | None = None
        self.idempotency: dict[str, records.IdempotencyRecord] = {}
        self.events: list[tuple[Any, ...]] = []
        self.nodes: list[tuple[Any, ...]] = []
        self.idem_rows: list[tuple[Any, ...]] = []
        self.checkpoints: list[tuple[Any, ...]] = []
        self.last_note: str | None = None
        self.signed_size = 0
        self.last_stamp = ""
        self.conn = raw_connection(db_path)

    def run(self, sub: Submission) -> Outcome:
        """Do what ``Appender.run`` does for a batch of one submission."""
        key = sub.idempotency_key
        request_hash = sub.request_hash() if key else ""
        if key:
            record = self.idempotency.get(key)
            if record is not None:
                if record.request_hash != request_hash:
                    raise IdempotencyKeyReused(f"idempotency key {key!r} reused")
                return Outcome(record.result, replayed=True)
        assert sub.at is not None, "the builder needs deterministic submissions"
        now = sub.at
        if self.last_time is not None and now < self.last_time:
            now = self.last_time
        ctx = Context(
            sub.account,
            now,
            lambda: self.random(20),
            lambda serial: self.license_key_hash(sub.account, serial),
        )
        view = _Overlay(self.state)
        decision = sub.command.decide(view, ctx)
        stamp = format_time(now)
        events, rows, nodes = append_drafts(
            view, self.frontier, sub, decision.drafts, stamp, self.random
        )
        self.nodes.extend((sub.account, level, index, digest) for level, index, digest in nodes)
        self.events.extend(
            (sub.account, r.seq, r.id, r.type, r.subject, r.time, r.idempotency_key, r.leaf)
            for r in rows
        )
        self.state.apply_changes(view.changes)
        if events:
            self.last_time = now
        if key:
            first = events[0].seq if events else None
            record = records.IdempotencyRecord(request_hash, first, len(events), decision.result)
            self.idempotency[key] = record
            self.idem_rows.append(
                (
                    sub.account,
                    key,
                    request_hash,
                    first,
                    len(events),
                    canonical_json(decision.result).decode(),
                    stamp,
                )
            )
        self.last_stamp = stamp
        if events and self.frontier.size - self.signed_size >= self.every_events:
            self._sign(stamp)
        if len(self.events) >= self.flush_rows:
            self.flush()
        return Outcome(decision.result, tuple(events))

    def _sign(self, stamp: str) -> None:
        checkpoint = Checkpoint(self.origin, self.frontier.size, self.frontier.root())
        note = sign_checkpoint(checkpoint, [self.signer])
        self.checkpoints.append((ACCOUNT, checkpoint.size, checkpoint.root, note, stamp))
        self.last_note = note
        self.signed_size = checkpoint.size

    def flush(self) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO ledger_events (account, seq, id, type, subject, time, idempotency_key, "
            "leaf) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self.events,
        )
        conn.executemany(
            "INSERT INTO ledger_nodes (account, level, idx, hash) VALUES (?, ?, ?, ?)",
            self.nodes,
        )
        conn.executemany(
            "INSERT INTO idempotency_keys (account, key, request_hash, first_seq, event_count, "
            "result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            self.idem_rows,
        )
        conn.executemany(
            "INSERT INTO ledger_checkpoints (account, size, root, note, signed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            self.checkpoints,
        )
        conn.execute("COMMIT")
        self.events.clear()
        self.nodes.clear()
        self.idem_rows.clear()
        self.checkpoints.clear()

    def finish(self) -> None:
        """Sign the tail (as the writer does on close), flush, and write the head."""
        if self.frontier.size > self.signed_size:
            self._sign(self.last_stamp)
        self.flush()
        verifier = self.signer.verifier
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "INSERT INTO ledger_heads (account, origin, size) VALUES (?, ?, ?)",
            (ACCOUNT, self.origin, self.frontier.size),
        )
        self.conn.execute(
            "INSERT INTO ledger_keys (account, key_id, verifier, created_at) VALUES (?, ?, ?, ?)",
            (ACCOUNT, verifier.key_id.hex(), verifier.key_string(), self.last_stamp),
        )
        self.conn.execute("COMMIT")
        self.conn.close()


@dataclass
class BuiltStore:
    runtime: Runtime
    events: int
    seconds: float
    digest: str

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def build_store(data_dir: Path, events: int) -> BuiltStore:
    """Create a valid store of ``events`` demo events (seed 7) under ``data_dir``."""
    timer = Timer()
    runtime = Runtime.open(Settings(data_dir=data_dir))
    db_path = data_dir / "tenure.db"
    origin = f"{runtime.settings.ledger_origin_prefix.rstrip('/')}/{ACCOUNT}"
    signer = runtime.keystore.ledger_signer(origin)
    rng = random.Random(SEED)
    memory = MemoryLedger(
        db_path,
        origin,
        signer,
        demo_license_keys(SEED).key_hash,
        rng.randbytes,
        every_events=runtime.settings.checkpoint_every_events,
    )
    for submission in demo_submissions(events, SEED, ACCOUNT):
        memory.run(submission)
    memory.finish()
    with write_transaction(runtime.store.engine) as conn:
        for table in TABLE_ORDER:
            projection_rows.bulk_insert_rows(conn, ACCOUNT, table, memory.state.rows(table))
    if memory.last_note is not None and runtime.sidecar is not None:
        runtime.sidecar.write(ACCOUNT, memory.last_note)
    seconds = timer.elapsed()
    return BuiltStore(runtime, memory.frontier.size, seconds, memory.state.digest())


def read_leaves(db_path: Path, account: str = ACCOUNT, start: int = 0) -> list[bytes]:
    """All leaves of ``account`` from ``start``, in seq order, with plain sqlite3."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT leaf FROM ledger_events WHERE account = ? AND seq >= ? ORDER BY seq",
            (account, start),
        ).fetchall()
    finally:
        conn.close()
    return [bytes(row[0]) for row in rows]


def leaves_digest(leaves: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for leaf in leaves:
        hasher.update(leaf)
    return hasher.hexdigest()


def check_against_seed_demo(root: Path, events: int = 2000) -> bytes:
    """Build ``events`` with the builder and with ``seed_demo`` through the real
    ``Ledger``; raise unless both ledgers verify to the same root. Returns the root."""
    built = build_store(root / "built", events)
    try:
        ours = verify_ledger(built.runtime.store, ACCOUNT, built.runtime.sidecar).root
    finally:
        built.runtime.close()
    # The builder appends without sealing personal data (random keys and nonces would
    # make no two roots equal): compare with the Ledger's plaintext mode.
    runtime = Runtime.open(Settings(data_dir=root / "ledger", encrypt_personal_data=False))
    try:
        rng = random.Random(SEED)
        hashes = demo_license_keys(SEED).key_hash
        with runtime.ledger(random_bytes=rng.randbytes, license_key_hash=hashes) as ledger:
            seed_demo(ledger, events, SEED, ACCOUNT)
        theirs = verify_ledger(runtime.store, ACCOUNT, runtime.sidecar).root
    finally:
        runtime.close()
    if ours != theirs:
        raise AssertionError(
            f"bulk builder root {ours.hex()} differs from seed_demo's {theirs.hex()}: "
            "the builder no longer reproduces the Ledger's append path"
        )
    return ours
