"""One request's bad value never fails other people's requests.

The ledger writer commits many requests in one transaction (group commit). A value
the database refuses used to abort that transaction and fail every request in it
with 503: with two threads sending NUL bytes, 146 of 200 concurrent customer
creations failed on PostgreSQL. Now the edge refuses such values (400), every audit
entry is made storable before it is written, and a batch whose transaction fails is
retried in smaller groups, so that only the request at fault fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from support.postgres import pg_url
from support.server import Server, running_server
from support.shop import ACCOUNT, ACTOR
from support.sql_write import SqlWrite
from tenure.domain.commands import CreateCustomer
from tenure.errors import InvalidInput, StorageUnavailable
from tenure.service import audit
from tenure.service.audit import AuditEntry
from tenure.service.ledger import AuditRequest, Ledger, Outcome, Submission
from tenure.store import ledger_records
from tenure.store.audit import SqlAuditLog
from tenure.store.engine import read_transaction

VALID_WRITES = 200
POISONERS = 2


def _entry(target: str | None, action: str = "test_write") -> AuditEntry:
    return AuditEntry(ACCOUNT, ACTOR.id, ACTOR.role, ACTOR.auth, action, "allowed", "ok", target)


def _customer(n: int, external_id: str | None = None) -> Submission:
    command = CreateCustomer(f"Customer {n}", f"c{n}@example.test", external_id or f"ext-{n}")
    return Submission(ACCOUNT, command, ACTOR)


@contextmanager
def one_batch(ledger: Ledger) -> Iterator[None]:
    """Hold the writer inside a batch of its own while the block submits: everything
    submitted meanwhile is queued, and the writer takes it all as its next batch."""
    started, release = threading.Event(), threading.Event()

    def wait(_conn: sa.Connection) -> dict[str, Any]:
        started.set()
        release.wait(30)
        return {}

    holding = ledger.submit(SqlWrite(_entry("holder"), wait))
    assert started.wait(30)
    try:
        yield
    finally:
        release.set()
        holding.result(timeout=30)


def _insert_null_account(conn: sa.Connection) -> dict[str, Any]:
    """A change the database refuses on every backend (NOT NULL), not a TenureError."""
    insert = "INSERT INTO accounts (id, name, created_at, created_by) VALUES (NULL, 'x', 'x', 'x')"
    conn.execute(sa.text(insert))
    return {}


def _action(action: str) -> audit.AuditFilter:
    return audit.AuditFilter(action=action)


def _results(futures: list[Future[Outcome]]) -> list[Outcome | BaseException]:
    return [f.exception(timeout=30) or f.result() for f in futures]


def test_a_write_the_database_refuses_fails_alone(ledger: Ledger, store_url: str) -> None:
    with one_batch(ledger):
        valid = [ledger.submit(_customer(n)) for n in range(20)]
        poisoned = ledger.submit(SqlWrite(_entry("poison"), _insert_null_account))
        more = [ledger.submit(_customer(n)) for n in range(20, 40)]
    assert isinstance(poisoned.exception(timeout=30), StorageUnavailable)
    outcomes = _results(valid + more)
    assert all(isinstance(o, Outcome) and o.result["created"] for o in outcomes), outcomes
    with read_transaction(ledger.store.engine) as conn:
        head = ledger_records.read_head(conn, ACCOUNT)
        assert head is not None
        assert head.size == 40
        audit.verify(SqlAuditLog(conn), ACCOUNT, head.size)


def test_a_value_postgresql_cannot_store_fails_only_its_own_request(
    ledger: Ledger, store_url: str
) -> None:
    """Past the edge (which refuses it with 400 on both backends), a NUL in a
    projected column is the writer's to contain: on PostgreSQL the request fails
    with ``unstorable_value`` and is audited as denied; SQLite stores it."""
    with one_batch(ledger):
        valid = [ledger.submit(_customer(n)) for n in range(20)]
        poisoned = ledger.submit(_customer(99, external_id="bad\x00"))
        more = [ledger.submit(_customer(n)) for n in range(20, 40)]
    outcomes = _results(valid + more)
    assert all(isinstance(o, Outcome) and o.result["created"] for o in outcomes), outcomes
    error = poisoned.exception(timeout=30)
    with read_transaction(ledger.store.engine) as conn:
        head = ledger_records.read_head(conn, ACCOUNT)
        assert head is not None
        report = audit.verify(SqlAuditLog(conn), ACCOUNT, head.size)
        entries, _ = audit.page(
            SqlAuditLog(conn), ACCOUNT, limit=100, where=_action("create_customer")
        )
    if store_url.startswith("postgresql"):
        assert isinstance(error, InvalidInput), error
        assert error.code == "unstorable_value"
        assert head.size == 40
        assert [e["code"] for e in entries].count("unstorable_value") == 1
    else:
        assert error is None
        assert head.size == 41
    assert report.size == len(entries) + 1  # the holder's entry, then the customers'


def test_an_audit_entry_that_cannot_be_stored_is_stored_sanitized(ledger: Ledger) -> None:
    bad_targets = ["TNR-\x00", "\ud800", "x" * 5000]
    with one_batch(ledger):
        valid = [ledger.submit(_customer(n)) for n in range(10)]
        refusals = [
            ledger.submit(AuditRequest((_entry(target, action="get_license"),)))
            for target in bad_targets
        ]
        odd = AuditEntry(
            ACCOUNT,
            "key_x",
            "owner",
            "api_key",
            "check",
            "denied",
            "not_found",
            rationale="\ud800 why",
            detail={"field": "a\x00", "why": "\udc00"},
        )
        decisions = ledger.submit(AuditRequest((odd,)))
    outcomes = _results([*valid, *refusals, decisions])
    assert all(isinstance(o, Outcome) for o in outcomes), outcomes
    with read_transaction(ledger.store.engine) as conn:
        head = ledger_records.read_head(conn, ACCOUNT)
        assert head is not None
        assert head.size == 10
        audit.verify(SqlAuditLog(conn), ACCOUNT, head.size)
        stored, _ = audit.page(SqlAuditLog(conn), ACCOUNT, limit=100, where=_action("get_license"))
    targets = [e["target"] for e in stored]
    assert len(targets) == 3
    assert all(t.startswith("sha256:") and len(t) <= 80 for t in targets), targets
    assert targets == [audit.short_hash(t) for t in bad_targets]


# ---------------------------------------------------------------- over HTTP, on PostgreSQL


@pytest.fixture
def pg_server(pg_database: str, tmp_path: Path) -> Iterator[Server]:
    logs = tmp_path / "logs"
    logs.mkdir()
    with running_server(tmp_path / "data", logs, "--db", pg_url(pg_database)) as server:
        yield server


POISON: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/licenses?customer=a%00b", None),
    ("GET", "/v1/licenses/TNR-%00", None),
    ("POST", "/v1/licenses/TNR-%00/suspend", {"reason": "r"}),
    ("POST", "/v1/customers", {"name": "n", "email": "p@example.test", "external_id": "bad\x00"}),
    ("POST", "/v1/customers", {"name": "bad\x00", "email": "p@example.test"}),
]


def _poison(server: Server, key: str, stop: threading.Event, statuses: list[int]) -> None:
    """Send the ``POISON`` requests in turn until ``stop``; a dropped connection (the
    server closes it after a 500) counts as status 0."""
    with server.client(key) as client:
        while not stop.is_set():
            for method, url, body in POISON:
                try:
                    statuses.append(client.request(method, url, json=body).status_code)
                except httpx.TransportError:
                    statuses.append(0)


def _create(server: Server, key: str, n: int) -> int:
    with server.client(key) as api:
        body = {"name": f"Valid {n}", "email": f"v{n}@example.test", "external_id": f"v-{n}"}
        return api.post("/v1/customers", json=body).status_code


def test_valid_writes_beside_poisoning_threads_all_succeed(pg_server: Server) -> None:
    key = pg_server.owner_key()
    stop = threading.Event()
    poisoned: list[int] = []
    poisoners = [
        threading.Thread(target=_poison, args=(pg_server, key, stop, poisoned))
        for _ in range(POISONERS)
    ]
    for thread in poisoners:
        thread.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda n: _create(pg_server, key, n), range(VALID_WRITES)))
    finally:
        stop.set()
        for thread in poisoners:
            thread.join(30)
    assert statuses == [201] * VALID_WRITES, {s: statuses.count(s) for s in set(statuses)}
    assert len(poisoned) >= 2 * len(POISON)
    assert set(poisoned) == {400}, {s: poisoned.count(s) for s in set(poisoned)}
