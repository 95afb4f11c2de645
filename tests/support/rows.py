"""Rows for the store nouns' conformance tests."""

from __future__ import annotations

from typing import Any

from tenure.canonical import canonical_json
from tenure.store.sql import EventRow

T0 = "2026-06-01T12:00:00.000000Z"


def license_row(serial: str, expires_at: str | None, status: str = "active") -> dict[str, Any]:
    """A ``licenses`` projection row of product ``studio``, plan ``pro`` v1."""
    return {
        "serial": serial,
        "product": "studio",
        "customer": "cus_1",
        "plan": "pro",
        "plan_version": 1,
        "order_ref": serial,
        "key_hash": serial.lower().ljust(64, "0"),
        "status": status,
        "issued_at": T0,
        "expires_at": expires_at,
        "overrides": {},
    }


def event_row(seq: int, kind: str, at: str) -> EventRow:
    """A ledger event row whose leaf is a minimal event of ``kind``."""
    event = {"id": f"evt_{seq:032x}", "seq": seq, "type": kind, "time": at, "data": {}}
    return EventRow(seq, event["id"], kind, None, at, None, canonical_json(event))
