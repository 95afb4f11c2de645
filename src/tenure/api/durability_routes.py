"""``GET /v1/durability``: how far the sites are behind the ledger (the shipping lag
against the RPO setting) and when shipping last succeeded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from tenure.api.problems import problem_responses
from tenure.api.roles import require
from tenure.durability import drill
from tenure.durability.shipping import Shipper
from tenure.errors import NotFound
from tenure.service.apikeys import Principal

router = APIRouter(prefix="/v1", tags=["durability"], responses=problem_responses(401, 403))
Reader = Annotated[Principal, Depends(require("durability.read"))]


@router.get("/durability", response_model=None)
def durability_status(request: Request, caller: Reader) -> dict[str, Any]:
    """``{"sites": [...], "rpo_seconds", "behind": {site: events}, "last_shipped_at",
    "shipping": bool}``: ``behind`` counts committed events (all accounts) not yet at
    each site after the last pass; ``shipping`` is false when no site is configured
    or another process on this store ships."""
    shipper: Shipper = request.app.state.shipper
    settings = request.app.state.runtime.settings
    last = shipper.last_success
    return {
        "sites": settings.site_urls(),
        "rpo_seconds": settings.ship_interval_seconds,
        "shipping": shipper.running,
        "behind": shipper.last.behind,
        "last_shipped_at": None
        if last is None
        else datetime.fromtimestamp(last, UTC).isoformat().replace("+00:00", "Z"),
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
