"""Rate limits (429 with Retry-After), the body limit (413) and the JSON nesting limit
(400) of a real server started with low limits (``TENURE_RATE_*``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.server import Server, start_server
from tenure.api.limits import Rate, TokenBuckets

CHECK_RATE = 20
"""Checks per second (and burst) per client IP and per credential on the test server."""
AUTH_FAILURES = 5
"""Failed authentications per minute per client IP on the auth-failure server."""
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("limited-data"),
        tmp_path_factory.mktemp("limited-logs"),
        TENURE_RATE_CHECK_PER_SECOND=str(CHECK_RATE),
        TENURE_RATE_CHECK_BURST=str(CHECK_RATE),
    )
    try:
        yield server
    finally:
        server.stop()


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


def test_a_burst_over_the_check_rate_gets_429_with_retry_after(limited: Server) -> None:
    body = {"license": "nope", "entitlement": "feature:x"}
    with limited.client(limited.owner_key()) as owner:
        answers = [owner.post("/v1/check", json=body) for _ in range(3 * CHECK_RATE)]
        throttled = [r for r in answers if r.status_code == 429]
        assert throttled, [r.status_code for r in answers]
        assert_problem(throttled[0], 429)
        assert int(throttled[0].headers["retry-after"]) >= 1
        # Routes without a rate are not affected by the spent check bucket.
        assert owner.get("/v1/ledger/checkpoint").status_code == 200


def test_checks_at_a_normal_rate_are_never_throttled(limited: Server) -> None:
    time.sleep(1.5)  # let the bucket refill after any earlier burst
    body = {"license": "nope", "entitlement": "feature:x"}
    with limited.client(limited.owner_key()) as owner:
        statuses = []
        for _ in range(2 * CHECK_RATE):
            statuses.append(owner.post("/v1/check", json=body).status_code)
            time.sleep(2.0 / CHECK_RATE)  # half the configured rate
    assert 429 not in statuses, statuses


def test_a_body_over_the_limit_is_a_413_with_content_length(limited: Server) -> None:
    with limited.client(limited.owner_key()) as owner:
        response = owner.post(
            "/v1/customers",
            content=b'{"name": "' + b"x" * (2 * MIB) + b'"}',
            headers={"content-type": "application/json"},
        )
    assert_problem(response, 413)


def test_a_chunked_body_over_the_limit_is_a_413(limited: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(32):
            yield b"x" * (64 * 1024)
        yield b'"}'

    with limited.client(limited.owner_key()) as owner:
        response = owner.post(
            "/v1/customers", content=chunks(), headers={"content-type": "application/json"}
        )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413)


def test_deeply_nested_json_is_a_400(limited: Server) -> None:
    nested = "[" * 40 + "]" * 40
    with limited.client(limited.owner_key()) as owner:
        response = owner.post(
            "/v1/customers",
            content=f'{{"name": "deep", "email": "d@example.com", "x": {nested}}}',
            headers={"content-type": "application/json"},
        )
    body = assert_problem(response, 400)
    assert "nests deeper" in str(body["detail"])


def test_every_answer_carries_the_security_headers(limited: Server) -> None:
    with limited.client() as anonymous:
        response = anonymous.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers  # plain HTTP


def test_authentication_failures_are_throttled_per_address(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_server(
        tmp_path_factory.mktemp("auth-data"),
        tmp_path_factory.mktemp("auth-logs"),
        TENURE_RATE_AUTH_FAILURES_PER_MINUTE=str(AUTH_FAILURES),
    )
    try:
        with server.client("tnr_" + "a" * 52) as guesser:
            statuses = [guesser.get("/v1/products").status_code for _ in range(AUTH_FAILURES)]
            assert statuses == [401] * AUTH_FAILURES
            throttled = guesser.get("/v1/products")
        assert_problem(throttled, 429)
        assert int(throttled.headers["retry-after"]) >= 1
        # Once throttled, a valid key from the same address waits too (no oracle) ...
        with server.client(server.owner_key()) as owner:
            assert owner.get("/v1/ledger/checkpoint").status_code == 429
        # ... while requests without credentials are not concerned.
        with server.client() as anonymous:
            assert anonymous.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_token_buckets_refill_at_their_rate_and_say_how_long_to_wait() -> None:
    now = [0.0]
    buckets = TokenBuckets(Rate(per_second=2.0, burst=3.0), clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # one bucket per key
    now[0] = 0.5
    assert buckets.wait("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0.0


def test_the_limits_are_settings(tmp_path: Path) -> None:
    from tenure.api.limits import Limits
    from tenure.config import Settings

    limits = Limits.from_settings(Settings(data_dir=tmp_path, rate_auth_failures_per_minute=6))
    assert limits.auth_failures == Rate(per_second=0.1, burst=6)
    assert limits.max_body_bytes == MIB
