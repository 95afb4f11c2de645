"""The audit chain on a real SQLite store: written by the ledger writer in the same
transaction as the events, verified, and refusing to let a failed audit write
answer anything (fail closed)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.shop import ACCOUNT, Probe, Shop
from support.sql_write import SqlWrite
from support.sqlite import db_path, raw_sqlite
from tenure.domain.commands import SuspendLicense
from tenure.errors import AuditTampered, Conflict, NotFound, StorageUnavailable
from tenure.service import audit
from tenure.service.audit import AuditEntry, AuditFilter
from tenure.service.ledger import AuditRequest, Ledger
from tenure.store import ledger_records
from tenure.store.audit import SqlAuditLog
from tenure.store.engine import create_engine, read_transaction, write_transaction
from tenure.store.migrations import upgrade


def entry(n: int, account: str = ACCOUNT, **extra: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "principal": f"key_{n:04d}",
        "role": "issuer",
        "auth": "api_key",
        "action": "check",
        "outcome": "allowed" if n % 3 else "denied",
        "code": "ok" if n % 3 else "not_entitled",
        "target": f"TNR-{n}",
        "detail": {"entitlement": "seats"},
    }
    fields.update(extra)
    return AuditEntry(account, **fields)


def entries_of(engine: sa.Engine, account: str = ACCOUNT, **where: Any) -> list[dict[str, Any]]:
    with read_transaction(engine) as conn:
        found, _ = audit.page(SqlAuditLog(conn), account, limit=500, where=AuditFilter(**where))
    return found


def verify(engine: sa.Engine, account: str = ACCOUNT) -> audit.AuditReport:
    with read_transaction(engine) as conn:
        head = ledger_records.read_head(conn, account)
        return audit.verify(SqlAuditLog(conn), account, head.size if head else 0)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


# ---------------------------------------------------------------- the chain itself


def test_entries_chain_each_to_the_hash_of_the_one_before(store: sa.Engine) -> None:
    with write_transaction(store) as conn:
        audit.append(SqlAuditLog(conn), [entry(0), entry(1)], "2026-11-29T00:00:00Z")
    with write_transaction(store) as conn:
        audit.append(SqlAuditLog(conn), [entry(2)], "2026-11-29T00:00:01Z")
    found = entries_of(store)
    assert [e["seq"] for e in found] == [0, 1, 2]
    assert found[0]["prev"] == "00" * 32
    assert [e["prev"] for e in found[1:]] == [e["hash"] for e in found[:-1]]
    last = found[-1]["hash"]
    for stored in found:
        digest = stored.pop("hash")
        assert audit.entry_hash(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)).hex() == digest
    report = verify(store)
    assert (report.size, report.head) == (3, last)


def test_accounts_have_separate_chains(store: sa.Engine) -> None:
    with write_transaction(store) as conn:
        audit.append(
            SqlAuditLog(conn), [entry(0), entry(1, "other"), entry(2), entry(3, "other")], "t"
        )
    assert [e["seq"] for e in entries_of(store)] == [0, 1]
    assert [e["target"] for e in entries_of(store, "other")] == ["TNR-1", "TNR-3"]
    assert verify(store, "other").size == 2


SEARCHED = ("time", "principal", "action", "outcome", "target")
"""The columns of ``audit_log`` that copy a field of the entry, for searching."""


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6),
    victim=st.integers(min_value=0),
    column=st.sampled_from(
        ["entry", "hash", "delete", "truncate", "time", "principal", "action", "outcome", "target"]
    ),
)
def test_any_change_to_a_stored_entry_is_found_and_named(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int], victim: int, column: str
) -> None:
    path = tmp_path_factory.mktemp("chain") / "audit.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        n = 0
        for size in batches:
            with write_transaction(engine) as conn:
                audit.append(SqlAuditLog(conn), [entry(n + i) for i in range(size)], f"t{n}")
            n += size
        assert verify(engine).size == n
        seq = victim % n
        db = sqlite3.connect(path, isolation_level=None)
        try:
            if column == "entry":
                (blob,) = db.execute("SELECT entry FROM audit_log WHERE seq = ?", (seq,)).fetchone()
                changed = blob.replace(b'"outcome":"', b'"outcome":"X')
                db.execute("UPDATE audit_log SET entry = ? WHERE seq = ?", (changed, seq))
            elif column == "hash":
                db.execute("UPDATE audit_log SET hash = zeroblob(32) WHERE seq = ?", (seq,))
            elif column in SEARCHED:
                db.execute(f"UPDATE audit_log SET {column} = 'x' WHERE seq = ?", (seq,))
            elif column == "delete":
                db.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
            else:  # drop the tail from seq on and point the head at what is left
                db.execute("DELETE FROM audit_log WHERE seq >= ?", (seq,))
                prev = db.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
                db.execute(
                    "UPDATE audit_heads SET size = ?, hash = ?",
                    (seq, prev[0] if prev else bytes(32)),
                )
        finally:
            db.close()
        if column == "truncate":
            # Without ledger events to account for, a consistent truncation is what the
            # head row is for: keep GET /v1/audit/head elsewhere. Here the chain is
            # shorter but intact.
            assert verify(engine).size == seq
            return
        with pytest.raises(AuditTampered) as caught:
            verify(engine)
        assert caught.value.seq is not None
        assert caught.value.seq <= seq + 1
        if column in SEARCHED:
            assert (caught.value.seq, caught.value.column) == (seq, column)
    finally:
        engine.dispose()


def test_the_head_must_name_the_last_entry(store: sa.Engine) -> None:
    with write_transaction(store) as conn:
        audit.append(SqlAuditLog(conn), [entry(0), entry(1)], "t")
    with write_transaction(store) as conn:
        conn.execute(sa.text("UPDATE audit_heads SET size = 5"))
    with pytest.raises(AuditTampered, match="names 5 entries but the chain holds 2"):
        verify(store)


# ---------------------------------------------------------------- written by the ledger writer


def test_each_submission_is_audited_with_its_events_or_its_refusal(
    shop: Shop, ledger: Ledger, probe: Probe
) -> None:
    serial = shop.license(shop.customer("acme"), "order-1")
    shop.run(SuspendLicense(serial), "unpaid")
    with pytest.raises(Conflict):
        shop.run(SuspendLicense(serial), "again")
    with pytest.raises(NotFound):
        shop.run(SuspendLicense("TNR-AAAAA-AAAAA-AAAAA-AAAAA"), "who?")
    found = entries_of(ledger.store.engine)
    assert [e["action"] for e in found] == [
        "define_product",
        "publish_plan",
        "create_customer",
        "issue_license",
        "suspend_license",
        "suspend_license",
        "suspend_license",
    ]
    suspended, refused, unknown = found[-3:]
    assert (suspended["outcome"], suspended["code"]) == ("allowed", "ok")
    assert (suspended["target"], suspended["rationale"]) == (serial, "unpaid")
    assert suspended["principal"] == {"id": "key_contract", "role": "owner", "auth": "api_key"}
    assert (refused["outcome"], refused["code"]) == ("denied", "conflict")
    assert refused["events"] is None
    assert unknown["code"] == "not_found"
    # Every event is accounted for, in order, by exactly one entry.
    spans = [tuple(e["events"]) for e in found if e["events"]]
    assert spans[0][0] == 0
    assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert spans[-1][0] + spans[-1][1] == probe.size()
    report = verify(ledger.store.engine)
    assert report.events == (0, probe.size())


def test_customer_personal_data_never_reaches_the_audit_log(
    shop: Shop, ledger: Ledger, data_dir: Path
) -> None:
    shop.customer("pii-check")
    db = raw_sqlite(data_dir)
    try:
        blobs = b"".join(bytes(row[0]) for row in db.execute("SELECT entry FROM audit_log"))
    finally:
        db.close()
    assert b"create_customer" in blobs
    assert b"Customer pii-check" not in blobs
    assert b"pii-check@example.test" not in blobs


def test_an_audit_entry_that_cannot_be_written_fails_the_batch_and_writes_nothing(
    shop: Shop, ledger: Ledger, probe: Probe, data_dir: Path
) -> None:
    serial = shop.license(shop.customer("acme"), "order-1")
    before = probe.snapshot()
    entries_before = len(entries_of(ledger.store.engine))
    db = raw_sqlite(data_dir)
    try:
        db.execute(
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit disk full'); END"
        )
        with pytest.raises(StorageUnavailable, match="audit disk full"):
            shop.run(SuspendLicense(serial), "unpaid")
        with pytest.raises(StorageUnavailable):
            ledger.execute(AuditRequest((entry(0),)))
        assert probe.snapshot() == before  # no event, no checkpoint: fail closed
        db.execute("DROP TRIGGER audit_full")
    finally:
        db.close()
    assert len(entries_of(ledger.store.engine)) == entries_before
    shop.run(SuspendLicense(serial), "unpaid")  # the writer recovers
    assert probe.event_count() == before[0] + 1
    verify(ledger.store.engine)


def test_a_write_that_fails_is_undone_and_audited_as_denied(ledger: Ledger, data_dir: Path) -> None:
    def half_then_fail(conn: sa.Connection) -> dict[str, Any]:
        conn.execute(sa.text("INSERT INTO accounts VALUES ('half', 'Half', 't', 'x')"))
        raise Conflict("changed my mind")

    template = entry(0, principal="key_admin", action="create_account", outcome="allowed")
    with pytest.raises(Conflict):
        ledger.execute(SqlWrite(template, half_then_fail))
    db = raw_sqlite(data_dir)
    try:
        assert db.execute("SELECT count(*) FROM accounts WHERE id = 'half'").fetchone() == (0,)
    finally:
        db.close()
    last = entries_of(ledger.store.engine)[-1]
    assert (last["action"], last["outcome"], last["code"]) == (
        "create_account",
        "denied",
        "conflict",
    )


def test_verify_finds_an_audit_tail_dropped_after_the_last_change(
    shop: Shop, ledger: Ledger, data_dir: Path
) -> None:
    shop.customer("acme")
    ledger.execute(AuditRequest((entry(0),)))  # a decision after the last change
    size = verify(ledger.store.engine).size
    db = sqlite3.connect(db_path(data_dir), isolation_level=None)
    try:
        # Drop the entry of the last change (and everything after), then make the
        # head agree: the chain is intact, but an event is no longer accounted for.
        last_change = size - 2
        db.execute("DELETE FROM audit_log WHERE seq >= ?", (last_change,))
        (prev,) = db.execute(
            "SELECT hash FROM audit_log WHERE seq = ?", (last_change - 1,)
        ).fetchone()
        db.execute("UPDATE audit_heads SET size = ?, hash = ?", (last_change, prev))
    finally:
        db.close()
    with pytest.raises(AuditTampered, match="have no audit entry"):
        verify(ledger.store.engine)
