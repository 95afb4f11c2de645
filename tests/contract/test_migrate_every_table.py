"""``tenure migrate`` carries every table: a store where every copied table holds
rows (licenses, an activation, a pending approval, idempotency records, API keys,
token signing keys, checkpoints, the audit log, a webhook with its cursor and
deliveries, a deployment report with activation sightings, a drift pass with
findings, a notice, an alert, per-minute counters, a drill) is migrated SQLite →
PostgreSQL → SQLite with the real ``tenure``, and every table of the schema is
compared with the source, row by row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from support.cli import tenure
from support.postgres import pg_url
from support.shop import ACCOUNT, ACTOR, Shop
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.activations import ActivateDevice, RevokeToken
from tenure.domain.approvals import RequestApproval
from tenure.domain.commands import (
    CreateCustomer,
    EraseCustomer,
    ImportLegacyLicense,
    IssueLicense,
    PublishPlan,
    RetirePlan,
)
from tenure.domain.timefmt import format_time
from tenure.ops import alerts, counters, deployments, notices, reconcile, webhooks
from tenure.service import apikeys
from tenure.service.accounts import ensure_account
from tenure.service.ledger import Submission
from tenure.store import tables as t
from tenure.store.drills import DrillReport
from tenure.store.engine import create_engine, read_transaction
from tenure.store.table_copy import TABLE_PLAN, How, plain_row

SHORT_PLAN = "studio-month"
OTHER = "acme"


def _populate(runtime: Runtime) -> None:
    """Rows in every table a migration copies, made the way the service makes them."""
    now = datetime.now(UTC)
    store = runtime.store
    for account in (ACCOUNT, OTHER):
        ensure_account(store, account, account.title(), "test")
        apikeys.create_api_key(store, account, "owner", "owner")
    with runtime.ledger() as ledger:
        shop = Shop(ledger)
        shop.catalog()
        shop.run(PublishPlan(SHORT_PLAN, Shop.PRODUCT, {"seats": 2}, duration="P10D"))
        for n in range(3):
            command = CreateCustomer(f"Customer {n}", f"c{n}@example.test", f"ext-{n}")
            customer = str(shop.run(command, key=f"idem-{n}").result["customer"])
        serial = shop.license(customer, "order-1")
        short = IssueLicense(Shop.PRODUCT, SHORT_PLAN, customer, "order-2")
        shop.run(short, key="idem-short")
        activation = shop.run(ActivateDevice(serial, "f" * 64, 3600)).result["activation"]
        shop.run(RevokeToken(serial, "tok_" + "a" * 26))
        gone = shop.run(CreateCustomer("Gone", "g@example.test", "g")).result["customer"]
        shop.run(EraseCustomer(str(gone)), reason="the customer asked")
        shop.run(PublishPlan("studio-old", Shop.PRODUCT, {"seats": 1}))
        shop.run(RetirePlan("studio-old"))
        legacy = ImportLegacyLicense("old", "L-1", "a" * 64, Shop.PRODUCT, Shop.PLAN, "ext-0")
        shop.run(legacy)
        pending = RequestApproval("license.revoke", serial, ACTOR.id, 3600.0, {"serial": serial})
        shop.run(pending)
        runtime.keyring().current(ACCOUNT, now)
        box = webhooks.SecretBox.from_settings(runtime.settings)
        with store.shared_write() as tx:
            webhooks.create_webhook(tx, ACCOUNT, "https://example.test/h", ["*"], "hook", box, now)
        shop.customer("after-the-webhook")
        with store.shared_write() as tx:
            webhooks.fan_out(tx, ACCOUNT, now)
        report = deployments.Report(
            product=Shop.PRODUCT,
            product_version="1.0",
            sdk_version="1.0",
            activations=[
                deployments.ActivationInUse(license=serial, activation=activation),
                deployments.ActivationInUse(license=serial, fingerprint_hash="e" * 64),
            ],
        )
        deployments.record_report(store, ACCOUNT, "plant-a", report, "key_agent", now)
        reconcile.run_pass(store, ACCOUNT, reconcile.DriftPolicy.from_settings(runtime.settings))
        notices.run_notices(store, ACCOUNT, now, (30,))
        counters.discard_pending()
        counters.count(ACCOUNT, counters.CHECK_DENIED, 50)
        counters.flush(store)
        policy = alerts.AlertPolicy(timedelta(minutes=5), 3, 3.0, 1, ACCOUNT)
        alerts.run_alerts(store, ledger.execute, ACCOUNT, now, policy)
        other = CreateCustomer("Other", "o@example.test", "o")
        ledger.execute(Submission(OTHER, other, ACTOR, idempotency_key="other-1"))
    with store.write() as tx:
        drill = DrillReport(ACCOUNT, format_time(now), "file:///site", True, 1.5, 0, 0.0, 9, 9, "")
        tx.drills.record(drill)


def _rows(url: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every table of the schema but those deliberately not copied: its rows, sorted
    by primary key in Python (the two backends collate text differently)."""
    engine = create_engine(url)
    try:
        with read_transaction(engine) as conn:
            for plan in TABLE_PLAN:
                if plan.how is How.NOT_COPIED:
                    continue
                table = t.metadata.tables[plan.table]
                keys = [c.name for c in table.primary_key]
                rows = [plain_row(r) for r in conn.execute(sa.select(table))]
                yield plan.table, sorted(rows, key=lambda r: [r[k] for k in keys])
    finally:
        engine.dispose()


def _populated(data_dir: Path) -> str:
    """A SQLite store in ``data_dir`` with rows in every table; its URL."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        _populate(runtime)
    finally:
        runtime.close()
    return f"sqlite:///{(data_dir / 'tenure.db').as_posix()}"


def _assert_same_tables(source: str, target: str) -> None:
    theirs = dict(_rows(target))
    for name, rows in _rows(source):
        assert theirs[name] == rows, f"table {name} differs"


def _migrated(source: str, target: str) -> dict[str, Any]:
    moved = tenure("migrate", "--from", source, "--to", target, "-o", "json")
    assert moved.code == 0, moved
    assert [line.split(":")[0] for line in moved.stderr.splitlines()] == [OTHER, ACCOUNT]
    report: dict[str, Any] = moved.json()
    return report


def test_every_table_of_the_schema_is_populated_by_the_fixture(tmp_path: Path) -> None:
    url = _populated(tmp_path / "data")
    empty = [name for name, rows in _rows(url) if not rows]
    assert empty == []


def test_every_table_travels_from_sqlite_to_postgresql_and_back_row_for_row(
    tmp_path: Path, pg_database: str
) -> None:
    source = _populated(tmp_path / "data")
    pg = pg_url(pg_database)
    there = _migrated(source, pg)
    _assert_same_tables(source, pg)
    back = f"sqlite:///{(tmp_path / 'back.db').as_posix()}"
    again = _migrated(pg, back)
    _assert_same_tables(pg, back)
    _assert_same_tables(source, back)

    assert there["accounts"] == again["accounts"]
    for proof in there["accounts"]:
        shown = tenure("state", "root", "--db", back, "--account", proof["account"], "-o", "json")
        assert shown.code == 0, shown
        assert proof["state_root"] in shown.stdout
    rows = {name: len(found) for name, found in _rows(source)}
    copied = {r["table"]: r["rows"] for r in again["tables"] if r["how"] != How.NOT_COPIED}
    assert copied == rows
    assert {r["table"] for r in again["tables"]} == set(t.metadata.tables)
    assert {r["how"] for r in again["tables"]} <= {str(h) for h in How}
