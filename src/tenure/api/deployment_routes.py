"""Deployment reports and drift (docs/drift.md).

``POST /v1/deployments/{id}/reports`` stores what an installation enforces (the
``agent`` role is the intended caller); ``GET /v1/deployments`` and
``/v1/deployments/{id}`` show the latest reports. ``GET /v1/drift`` lists open
findings of the reconciler (``tenure.ops.reconcile``) and ``POST
/v1/drift/reconcile`` runs a pass now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import Deployment, DeploymentList, DriftList, DriftPass, answers
from tenure.ops import deployments as service
from tenure.ops import reconcile
from tenure.ops.deployments import Report
from tenure.service.apikeys import Principal
from tenure.service.context import ServiceContext

router = APIRouter(prefix="/v1", tags=["deployments"], responses=problem_responses(401, 403))
Reporter = Annotated[Principal, Depends(require("deployment.report"))]
DeploymentReader = Annotated[Principal, Depends(require("deployment.read"))]
DriftReader = Annotated[Principal, Depends(require("drift.read"))]
Reconciler = Annotated[Principal, Depends(require("drift.reconcile"))]
DeploymentPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description="Deployment id")
]
MAX_REPORT_BYTES = 4 * 1024 * 1024


@router.post(
    "/deployments/{deployment}/reports",
    status_code=201,
    response_model=None,
    responses={
        **answers(Deployment, "The stored report's summary", 201),
        **problem_responses(400, 413),
    },
    openapi_extra=documented(Report),
)
async def post_report(
    request: Request, caller: Reporter, deployment: DeploymentPath
) -> JSONResponse:
    """Store ``{"product", "product_version", "sdk_version", "reported_at"?,
    "activations": [...]}`` as the deployment's latest report → 201 its summary.
    Reports are operational data, not ledger events."""
    body = await parse_body(request, Report, MAX_REPORT_BYTES)
    engine = request.app.state.runtime.engine
    now = datetime.now(UTC)
    view = await run_in_threadpool(
        service.record_report, engine, caller.account, deployment, body, caller.id, now
    )
    return JSONResponse(view, status_code=201)


@router.get(
    "/deployments",
    response_model=None,
    responses=answers(DeploymentList, "The deployments and their latest reports"),
)
def list_deployments(request: Request, caller: DeploymentReader) -> dict[str, Any]:
    """``{"deployments": [...]}``: each deployment's latest report summary, by id."""
    engine = request.app.state.runtime.engine
    return {"deployments": service.list_deployments(engine, caller.account)}


@router.get(
    "/deployments/{deployment}",
    response_model=None,
    responses={**answers(Deployment, "The latest report"), **problem_responses(400, 404)},
)
def get_deployment(
    request: Request, caller: DeploymentReader, deployment: DeploymentPath
) -> dict[str, Any]:
    """One deployment's latest report, its activations included; 404 if it never
    reported."""
    engine = request.app.state.runtime.engine
    return service.get_deployment(engine, caller.account, deployment)


@router.get(
    "/drift",
    response_model=None,
    responses={**answers(DriftList, "Open drift findings"), **problem_responses(400)},
)
def list_drift(
    request: Request,
    caller: DriftReader,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """``{"summary": {kind: count}, "findings": [...], "last_pass"}``: open findings
    (only ``kind``'s when given; 400 for an unknown kind), at most ``limit``."""
    engine = request.app.state.runtime.engine
    account = caller.account
    return {
        "summary": reconcile.drift_summary(engine, account),
        "findings": reconcile.list_drift(engine, account, kind, limit),
        "last_pass": reconcile.last_pass(engine, account),
    }


@router.post(
    "/drift/reconcile",
    response_model=None,
    responses={**answers(DriftPass, "The pass that ran"), **problem_responses(503)},
)
async def reconcile_now(request: Request, caller: Reconciler) -> dict[str, Any]:
    """Run a reconciliation pass now → its summary (``by_kind`` counts, reports,
    activations, findings, corrections, duration)."""
    runtime: ServiceContext = request.app.state.runtime
    policy = reconcile.DriftPolicy.from_settings(runtime.settings)
    ledger = request.app.state.ledger
    summary: dict[str, Any] = await run_in_threadpool(
        reconcile.run_pass, runtime.engine, caller.account, policy, None, ledger
    )
    return summary
