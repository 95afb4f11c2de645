"""The records of the ledger noun as the store hands them over: a head, a stored
checkpoint, an event row, an idempotency record. Plain data, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True)
class Head:
    """The ledger head of one account: its origin and number of events."""

    account: str
    origin: str
    size: int


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at: str


class EventRow(NamedTuple):
    """A stored event as it goes into ``ledger_events``, in its column order (a
    tuple: a restore or migration makes millions of them)."""

    seq: int
    id: str
    type: str
    subject: str | None
    time: str
    idempotency_key: str | None
    leaf: bytes


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    first_seq: int | None
    event_count: int
    result: dict[str, Any]
