"""The ledger writer: gap-free appends under concurrency, idempotency, atomic batches,
event validation, and when checkpoints get signed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.shop import ACCOUNT, Probe, Runtimes, Shop
from support.sqlite import raw_sqlite
from tenure.app.runtime import Runtime
from tenure.domain.commands import (
    Command,
    CreateCustomer,
    IssueLicense,
    OverrideEntitlement,
    PublishPlan,
    RenewLicense,
    RevokeLicense,
    SuspendLicense,
)
from tenure.errors import Conflict, IdempotencyKeyReused, MalformedEvent, TenureError
from tenure.ledger.checkpoint import open_checkpoint
from tenure.ledger.note import NoteVerifier
from tenure.service.ledger import Outcome, SignRequest
from tenure.service.replay import rebuild
from tenure.service.verify import verify_ledger
from tenure.store import ledger_records
from tenure.store.engine import read_transaction

THREADS = 16


# ---------------------------------------------------------------- sequence numbers


def test_concurrent_writers_get_gap_free_seqs_one_event_per_command(
    shop: Shop, probe: Probe, runtime: Runtime
) -> None:
    start = probe.size()
    per_thread = 8
    barrier = threading.Barrier(THREADS)

    def client(n: int) -> list[Outcome]:
        barrier.wait()
        return [shop.run(CreateCustomer(None, None, f"t{n}-c{i}")) for i in range(per_thread)]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = [o for batch in pool.map(client, range(THREADS)) for o in batch]

    total = THREADS * per_thread
    assert all(len(o.events) == 1 for o in outcomes), "one event per command"
    assigned = sorted(o.events[0].seq for o in outcomes)
    assert assigned == list(range(start, start + total))
    assert probe.seqs() == list(range(start + total))
    assert probe.size() == start + total
    report = verify_ledger(runtime.store, ACCOUNT, runtime.sidecar)
    assert report.size == start + total


# ---------------------------------------------------------------- idempotency


def test_retry_with_same_key_returns_original_result_and_appends_nothing(
    shop: Shop, probe: Probe
) -> None:
    customer = shop.customer("acme")
    issue = IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-1")
    first = shop.run(issue, key="order-1")
    before = probe.snapshot()

    again = shop.run(issue, key="order-1")

    assert not first.replayed
    assert len(first.events) == 1
    assert again.replayed
    assert again.events == ()
    assert again.result == first.result
    assert probe.snapshot() == before


def test_idempotency_survives_a_ledger_restart(runtimes: Runtimes, data_dir: Path) -> None:
    runtime = runtimes.open(data_dir)
    with runtime.ledger() as ledger:
        shop = Shop(ledger)
        shop.catalog()
        customer = shop.customer("acme")
        issue = IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-1")
        first = shop.run(issue, key="order-1")
    runtime.close()

    reopened = runtimes.open(data_dir)
    probe = Probe(reopened.store.engine)
    before = probe.snapshot()
    with reopened.ledger() as ledger:
        again = Shop(ledger).run(issue, key="order-1")
    assert again.replayed
    assert again.result == first.result
    assert probe.snapshot() == before


def test_concurrent_duplicates_with_one_key_append_exactly_one_event(
    shop: Shop, probe: Probe
) -> None:
    customer = shop.customer("acme")
    issue = IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-7")
    start = probe.size()
    barrier = threading.Barrier(THREADS)

    def client(_: int) -> Outcome:
        barrier.wait()
        return shop.run(issue, key="order-7")

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(client, range(THREADS)))

    assert probe.size() == start + 1
    originals = [o for o in outcomes if not o.replayed]
    assert len(originals) == 1
    assert len(originals[0].events) == 1
    assert all(o.result == originals[0].result for o in outcomes)


def test_same_key_with_different_content_is_refused_and_writes_nothing(
    shop: Shop, probe: Probe
) -> None:
    customer = shop.customer("acme")
    shop.run(IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-1"), key="order-1")
    before = probe.snapshot()

    with pytest.raises(IdempotencyKeyReused, match="order-1"):
        shop.run(IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-2"), key="order-1")
    with pytest.raises(IdempotencyKeyReused):
        # same command, different reason: a different request too
        shop.run(
            IssueLicense(Shop.PRODUCT, Shop.PLAN, customer, "ORD-1"), reason="x", key="order-1"
        )

    assert probe.snapshot() == before


# ---------------------------------------------------------------- atomic batches


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        ("suspend twice", Conflict),
        ("revoke without reason", MalformedEvent),
    ],
)
def test_failing_command_leaves_the_rest_of_its_batch_intact(
    shop: Shop, probe: Probe, runtime: Runtime, failing: str, error: type[TenureError]
) -> None:
    customer = shop.customer("acme")
    serial = shop.license(customer, "ORD-1")
    start = probe.size()

    lock = raw_sqlite(runtime.settings.data_dir)
    try:
        lock.execute("BEGIN IMMEDIATE")
        blocker = shop.ledger.submit(shop.submission(CreateCustomer(None, None, "blocker")))
        time.sleep(0.3)  # the writer has taken the blocker and waits for the lock
        good_first = shop.ledger.submit(shop.submission(SuspendLicense(serial), "unpaid"))
        bad = shop.ledger.submit(
            shop.submission(SuspendLicense(serial), "unpaid again")
            if failing == "suspend twice"
            else shop.submission(RevokeLicense(serial))
        )
        good_last = shop.ledger.submit(shop.submission(CreateCustomer(None, None, "after")))
        time.sleep(0.1)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    blocker.result()

    assert good_first.result().result == {"serial": serial, "status": "suspended"}
    with pytest.raises(error):
        bad.result()
    after = good_last.result()
    assert [e.type for e in after.events] == ["customer.created"]

    # blocker + the two good commands; nothing of the failing one
    assert probe.size() == start + 3
    assert probe.seqs() == list(range(start + 3))
    # the stored projection is exactly what replaying the ledger gives
    report = rebuild(runtime.store, ACCOUNT)
    assert not report.changed
    verify_ledger(runtime.store, ACCOUNT)


# ---------------------------------------------------------------- invalid events


@pytest.mark.parametrize(
    ("command", "reason", "field", "mentions"),
    [
        pytest.param(RevokeLicense("<serial>"), None, "reason", "reason", id="revoke-no-reason"),
        pytest.param(SuspendLicense("<serial>"), None, "reason", "reason", id="suspend-no-reason"),
        pytest.param(
            OverrideEntitlement("<serial>", "seats", 2.5),  # type: ignore[arg-type]
            "deal",
            "data.value",
            "data.value",
            id="float-seats-override",
        ),
        pytest.param(
            OverrideEntitlement("<serial>", "feature:export-pdf", 3),
            "deal",
            "data.value",
            "feature:export-pdf",
            id="int-feature-override",
        ),
        pytest.param(
            OverrideEntitlement("<serial>", "seats", -1),
            "deal",
            "data.value",
            "seats",
            id="negative-seats",
        ),
        pytest.param(
            PublishPlan("p2", Shop.PRODUCT, {"seats": 1.5}),  # type: ignore[dict-item]
            None,
            "data.entitlements.seats",
            "data.entitlements.seats",
            id="float-seats-plan",
        ),
        pytest.param(
            OverrideEntitlement("<serial>", "colour", True),
            "deal",
            "data.entitlement",
            "data.entitlement",
            id="unknown-entitlement-key",
        ),
    ],
)
def test_invalid_event_is_rejected_with_its_field_and_nothing_is_written(
    shop: Shop, probe: Probe, command: Command, reason: str | None, field: str, mentions: str
) -> None:
    serial = shop.license(shop.customer("acme"), "ORD-1")
    if getattr(command, "serial", None) == "<serial>":
        command = type(command)(**{**command.__dict__, "serial": serial})
    before = probe.snapshot()

    with pytest.raises(MalformedEvent) as caught:
        shop.run(command, reason=reason)

    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert mentions in str(caught.value)
    assert "\n" not in str(caught.value)
    assert probe.snapshot() == before


# ---------------------------------------------------------------- checkpoints


def _verifier(runtime: Runtime) -> NoteVerifier:
    with read_transaction(runtime.store.engine) as conn:
        keys = ledger_records.verifier_keys(conn, ACCOUNT)
    assert keys
    return NoteVerifier.from_key_string(keys[0])


def test_checkpoint_is_signed_every_n_events_on_demand_and_on_close(
    runtimes: Runtimes, data_dir: Path
) -> None:
    runtime = runtimes.open(data_dir, checkpoint_every_events=10)
    probe = Probe(runtime.store.engine)
    with runtime.ledger() as ledger:
        shop = Shop(ledger)
        for n in range(25):
            shop.run(CreateCustomer(None, None, f"c{n}"))
        assert probe.checkpoint_sizes() == [10, 20]

        signed = ledger.execute(SignRequest(ACCOUNT))
        assert signed.result == {"account": ACCOUNT, "size": 25}
        assert probe.checkpoint_sizes() == [10, 20, 25]
        ledger.execute(SignRequest(ACCOUNT))
        assert probe.checkpoint_sizes() == [10, 20, 25], "nothing new to sign"

        for n in range(3):
            shop.run(CreateCustomer(None, None, f"d{n}"))
        assert probe.checkpoint_sizes() == [10, 20, 25]
    assert probe.checkpoint_sizes() == [10, 20, 25, 28], "signed on close"

    note = runtime.sidecar.read_note(ACCOUNT) if runtime.sidecar else None
    assert note is not None
    checkpoint = open_checkpoint(note, [_verifier(runtime)])
    assert checkpoint.size == 28
    assert checkpoint.origin == f"tenure.localhost/ledger/{ACCOUNT}"
    report = verify_ledger(runtime.store, ACCOUNT, runtime.sidecar)
    assert report.checkpoints == 4
    assert report.root == checkpoint.root


def test_checkpoint_is_signed_after_the_interval_without_closing(
    runtimes: Runtimes, data_dir: Path
) -> None:
    runtime = runtimes.open(data_dir, checkpoint_every_events=1000, checkpoint_interval_seconds=0.2)
    probe = Probe(runtime.store.engine)
    with runtime.ledger() as ledger:
        shop = Shop(ledger)
        for n in range(3):
            shop.run(CreateCustomer(None, None, f"c{n}"))
        assert runtime.sidecar is not None
        sidecar = runtime.sidecar
        # The sidecar is written just after the checkpoint's transaction commits (by
        # design), so wait for both rather than reading the sidecar on seeing the row.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            probe.checkpoint_sizes() != [3] or sidecar.read_note(ACCOUNT) is None
        ):
            time.sleep(0.05)
        assert probe.checkpoint_sizes() == [3]
        assert sidecar.read_note(ACCOUNT) is not None
        signed = runtime.sidecar.read(ACCOUNT)
        assert signed is not None
        assert signed.size == 3


# ---------------------------------------------------------------- other writers


def test_writer_rereads_rows_another_connection_repaired(
    shop: Shop, runtime: Runtime, data_dir: Path
) -> None:
    shop.catalog()
    serial = shop.license(shop.customer("acme"), "ORD-1")
    db = raw_sqlite(data_dir)
    try:
        db.execute("UPDATE proj_licenses SET status = 'revoked' WHERE serial = ?", (serial,))
        db.commit()
    finally:
        db.close()
    with pytest.raises(Conflict, match="revoked"):  # the writer now holds the damaged row
        shop.run(RenewLicense(serial))

    assert rebuild(runtime.store, ACCOUNT, accept_change=True).changed

    renewed = shop.run(RenewLicense(serial))
    assert renewed.result["serial"] == serial
    assert not rebuild(runtime.store, ACCOUNT).changed
