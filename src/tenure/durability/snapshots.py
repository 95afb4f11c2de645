"""Snapshots: one account's projection at ledger size N, proven and signed.

A snapshot is gzip-compressed canonical JSON::

    {"format": "tenure-snapshot v1", "account", "size": N, "digest", "root",
     "checkpoint": <C2SP checkpoint of size N, signed by the ledger key>,
     "tables": {projection table: [rows]},
     "service": {"idempotency_keys", "api_keys", "signing_keys", "accounts": [rows]}}

It is stored content-addressed at
``<account>/snapshots/<N, 20 digits>-<SHA-256 of the file>.snap`` and signed by a
note beside it (``….snap.sig``: ``tenure-snapshot v1 / account / N / sha256``,
signed by the ledger key). The note is written last, so a snapshot whose upload
was cut short has no note and is never used. ``load`` refuses a snapshot unless
the note verifies, the file hashes to what the note says, the recorded digest is
the digest of the rows, and the checkpoint verifies and names N and the root.

The service tables (idempotency records, API key hashes, public signing keys, the
account row) are not derived from the ledger; the snapshot carries them so that a
restored service answers retries and keys as before. Private keys never leave the
key store.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tenure.canonical import canonical_json
from tenure.domain.state import TABLE_ORDER, TABLES, MemoryState, Row
from tenure.durability import epochs
from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from tenure.ledger.merkle import root_of
from tenure.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from tenure.service.state_check import memory_root, proven_root
from tenure.store.unit import Store

FORMAT = "tenure-snapshot v1"
_NAME = re.compile(r"(?:.*/)?snapshots/(\d{20})-([0-9a-f]{64})\.snap")
SERVICE_TABLES = ("idempotency_keys", "api_keys", "signing_keys", "accounts")


class BadSnapshot(TenureError):
    """A snapshot that is unsigned, altered, or does not prove what it claims."""

    code = "bad_snapshot"


@dataclass(frozen=True)
class Snapshot:
    account: str
    size: int
    digest: str
    root: bytes
    checkpoint: str
    tables: dict[str, list[Row]]
    service: dict[str, list[dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "account": self.account,
            "size": self.size,
            "digest": self.digest,
            "root": base64.b64encode(self.root).decode(),
            "checkpoint": self.checkpoint,
            "tables": self.tables,
            "service": self.service,
        }

    @functools.cached_property
    def state(self) -> MemoryState:
        """The projection as a ``MemoryState``, built once: ``load`` digests it to
        prove the snapshot, and a restore then replays the tail onto it."""
        return memory_state(self.tables)


def memory_state(tables: dict[str, list[Row]]) -> MemoryState:
    memory = MemoryState()
    for name, rows in tables.items():
        memory.tables[name] = {TABLES[name].key_of(row): row for row in rows}
    return memory


def digest_of_tables(tables: dict[str, list[Row]]) -> str:
    return memory_state(tables).digest()


def take(store: Store, account: str, origin: str, signer: NoteSigner) -> Snapshot:
    """Read the account's projection, service rows and tree at its current size, in
    one read transaction, prove the rows (``state_check.proven_root``: the signed state
    root of that size, else a replay; ``StateTampered`` when they do not prove) and
    sign a checkpoint of that size with their state root."""
    with store.read() as tx:
        head = tx.ledger.head(account)
        size = head.size if head else 0
        tables = {name: tx.projection.rows(account, name) for name in TABLE_ORDER}
        state = proven_root(tx, account, size, memory_state(tables), [signer.verifier])
        root = root_of(size, tx.ledger.nodes(account))
        service = tx.service_rows.read(account, SERVICE_TABLES)
    note = sign_checkpoint(Checkpoint(origin, size, root, state), [signer])
    return Snapshot(account, size, digest_of_tables(tables), root, note, tables, service)


def publish(snapshot: Snapshot, signer: NoteSigner, sites: Iterable[Site]) -> str:
    """Write the snapshot, then its signature note, to every site; return its path."""
    body = gzip.compress(canonical_json(snapshot.to_json()), mtime=0)
    digest = hashlib.sha256(body).hexdigest()
    where = epochs.namespace(snapshot.account, epochs.epoch_of(signer.name))
    path = f"{where}/snapshots/{snapshot.size:020d}-{digest}.snap"
    note = sign_note(f"{FORMAT}\n{snapshot.account}\n{snapshot.size}\n{digest}\n", [signer])
    for site in sites:
        site.put(path, body)
        site.put(path + ".sig", note.encode())
    return path


def listed(site: Site, where: str) -> list[tuple[int, str]]:
    """``(size, path)`` of every signed snapshot at the site under ``where`` (an
    account's namespace, see ``epochs``), newest first."""
    paths = set(site.list(f"{where}/snapshots/"))
    found = []
    for path in paths:
        match = _NAME.fullmatch(path)
        if match and path + ".sig" in paths:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def load(site: Site, path: str, account: str, verifiers: list[NoteVerifier]) -> Snapshot:
    """Fetch and prove one snapshot; ``BadSnapshot`` naming what failed."""
    match = _NAME.fullmatch(path)
    body, note = site.get(path), site.get(path + ".sig")
    if match is None or body is None or note is None:
        raise BadSnapshot(f"snapshot {path} is incomplete")
    try:
        text, _ = open_note(note.decode(), verifiers)
    except (TenureError, UnicodeDecodeError) as exc:
        raise BadSnapshot(f"snapshot {path}: its signature does not verify ({exc})") from exc
    size, digest = int(match.group(1)), match.group(2)
    if text != f"{FORMAT}\n{account}\n{size}\n{digest}\n":
        raise BadSnapshot(f"snapshot {path}: its signed note names another snapshot")
    if hashlib.sha256(body).hexdigest() != digest:
        raise BadSnapshot(f"snapshot {path} was altered (its hash is not the signed one)")
    try:
        data = orjson.loads(gzip.decompress(body))
        snapshot = Snapshot(
            data["account"],
            data["size"],
            data["digest"],
            base64.b64decode(data["root"]),
            data["checkpoint"],
            data["tables"],
            data["service"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadSnapshot(f"snapshot {path} cannot be read: {exc}") from exc
    _prove(snapshot, path, account, size, verifiers)
    return snapshot


def _prove(
    snapshot: Snapshot, path: str, account: str, size: int, verifiers: list[NoteVerifier]
) -> None:
    if (snapshot.account, snapshot.size) != (account, size):
        raise BadSnapshot(f"snapshot {path} holds another account or size")
    if not set(snapshot.tables) <= set(TABLE_ORDER):
        raise BadSnapshot(f"snapshot {path} holds unknown projection tables")
    for name in TABLE_ORDER:  # a table added since the snapshot was taken: empty then
        snapshot.tables.setdefault(name, [])
    if snapshot.state.digest() != snapshot.digest:
        raise BadSnapshot(f"snapshot {path}: its rows do not have its recorded digest")
    try:
        checkpoint = open_checkpoint(snapshot.checkpoint, verifiers)
    except TenureError as exc:
        raise BadSnapshot(f"snapshot {path}: its checkpoint does not verify ({exc})") from exc
    if (checkpoint.size, checkpoint.root) != (size, snapshot.root):
        raise BadSnapshot(f"snapshot {path}: its checkpoint names another tree")
    # Snapshots taken since 0.3.0 sign their rows' state root: prove the rows by it.
    if checkpoint.state is not None and memory_root(snapshot.state) != checkpoint.state:
        raise BadSnapshot(f"snapshot {path}: its rows do not hash to its signed state root")
