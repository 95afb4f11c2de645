"""The webhook worker over a real SQLite store and a local receiver: leases keep two
workers from sending one delivery twice; one slow endpoint does not hold up others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tenure.config import Settings
from tenure.ops import webhooks
from tenure.ops.webhook_worker import Claimed, WebhookWorker
from tenure.store.engine import create_engine
from tenure.store.memory import MemoryStore
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore

ACCOUNT = "default"


class Receiver:
    def __init__(self) -> None:
        self.ids: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.url = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with found.lock:
                found.ids.append((self.path, self.headers["webhook-id"]))
            if self.path == "/slow":
                time.sleep(2.0)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = create_engine(f"sqlite:///{(tmp_path / 'tenure.db').as_posix()}")
    upgrade(made)
    try:
        yield made
    finally:
        made.dispose()


def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        webhook_allow_private=True,
        webhook_retry_schedule="0.1s",
        webhook_timeout_seconds=5,
        webhook_concurrency=4,
    )


def subscribe(
    engine: sa.Engine, box: webhooks.SecretBox, url: str, events: int, kind: str = "test.ping"
) -> str:
    now = datetime.now(UTC)
    store = SqlStore(engine)
    with store.shared_write() as tx:
        made = webhooks.create_webhook(tx, ACCOUNT, url, [kind], "", box, now)
    for n in range(events):
        with store.shared_write() as tx:
            assert webhooks.enqueue(tx, ACCOUNT, kind, {"n": n}, now) == 1
    return str(made["id"])


def statuses(engine: sa.Engine, webhook: str) -> list[str]:
    return [d["status"] for d in webhooks.list_deliveries(SqlStore(engine), ACCOUNT, webhook)]


def test_two_workers_never_send_one_delivery_twice(
    tmp_path: Path, engine: sa.Engine, receiver: Receiver
) -> None:
    box = webhooks.SecretBox(bytes(32))
    hook = subscribe(engine, box, f"{receiver.url}/ok", 12)
    workers = [WebhookWorker(SqlStore(engine), settings(tmp_path), box) for _ in range(2)]
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and set(statuses(engine, hook)) != {"delivered"}:
            passes = [threading.Thread(target=w.run_once) for w in workers]
            for thread in passes:
                thread.start()
            for thread in passes:
                thread.join()
            time.sleep(0.05)
    finally:
        for worker in workers:
            worker.stop()
    assert statuses(engine, hook) == ["delivered"] * 12
    sent = [delivery for path, delivery in receiver.ids if path == "/ok"]
    assert len(sent) == len(set(sent)) == 12


def test_a_slow_endpoint_does_not_hold_up_another(
    tmp_path: Path, engine: sa.Engine, receiver: Receiver
) -> None:
    box = webhooks.SecretBox(bytes(32))
    slow = subscribe(engine, box, f"{receiver.url}/slow", 6)
    fast = subscribe(engine, box, f"{receiver.url}/fast", 3, "test.pong")
    worker = WebhookWorker(SqlStore(engine), settings(tmp_path), box)
    try:
        started = time.monotonic()
        while set(statuses(engine, fast)) != {"delivered"}:
            assert time.monotonic() - started < 1.5, statuses(engine, fast)
            worker.run_once()
            time.sleep(0.05)
        assert "pending" in statuses(engine, slow)
    finally:
        worker.stop()


def test_an_unanswering_port_is_retried_then_failed_with_every_attempt_recorded(
    tmp_path: Path, engine: sa.Engine
) -> None:
    box = webhooks.SecretBox(bytes(32))
    hook = subscribe(engine, box, "http://127.0.0.1:9/closed", 1)
    worker = WebhookWorker(SqlStore(engine), settings(tmp_path), box)
    try:
        deadline = time.monotonic() + 10
        while statuses(engine, hook) != ["failed"] and time.monotonic() < deadline:
            worker.run_once()
            time.sleep(0.05)
    finally:
        worker.stop()
    [delivery] = webhooks.list_deliveries(SqlStore(engine), ACCOUNT, hook)
    assert delivery["attempts"] == 2
    assert [a["status_code"] for a in delivery["history"]] == [None, None]
    assert all(a["error"] for a in delivery["history"])


def test_a_disabled_subscription_keeps_its_deliveries_waiting(
    tmp_path: Path, engine: sa.Engine, receiver: Receiver
) -> None:
    box = webhooks.SecretBox(bytes(32))
    hook = subscribe(engine, box, f"{receiver.url}/paused", 2)
    with SqlStore(engine).shared_write() as tx:
        assert webhooks.set_enabled(tx, ACCOUNT, hook, False)["enabled"] is False
    worker = WebhookWorker(SqlStore(engine), settings(tmp_path), box)
    try:
        assert worker.run_once() == 0
        with SqlStore(engine).shared_write() as tx:
            webhooks.set_enabled(tx, ACCOUNT, hook, True)
        assert worker.run_once() == 2
    finally:
        worker.stop()
    assert statuses(engine, hook) == ["delivered", "delivered"]


def test_an_attempt_connects_to_the_address_the_url_policy_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is not resolved again after the check (here it would
    not resolve at all); the request goes to the approved address, named by its host."""
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            hosts.append(self.headers["host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setattr(webhooks, "check_url", lambda url, allow_private: ["127.0.0.1"])
    strict = Settings(data_dir=tmp_path, webhook_allow_private=False, webhook_timeout_seconds=5)
    worker = WebhookWorker(MemoryStore(), strict, webhooks.SecretBox(bytes(32)))
    secret = webhooks.new_secret()
    url = f"http://rebound.invalid:{port}/hook"
    delivery = Claimed(ACCOUNT, "msg_1", "whk_1", url, secret, "{}", 0, "[]", "lease")
    try:
        attempt = worker.send(delivery)
    finally:
        worker.stop()
        server.shutdown()
        server.server_close()
    assert attempt.delivered, attempt
    assert hosts == [f"rebound.invalid:{port}"]


def test_retrying_a_delivery_in_flight_does_not_let_another_worker_send_it_too(
    tmp_path: Path, engine: sa.Engine
) -> None:
    box = webhooks.SecretBox(bytes(32))
    hook = subscribe(engine, box, "http://127.0.0.1:9/in-flight", 1)
    first, second = (WebhookWorker(SqlStore(engine), settings(tmp_path), box) for _ in range(2))
    now = datetime.now(UTC)
    try:
        [claimed] = first._claim(now)
        with SqlStore(engine).shared_write() as tx:
            webhooks.retry_delivery(tx, ACCOUNT, hook, claimed.id, now)
        assert second._claim(now) == []
    finally:
        first.stop()
        second.stop()


def test_a_stopping_worker_does_not_keep_fanning_out_a_long_backlog(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = webhooks.SecretBox(bytes(32))
    subscribe(engine, box, "http://127.0.0.1:9/backlog", 0)
    worker = WebhookWorker(SqlStore(engine), settings(tmp_path), box)
    batches: list[str] = []

    def a_full_batch(account: str, now: datetime) -> int:
        batches.append(account)
        assert len(batches) < 3, "fanned out on after stop"
        return 500

    monkeypatch.setattr(worker, "_fan_out", a_full_batch)
    worker._stop.set()
    try:
        worker.run_once()
    finally:
        worker.stop()
    assert batches == [ACCOUNT]
