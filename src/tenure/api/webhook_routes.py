"""Webhooks, lifecycle notices and anomaly alerts (docs/webhooks.md).

``POST /v1/webhooks`` ``{"url", "events", "description"?}`` → 201 with the secret
(shown once); ``GET /v1/webhooks``, ``GET``/``DELETE /v1/webhooks/{id}``;
``PATCH /v1/webhooks/{id}`` ``{"enabled"}``;
``GET /v1/webhooks/{id}/deliveries?status=``;
``POST /v1/webhooks/{id}/deliveries/{delivery}/retry``; ``GET /v1/notices``;
``GET /v1/alerts``. Subscribing checks the URL (scheme, and every address its host
resolves to: 400 ``webhook_url_refused``); the routes only write rows, the worker
sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import entry_for, submit_audited
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.ops import alerts, notices, webhooks
from tenure.service.apikeys import Principal
from tenure.service.context import ServiceContext
from tenure.service.ledger import Write

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problem_responses(401, 403))
Manager = Annotated[Principal, Depends(require("webhook.manage"))]
Reader = Annotated[Principal, Depends(require("webhook.read"))]
NoticeReader = Annotated[Principal, Depends(require("notice.read"))]
AlertReader = Annotated[Principal, Depends(require("alert.read"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
MAX_BODY_BYTES = 8 * 1024


class WebhookIn(BaseModel):
    """A subscription: where to POST, which event types (``*``, ``license.*``,
    ``license.revoked``), and a note for people."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=webhooks.MAX_URL)]
    events: Annotated[list[str], Field(min_length=1, max_length=webhooks.MAX_PATTERNS)] = ["*"]
    description: Annotated[str, Field(max_length=500)] = ""


def _runtime(request: Request) -> ServiceContext:
    runtime: ServiceContext = request.app.state.runtime
    return runtime


def _box(request: Request) -> webhooks.SecretBox:
    box = getattr(request.app.state, "webhook_box", None)
    if box is None:
        box = request.app.state.webhook_box = webhooks.SecretBox.from_settings(
            _runtime(request).settings
        )
    return box


@router.post(
    "/webhooks",
    status_code=201,
    response_model=None,
    openapi_extra=documented(WebhookIn),
    responses=problem_responses(400, 503),
)
async def create_webhook(request: Request, caller: Manager) -> JSONResponse:
    """Subscribe ``{"url", "events", "description"}`` → 201 ``{"id", "url",
    "events", "description", "enabled", "created_at", "secret"}``; the secret
    (``whsec_…``) is shown only here. 400 ``webhook_url_refused`` for a URL that is
    not http(s) or whose host resolves to a non-public address (unless
    ``TENURE_WEBHOOK_ALLOW_PRIVATE``)."""
    body = await parse_body(request, WebhookIn, MAX_BODY_BYTES)
    settings = _runtime(request).settings
    webhooks.check_patterns(body.events)
    await run_in_threadpool(webhooks.check_url, body.url, settings.webhook_allow_private)
    box = await run_in_threadpool(_box, request)
    now = datetime.now(UTC)

    def create(conn: sa.Connection) -> dict[str, Any]:
        return webhooks.create_webhook(
            conn, caller.account, body.url, body.events, body.description, box, now
        )

    entry = entry_for(request, caller, detail={"events": body.events[:10]})
    # phase b: ops (a typed operation replaces the Write adapter)
    outcome = await submit_audited(request, Write(caller.account, create, entry))
    return JSONResponse(outcome.result, status_code=201)


@router.get("/webhooks", response_model=None)
def list_webhooks(request: Request, caller: Reader) -> dict[str, Any]:
    """``{"webhooks": [...]}``: the account's subscriptions, never their secrets."""
    return {"webhooks": webhooks.list_webhooks(_runtime(request).engine, caller.account)}


@router.get("/webhooks/{webhook}", response_model=None, responses=problem_responses(404))
def get_webhook(request: Request, caller: Reader, webhook: str) -> dict[str, Any]:
    """One subscription (without its secret); 404 if the account has none of that id."""
    return webhooks.get_webhook(_runtime(request).engine, caller.account, webhook)


class WebhookPatch(BaseModel):
    """What to change of a subscription."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


@router.patch(
    "/webhooks/{webhook}",
    response_model=None,
    openapi_extra=documented(WebhookPatch),
    responses=problem_responses(400, 404, 503),
)
async def update_webhook(request: Request, caller: Manager, webhook: str) -> dict[str, Any]:
    """``{"enabled": false}`` pauses a subscription (no new events; pending deliveries
    wait), ``{"enabled": true}`` resumes it → the subscription."""
    body = await parse_body(request, WebhookPatch, MAX_BODY_BYTES)

    def update(conn: sa.Connection) -> dict[str, Any]:
        return webhooks.set_enabled(conn, caller.account, webhook, body.enabled)

    entry = entry_for(request, caller, target=webhook[:80], detail={"enabled": body.enabled})
    # phase b: ops (a typed operation replaces the Write adapter)
    return (await submit_audited(request, Write(caller.account, update, entry))).result


@router.delete("/webhooks/{webhook}", response_model=None, responses=problem_responses(404, 503))
async def delete_webhook(request: Request, caller: Manager, webhook: str) -> dict[str, Any]:
    """Remove a subscription and its deliveries → ``{"id", "deleted": true}``."""

    def delete(conn: sa.Connection) -> dict[str, Any]:
        return webhooks.delete_webhook(conn, caller.account, webhook)

    entry = entry_for(request, caller, target=webhook[:80])
    # phase b: ops (a typed operation replaces the Write adapter)
    return (await submit_audited(request, Write(caller.account, delete, entry))).result


@router.get(
    "/webhooks/{webhook}/deliveries", response_model=None, responses=problem_responses(400, 404)
)
def list_deliveries(
    request: Request,
    caller: Reader,
    webhook: str,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """``{"deliveries": [...]}``, newest first, each with ``status`` (pending,
    delivered, failed), ``attempts``, ``last_status_code``, ``last_error``,
    ``next_attempt_at``, ``history`` (every attempt) and the ``payload`` sent."""
    engine = _runtime(request).engine
    found = webhooks.list_deliveries(engine, caller.account, webhook, status, limit)
    return {"deliveries": found}


@router.post(
    "/webhooks/{webhook}/deliveries/{delivery}/retry",
    response_model=None,
    responses=problem_responses(404, 409, 503),
)
async def retry_delivery(
    request: Request, caller: Manager, webhook: str, delivery: str
) -> dict[str, Any]:
    """Send a failed (or waiting) delivery again now → the delivery; 409 when it
    was already delivered."""
    now = datetime.now(UTC)

    def retry(conn: sa.Connection) -> dict[str, Any]:
        return webhooks.retry_delivery(conn, caller.account, webhook, delivery, now)

    entry = entry_for(request, caller, target=delivery[:80])
    # phase b: ops (a typed operation replaces the Write adapter)
    return (await submit_audited(request, Write(caller.account, retry, entry))).result


@router.get("/notices", response_model=None, tags=["notices"], responses=problem_responses(400))
def list_notices(request: Request, caller: NoticeReader, limit: Limit = 50) -> dict[str, Any]:
    """``{"notices": [...]}``: lifecycle notices (``license.expiring_soon``,
    ``license.grace_started``), newest first."""
    return {"notices": notices.list_notices(_runtime(request).engine, caller.account, limit)}


@router.get("/alerts", response_model=None, tags=["alerts"], responses=problem_responses(400))
def list_alerts(request: Request, caller: AlertReader, limit: Limit = 50) -> dict[str, Any]:
    """``{"alerts": [...]}``: anomaly alerts, newest first; ``cleared_at`` is None
    while one is open."""
    return {"alerts": alerts.list_alerts(_runtime(request).engine, caller.account, limit)}
