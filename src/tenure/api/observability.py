"""What every HTTP request leaves behind, in one pure ASGI middleware (no
``BaseHTTPMiddleware``: it would add a task and a queue per request): its server
span, its request count and latency, its access log line, and, for
``/v1/check*``, the per-minute SLO counters (``tenure.ops.counters``).
401 answers are counted here too, as ``tenure_auth_failures_total`` and
``auth.failed``: every 401 passes through, whichever route or dependency refused.

A client that hangs up before its answer starts (a half-sent body, a closed
connection) is counted and logged with status 499, nginx's "client closed request":
it is not a server error, so it never reaches the 5xx count or the SLO.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenure.observability import metrics, tracing
from tenure.observability.logs import ACCESS_LOGGER
from tenure.ops import counters

_access = logging.getLogger(ACCESS_LOGGER)
_CHECK_PATHS = frozenset({"/v1/check", "/v1/check/batch"})
_UNMATCHED = "unmatched"
"""The route label of a request no route matched (keeps the label set bounded)."""
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client left before the answer started."""
_OTHER_METHOD = "OTHER"
"""The method label of any other method: a client chooses the method, and each new
one would otherwise add series to every process until it restarts."""


class ObservabilityMiddleware:
    """Spans, metrics, access log and SLO counters of each HTTP request."""

    def __init__(self, app: ASGIApp, slow_ms: float) -> None:
        self.app = app
        self.slow_seconds = slow_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answering = gone = False

        async def receive_noting_disconnect() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or (message["type"] == "http.disconnect" and not answering)
            return message

        async def send_noting_status(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
            await send(message)

        with self._span(scope) as span:
            try:
                await self.app(scope, receive_noting_disconnect, send_noting_status)
            except ClientDisconnect:
                # Starlette raises it when the body ends in a disconnect: nobody is
                # left to answer, and it is no server error (uvicorn would log a
                # traceback and we would count a 500).
                if not gone:
                    raise
            finally:
                if gone:
                    status = CLIENT_CLOSED_REQUEST
                elapsed = time.perf_counter() - started
                route = _route(scope)
                if span is not None:
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                self._record(scope, route, status, elapsed)

    @staticmethod
    def _span(scope: Scope) -> AbstractContextManager[Any]:
        if not tracing.enabled():
            return nullcontext()
        return tracing.server_span(scope["method"], scope["path"], scope["headers"])

    def _record(self, scope: Scope, route: str, status: int, elapsed: float) -> None:
        method = scope["method"]
        if metrics.process_metrics_enabled():
            label = method if method in _METHODS else _OTHER_METHOD
            metrics.labelled(metrics.HTTP_REQUESTS, route, label, str(status)).inc()
            metrics.labelled(metrics.HTTP_SECONDS, route, label).observe(elapsed)
            if status == 401:
                metrics.AUTH_FAILURES.inc()
        if status == 401:
            counters.count("", counters.AUTH_FAILED)
        elif scope["path"] in _CHECK_PATHS and method == "POST":
            self._count_check(scope, status, elapsed)
        if _access.isEnabledFor(logging.INFO):
            _log_access(scope, status, elapsed)

    def _count_check(self, scope: Scope, status: int, elapsed: float) -> None:
        if status in (400, 403, 413, 429, CLIENT_CLOSED_REQUEST):
            return  # refused before any decision, or the client left: not part of the SLO
        account = _account(scope)
        counters.count(account, counters.CHECK_TOTAL)
        if status >= 500:
            counters.count(account, counters.CHECK_ERROR)
        if elapsed > self.slow_seconds:
            counters.count(account, counters.CHECK_SLOW)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED


def _account(scope: Scope) -> str:
    principal = (scope.get("state") or {}).get("principal")
    account = getattr(principal, "account", "")
    return account if isinstance(account, str) else ""


def _log_access(scope: Scope, status: int, elapsed: float) -> None:
    method, path = scope["method"], scope["path"]
    duration_ms = round(elapsed * 1000, 3)
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
    }
    ids = tracing.current_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    _access.info("%s %s %d %.1fms", method, path, status, duration_ms, extra=fields)
