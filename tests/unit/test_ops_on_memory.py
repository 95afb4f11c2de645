"""Operations services on the store in memory (``tenure.store.memory``): the
reconciler's pass (classification, first_seen, findings closing) and webhook
delivery scheduling (fan-out from the ledger, leases, the retry schedule), with no
database. Deliveries go to a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tenure.canonical import canonical_json
from tenure.config import Settings
from tenure.domain.activations import activation_id
from tenure.domain.timefmt import format_time, parse_time
from tenure.ops import deployments, reconcile, webhooks
from tenure.ops.deployments import Report
from tenure.ops.webhook_worker import PER_ENDPOINT, WebhookWorker
from tenure.store.memory import MemoryStore
from tenure.store.records import EventRow

ACCOUNT = "acme"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SERIAL = "TNR-AAAAA-BBBBB-CCCCC-DDDDD"
POLICY = reconcile.DriftPolicy(stale_after=timedelta(hours=1))
REVOKED = "tok_" + "r" * 26
LIVE = "tok_" + "l" * 26


def _hex(n: int) -> str:
    return f"{n:064x}"


# ---------------------------------------------------------------- the reconciler


def _seed_ledger_state(store: MemoryStore, devices: int, seats: int) -> list[str]:
    """A license of ``seats`` seats with ``devices`` activated devices and one revoked
    token → the activation ids."""
    plan = {
        "plan": "pro",
        "version": 1,
        "product": "studio",
        "entitlements": {"feature:export": True, "seats": seats},
        "core": [],
        "duration": None,
        "grace": None,
        "offline_token_ttl": "PT24H",
        "activation": "node-locked",
    }
    license_row = {
        "serial": SERIAL,
        "product": "studio",
        "customer": "cus_1",
        "plan": "pro",
        "plan_version": 1,
        "order_ref": "o-1",
        "key_hash": "k" * 64,
        "status": "active",
        "issued_at": format_time(NOW - timedelta(days=1)),
        "expires_at": None,
        "overrides": {},
    }
    ids = [activation_id(ACCOUNT, SERIAL, _hex(n)) for n in range(devices)]
    activations = [
        {
            "activation": a,
            "serial": SERIAL,
            "fingerprint_hash": _hex(n),
            "mode": "node-locked",
            "status": "active",
            "lease_expires_at": None,
        }
        for n, a in enumerate(ids)
    ]
    with store.write() as tx:
        tx.projection.write(ACCOUNT, "plan_versions", [plan], [])
        tx.projection.write(ACCOUNT, "licenses", [license_row], [])
        tx.projection.write(ACCOUNT, "activations", activations, [])
        seats_row = {"serial": SERIAL, "holders": dict.fromkeys(ids)}
        tx.projection.write(ACCOUNT, "license_seats", [seats_row], [])
        tx.projection.write(ACCOUNT, "revoked_tokens", [{"jti": REVOKED, "serial": SERIAL}], [])
    return ids


def _report(store: MemoryStore, deployment: str, entries: list[Any], received: datetime) -> None:
    report = Report.model_validate(
        {
            "product": "studio",
            "product_version": "1.0",
            "sdk_version": "1.0",
            "activations": entries,
        }
    )
    deployments.record_report(store, ACCOUNT, deployment, report, "key_agent", received)


def test_a_pass_on_the_memory_store_classifies_each_drift_of_the_reports() -> None:
    store = MemoryStore()
    _seed_ledger_state(store, devices=2, seats=2)
    live = int((NOW + timedelta(hours=1)).timestamp())
    entries = [
        {
            "license": SERIAL,
            "fingerprint_hash": _hex(0),
            "entitlements": ["feature:export", "feature:scripting"],
            "tokens": [{"jti": REVOKED, "exp": live}, {"jti": LIVE, "exp": live}],
        },
        {"license": SERIAL, "fingerprint_hash": _hex(1)},
        {"license": SERIAL, "fingerprint_hash": _hex(7)},
    ]
    _report(store, "site-1", entries, NOW)
    _report(store, "site-2", entries[1:2], NOW - timedelta(hours=2))

    done = reconcile.run_pass(store, ACCOUNT, POLICY, NOW)

    assert (done.reports, done.activations, done.findings) == (2, 4, 5)
    assert done.by_kind == {
        "unknown_device": 1,
        "over_seat": 1,
        "entitlement_not_granted": 1,
        "revoked_token": 1,
        "expired_token": 0,
        "stale_report": 1,
        "version_skew": 0,
    }
    found = {(f.kind, f.subject) for f in reconcile.list_drift(store, ACCOUNT)}
    stranger = activation_id(ACCOUNT, SERIAL, _hex(7))
    assert ("unknown_device", stranger) in found
    assert ("entitlement_not_granted", f"{SERIAL}/feature:scripting") in found
    assert ("revoked_token", REVOKED) in found
    assert reconcile.drift_summary(store, ACCOUNT) == done.by_kind


def test_a_persisting_finding_keeps_first_seen_and_a_fixed_one_closes_in_memory() -> None:
    store = MemoryStore()
    _seed_ledger_state(store, devices=1, seats=1)
    entry = {"license": SERIAL, "fingerprint_hash": _hex(0)}
    _report(store, "site-1", [entry], NOW - timedelta(hours=2))
    reconcile.run_pass(store, ACCOUNT, POLICY, NOW)
    later = NOW + timedelta(minutes=5)
    reconcile.run_pass(store, ACCOUNT, POLICY, later)
    (stale,) = reconcile.list_drift(store, ACCOUNT, "stale_report")
    assert (stale.first_seen, stale.last_seen) == (format_time(NOW), format_time(later))

    _report(store, "site-1", [entry], later)
    reconcile.run_pass(store, ACCOUNT, POLICY, later + timedelta(minutes=1))

    assert reconcile.list_drift(store, ACCOUNT) == []
    recorded = reconcile.last_pass(store, ACCOUNT)
    assert recorded is not None
    assert (recorded.at, recorded.findings) == (format_time(later + timedelta(minutes=1)), 0)


# ---------------------------------------------------------------- webhook deliveries


class Receiver:
    """An HTTP server on loopback answering each POST with the next status of its
    path's script (the last one once the script is used up)."""

    def __init__(self, scripts: dict[str, list[int]]) -> None:
        self.seen: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.seen.append((self.path, body))
                script = scripts[self.path]
                self.send_response(script.pop(0) if len(script) > 1 else script[0])
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver({"/flaky": [500, 204], "/down": [500]})
    try:
        yield found
    finally:
        found.close()


def _settings(schedule: str = "30s,5m") -> Settings:
    return Settings(
        webhook_allow_private=True,
        webhook_retry_schedule=schedule,
        webhook_timeout_seconds=5,
        webhook_concurrency=8,
    )


BOX = webhooks.SecretBox(bytes(32))


def _subscribe(store: MemoryStore, url: str, events: int) -> str:
    now = datetime.now(UTC)
    with store.write() as tx:
        made = webhooks.create_webhook(tx, ACCOUNT, url, ["test.*"], "", BOX, now)
        for n in range(events):
            webhooks.enqueue(tx, ACCOUNT, "test.ping", {"n": n}, now)
    return made.id


def test_a_failed_attempt_waits_its_retry_and_the_next_attempt_delivers(
    receiver: Receiver,
) -> None:
    store = MemoryStore()
    hook = _subscribe(store, f"{receiver.url}/flaky", 1)
    before = datetime.now(UTC)
    worker = WebhookWorker(store, _settings(), BOX)
    assert worker.run_once(before) == 1
    worker.stop()  # waits for the attempt in flight
    after = datetime.now(UTC)

    [waiting] = webhooks.list_deliveries(store, ACCOUNT, hook)
    assert (waiting.status, waiting.attempts, waiting.last_status_code) == ("pending", 1, 500)
    assert waiting.next_attempt_at is not None
    due = parse_time(waiting.next_attempt_at)
    assert before + timedelta(seconds=30) <= due <= after + timedelta(seconds=37.5)

    again = WebhookWorker(store, _settings(), BOX)
    assert again.run_once(after) == 0  # not due yet
    assert again.run_once(due) == 1
    again.stop()
    [delivered] = webhooks.list_deliveries(store, ACCOUNT, hook)
    assert delivered.status == "delivered"
    assert [a.status_code for a in delivered.history] == [500, 204]
    assert delivered.next_attempt_at is None


def test_the_schedule_used_up_fails_the_delivery_with_every_attempt_kept(
    receiver: Receiver,
) -> None:
    store = MemoryStore()
    hook = _subscribe(store, f"{receiver.url}/down", 1)
    moment = datetime.now(UTC)
    for _ in range(2):
        worker = WebhookWorker(store, _settings("1s"), BOX)
        assert worker.run_once(moment) == 1
        worker.stop()
        moment += timedelta(minutes=1)
    [delivery] = webhooks.list_deliveries(store, ACCOUNT, hook)
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert [a.status_code for a in delivery.history] == [500, 500]
    assert delivery.next_attempt_at is None


def test_a_leased_delivery_is_claimed_once_and_an_endpoint_gets_at_most_its_share() -> None:
    store = MemoryStore()
    _subscribe(store, "http://127.0.0.1:9/one", 5)
    first, second = (WebhookWorker(store, _settings(), BOX) for _ in range(2))
    now = datetime.now(UTC)
    try:
        claimed = first._claim(now)
        assert len(claimed) == PER_ENDPOINT
        again = second._claim(now)
        assert len(again) == PER_ENDPOINT
        assert not {c.id for c in claimed} & {c.id for c in again}
        assert first._claim(now) == []  # its slots for the endpoint are taken
    finally:
        first.stop()
        second.stop()


def _append(store: MemoryStore, events: list[dict[str, Any]]) -> None:
    with store.write() as tx:
        head = tx.ledger.head(ACCOUNT) or tx.ledger.create_head(ACCOUNT, "test/ledger/acme")
        rows = []
        for seq, data in enumerate(events, start=head.size):
            event = {
                "id": f"evt_{seq:032x}",
                "account": ACCOUNT,
                "seq": seq,
                "time": format_time(NOW),
                "actor": {"id": "key_1", "role": "owner", "auth": "api_key"},
                "reason": None,
                "idempotency_key": None,
                **data,
            }
            leaf = canonical_json(event)
            rows.append(EventRow(seq, event["id"], event["type"], None, event["time"], None, leaf))
        tx.ledger.append_events(ACCOUNT, rows)
        tx.ledger.move_head(ACCOUNT, head.size, head.size + len(rows))


def test_fan_out_sends_events_after_the_subscription_once_and_without_personal_data() -> None:
    store = MemoryStore()
    suspended = {"type": "license.suspended", "schema": 1, "data": {"serial": SERIAL}}
    _append(store, [suspended])
    with store.write() as tx:
        made = webhooks.create_webhook(tx, ACCOUNT, "http://127.0.0.1:9/h", ["*"], "", BOX, NOW)
    customer = {
        "type": "customer.created",
        "schema": 1,
        "data": {
            "customer": "cus_1",
            "name": "Ada",
            "email": "ada@example.test",
            "external_id": None,
        },
    }
    _append(store, [customer, suspended])
    for _ in range(2):
        with store.write() as tx:
            webhooks.fan_out(tx, ACCOUNT, NOW)

    found = webhooks.list_deliveries(store, ACCOUNT, made.id)
    assert sorted(d.payload["data"]["seq"] for d in found) == [1, 2]
    created = next(d for d in found if d.event_type == "customer.created")
    assert created.payload["data"]["subject"] == "cus_1"
    assert created.payload["data"]["data"] == {"customer": "cus_1", "external_id": None}
    assert "ada@example.test" not in orjson.dumps([d.payload for d in found]).decode()
