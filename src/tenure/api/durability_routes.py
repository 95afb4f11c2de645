"""``GET /v1/durability``: how far the sites are behind the ledger (the shipping lag
against the RPO setting) and when shipping last succeeded. ``GET /v1/drills/latest``.
``POST /v1/restores``: restore the live store from a configured site (restorer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.approval_routes import request_approval
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.roles import require
from tenure.api.schemas import NEEDS_APPROVAL
from tenure.durability import drill
from tenure.durability import restore as restoring
from tenure.durability.shipping import Shipper
from tenure.durability.sites import open_site
from tenure.errors import InvalidInput, NotFound, TenureError
from tenure.service.apikeys import Principal
from tenure.service.personal import reapply_erasures
from tenure.service.runtime import Runtime
from tenure.store.engine import write_transaction

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
    report = drill.latest(request.app.state.runtime.engine, caller.account)
    if report is None:
        raise NotFound("no drill has run for this account yet")
    return report.to_json()


class RestoreIn(BaseModel):
    """Why (recorded in the ``ledger.restored`` event), and which configured site to
    restore from (default: the first of ``TENURE_SITES``)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]
    site: Annotated[str, Field(min_length=1, max_length=500)] | None = None


async def restore_from_site(runtime: Runtime, account: str, url: str) -> restoring.RestoreReport:
    """Restore ``account`` of the live store from the configured site ``url``: the
    site's proven ledger replaces the store's, which it must extend (see ``tenure
    restore --replace``); the projection is rebuilt and proven. Raises
    ``RestoreRefused`` when the site cannot prove a restore or the store has events
    the site lacks. The caller records ``ledger.restored``."""
    verifier = runtime.ledger_signer(account)[1].verifier

    def run() -> restoring.RestoreReport:
        try:
            proven = restoring.prove(open_site(url), account, [verifier])
            with write_transaction(runtime.engine) as conn:
                replaced = restoring.apply(conn, proven, [verifier], replace=True)
            return restoring.check(runtime.engine, proven, replaced)
        except restoring.RestoreRefused:
            raise
        except TenureError as exc:  # a site that is down or does not prove itself
            raise restoring.RestoreRefused(f"{url}: {exc.message}") from exc

    report = await run_in_threadpool(run)
    if runtime.personal is not None:  # a restore never brings erased personal data back
        await run_in_threadpool(reapply_erasures, runtime.engine, runtime.personal.datakeys)
    return report


@router.post(
    "/restores",
    status_code=202,
    response_model=None,
    openapi_extra=documented(RestoreIn),
    responses={**NEEDS_APPROVAL, **problem_responses(400, 409, 503)},
)
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
    runtime: Runtime = request.app.state.runtime
    urls = runtime.settings.site_urls()
    url = body.site or (urls[0] if urls else None)
    if url is None or url not in urls:
        raise InvalidInput("site must be one of the configured sites (TENURE_SITES)", field="site")
    return await request_approval(
        request, caller, "restore", caller.account, {"site": url}, body.reason
    )
