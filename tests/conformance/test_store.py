"""One suite, every backend: the store behaves the same on SQLite and PostgreSQL.

Real engines, real migrations and the real ledger writer thread; no mocks. Each test
runs once per backend (``store_url``) on a fresh database.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from support.postgres import pg_url
from support.shop import ACCOUNT, ACTOR, Probe, Runtimes, Shop
from support.sql_write import SqlWrite
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.activations import ActivateDevice, SeatLimitReached, fingerprint_hash
from tenure.domain.commands import (
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    PublishPlan,
)
from tenure.errors import StorageUnavailable, TenureError
from tenure.ledger.checkpoint import open_checkpoint
from tenure.service.audit import AuditEntry
from tenure.service.demo import demo_license_keys, seed_demo
from tenure.service.ledger import Ledger, Outcome, SignRequest, Submission
from tenure.service.replay import digest_of, rebuild
from tenure.service.verify import verify_ledger
from tenure.store import ledger_records, projection_rows
from tenure.store import tables as t
from tenure.store.engine import read_transaction
from tenure.store.migrations import alembic_config, current_revision, upgrade

THREADS = 8


def _head_revision() -> str:
    with sa.create_engine("sqlite://").connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
    assert head is not None
    return head


# ---------------------------------------------------------------- schema


def test_migrations_bring_an_empty_database_to_head_with_the_metadata_schema(
    runtime: Runtime,
) -> None:
    engine = runtime.store.engine
    assert current_revision(engine) == _head_revision()
    upgrade(engine)  # again: a no-op
    assert current_revision(engine) == _head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, t.metadata)
        names = set(sa.inspect(conn).get_table_names())
    assert diffs == []
    assert names == {*t.metadata.tables, "alembic_version"}


# ---------------------------------------------------------------- appends


def test_issued_license_is_appended_and_readable(shop: Shop, probe: Probe) -> None:
    customer = shop.customer("acme")
    serial = shop.license(customer, "ORD-1")

    assert probe.seqs() == list(range(probe.size()))
    assert probe.size() == 4  # product, plan, customer, license
    with read_transaction(probe.engine) as conn:
        row = projection_rows.read_row(conn, ACCOUNT, "licenses", (serial,))
    assert row is not None
    assert (row["customer"], row["status"], row["plan"]) == (customer, "active", Shop.PLAN)


def test_replaying_a_command_by_idempotency_key_answers_the_same_and_appends_nothing(
    shop: Shop, probe: Probe
) -> None:
    customer = shop.customer("acme")
    issue = IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-1")
    first = shop.run(issue, key="order-1")
    before = probe.snapshot()

    again = shop.run(issue, key="order-1")

    assert (first.replayed, again.replayed) == (False, True)
    assert again.result == first.result
    assert again.events == ()
    assert probe.snapshot() == before


def test_concurrent_submissions_get_a_gap_free_ledger_that_verifies(
    shop: Shop, probe: Probe, runtime: Runtime
) -> None:
    start = probe.size()
    per_thread = 10
    barrier = threading.Barrier(THREADS)

    def client(n: int) -> list[Outcome]:
        barrier.wait()
        return [shop.run(CreateCustomer(None, None, f"t{n}-c{i}")) for i in range(per_thread)]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = [o for batch in pool.map(client, range(THREADS)) for o in batch]

    total = THREADS * per_thread
    assert sorted(o.events[0].seq for o in outcomes) == list(range(start, start + total))
    assert probe.seqs() == list(range(start + total))
    report = verify_ledger(runtime.store, ACCOUNT, runtime.sidecar)
    assert report.size == start + total


def test_two_writers_on_one_database_append_without_gaps_or_forks(
    runtimes: Runtimes, data_dir: Path, store_url: str
) -> None:
    """Two runtimes (as two server processes would) append to one account at once."""
    first = runtimes.open(data_dir, database_url=store_url)
    second = runtimes.open(data_dir, database_url=store_url)
    with first.ledger() as a, second.ledger() as b:
        Shop(a).catalog()
        barrier = threading.Barrier(THREADS)

        def client(n: int) -> list[Outcome]:
            shop = Shop(a if n % 2 else b)
            barrier.wait()
            return [shop.run(CreateCustomer(None, None, f"w{n}-c{i}")) for i in range(10)]

        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = [o for batch in pool.map(client, range(THREADS)) for o in batch]
        a.execute(SignRequest(ACCOUNT))
    assert sorted(o.events[0].seq for o in outcomes) == list(range(2, 2 + THREADS * 10))
    report = verify_ledger(first.store, ACCOUNT, first.sidecar)
    assert report.size == 2 + THREADS * 10
    assert rebuild(first.store, ACCOUNT).changed is False


def test_rebuilt_projection_has_the_live_digest(shop: Shop, runtime: Runtime) -> None:
    for n in range(5):
        shop.license(shop.customer(f"c{n}"), f"ORD-{n}")
    live = digest_of(runtime.store, ACCOUNT)

    report = rebuild(runtime.store, ACCOUNT)

    assert (report.before, report.after) == (live.digest, live.digest)
    assert digest_of(runtime.store, ACCOUNT) == live


def test_a_signed_checkpoint_is_stored_verifies_and_reaches_the_sidecar(
    shop: Shop, runtime: Runtime, ledger: Ledger
) -> None:
    shop.customer("acme")

    outcome = ledger.execute(SignRequest(ACCOUNT))

    size = outcome.result["size"]
    with read_transaction(runtime.store.engine) as conn:
        stored = ledger_records.read_checkpoint(conn, ACCOUNT)
    assert stored is not None
    assert stored.size == size == 3
    verifier = runtime.ledger_signer(ACCOUNT)[1].verifier
    checkpoint = open_checkpoint(stored.note, [verifier])
    assert (checkpoint.size, checkpoint.root) == (size, stored.root)
    assert runtime.sidecar is not None
    assert runtime.sidecar.read(ACCOUNT) == checkpoint
    assert verify_ledger(runtime.store, ACCOUNT, runtime.sidecar).root == stored.root


# ---------------------------------------------------------------- invariants under load


def test_a_seat_limit_holds_under_concurrent_activations_from_two_writers(
    runtimes: Runtimes, data_dir: Path, store_url: str
) -> None:
    first = runtimes.open(data_dir, database_url=store_url)
    second = runtimes.open(data_dir, database_url=store_url)
    with first.ledger() as a, second.ledger() as b:

        def run(ledger: Ledger, command: Any) -> Outcome:
            return ledger.execute(Submission(ACCOUNT, command, ACTOR))

        run(a, DefineProduct("studio", "Studio", ["export-pdf"]))
        plan = PublishPlan(
            "pro", "studio", {"feature:export-pdf": True, "seats": 2}, activation="floating"
        )
        run(a, plan)
        customer = run(a, CreateCustomer(None, None, "c1")).result["customer"]
        serial = run(a, IssueLicense("studio", "pro", customer, "o1")).result["serial"]
        barrier = threading.Barrier(THREADS)

        def activate(n: int) -> str:
            command = ActivateDevice(serial, fingerprint_hash(serial, f"device-{n}"), 600)
            barrier.wait()
            try:
                run(a if n % 2 else b, command)
            except SeatLimitReached:
                return "refused"
            return "activated"

        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(activate, range(THREADS)))
    assert sorted(answers) == ["activated"] * 2 + ["refused"] * (THREADS - 2)
    with read_transaction(first.store.engine) as conn:
        seats = projection_rows.read_row(conn, ACCOUNT, "license_seats", (serial,))
    assert seats is not None
    assert len(seats["holders"]) == 2


def test_a_failing_transaction_leaves_no_partial_write(
    shop: Shop, probe: Probe, ledger: Ledger, runtime: Runtime
) -> None:
    before = probe.snapshot()
    with read_transaction(runtime.store.engine) as conn:
        audit_before = conn.execute(sa.select(t.audit_heads)).all()
    holding, release = threading.Event(), threading.Event()

    def hold(conn: sa.Connection) -> dict[str, Any]:
        holding.set()
        release.wait(10)
        return {}

    def fail_after_writing(conn: sa.Connection) -> dict[str, Any]:
        conn.execute(
            sa.insert(t.accounts).values(id="ghost", name="Ghost", created_at="x", created_by="x")
        )
        # The same key again: the database itself refuses, mid-transaction.
        conn.execute(
            sa.insert(t.accounts).values(id="ghost", name="Ghost", created_at="x", created_by="x")
        )
        return {}

    entry = AuditEntry(ACCOUNT, ACTOR.id, ACTOR.role, ACTOR.auth, "test", "allowed", "ok")
    held = ledger.submit(SqlWrite(entry, hold))
    assert holding.wait(10)
    # Both queue while the writer is busy: they share the next batch, whose
    # transaction fails. The batch is retried without the failing Write.
    append = ledger.submit(Shop(ledger).submission(CreateCustomer(None, None, "kept")))
    failing = ledger.submit(SqlWrite(entry, fail_after_writing))
    release.set()
    held.result()
    with pytest.raises(StorageUnavailable):
        failing.result()
    assert append.result().result["created"]

    after_hold = probe.snapshot()
    assert after_hold[:2] == (before[0] + 1, before[1] + 1)  # the customer only
    with read_transaction(runtime.store.engine) as conn:
        ghosts = conn.scalar(sa.select(sa.func.count()).where(t.accounts.c.id == "ghost"))
        audit_after = conn.execute(sa.select(t.audit_heads.c.size)).scalars().all()
    assert ghosts == 0
    assert audit_after == [audit_before[0].size + 2]  # the held Write's, the customer's
    # The writer carries on, gap-free.
    shop.customer("after")
    assert probe.seqs() == list(range(before[0] + 2))


def test_an_error_in_one_command_fails_only_that_command(shop: Shop, probe: Probe) -> None:
    before = probe.size()
    with pytest.raises(TenureError):
        shop.run(IssueLicense(Shop.PRODUCT, "no-such-plan", "cus_nobody", "ORD-X"))
    shop.customer("fine")
    assert probe.seqs() == list(range(before + 1))


# ---------------------------------------------------------------- the demo, both backends


def _seed(runtime: Runtime, events: int, seed: int) -> tuple[str, bytes, list[bytes]]:
    ledger = runtime.ledger(
        random_bytes=random.Random(seed).randbytes,  # deterministic demo ids
        license_key_hash=demo_license_keys(seed).key_hash,
    )
    with ledger:
        seed_demo(ledger, events, seed)
    report = verify_ledger(runtime.store, ACCOUNT, runtime.sidecar)
    with read_transaction(runtime.store.engine) as conn:
        leaves = [leaf for _, leaf in ledger_records.iter_leaves(conn, ACCOUNT)]
    return digest_of(runtime.store, ACCOUNT).digest, report.root, leaves


def test_the_demo_workload_gives_the_same_digest_root_and_leaves_on_both_backends(
    tmp_path: Path, pg_database: str
) -> None:
    events, seed = 600, 7
    results = []
    for name, url in [
        ("sqlite", f"sqlite:///{(tmp_path / 'sqlite' / 'tenure.db').as_posix()}"),
        ("postgresql", pg_url(pg_database)),
    ]:
        # Sealed personal data has random nonces: the same leaves need it in the clear.
        settings = Settings(data_dir=tmp_path / name, database_url=url, encrypt_personal_data=False)
        runtime = Runtime.open(settings)
        try:
            results.append(_seed(runtime, events, seed))
        finally:
            runtime.close()
    (lite_digest, lite_root, lite_leaves), (pg_digest, pg_root, pg_leaves) = results
    assert len(lite_leaves) == events
    assert pg_leaves == lite_leaves
    assert (pg_digest, pg_root) == (lite_digest, lite_root)
