"""Hardening at the ASGI edge: security headers, a body limit for every route, and
rate limits (token buckets) on checks, activations and authentication failures.

Three pure-ASGI middlewares, outermost first (``tenure.app.factory`` installs them):

- ``SecurityHeaders`` adds the headers every response carries (HSTS when the request
  came over TLS, ``Content-Security-Policy`` on HTML, ``Cache-Control: no-store`` on
  ``/v1``, whose answers may carry keys), and makes a ``Location`` that names the
  request's own ``Host`` relative: that header is the client's to choose.
- ``RateLimits`` answers 429 (``Retry-After``) when a client IP or a credential has
  spent its bucket on ``/v1/check*``, on activations and tokens, or when a client IP
  has failed authentication too often (key guessing): from then on every request
  with credentials from that IP is refused until its bucket refills.
- ``BodyLimit`` answers 413 for a body over the limit, declared or streamed
  (chunked bodies have no ``Content-Length``), before a route reads it.

The buckets live in the memory of one process: with ``--workers N`` each worker has
its own, so a client may get up to N times the configured rate (docs/hardening.md).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenure.config import Settings

PROBLEM = b"application/problem+json"
TYPE_BASE = "https://tenure.dev/problems/"
MAX_BUCKETS = 100_000
"""Buckets kept per limiter; beyond it the full (idle) ones are forgotten."""
DRAIN_FACTOR = 8
"""An oversized body is read and dropped up to ``DRAIN_FACTOR`` × the limit before the
413 goes out: a client still writing when the server closes would see a reset
instead of the answer. Beyond that the answer goes out at once."""
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"


@dataclass(frozen=True)
class Rate:
    """``per_second`` tokens refill a bucket holding at most ``burst``."""

    per_second: float
    burst: float


@dataclass
class TokenBuckets:
    """One token bucket per key (an IP, a credential digest), refilled lazily.

    ``clock`` is injectable so that tests need not sleep."""

    rate: Rate
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _level(self, key: str, now: float) -> float:
        tokens, then = self._buckets.get(key, (self.rate.burst, now))
        return min(self.rate.burst, tokens + (now - then) * self.rate.per_second)

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if there was one, else the seconds
        until there will be (nothing is spent then)."""
        now = self.clock()
        tokens = self._level(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate.per_second
        self._remember(key, (tokens - 1.0, now))
        return 0.0

    def wait(self, key: str) -> float:
        """Seconds until ``key``'s bucket holds a token (0.0: it does), spending none."""
        tokens = self._level(key, self.clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate.per_second

    def _remember(self, key: str, value: tuple[float, float]) -> None:
        if key not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            now = self.clock()
            full = [k for k in self._buckets if self._level(k, now) >= self.rate.burst]
            for k in full or list(self._buckets)[: MAX_BUCKETS // 10]:
                del self._buckets[k]
        self._buckets[key] = value


@dataclass(frozen=True)
class Limits:
    """The limits of one process, built from ``Settings``."""

    check: Rate
    activation: Rate
    auth_failures: Rate
    max_body_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        per_minute = settings.rate_auth_failures_per_minute
        return cls(
            check=Rate(settings.rate_check_per_second, settings.rate_check_burst),
            activation=Rate(settings.rate_activation_per_second, settings.rate_activation_burst),
            auth_failures=Rate(per_minute / 60.0, per_minute),
            max_body_bytes=settings.max_body_bytes,
        )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def send_problem(
    send: Send, status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """An RFC 9457 answer sent straight from a middleware (no route, no handler)."""
    body = orjson.dumps(
        {
            "type": TYPE_BASE + code,
            "title": code.replace("_", " "),
            "status": status,
            "detail": detail,
        }
    )
    start = [(b"content-type", PROBLEM), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start + headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"
        api = str(scope.get("path", "")).startswith("/v1/")
        host = _header(scope, b"host")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [_relative_location(h, host) for h in message.get("headers", [])]
                names = {name.lower() for name, _ in headers}
                headers += security_headers(names, _content_type(headers), tls=tls, api=api)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _relative_location(header: tuple[bytes, bytes], host: bytes | None) -> tuple[bytes, bytes]:
    """``header``, or a ``Location`` pointing at ``host`` (the request's Host header)
    made relative. Starlette builds absolute redirects (a trailing slash dropped)
    from the Host header, so a forged Host would come back in the answer. Compared
    as text: a Host header need not parse as one."""
    name, value = header
    if name.lower() != b"location" or not host:
        return header
    for scheme in (b"http://", b"https://"):
        prefix = scheme + host.lower()
        rest = bytes(value[len(prefix) :])
        if bytes(value[: len(prefix)]).lower() == prefix and rest[:1] in (b"", b"/", b"?", b"#"):
            # One leading slash only: "//evil.example" (or "/\\evil") names another host.
            return name, b"/" + rest.lstrip(b"/\\")
    return header


def security_headers(
    present: set[bytes], content_type: bytes, *, tls: bool, api: bool
) -> list[tuple[bytes, bytes]]:
    """The headers a response lacks: ``present`` holds the lower-case names it has."""
    wanted = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    if tls:
        wanted.append((b"strict-transport-security", HSTS.encode()))
    if content_type.startswith(b"text/html"):
        wanted.append((b"content-security-policy", CSP.encode()))
    if api:
        # /v1 answers carry license keys, API keys and tokens: never in a cache.
        wanted.append((b"cache-control", b"no-store"))
    return [(name, value) for name, value in wanted if name not in present]


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name.lower() == b"content-type":
            return bytes(value).lower()
    return b""


def limited_kind(method: str, path: str) -> str | None:
    """Which rate applies to a request: ``check``, ``activation`` or none."""
    if method != "POST" and method != "DELETE":
        return None
    if path in ("/v1/check", "/v1/check/batch"):
        return "check"
    if path.startswith("/v1/activations/") or path in ("/v1/tokens", "/v1/tokens/refresh"):
        return "activation"
    if path.startswith("/v1/licenses/") and path.endswith("/activations"):
        return "activation"
    return None


class RateLimits:
    """429 with ``Retry-After`` once a client IP or a credential exceeds its rate."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.buckets = {
            "check": (TokenBuckets(limits.check), TokenBuckets(limits.check)),
            "activation": (TokenBuckets(limits.activation), TokenBuckets(limits.activation)),
        }
        self.failures = TokenBuckets(limits.auth_failures)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = str(client[0]) if client else "unknown"
        credential = _header(scope, b"authorization")
        wait, why = self._admit(ip, credential, scope["method"], scope["path"])
        if wait > 0:
            await send_problem(
                send,
                429,
                "rate_limited",
                why,
                [(b"retry-after", str(max(1, math.ceil(wait))).encode())],
            )
            return

        async def send_counting_failures(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.failures.take(ip)
            await send(message)

        await self.app(scope, receive, send_counting_failures if credential else send)

    def _admit(
        self, ip: str, credential: bytes | None, method: str, path: str
    ) -> tuple[float, str]:
        """Seconds to wait (0.0: go on) and why."""
        if credential is not None:
            wait = self.failures.wait(ip)
            if wait > 0:
                return wait, "too many authentication failures from this address"
        kind = limited_kind(method, path)
        if kind is None:
            return 0.0, ""
        by_ip, by_key = self.buckets[kind]
        wait = by_ip.take(ip)
        if wait == 0 and credential is not None:
            # A digest, so that no credential is kept in memory.
            wait = by_key.take(hashlib.sha256(credential).hexdigest())
        return wait, f"too many {kind} requests; retry later"


class BodyOverLimit(Exception):
    """Raised by ``BodyLimit``'s ``receive`` once the body exceeds the limit."""


class BodyLimit:
    """413 for any request body over ``limit`` bytes, with or without
    ``Content-Length``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = (_header(scope, b"content-length") or b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.limit:
            if int(declared) <= DRAIN_FACTOR * self.limit:
                await self._drain(receive, 0)
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if message.get("more_body", False):
                        await self._drain(receive, received)
                    raise BodyOverLimit
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, noting_send)
        except BodyOverLimit:
            if started:
                raise
            await self._refuse(send)

    async def _drain(self, receive: Receive, received: int) -> None:
        """Read and drop the rest of the body, up to ``DRAIN_FACTOR`` × the limit."""
        while received <= DRAIN_FACTOR * self.limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send: Send) -> None:
        detail = f"the body must be at most {self.limit} bytes"
        await send_problem(send, 413, "payload_too_large", detail, [(b"connection", b"close")])
