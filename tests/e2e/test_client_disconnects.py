"""A client that hangs up before its request is complete is a client disconnect
(status 499 in the access log and in ``tenure_http_requests_total``), never a server
error (docs/observability.md). Raw sockets against a real ``tenure serve``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.server import HOST, Server, running_server

HALF_SENT = 20
SETTLE_SECONDS = 10.0
"""How long the server may take to notice the closed connections."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("disconnect-data"),
        tmp_path_factory.mktemp("disconnect-logs"),
        TENURE_LOG_FORMAT="json",
    ) as running:
        yield running


def requests_with_status(server: Server, status: str, path: str = "/v1/check") -> float:
    """``tenure_http_requests_total`` of POST ``path`` with ``status``."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "tenure_http_requests_total" and labels["status"] == status:
                total += sample.value if labels["route"] == path else 0.0
    return total


def send_half_and_hang_up(server: Server, key: str) -> None:
    """Headers announcing a 64-byte JSON body, 32 bytes of it, then close."""
    body = json.dumps({"license": "x" * 20, "entitlement": "feature:export"}).encode()
    body = body.ljust(64)
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.05)  # let the server start reading the body


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {SETTLE_SECONDS} s: {what}")


def access_lines(server: Server, status: int) -> list[dict[str, object]]:
    lines = []
    for raw in server.stderr().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("logger") == "tenure.access" and line.get("status") == status:
            lines.append(line)
    return lines


def test_half_sent_checks_count_as_client_disconnects_not_server_errors(server: Server) -> None:
    key = server.owner_key()
    errors_before = requests_with_status(server, "500")
    gone_before = requests_with_status(server, "499")
    for _ in range(HALF_SENT):
        send_half_and_hang_up(server, key)
    wait_for(
        lambda: requests_with_status(server, "499") >= gone_before + HALF_SENT,
        f"{HALF_SENT} requests counted with status 499",
    )
    assert requests_with_status(server, "500") == errors_before
    assert requests_with_status(server, "499") == gone_before + HALF_SENT
    logged = access_lines(server, 499)
    assert len(logged) == HALF_SENT, server.stderr()[-3000:]
    assert {line["path"] for line in logged} == {"/v1/check"}
    assert not access_lines(server, 500)
    assert "Traceback" not in server.stderr()


def test_the_server_keeps_answering_after_clients_hang_up(server: Server) -> None:
    for _ in range(3):
        send_half_and_hang_up(server, server.owner_key())
    with server.client(server.owner_key()) as owner:
        answer = owner.post("/v1/check", json={"license": "nope", "entitlement": "feature:x"})
    assert answer.status_code == 200, answer.text
