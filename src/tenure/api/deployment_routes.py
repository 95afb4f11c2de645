"""Deployment reports and drift (docs/drift.md).

``POST /v1/deployments/{id}/reports`` stores what an installation enforces (the
``agent`` role is the intended caller); ``GET /v1/deployments`` and
``/v1/deployments/{id}`` show the latest reports. ``GET /v1/drift`` lists open
findings of the reconciler (``tenure.ops.reconcile``) and ``POST
/v1/drift/reconcile`` runs a pass now.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.ops import deployments, handlers, reconcile
from tenure.ops.deployments import Report
from tenure.ops.views import Deployment, DeploymentList, DeploymentSummary, DriftList, DriftPass
from tenure.service.apikeys import Principal

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
    response_model=DeploymentSummary,
    responses=problem_responses(400, 413),
    openapi_extra=documented(Report),
)
async def post_report(
    request: Request, caller: Reporter, deployment: DeploymentPath
) -> DeploymentSummary:
    """Store ``{"product", "product_version", "sdk_version", "reported_at"?,
    "activations": [...]}`` as the deployment's latest report → 201 its summary.
    Reports are operational data, not ledger events."""
    body = await parse_body(request, Report, MAX_REPORT_BYTES)
    store = runtime_of(request).store
    return await run_in_threadpool(handlers.report_deployment, store, caller, deployment, body)


@router.get("/deployments", response_model=DeploymentList)
def list_deployments(request: Request, caller: DeploymentReader) -> DeploymentList:
    """Each deployment's latest report summary, by id."""
    found = deployments.list_deployments(runtime_of(request).store, caller.account)
    return DeploymentList(deployments=found)


@router.get(
    "/deployments/{deployment}",
    response_model=Deployment,
    responses=problem_responses(400, 404),
)
def get_deployment(
    request: Request, caller: DeploymentReader, deployment: DeploymentPath
) -> Deployment:
    """One deployment's latest report, its activations included; 404 if it never
    reported."""
    return deployments.get_deployment(runtime_of(request).store, caller.account, deployment)


@router.get("/drift", response_model=DriftList, responses=problem_responses(400))
def list_drift(
    request: Request,
    caller: DriftReader,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DriftList:
    """``{"summary": {kind: count}, "findings": [...], "last_pass"}``: open findings
    (only ``kind``'s when given; 400 for an unknown kind), at most ``limit``."""
    return reconcile.drift_list(runtime_of(request).store, caller.account, kind, limit)


@router.post("/drift/reconcile", response_model=DriftPass, responses=problem_responses(503))
async def reconcile_now(request: Request, caller: Reconciler) -> DriftPass:
    """Run a reconciliation pass now → its summary (``by_kind`` counts, reports,
    activations, findings, corrections, duration)."""
    runtime = runtime_of(request)
    ledger = request.app.state.ledger
    return await run_in_threadpool(
        handlers.reconcile_now, runtime.store, ledger, caller, runtime.settings
    )
