"""Read-side of the ledger: checkpoints, verifier keys, events and proofs.

Each function runs in one read transaction, so a proof and the head it is checked
against come from the same snapshot.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tenure.errors import InvalidInput, NotFound
from tenure.ledger.merkle import consistency_proof, inclusion_proof
from tenure.store import sql
from tenure.store.engine import read_transaction

MAX_EVENTS_PAGE = 1000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _head(conn: sa.Connection, account: str) -> sql.Head:
    head = sql.read_head(conn, account)
    if head is None:
        raise NotFound(f"account {account} has no ledger yet")
    return head


def checkpoint_note(engine: sa.Engine, account: str, size: int | None = None) -> str:
    """The latest signed checkpoint, or the stored one of exactly ``size``."""
    with read_transaction(engine) as conn:
        stored = sql.read_checkpoint(conn, account, size)
    if stored is None:
        what = "no checkpoint has been signed" if size is None else f"no checkpoint of size {size}"
        raise NotFound(f"{what} for account {account}")
    return stored.note


def latest_checkpoint(engine: sa.Engine, account: str) -> sql.StoredCheckpoint | None:
    with read_transaction(engine) as conn:
        return sql.read_checkpoint(conn, account)


def verifier_keys(engine: sa.Engine, account: str) -> list[str]:
    with read_transaction(engine) as conn:
        keys = sql.verifier_keys(conn, account)
    if not keys:
        raise NotFound(f"account {account} has no ledger key yet")
    return keys


@dataclass(frozen=True)
class EventsPage:
    events: list[tuple[int, bytes]]
    size: int


def events_page(engine: sa.Engine, account: str, start: int, limit: int) -> EventsPage:
    """Up to ``limit`` (≤ 1000) events from ``start``, with the ledger size."""
    if start < 0:
        raise InvalidInput("start must not be negative", field="start")
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PAGE}", field="limit")
    with read_transaction(engine) as conn:
        head = _head(conn, account)
        stop = min(head.size, start + limit)
        return EventsPage(list(sql.iter_leaves(conn, account, start, stop)), head.size)


def _check_size(size: int, head: sql.Head, field: str) -> None:
    if not 0 <= size <= head.size:
        raise InvalidInput(
            f"{field} must be between 0 and the ledger size {head.size}", field=field
        )


def inclusion(engine: sa.Engine, account: str, seq: int, size: int) -> dict[str, Any]:
    """The RFC 9162 inclusion proof of event ``seq`` in the tree of ``size`` events."""
    with read_transaction(engine) as conn:
        head = _head(conn, account)
        _check_size(size, head, "size")
        if not 0 <= seq < size:
            raise InvalidInput(f"seq must be below size {size}", field="seq")
        reader = sql.NodeReader(conn, account)
        leaf = reader.read_hashes([(0, seq)])[0]
        proof = inclusion_proof(seq, size, reader)
    return {
        "index": seq,
        "size": size,
        "leaf_hash_b64": _b64(leaf),
        "proof": [_b64(h) for h in proof],
    }


def consistency(engine: sa.Engine, account: str, old: int, new: int) -> dict[str, Any]:
    """The RFC 9162 consistency proof from tree size ``old`` to ``new``."""
    with read_transaction(engine) as conn:
        head = _head(conn, account)
        _check_size(old, head, "from")
        _check_size(new, head, "to")
        if old > new:
            raise InvalidInput("from must not exceed to", field="from")
        proof = consistency_proof(old, new, sql.NodeReader(conn, account))
    return {"from": old, "to": new, "proof": [_b64(h) for h in proof]}
