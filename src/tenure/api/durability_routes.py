"""``GET /v1/durability``: how far the sites are behind the ledger (the shipping lag
against the RPO setting) and when shipping last succeeded. ``GET /v1/drills/latest``.
``POST /v1/restores``: restore the live store from a configured site (restorer)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.approval_routes import gated_route, request_approval
from tenure.api.auth import require
from tenure.api.bodies import parse_body
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.domain.commands import RecordRestore
from tenure.durability import drill, live
from tenure.durability.shipping import Shipper
from tenure.errors import InvalidInput, NotFound
from tenure.service.apikeys import Principal
from tenure.service.approvals import Execution
from tenure.service.ledger import SignRequest

router = APIRouter(prefix="/v1", tags=["durability"], responses=problem_responses(401, 403))
Reader = Annotated[Principal, Depends(require("durability.read"))]
Restorer = Annotated[Principal, Depends(require("ledger.restore"))]


@router.get("/durability", response_model=None)
def durability_status(request: Request, caller: Reader) -> dict[str, Any]:
    """``{"sites": [...], "rpo_seconds", "behind": {site: events}, "last_shipped_at",
    "shipping": bool}`` (``Shipper.status``)."""
    shipper: Shipper = request.app.state.shipper
    settings = request.app.state.runtime.settings
    return {
        "sites": settings.site_urls(),
        "rpo_seconds": settings.ship_interval_seconds,
        **shipper.status(),
    }


@router.get("/drills/latest", response_model=None, responses=problem_responses(404))
def latest_drill(request: Request, caller: Reader) -> dict[str, Any]:
    """The account's newest restore drill: ``{"at", "site", "passed", "rto_seconds",
    "rpo_events", "rpo_seconds", "restored_size", "live_size", "detail"}``; 404
    before the first (``tenure drill``, or ``TENURE_DRILL_INTERVAL_MINUTES``)."""
    report = drill.latest(request.app.state.runtime.store, caller.account)
    if report is None:
        raise NotFound("no drill has run for this account yet")
    return report.to_json()


class RestoreIn(BaseModel):
    """Why (recorded in the ``ledger.restored`` event), and which configured site to
    restore from (default: the first of ``TENURE_SITES``)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]
    site: Annotated[str, Field(min_length=1, max_length=500)] | None = None


async def execute_restore(
    request: Request, caller: Principal, payload: Mapping[str, Any]
) -> Execution:
    """The executor of an approved ``restore`` (registered by ``tenure.app``): sign
    the live ledger (approval events included), wait until the site holds it (a
    restore must extend the live ledger), then restore from the site
    (``tenure.durability.live``) → the report and the ``ledger.restored`` command."""
    runtime = runtime_of(request)
    account, url = caller.account, payload["site"]
    await asyncio.wrap_future(request.app.state.ledger.submit(SignRequest(account)))
    await run_in_threadpool(live.wait_for_site, runtime, account, url)
    report = await run_in_threadpool(live.restore_from_site, runtime, account, url)
    also = RecordRestore(
        url, report.size, report.root, report.digest, report.snapshot, report.replaced
    )
    return Execution(report.to_json(), also)


@router.post("/restores", **gated_route(400, 409, 503, body=RestoreIn))
async def restore_live(request: Request, caller: Restorer) -> JSONResponse:
    """Ask to restore the caller's account, while the service runs, from a configured
    site (never from a URL the request names that is not one) → 202
    ``{"approval": {...}}``: a restore needs a second principal's approval
    (``POST /v1/approvals/{id}/approve`` by another restorer or an owner; see
    docs/approvals.md). Once approved, the site's proven ledger replaces the
    store's, which it must extend, recovering events the store lacks or lost; the
    projection is rebuilt and proven; a ``ledger.restored`` event records it with
    ``approval.executed``. The approval fails with ``restore_refused`` when the site
    cannot prove a restore or the store has events the site lacks."""
    body = await parse_body(request, RestoreIn)
    runtime = runtime_of(request)
    urls = runtime.settings.site_urls()
    url = body.site or (urls[0] if urls else None)
    if url is None or url not in urls:
        raise InvalidInput("site must be one of the configured sites (TENURE_SITES)", field="site")
    return await request_approval(
        request, caller, "restore", caller.account, {"site": url}, body.reason
    )
