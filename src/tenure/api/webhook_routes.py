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

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import execute_audited
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.ops import alerts, handlers, notices, webhooks
from tenure.ops.views import (
    AlertList,
    CreatedWebhook,
    DeletedWebhook,
    DeliveryList,
    DeliveryView,
    NoticeList,
    WebhookList,
    WebhookView,
)
from tenure.service.apikeys import Principal

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


class WebhookPatch(BaseModel):
    """What to change of a subscription."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


def _box(request: Request) -> webhooks.SecretBox:
    box = getattr(request.app.state, "webhook_box", None)
    if box is None:
        box = request.app.state.webhook_box = webhooks.SecretBox.from_settings(
            runtime_of(request).settings
        )
    return box


def _submit(request: Request) -> handlers.Submit:
    """Submits to the ledger writer, which audits the request (``execute_audited``)."""
    return partial(execute_audited, request)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=CreatedWebhook,
    openapi_extra=documented(WebhookIn),
    responses=problem_responses(400, 503),
)
async def create_webhook(request: Request, caller: Manager) -> CreatedWebhook:
    """Subscribe ``{"url", "events", "description"}`` → 201 the subscription with
    its ``secret`` (``whsec_…``), shown only here. 400 ``webhook_url_refused`` for a
    URL that is not http(s) or whose host resolves to a non-public address (unless
    ``TENURE_WEBHOOK_ALLOW_PRIVATE``)."""
    body = await parse_body(request, WebhookIn, MAX_BODY_BYTES)
    box = await run_in_threadpool(_box, request)
    return await run_in_threadpool(
        handlers.create_webhook,
        _submit(request),
        caller,
        body.url,
        body.events,
        body.description,
        box,
        runtime_of(request).settings,
    )


@router.get("/webhooks", response_model=WebhookList)
def list_webhooks(request: Request, caller: Reader) -> WebhookList:
    """The account's subscriptions, never their secrets."""
    return WebhookList(webhooks=webhooks.list_webhooks(runtime_of(request).store, caller.account))


@router.get("/webhooks/{webhook}", response_model=WebhookView, responses=problem_responses(404))
def get_webhook(request: Request, caller: Reader, webhook: str) -> WebhookView:
    """One subscription (without its secret); 404 if the account has none of that id."""
    return webhooks.get_webhook(runtime_of(request).store, caller.account, webhook)


@router.patch(
    "/webhooks/{webhook}",
    response_model=WebhookView,
    openapi_extra=documented(WebhookPatch),
    responses=problem_responses(400, 404, 503),
)
async def update_webhook(request: Request, caller: Manager, webhook: str) -> WebhookView:
    """``{"enabled": false}`` pauses a subscription (no new events; pending deliveries
    wait), ``{"enabled": true}`` resumes it → the subscription."""
    body = await parse_body(request, WebhookPatch, MAX_BODY_BYTES)
    return await run_in_threadpool(
        handlers.set_webhook_enabled, _submit(request), caller, webhook, body.enabled
    )


@router.delete(
    "/webhooks/{webhook}", response_model=DeletedWebhook, responses=problem_responses(404, 503)
)
async def delete_webhook(request: Request, caller: Manager, webhook: str) -> DeletedWebhook:
    """Remove a subscription and its deliveries → ``{"id", "deleted": true}``."""
    return await run_in_threadpool(handlers.delete_webhook, _submit(request), caller, webhook)


@router.get(
    "/webhooks/{webhook}/deliveries",
    response_model=DeliveryList,
    responses=problem_responses(400, 404),
)
def list_deliveries(
    request: Request,
    caller: Reader,
    webhook: str,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 100,
) -> DeliveryList:
    """The deliveries, newest first, each with ``status`` (pending, delivered,
    failed), ``attempts``, ``last_status_code``, ``last_error``, ``next_attempt_at``,
    ``history`` (every attempt) and the ``payload`` sent."""
    store = runtime_of(request).store
    found = webhooks.list_deliveries(store, caller.account, webhook, status, limit)
    return DeliveryList(deliveries=found)


@router.post(
    "/webhooks/{webhook}/deliveries/{delivery}/retry",
    response_model=DeliveryView,
    responses=problem_responses(404, 409, 503),
)
async def retry_delivery(
    request: Request, caller: Manager, webhook: str, delivery: str
) -> DeliveryView:
    """Send a failed (or waiting) delivery again now → the delivery; 409 when it
    was already delivered."""
    return await run_in_threadpool(
        handlers.retry_delivery, _submit(request), caller, webhook, delivery
    )


@router.get(
    "/notices", response_model=NoticeList, tags=["notices"], responses=problem_responses(400)
)
def list_notices(request: Request, caller: NoticeReader, limit: Limit = 50) -> NoticeList:
    """Lifecycle notices (``license.expiring_soon``, ``license.grace_started``),
    newest first."""
    found = notices.list_notices(runtime_of(request).store, caller.account, limit)
    return NoticeList(notices=found)


@router.get("/alerts", response_model=AlertList, tags=["alerts"], responses=problem_responses(400))
def list_alerts(request: Request, caller: AlertReader, limit: Limit = 50) -> AlertList:
    """Anomaly alerts, newest first; ``cleared_at`` is None while one is open."""
    return AlertList(alerts=alerts.list_alerts(runtime_of(request).store, caller.account, limit))
