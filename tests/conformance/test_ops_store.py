"""The operations' store nouns (``tenure.store.webhooks``, ``deployments``, ``drift``,
``notices``, ``alerts``, ``counters``, ``gauges``) behave alike on every store: in
memory, on SQLite and on PostgreSQL, through the Protocols services use."""

from __future__ import annotations

from typing import Any

from support.stores import event_row, license_row
from tenure.store.alerts import StoredAlert
from tenure.store.counters import MinuteCount
from tenure.store.deployments import StoredReport
from tenure.store.drift import StoredFinding, StoredPass
from tenure.store.notices import StoredNotice
from tenure.store.unit import Store
from tenure.store.webhooks import AttemptRecord, NewDelivery, Subscription

ACCOUNT = "acme"
OTHER = "other"
T0 = "2026-06-01T12:00:00.000000Z"
T1 = "2026-06-01T12:01:00.000000Z"
T2 = "2026-06-01T12:02:00.000000Z"
T3 = "2026-06-01T12:03:00.000000Z"


# ---------------------------------------------------------------- webhooks


def _hook(name: str, created_at: str = T0, enabled: bool = True) -> Subscription:
    return Subscription(
        name, f"https://x.test/{name}", ("*",), "", "sealed", enabled, 0, created_at
    )


def test_subscriptions_are_listed_oldest_first_and_removed_with_their_deliveries(
    store: Store,
) -> None:
    with store.write() as tx:
        tx.webhooks.add(ACCOUNT, _hook("whk_b", T1))
        tx.webhooks.add(ACCOUNT, _hook("whk_a", T1, enabled=False))
        tx.webhooks.add(ACCOUNT, _hook("whk_c", T0))
        tx.webhooks.add(OTHER, _hook("whk_z", T0))
        tx.webhooks.queue(ACCOUNT, [NewDelivery("msg_1", "whk_b", "x.y", "{}")], T0)
    with store.write() as tx:
        ids = [s.id for s in tx.webhooks.subscriptions(ACCOUNT)]
        assert ids == ["whk_c", "whk_a", "whk_b"]
        enabled = [s.id for s in tx.webhooks.subscriptions(ACCOUNT, enabled_only=True)]
        assert enabled == ["whk_c", "whk_b"]
        tx.webhooks.set_enabled(ACCOUNT, "whk_a", True)
        assert tx.webhooks.subscription(ACCOUNT, "whk_a") == _hook("whk_a", T1)
        tx.webhooks.remove(ACCOUNT, "whk_b")
    with store.read() as tx:
        assert tx.webhooks.subscription(ACCOUNT, "whk_b") is None
        assert tx.webhooks.delivery(ACCOUNT, "whk_b", "msg_1") is None
        assert tx.webhooks.pending(ACCOUNT) == 0


def test_a_cursor_starts_once_and_moves_only_from_where_it_is(store: Store) -> None:
    with store.write() as tx:
        assert tx.webhooks.cursor(ACCOUNT) is None
        tx.webhooks.start_cursor(ACCOUNT, 3)
        tx.webhooks.start_cursor(ACCOUNT, 9)
        tx.webhooks.move_cursor(ACCOUNT, 5, 7)  # another process moved it: nothing
        assert tx.webhooks.cursor(ACCOUNT) == 3
        tx.webhooks.move_cursor(ACCOUNT, 3, 8)
    with store.read() as tx:
        assert tx.webhooks.cursor(ACCOUNT) == 8
        assert tx.webhooks.cursor_accounts() == [ACCOUNT]


def test_a_delivery_is_queued_once_leased_once_and_recorded_under_its_lease(
    store: Store,
) -> None:
    first = NewDelivery("msg_1", "whk_a", "license.revoked", '{"n":1}')
    with store.write() as tx:
        tx.webhooks.add(ACCOUNT, _hook("whk_a"))
        tx.webhooks.add(ACCOUNT, _hook("whk_off", enabled=False))
        tx.webhooks.queue(ACCOUNT, [first], T0)
        tx.webhooks.queue(ACCOUNT, [first, NewDelivery("msg_2", "whk_a", "a.b", "{}")], T1)
        tx.webhooks.queue(ACCOUNT, [NewDelivery("msg_3", "whk_off", "a.b", "{}")], T0)
    with store.shared_write() as tx:
        assert [d.id for d in tx.webhooks.due(T0, 10)] == ["msg_1"]
        due = tx.webhooks.due(T2, 10)
        assert [d.id for d in due] == ["msg_1", "msg_2"]  # not the disabled one's
        assert (due[0].url, due[0].secret, due[0].payload) == (
            "https://x.test/whk_a",
            "sealed",
            '{"n":1}',
        )
        assert tx.webhooks.lease(ACCOUNT, "msg_1", T2, T3)
        assert not tx.webhooks.lease(ACCOUNT, "msg_1", T2, T3)
        assert [d.id for d in tx.webhooks.due(T2, 10)] == ["msg_2"]
        retry = AttemptRecord("pending", 1, T3, 500, "HTTP 500", '[{"n":1}]')
        tx.webhooks.record(ACCOUNT, "msg_1", "a lease that ended", retry)
        assert tx.webhooks.delivery(ACCOUNT, "whk_a", "msg_1").attempts == 0  # type: ignore[union-attr]
        tx.webhooks.record(ACCOUNT, "msg_1", T3, retry)
    with store.read() as tx:
        stored = tx.webhooks.delivery(ACCOUNT, "whk_a", "msg_1")
        assert stored is not None
        assert (stored.status, stored.attempts, stored.next_attempt_at) == ("pending", 1, T3)
        assert (stored.lease_until, stored.last_status_code, stored.history) == (
            None,
            500,
            '[{"n":1}]',
        )
        assert tx.webhooks.pending(ACCOUNT) == 3
        assert tx.webhooks.pending(ACCOUNT, ["license.revoked"]) == 1


def test_deliveries_are_listed_newest_first_by_status_and_made_due_again(store: Store) -> None:
    with store.write() as tx:
        tx.webhooks.add(ACCOUNT, _hook("whk_a"))
        tx.webhooks.queue(ACCOUNT, [NewDelivery("msg_1", "whk_a", "a.b", "{}")], T0)
        tx.webhooks.queue(ACCOUNT, [NewDelivery("msg_2", "whk_a", "a.b", "{}")], T1)
        tx.webhooks.lease(ACCOUNT, "msg_1", T1, T2)
        failed = AttemptRecord("failed", 1, None, None, "refused", "[]")
        tx.webhooks.record(ACCOUNT, "msg_1", T2, failed)
    with store.write() as tx:
        assert [d.id for d in tx.webhooks.deliveries(ACCOUNT, "whk_a", None, 10)] == [
            "msg_2",
            "msg_1",
        ]
        assert [d.id for d in tx.webhooks.deliveries(ACCOUNT, "whk_a", "failed", 10)] == ["msg_1"]
        assert len(tx.webhooks.deliveries(ACCOUNT, "whk_a", None, 1)) == 1
        tx.webhooks.make_due(ACCOUNT, "whk_a", "msg_1", T3)
    with store.read() as tx:
        again = tx.webhooks.delivery(ACCOUNT, "whk_a", "msg_1")
        assert again is not None
        assert (again.status, again.next_attempt_at) == ("pending", T3)


# ---------------------------------------------------------------- deployments and drift


def _report(deployment: str, entries: list[dict[str, Any]]) -> StoredReport:
    return StoredReport(deployment, "studio", "1.0", "0.3", T0, T1, "key_1", len(entries), entries)


def test_a_report_replaces_the_last_of_its_deployment_and_sightings_keep_the_latest(
    store: Store,
) -> None:
    entry = {"license": "TNR-1", "fingerprint_hash": "a" * 64}
    with store.write() as tx:
        tx.deployments.replace(ACCOUNT, _report("d-2", [entry, entry]))
        tx.deployments.replace(ACCOUNT, _report("d-1", [entry]))
        tx.deployments.replace(ACCOUNT, _report("d-2", [entry]))
        tx.deployments.see(ACCOUNT, {"act_1": "TNR-1", "act_2": "TNR-1"}, T0)
        tx.deployments.see(ACCOUNT, {"act_1": "TNR-1"}, T2)
    with store.read() as tx:
        summaries = tx.deployments.summaries(ACCOUNT)
        assert [(r.deployment, r.activation_count, r.activations) for r in summaries] == [
            ("d-1", 1, None),
            ("d-2", 1, None),
        ]
        assert tx.deployments.report(ACCOUNT, "d-2") == _report("d-2", [entry])
        assert tx.deployments.report(ACCOUNT, "d-9") is None
        assert sorted(r.deployment for r in tx.deployments.reports(ACCOUNT)) == ["d-1", "d-2"]
        assert tx.deployments.sightings(ACCOUNT) == {"act_1": T2, "act_2": T0}
        assert tx.deployments.summaries(OTHER) == []


def test_findings_are_replaced_counted_and_listed_by_kind_and_passes_kept_for_a_while(
    store: Store,
) -> None:
    old = StoredFinding("stale_report", "d-1", "d-1", "late", T0, T1)
    seat = StoredFinding("over_seat", "d-2", "TNR-1", "3 devices", T1, T1)
    with store.write() as tx:
        tx.drift.replace_findings(ACCOUNT, [old, seat])
        tx.drift.record_pass(ACCOUNT, StoredPass(T0, 0.5, 2, 3, 2, 0), T0)
        tx.drift.record_pass(ACCOUNT, StoredPass(T1, 0.25, 2, 3, 2, 0), T0)
    with store.write() as tx:
        assert tx.drift.first_seen(ACCOUNT) == {
            ("stale_report", "d-1", "d-1"): T0,
            ("over_seat", "d-2", "TNR-1"): T1,
        }
        assert tx.drift.counts(ACCOUNT) == {"stale_report": 1, "over_seat": 1}
        assert tx.drift.findings(ACCOUNT, None, 10) == [seat, old]
        assert tx.drift.findings(ACCOUNT, "stale_report", 10) == [old]
        assert tx.drift.findings(ACCOUNT, None, 1) == [seat]
        assert tx.drift.last_pass(ACCOUNT) == StoredPass(T1, 0.25, 2, 3, 2, 0)
        tx.drift.replace_findings(ACCOUNT, [seat])
        tx.drift.record_pass(ACCOUNT, StoredPass(T1, 0.75, 1, 1, 1, 0), T1)  # drops T0's
        tx.drift.record_pass(ACCOUNT, StoredPass(T0, 0.1, 0, 0, 0, 0), T1)
    with store.read() as tx:
        assert tx.drift.findings(ACCOUNT, None, 10) == [seat]
        assert tx.drift.last_pass(ACCOUNT) == StoredPass(T1, 0.75, 1, 1, 1, 0)
        assert tx.drift.last_pass(OTHER) is None


# ---------------------------------------------------------------- notices, alerts, counters


def test_a_notice_is_recorded_once_and_expiring_licenses_are_found_in_their_window(
    store: Store,
) -> None:
    notice = StoredNotice("ntc_1", "license.expiring_soon", "TNR-1", "cus_1", T2, 7, T0)
    rows = [
        license_row("TNR-1", expires_at=T1),
        license_row("TNR-2", expires_at=T3),
        license_row("TNR-3", expires_at=T1, status="revoked"),
        license_row("TNR-4", expires_at=None),
    ]
    with store.write() as tx:
        tx.projection.write(ACCOUNT, "licenses", rows, [])
        assert tx.notices.add(ACCOUNT, notice)
        assert not tx.notices.add(ACCOUNT, notice)
        later = StoredNotice("ntc_2", "license.grace_started", "TNR-2", None, T2, None, T1)
        assert tx.notices.add(ACCOUNT, later)
    with store.read() as tx:
        assert [n.id for n in tx.notices.recent(ACCOUNT, 10)] == ["ntc_2", "ntc_1"]
        assert tx.notices.recent(ACCOUNT, 1)[0].lead is None
        found = tx.notices.expiring(ACCOUNT, T0, T2)
        assert [(r["serial"], r["plan_version"]) for r in found] == [("TNR-1", 1)]
        assert set(found[0]) == {
            "serial",
            "customer",
            "plan",
            "plan_version",
            "status",
            "expires_at",
        }


def test_an_alert_stays_open_until_cleared_and_the_times_it_counts_come_from_the_ledger(
    store: Store,
) -> None:
    alert = StoredAlert("alr_1", "revocations", T0, T1, 40, 1.5, 12.25, T1)
    with store.write() as tx:
        tx.alerts.add(ACCOUNT, alert)
        assert tx.alerts.open_alert(ACCOUNT, "revocations") == "alr_1"
        assert tx.alerts.open_counts(ACCOUNT) == {"revocations": 1}
        tx.alerts.clear(ACCOUNT, "revocations", T2)
        assert tx.alerts.open_alert(ACCOUNT, "revocations") is None
        tx.projection.write(
            ACCOUNT,
            "licenses",
            [license_row("TNR-1", expires_at=T1), license_row("TNR-2", expires_at=T3)],
            [],
        )
        head = tx.ledger.create_head(ACCOUNT, "test/ledger/acme")
        kinds = ["license.revoked", "license.suspended", "license.revoked", "license.revoked"]
        times = [T0, T1, T1, T2]
        rows = [
            event_row(seq, kind, at)
            for seq, (kind, at) in enumerate(zip(kinds, times, strict=True))
        ]
        tx.ledger.append_events(ACCOUNT, rows)
        tx.ledger.move_head(ACCOUNT, head.size, len(rows))
    with store.read() as tx:
        [cleared] = tx.alerts.recent(ACCOUNT, 10)
        assert cleared == StoredAlert("alr_1", "revocations", T0, T1, 40, 1.5, 12.25, T1, T2)
        assert tx.alerts.open_counts(ACCOUNT) == {}
        assert tx.alerts.event_times(ACCOUNT, "license.revoked", T1) == [T1, T2]
        assert tx.alerts.expiries(ACCOUNT, T0, T3) == [T1]


def test_counts_add_into_their_minute_and_sum_over_a_window(store: Store) -> None:
    minute = "2026-06-01T12:01Z"
    with store.shared_write() as tx:
        tx.counters.add([MinuteCount(ACCOUNT, minute, "check.total", 2)])
    with store.shared_write() as tx:
        tx.counters.add(
            [
                MinuteCount(ACCOUNT, minute, "check.total", 3),
                MinuteCount(ACCOUNT, "2026-06-01T12:02Z", "check.total", 4),
                MinuteCount(ACCOUNT, "2026-06-01T12:02Z", "check.error", 1),
                MinuteCount(OTHER, minute, "check.total", 9),
            ]
        )
    with store.read() as tx:
        assert tx.counters.minutes(ACCOUNT, "check.total", minute, "2026-06-01T12:03Z") == [
            (minute, 5),
            ("2026-06-01T12:02Z", 4),
        ]
        assert tx.counters.minutes(ACCOUNT, "check.total", minute, "2026-06-01T12:02Z") == [
            (minute, 5)
        ]
        window = tx.counters.totals(ACCOUNT, "2026-06-01T12:00Z", "2026-06-01T12:03Z")
        assert window == {"check.total": 9, "check.error": 1}


def test_gauges_count_pending_approvals_and_name_a_schema_revision(store: Store) -> None:
    def approval(name: str, status: str) -> dict[str, Any]:
        return {
            "approval": name,
            "action": "restore",
            "target": None,
            "payload": {},
            "requested_by": "key_1",
            "expires_at": T3,
            "status": status,
            "detail": None,
        }

    with store.write() as tx:
        rows = [approval("apr_1", "pending"), approval("apr_2", "approved")]
        tx.projection.write(ACCOUNT, "approvals", rows, [])
    with store.read() as tx:
        assert tx.gauges.pending_approvals(ACCOUNT) == 1
        assert tx.gauges.pending_approvals(OTHER) == 0
        assert tx.gauges.latest_drill(ACCOUNT) is None
        assert tx.gauges.schema_revision()
