"""Read-side of the ledger: checkpoints, verifier keys, events and proofs.

Each function runs in one read transaction, so a proof and the head it is checked
against come from the same snapshot.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated

import orjson
from pydantic import Field
from typing_extensions import TypedDict

from tenure.domain.answers import Base64, NonNegative, closed
from tenure.domain.events import EventJson
from tenure.errors import InvalidInput, NotFound
from tenure.ledger.merkle import consistency_proof, inclusion_proof
from tenure.store.records import Head, StoredCheckpoint
from tenure.store.unit import LedgerRecords, Store

MAX_EVENTS_PAGE = 1000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _head(ledger: LedgerRecords, account: str) -> Head:
    head = ledger.head(account)
    if head is None:
        raise NotFound(f"account {account} has no ledger yet")
    return head


def checkpoint_note(store: Store, account: str, size: int | None = None) -> str:
    """The latest signed checkpoint, or the stored one of exactly ``size``."""
    with store.read() as tx:
        stored = tx.ledger.checkpoint(account, size)
    if stored is None:
        what = "no checkpoint has been signed" if size is None else f"no checkpoint of size {size}"
        raise NotFound(f"{what} for account {account}")
    return stored.note


def latest_checkpoint(store: Store, account: str) -> StoredCheckpoint | None:
    with store.read() as tx:
        return tx.ledger.checkpoint(account)


def verifier_keys(store: Store, account: str) -> list[str]:
    with store.read() as tx:
        keys = tx.ledger.verifier_keys(account)
    if not keys:
        raise NotFound(f"account {account} has no ledger key yet")
    return keys


@closed
class LedgerEvent(TypedDict):
    seq: NonNegative
    leaf_b64: Annotated[Base64, Field(description="the event's leaf bytes (RFC 8785 JSON)")]
    event: EventJson


@closed
class EventsPageJson(TypedDict):
    """``EventsPage.to_json``."""

    events: list[LedgerEvent]
    size: Annotated[NonNegative, Field(description="the ledger size")]


@closed
class InclusionProof(TypedDict):
    """``inclusion``."""

    index: NonNegative
    size: NonNegative
    leaf_hash_b64: Base64
    proof: list[Base64]


ConsistencyProof = TypedDict(
    "ConsistencyProof", {"from": NonNegative, "to": NonNegative, "proof": list[Base64]}
)
"""``consistency``."""
closed(ConsistencyProof)


@dataclass(frozen=True)
class EventsPage:
    """Events (``(seq, leaf)``) from a start, and the ledger size."""

    events: list[tuple[int, bytes]]
    size: int

    def to_json(self) -> EventsPageJson:
        """The ``GET /v1/ledger/events`` answer: each event with its leaf bytes."""
        events: list[LedgerEvent] = [
            {"seq": seq, "leaf_b64": _b64(leaf), "event": orjson.loads(leaf)}
            for seq, leaf in self.events
        ]
        return {"events": events, "size": self.size}


def events_page(store: Store, account: str, start: int, limit: int) -> EventsPage:
    """Up to ``limit`` (≤ 1000) events from ``start``, with the ledger size."""
    if start < 0:
        raise InvalidInput("start must not be negative", field="start")
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PAGE}", field="limit")
    with store.read() as tx:
        head = _head(tx.ledger, account)
        stop = min(head.size, start + limit)
        return EventsPage(list(tx.ledger.leaves(account, start, stop)), head.size)


def _check_size(size: int, head: Head, field: str) -> None:
    if not 0 <= size <= head.size:
        raise InvalidInput(
            f"{field} must be between 0 and the ledger size {head.size}", field=field
        )


def inclusion(store: Store, account: str, seq: int, size: int) -> InclusionProof:
    """The RFC 9162 inclusion proof of event ``seq`` in the tree of ``size`` events."""
    with store.read() as tx:
        head = _head(tx.ledger, account)
        _check_size(size, head, "size")
        if not 0 <= seq < size:
            raise InvalidInput(f"seq must be below size {size}", field="seq")
        reader = tx.ledger.nodes(account)
        leaf = reader.read_hashes([(0, seq)])[0]
        proof = inclusion_proof(seq, size, reader)
    return {
        "index": seq,
        "size": size,
        "leaf_hash_b64": _b64(leaf),
        "proof": [_b64(h) for h in proof],
    }


def consistency(store: Store, account: str, old: int, new: int) -> ConsistencyProof:
    """The RFC 9162 consistency proof from tree size ``old`` to ``new``."""
    with store.read() as tx:
        head = _head(tx.ledger, account)
        _check_size(old, head, "from")
        _check_size(new, head, "to")
        if old > new:
            raise InvalidInput("from must not exceed to", field="from")
        proof = consistency_proof(old, new, tx.ledger.nodes(account))
    return {"from": old, "to": new, "proof": [_b64(h) for h in proof]}
