"""The app factory: everything is built here from ``Settings``, nothing at import."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tenure import __version__
from tenure.api import (
    account_routes,
    activation_routes,
    apikey_routes,
    approval_routes,
    audit_routes,
    catalog_routes,
    check_routes,
    deployment_routes,
    durability_routes,
    ledger_routes,
    license_routes,
    ops_routes,
    problems,
    reference,
    token_routes,
    webhook_routes,
)
from tenure.api.auditing import AuditBatcher, AuditMiddleware
from tenure.api.auth import API_KEY, SECURITY_SCHEMES
from tenure.api.limits import BodyLimit, Limits, Rate, RateLimits, SecurityHeaders, TokenBuckets
from tenure.api.observability import ObservabilityMiddleware
from tenure.api.parameters import check_parameters
from tenure.api.schemas import Problem
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.console import routes as console
from tenure.crypto.files import PRIVATE_UMASK
from tenure.ops import reconcile
from tenure.ops.webhook_worker import WebhookServices
from tenure.ops.wiring import Operations
from tenure.service import queries
from tenure.service.accounts import ensure_account
from tenure.service.approvals import Executors
from tenure.service.ledger import SignRequest
from tenure.service.read_model import CheckReadModel

_log = logging.getLogger("tenure.app")


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    tracer_provider: TracerProvider | None = None,
    serving: bool = False,
) -> FastAPI:
    """Build the Tenure HTTP app. Opens (and migrates) the store on startup.

    ``tracer_provider`` replaces the one the settings describe (tests); ``serving``
    says the app is the whole of a server process (``tenure serve``, a worker), which
    freezes the heap startup built (``gc.freeze``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.open(settings)
        ensure_account(rt.store, settings.default_account, "operator", "system")
        for warning in rt.guard_against_sites():
            _log.error("sites: %s", warning)
        rt.state_guard.verify_all(rt.store, rt.sidecar)  # before the first append
        ledger = rt.ledger().start()
        app.state.runtime, app.state.ledger = rt, ledger
        app.state.tokens = rt.tokens()
        shipper = app.state.shipper = rt.shipper()
        shipper.start()
        mirror = app.state.mirror = rt.mirror()
        if mirror is not None:
            mirror.start()
        drills = rt.drills(ledger)
        drills.start()
        state_checks = rt.state_checks()
        state_checks.start()
        app.state.audit = AuditBatcher(
            ledger, settings.audit_batch_max, synced=settings.decision_sync == "disk"
        )
        app.state.read_model = CheckReadModel(rt.store, settings.check_cache_rows)
        if queries.latest_checkpoint(rt.store, settings.default_account) is None:
            # A fresh service publishes the empty tree, so clients have a checkpoint to
            # pin from the first request on.
            ledger.execute(SignRequest(settings.default_account))
        # --- Operations: background workers start here (docs/operations.md) ---
        webhook_services = WebhookServices.start(rt, ledger)
        ops = Operations(settings, rt.store, shipper, tracer_provider).start()
        app.state.schema_head = ops.schema_head
        reconciler = reconcile.schedule(rt.store, ledger, rt.settings)
        reconciler.start()
        if serving:
            # What startup made lives as long as the process: keep it out of the
            # cyclic collector's full passes, which otherwise stall the event loop
            # for tens of milliseconds (docs/benchmarks.md: check p99 96 -> 22 ms).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            # --- Operations: background workers stop here ---
            webhook_services.stop()
            ops.stop()
            reconciler.stop()
            drills.stop()
            state_checks.stop()
            ledger.close()
            shipper.stop()
            if mirror is not None:
                mirror.stop()
            if runtime is None:
                rt.close()

    app = TenureApp(
        title="Tenure",
        version=__version__,
        summary="License entitlements on a tamper-evident ledger.",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN: ours serve them (reference).
        docs_url=None,
        redoc_url=None,
        # Every route: a parameter no backend can store is a 400 before anything runs.
        dependencies=[Depends(check_parameters)],
    )
    problems.install(app)
    _document(app)
    reference.install(app)
    app.add_middleware(AuditMiddleware)
    # Added last = outermost: a body over the limit, a throttled client and every
    # answer (429 and 413 included) pass through these before anything else.
    limits = Limits.from_settings(settings)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    app.add_middleware(RateLimits, limits=limits)
    app.add_middleware(SecurityHeaders)
    for routes in (
        ledger_routes,
        catalog_routes,
        check_routes,
        license_routes,
        apikey_routes,
        audit_routes,
        account_routes,
        activation_routes,
        token_routes,
        durability_routes,
        approval_routes,
        # --- Operations (docs/operations.md) ---
        webhook_routes,
        ops_routes,
    ):
        app.include_router(routes.router)
    # Outermost: its latency and access line include every other middleware.
    app.add_middleware(ObservabilityMiddleware, slow_ms=settings.slo_latency_ms)
    if settings.proxy_networks():
        # Before anything reads the client address (rate limits, sign-in failures)
        # or the scheme (HSTS, Secure cookies): only these proxies may restate them.
        # `tenure serve` turns uvicorn's own handling off (docs/hardening.md).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.proxy_networks())
    app.include_router(deployment_routes.router)
    per_minute = float(settings.rate_auth_failures_per_minute)
    failures = TokenBuckets(Rate(per_minute / 60.0, per_minute))
    console.install(app, failures, problems.status_of)
    app.state.executors = _executors()
    return app


class TenureApp(FastAPI):
    """The FastAPI app, with ``POST /v1/check`` dispatched straight to its route through
    the same middleware and exception handlers (``check_routes.direct_check``)."""

    _direct: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/check" and scope["method"] == "POST":
            if self._direct is None:
                self._direct = check_routes.direct_check(
                    self.user_middleware, self.exception_handlers
                )
            scope["app"] = self
            await self._direct(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _executors() -> Executors[Request]:
    """What executes each approved action that is not a ledger command."""
    executors: Executors[Request] = Executors()
    executors.register("keys.rotate", approval_routes.rotate_keys)
    executors.register("apikey.revoke", approval_routes.revoke_key)
    executors.register("restore", durability_routes.execute_restore)
    return executors


def _document(app: FastAPI) -> None:
    """Finish the OpenAPI document FastAPI generates, so that it says what the server
    answers: the ``Problem`` schema the error responses name, the security schemes,
    and no 422 — validation errors are 400 problems (``tenure.api.problems``), so
    FastAPI's automatic 422 ``HTTPValidationError`` is never sent."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for unsent in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unsent, None)
        schemas[Problem.__name__] = Problem.model_json_schema(mode="serialization")
        components["securitySchemes"] = SECURITY_SCHEMES
        for path, item in document["paths"].items():
            for method, operation in item.items():
                operation["responses"].pop("422", None)
                if path.startswith("/v1/"):
                    operation.setdefault("security", API_KEY["security"])
                    _document_limits(method.upper(), operation["responses"])
                    _document_storage(operation["responses"])
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _document_limits(method: str, responses: dict[str, Any]) -> None:
    """The answers of ``tenure.api.limits``: 429 on every ``/v1`` operation (a client
    IP that failed authentication too often is throttled everywhere), 413 on those
    that take a body."""
    extra = [429] + ([413] if method in ("POST", "PUT", "PATCH", "DELETE") else [])
    for status, documented in problems.problem_responses(*extra).items():
        responses.setdefault(str(status), documented)


def _document_storage(responses: dict[str, Any]) -> None:
    """What every ``/v1`` operation may answer because of the store: 400 for a
    parameter no backend can store (``tenure.api.parameters``), 503 while the
    database is unreachable."""
    for status, documented in problems.problem_responses(400, 503).items():
        responses.setdefault(str(status), documented)


def app_from_env() -> FastAPI:
    """The app with settings from ``TENURE_*`` only: the factory that process managers
    import (``uvicorn --factory tenure.app:app_from_env``, granian, several workers).

    It is the start of a server process, as ``tenure`` is of a CLI one: it sets the
    same umask (0o077), so that what this process creates is for its user only."""
    os.umask(PRIVATE_UMASK)
    return create_app(Settings(), serving=True)
