"""Webhooks, lifecycle notices and anomaly alerts against a real server and a real
local HTTP receiver (docs/webhooks.md)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from support.api import apply_example_catalog, issue_license
from support.remote import ok_json, tenure
from support.server import Server, running_server, start_server

PROBLEM = "application/problem+json"
HANG_SECONDS = 30.0
FAST = {
    "TENURE_WEBHOOK_RETRY_SCHEDULE": "0.3s,0.3s,0.3s",
    "TENURE_WEBHOOK_POLL_SECONDS": "0.2",
    "TENURE_WEBHOOK_TIMEOUT_SECONDS": "3",
    "TENURE_NOTICE_INTERVAL_SECONDS": "0.5",
    "TENURE_ALERT_INTERVAL_SECONDS": "1",
    "TENURE_ALERT_MIN_COUNT": "5",
    "TENURE_APPROVAL_REVOKE_THRESHOLD": "1000",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local webhook endpoint: ``/ok`` answers 200, ``/flaky/<n>`` 500 twice then
    200, ``/hang`` sleeps ``HANG_SECONDS`` first, ``/down`` always 500."""

    url: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                seen = sum(1 for r in receiver.requests if r.path == self.path)
            if self.path == "/hang":
                time.sleep(HANG_SECONDS)
            failing = self.path == "/down" or (self.path.startswith("/flaky") and seen <= 2)
            self.send_response(500 if failing else 200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("webhooks") / "data"
    logs = tmp_path_factory.mktemp("webhooks-logs")
    with running_server(data_dir, logs, TENURE_WEBHOOK_ALLOW_PRIVATE="true", **FAST) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


def subscribe(owner: httpx.Client, url: str, events: list[str]) -> dict[str, Any]:
    made = owner.post("/v1/webhooks", json={"url": url, "events": events, "description": "t"})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def wait_for(what: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"not within {seconds} s")


def deliveries(owner: httpx.Client, webhook: str, status: str | None = None) -> list[Any]:
    params = {"status": status} if status else {}
    answer = owner.get(f"/v1/webhooks/{webhook}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    found: list[Any] = answer.json()["deliveries"]
    return found


def verify(secret: str, request: Received) -> Any:
    """The independent reference implementation checks the signature."""
    return Webhook(secret).verify(request.body, request.headers)


def test_a_suspension_is_delivered_signed_and_the_secret_is_shown_once(
    owner: httpx.Client, receiver: Receiver
) -> None:
    hook = subscribe(owner, f"{receiver.url}/ok", ["license.*"])
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in owner.get(f"/v1/webhooks/{hook['id']}").json()
    assert all("secret" not in h for h in owner.get("/v1/webhooks").json()["webhooks"])
    serial = issue_license(owner)["serial"]
    suspended = owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "unpaid"})
    assert suspended.status_code == 200, suspended.text

    def suspension() -> list[Received]:
        return [r for r in receiver.at("/ok") if r.json()["type"] == "license.suspended"]

    [request] = wait_for(suspension)
    payload = verify(hook["secret"], request)
    assert payload["data"]["subject"] == serial
    assert payload["data"]["data"]["serial"] == serial
    assert payload["data"]["reason"] == "unpaid"

    def issued() -> list[Received]:
        return [r for r in receiver.at("/ok") if r.json()["type"] == "license.issued"]

    wait_for(issued)  # the whole license.* family, delivered side by side
    assert not [r for r in receiver.at("/ok") if r.json()["type"].startswith("customer.")]
    assert "Device Co" not in b"".join(r.body for r in receiver.at("/ok")).decode()
    done = wait_for(lambda: deliveries(owner, hook["id"], "delivered"))
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in done)


def test_a_failing_endpoint_is_retried_until_it_answers_2xx(
    owner: httpx.Client, receiver: Receiver
) -> None:
    path = f"/flaky/{uuid.uuid4().hex[:8]}"
    hook = subscribe(owner, receiver.url + path, ["license.suspended"])
    serial = issue_license(owner)["serial"]
    owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "fraud check"})
    [delivery] = wait_for(lambda: deliveries(owner, hook["id"], "delivered"))
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["history"]] == [500, 500, 200]
    assert delivery["history"][0]["error"] == "HTTP 500"
    requests = receiver.at(path)
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    verify(hook["secret"], requests[-1])


def test_a_dead_endpoint_fails_after_the_schedule_and_can_be_retried(
    owner: httpx.Client, receiver: Receiver
) -> None:
    hook = subscribe(owner, f"{receiver.url}/down", ["license.suspended"])
    serial = issue_license(owner)["serial"]
    owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "x"})
    [failed] = wait_for(lambda: deliveries(owner, hook["id"], "failed"))
    assert failed["attempts"] == 4
    assert failed["next_attempt_at"] is None
    again = owner.post(f"/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/retry")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending"
    # A manual retry is one more attempt; the schedule is used up, so it fails again.
    [again_failed] = wait_for(lambda: deliveries(owner, hook["id"], "failed"))
    assert again_failed["attempts"] == 5
    paused = owner.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": False})
    assert paused.status_code == 200, paused.text
    assert owner.get(f"/v1/webhooks/{hook['id']}").json()["enabled"] is False
    assert owner.patch(f"/v1/webhooks/{hook['id']}", json={"on": 1}).status_code == 400
    missing = owner.post(f"/v1/webhooks/{hook['id']}/deliveries/msg_nope/retry")
    assert missing.status_code == 404
    assert owner.delete(f"/v1/webhooks/{hook['id']}").json() == {"id": hook["id"], "deleted": True}
    assert owner.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_a_hanging_endpoint_slows_neither_checks_nor_suspensions(
    owner: httpx.Client, receiver: Receiver
) -> None:
    subscribe(owner, f"{receiver.url}/hang", ["*"])
    licenses = [issue_license(owner)["serial"] for _ in range(3)]
    wait_for(lambda: receiver.at("/hang"))
    for serial in licenses:
        started = time.monotonic()
        checked = owner.post(
            "/v1/check", json={"license": serial, "entitlement": "feature:export-pdf"}
        )
        assert checked.status_code == 200, checked.text
        assert time.monotonic() - started < 2.0
    started = time.monotonic()
    done = owner.post(f"/v1/licenses/{licenses[0]}/suspend", json={"reason": "slow hook"})
    assert done.status_code == 200, done.text
    assert time.monotonic() - started < 2.0


def test_lifecycle_notice_is_recorded_and_sent_once(
    owner: httpx.Client, receiver: Receiver
) -> None:
    hook = subscribe(owner, f"{receiver.url}/notices", ["license.expiring_soon"])
    customer = owner.post("/v1/customers", json={"name": "N", "email": "n@x.example"}).json()
    issued = owner.post(
        "/v1/licenses",
        json={
            "product": "render-farm",
            "plan": "farm-burst",
            "customer": customer["id"],
            "order_ref": uuid.uuid4().hex,
        },
    )
    assert issued.status_code == 201, issued.text
    serial = issued.json()["serial"]

    def mine() -> list[Any]:
        found = owner.get("/v1/notices").json()["notices"]
        return [n for n in found if n["serial"] == serial]

    [notice] = wait_for(mine)
    assert notice["kind"] == "license.expiring_soon"
    assert notice["lead"] == 30
    time.sleep(2.5)  # several more runs of the job
    assert len(mine()) == 1
    sent = [r for r in receiver.at("/notices") if r.json()["data"]["serial"] == serial]
    assert len(sent) == 1
    payload = verify(hook["secret"], sent[0])
    assert payload["type"] == "license.expiring_soon"
    assert payload["data"]["notice"] == notice["id"]


def test_mass_revocation_raises_one_alert_audited_counted_and_sent(
    server: Server, owner: httpx.Client, receiver: Receiver
) -> None:
    hook = subscribe(owner, f"{receiver.url}/alerts", ["alert.raised"])
    serials = [issue_license(owner)["serial"] for _ in range(8)]
    for serial in serials:
        revoked = owner.post(f"/v1/licenses/{serial}/revoke", json={"reason": "chargeback"})
        assert revoked.status_code == 200, revoked.text

    def raised() -> list[Any]:
        found = owner.get("/v1/alerts").json()["alerts"]
        return [a for a in found if a["kind"] == "revocations"]

    [alert] = wait_for(raised)
    assert alert["observed"] >= 6
    assert alert["threshold"] == 5
    assert alert["cleared_at"] is None
    time.sleep(2.5)  # the spike lasts: no second alert
    assert len(raised()) == 1
    entries = owner.get("/v1/audit", params={"action": "alert.raised"}).json()["entries"]
    assert [e["target"] for e in entries] == ["revocations"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'tenure_alerts_total{kind="revocations"} 1.0' in metrics
    assert 'tenure_alerts_open{account="default",kind="revocations"} 1.0' in metrics
    [sent] = wait_for(lambda: receiver.at("/alerts"))
    payload = verify(hook["secret"], sent)
    assert payload["type"] == "alert.raised"
    assert payload["data"]["alert"] == alert["id"]
    assert payload["data"]["kind"] == "revocations"


def test_cli_adds_lists_shows_deliveries_and_removes(
    server: Server, owner: httpx.Client, receiver: Receiver
) -> None:
    made = ok_json(
        tenure(
            server, "webhook", "add", f"{receiver.url}/cli", "--event", "license.*", "-o", "json"
        )
    )
    assert made["secret"].startswith("whsec_")
    assert made["id"] in [h["id"] for h in owner.get("/v1/webhooks").json()["webhooks"]]
    issue_license(owner)
    wait_for(lambda: receiver.at("/cli"))
    wait_for(lambda: deliveries(owner, made["id"], "delivered"))
    text = tenure(server, "webhook", "deliveries", made["id"], "--status", "delivered")
    assert text.returncode == 0, text.stderr
    assert "license.issued" in text.stdout
    assert tenure(server, "notice", "list").returncode == 0
    assert tenure(server, "alert", "list").returncode == 0
    assert tenure(server, "webhook", "remove", made["id"]).returncode == 0
    assert made["id"] not in [h["id"] for h in owner.get("/v1/webhooks").json()["webhooks"]]


# ---------------------------------------------------------------- SSRF


@pytest.fixture(scope="module")
def strict_owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("webhooks-strict") / "data"
    logs = tmp_path_factory.mktemp("webhooks-strict-logs")
    running = start_server(data_dir, logs)
    try:
        with running.client(running.owner_key()) as client:
            yield client
    finally:
        running.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "ftp://hooks.example.com/x",
    ],
)
def test_private_addresses_and_other_schemes_are_refused_without_the_setting(
    strict_owner: httpx.Client, url: str
) -> None:
    refused = strict_owner.post("/v1/webhooks", json={"url": url, "events": ["*"]})
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["field"] == "url"
    assert problem["type"].endswith("webhook_url_refused")
    assert strict_owner.get("/v1/webhooks").json() == {"webhooks": []}


def test_malformed_subscriptions_are_400(strict_owner: httpx.Client) -> None:
    for body in ({"url": "https://x.example/", "events": ["License.*"]}, {"events": ["*"]}):
        refused = strict_owner.post("/v1/webhooks", json=body)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == PROBLEM
