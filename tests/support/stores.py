"""Stores for the tests of store nouns and of use cases: an empty store of each kind
(memory, SQLite, PostgreSQL), and rows shaped as the projector and the writer write
them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.postgres import BACKENDS, pg_url
from tenure.canonical import canonical_json
from tenure.domain.state import Row
from tenure.store.databases import open_store, sqlite_url
from tenure.store.memory import MemoryStore
from tenure.store.records import EventRow
from tenure.store.unit import Store

STORE_KINDS = ["memory", *BACKENDS]
T0 = "2026-06-01T12:00:00.000000Z"


@contextmanager
def empty_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of ``kind`` (one of ``STORE_KINDS``), migrated to the head."""
    if kind == "memory":
        yield MemoryStore()
        return
    if kind == "sqlite":
        url = sqlite_url(tmp_path / "tenure.db")
    else:
        url = pg_url(request.getfixturevalue("pg_database"))
    with open_store(url, upgrade=True) as opened:
        yield opened


def license_row(serial: str, **fields: Any) -> Row:
    """A ``licenses`` projection row of an active license of product ``studio``, plan
    ``pro`` v1, issued at ``T0``, with ``fields`` changed."""
    row: Row = {
        "serial": serial,
        "product": "studio",
        "customer": "cus_1",
        "plan": "pro",
        "plan_version": 1,
        "order_ref": serial,
        "key_hash": serial.lower().ljust(64, "0"),
        "status": "active",
        "issued_at": T0,
        "expires_at": None,
        "overrides": {},
    }
    return {**row, **fields}


def event_row(seq: int, kind: str, at: str) -> EventRow:
    """A ledger event row whose leaf is a minimal event of ``kind``."""
    event = {"id": f"evt_{seq:032x}", "seq": seq, "type": kind, "time": at, "data": {}}
    return EventRow(seq, event["id"], kind, None, at, None, canonical_json(event))
