"""Operations routes (docs/observability.md): ``/healthz``, ``/readyz``, ``/metrics``
and ``GET /v1/ops/slo``."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from tenure.api.auth import require
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.api.schemas import Health, answers
from tenure.errors import Unauthenticated
from tenure.observability import metrics
from tenure.ops import health, scrape, slo
from tenure.ops.gauges import sample_shipper
from tenure.ops.views import Readiness, SloReport
from tenure.service.apikeys import Principal
from tenure.service.context import ServiceContext

router = APIRouter(tags=["ops"])
OpsReader = Annotated[Principal, Depends(require("ops.read"))]


@router.get("/healthz", response_model=None, responses=answers(Health, "Up"))
async def healthz() -> dict[str, str]:
    """The process is up (no other check: see ``/readyz``)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={
        **answers(Readiness, "Ready"),
        **answers(Readiness, "A required check failed (named in checks)", 503),
    },
)
def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers at this release's schema, the ledger
    writer runs, the signing key loads, the sidecar checkpoint is not ahead of the
    store (required); the sites took the last shipping pass (reported only)."""
    state = request.app.state
    report = health.readiness(state.runtime, state.ledger, state.shipper, state.schema_head)
    status = 200 if report.status == "ready" else 503
    return JSONResponse(report.to_json(), status_code=status)


@router.get(
    "/metrics",
    response_model=None,
    responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
        **problem_responses(401),
    },
)
async def metrics_text(request: Request) -> Response:
    """Prometheus metrics (docs/observability.md): process metrics of every worker and
    the state metrics read from the store. Open unless ``metrics_token`` is set; then
    ``Authorization: Bearer <metrics_token>``."""
    runtime = runtime_of(request)
    _require_metrics_token(request, runtime)
    sample_shipper(request.app.state.shipper)
    body = await run_in_threadpool(_scrape, runtime)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _require_metrics_token(request: Request, runtime: ServiceContext) -> None:
    token = runtime.settings.metrics_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthenticated("send Authorization: Bearer <metrics token>")


def _scrape(runtime: ServiceContext) -> bytes:
    state = scrape.read_state(runtime.store, runtime.settings)
    return metrics.exposition(state, with_process=runtime.settings.metrics_enabled)


@router.get("/v1/ops/slo", response_model=SloReport, responses=problem_responses(401, 403))
def get_slo(request: Request, caller: OpsReader) -> SloReport:
    """The caller's account's check SLOs over the window (``slo_window_days``) and the
    error budget left of each (docs/observability.md, "SLOs")."""
    runtime = runtime_of(request)
    objectives = slo.Objectives.from_settings(runtime.settings)
    return slo.slo_report(runtime.store, caller.account, datetime.now(UTC), objectives)
