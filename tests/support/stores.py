"""Stores for the tests of store nouns and of use cases: an empty store of each kind
(memory, SQLite, PostgreSQL), and projection rows shaped as the projector writes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.postgres import BACKENDS, pg_url
from tenure.domain.state import Row
from tenure.store.engine import create_engine
from tenure.store.memory import MemoryStore
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore, Store

STORE_KINDS = ["memory", *BACKENDS]


@contextmanager
def empty_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of ``kind`` (one of ``STORE_KINDS``), migrated to the head."""
    if kind == "memory":
        yield MemoryStore()
        return
    if kind == "sqlite":
        url = f"sqlite:///{(tmp_path / 'tenure.db').as_posix()}"
    else:
        url = pg_url(request.getfixturevalue("pg_database"))
    engine = create_engine(url)
    upgrade(engine)
    try:
        yield SqlStore(engine)
    finally:
        engine.dispose()


def license_row(serial: str, key_hash: str, **fields: Any) -> Row:
    """A ``licenses`` projection row of an active license, with ``fields`` changed."""
    row: Row = {
        "serial": serial,
        "product": "pro",
        "customer": "cus_1",
        "plan": "team",
        "plan_version": 1,
        "order_ref": None,
        "key_hash": key_hash,
        "status": "active",
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "expires_at": None,
        "overrides": {},
    }
    return {**row, **fields}
