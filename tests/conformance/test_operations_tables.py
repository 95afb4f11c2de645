"""The operations tables (migrations 0008–0010) on every backend: the per-minute
counter upsert adds, webhook fan-out and claims, notice and alert idempotency, and
deployment reports replacing each other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from support.shop import ACCOUNT, Shop
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.timefmt import format_time
from tenure.ops import alerts, counters, deployments, notices, webhooks
from tenure.ops.webhook_worker import WebhookWorker
from tenure.service.ledger import Ledger
from tenure.store import tables as t
from tenure.store.engine import transaction_on


def test_counter_flushes_add_into_the_same_minute(runtime: Runtime) -> None:
    counters.discard_pending()
    counters.count(ACCOUNT, counters.CHECK_TOTAL, 2)
    assert counters.flush(runtime.store) == 1
    counters.count(ACCOUNT, counters.CHECK_TOTAL, 3)
    counters.flush(runtime.store)
    now = datetime.now(UTC)
    with runtime.store.read() as tx:
        found = counters.totals(tx, ACCOUNT, now - timedelta(minutes=2), now)
    assert found[counters.CHECK_TOTAL] == 5


def test_webhook_fan_out_queues_each_delivery_once_and_one_worker_claims_it(
    runtime: Runtime, ledger: Ledger, shop: Shop
) -> None:
    box = webhooks.SecretBox(b"k" * 32)
    now = datetime.now(UTC)
    with runtime.store.shared_write() as tx:
        webhooks.create_webhook(tx, ACCOUNT, "https://example.test/h", ["*"], "", box, now)
    shop.customer("c1")
    for _ in range(2):  # a second fan-out of the same events queues nothing new
        with runtime.store.shared_write() as tx:
            webhooks.fan_out(tx, ACCOUNT, now)
        with runtime.store.engine.connect() as conn, transaction_on(conn):
            conn.execute(sa.update(t.webhook_cursors).values(next_seq=0))
    with runtime.store.read() as tx:
        assert webhooks.backlog(tx, ACCOUNT) == 1
    settings = Settings(data_dir=runtime.settings.data_dir, webhook_concurrency=4)
    first, second = (WebhookWorker(runtime.store, settings, box) for _ in range(2))
    try:
        claimed = first._claim(now) + second._claim(now)
    finally:
        first.stop()
        second.stop()
    assert len(claimed) == 1
    assert "example.test" not in claimed[0].payload
    assert "c1@example.test" not in claimed[0].payload


def test_notices_and_alerts_are_recorded_once(runtime: Runtime, ledger: Ledger, shop: Shop) -> None:
    store = runtime.store
    serial = shop.license(shop.customer("c1"), "o-1")
    lic = t.projection["licenses"].c
    soon = datetime.now(UTC) + timedelta(days=3)
    with runtime.store.engine.connect() as conn, transaction_on(conn):
        conn.execute(
            sa.update(t.projection["licenses"])
            .where(lic.account == ACCOUNT, lic.serial == serial)
            .values(expires_at=format_time(soon))
        )
    now = datetime.now(UTC)
    assert len(notices.run_notices(store, ACCOUNT, now, (7, 30))) == 1
    assert notices.run_notices(store, ACCOUNT, now, (7, 30)) == []
    policy = alerts.AlertPolicy(timedelta(minutes=5), 3, 3.0, 1, ACCOUNT)
    counters.discard_pending()
    counters.count(ACCOUNT, counters.CHECK_DENIED, 50)
    counters.flush(store)
    raised = alerts.run_alerts(store, ledger.execute, ACCOUNT, now, policy)
    assert [a["kind"] for a in raised] == ["check_denied"]
    assert alerts.run_alerts(store, ledger.execute, ACCOUNT, now, policy) == []
    assert len(alerts.list_alerts(store, ACCOUNT)) == 1


def test_a_deployments_latest_report_replaces_the_one_before(runtime: Runtime) -> None:
    report = deployments.Report(
        product="studio",
        product_version="1.0",
        sdk_version="1.0",
        activations=[
            deployments.ActivationInUse(
                license="TNR-AAAAA-BBBBB-CCCCC-DDDDD", fingerprint_hash="a" * 64
            )
        ],
    )
    now = datetime.now(UTC)
    for _ in range(2):
        deployments.record_report(runtime.store, ACCOUNT, "d-1", report, "key", now)
    assert [d["id"] for d in deployments.list_deployments(runtime.store, ACCOUNT)] == ["d-1"]
    assert deployments.get_deployment(runtime.store, ACCOUNT, "d-1")["activation_count"] == 1
