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
from tenure.service import webhooks
from tenure.service.webhook_worker import WebhookWorker
from tenure.store.engine import create_engine, transaction_on
from tenure.store.migrations import upgrade

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
    with engine.connect() as conn, transaction_on(conn):
        made = webhooks.create_webhook(conn, ACCOUNT, url, [kind], "", box, now)
    for n in range(events):
        with engine.connect() as conn, transaction_on(conn):
            assert webhooks.enqueue(conn, ACCOUNT, kind, {"n": n}, now) == 1
    return str(made["id"])


def statuses(engine: sa.Engine, webhook: str) -> list[str]:
    return [d["status"] for d in webhooks.list_deliveries(engine, ACCOUNT, webhook)]


def test_two_workers_never_send_one_delivery_twice(
    tmp_path: Path, engine: sa.Engine, receiver: Receiver
) -> None:
    box = webhooks.SecretBox(bytes(32))
    hook = subscribe(engine, box, f"{receiver.url}/ok", 12)
    workers = [WebhookWorker(engine, settings(tmp_path), box) for _ in range(2)]
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
    worker = WebhookWorker(engine, settings(tmp_path), box)
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
    worker = WebhookWorker(engine, settings(tmp_path), box)
    try:
        deadline = time.monotonic() + 10
        while statuses(engine, hook) != ["failed"] and time.monotonic() < deadline:
            worker.run_once()
            time.sleep(0.05)
    finally:
        worker.stop()
    [delivery] = webhooks.list_deliveries(engine, ACCOUNT, hook)
    assert delivery["attempts"] == 2
    assert [a["status_code"] for a in delivery["history"]] == [None, None]
    assert all(a["error"] for a in delivery["history"])


def test_a_disabled_subscription_keeps_its_deliveries_waiting(
    tmp_path: Path, engine: sa.Engine, receiver: Receiver
) -> None:
    box = webhooks.SecretBox(bytes(32))
    hook = subscribe(engine, box, f"{receiver.url}/paused", 2)
    with engine.connect() as conn, transaction_on(conn):
        assert webhooks.set_enabled(conn, ACCOUNT, hook, False)["enabled"] is False
    worker = WebhookWorker(engine, settings(tmp_path), box)
    try:
        assert worker.run_once() == 0
        with engine.connect() as conn, transaction_on(conn):
            webhooks.set_enabled(conn, ACCOUNT, hook, True)
        assert worker.run_once() == 2
    finally:
        worker.stop()
    assert statuses(engine, hook) == ["delivered", "delivered"]
