"""Approvals (the two-person rule, docs/approvals.md).

Gated routes answer 202 ``{"approval": {...}}`` through ``request_approval``
instead of acting. ``GET /v1/approvals``, ``GET /v1/approvals/{id}``,
``POST /v1/approvals/{id}/approve`` and ``/reject`` (body ``{"reason"}``): a key of
another principal than the requester (key lineage, ``tenure.domain.lineage``), older
than the request, whose role may perform the action itself (or the owner), decides;
an approved action executes exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import route_action, writer_of
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import NEEDS_APPROVAL
from tenure.domain.timefmt import format_time
from tenure.errors import TenureError
from tenure.service import approvals as service
from tenure.service.apikeys import Principal
from tenure.service.handlers import apikeys, tokens
from tenure.service.handlers import approvals as handlers
from tenure.service.views import (
    ApprovalExecuted,
    ApprovalFailed,
    ApprovalList,
    ApprovalPending,
    ApprovalRejected,
    ApprovalView,
    ApprovalWithHistory,
)

router = APIRouter(prefix="/v1", tags=["approvals"], responses=problem_responses(401, 403))
Reader = Annotated[Principal, Depends(require("approval.read"))]
Decider = Annotated[Principal, Depends(require("approval.decide"))]
MAX_BODY_BYTES = 4 * 1024


class DecisionIn(BaseModel):
    """Why the approval is approved or rejected (recorded in the event)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


def _now() -> str:
    return format_time(datetime.now(UTC))


def _accepted(pending: ApprovalPending) -> JSONResponse:
    return JSONResponse(pending.to_json(), status_code=202)


def gated_route(*problems: int, body: type[BaseModel] | None = None) -> dict[str, Any]:
    """The route arguments of a request the two-person rule always gates: 202 with
    the approval request it made (``NEEDS_APPROVAL``), the ``problems`` it may answer,
    and its ``body``, if it takes one."""
    route: dict[str, Any] = {
        "status_code": 202,
        "response_model": None,
        "responses": {**NEEDS_APPROVAL, **problem_responses(*problems)},
    }
    if body is not None:
        route["openapi_extra"] = documented(body)
    return route


async def request_approval(
    request: Request,
    caller: Principal,
    action: str,
    target: str,
    payload: dict[str, Any],
    reason: str | None,
) -> JSONResponse:
    """Record an ``approval.requested`` for ``action`` → 202 ``{"approval": {...}}``.
    ``payload`` is what executing it needs: never secrets or personal data."""
    settings = request.app.state.runtime.settings
    pending = await run_in_threadpool(
        handlers.request_approval, writer_of(request), settings, caller, action, target,
        payload, reason,
    )  # fmt: skip
    return _accepted(pending)


@router.get("/approvals", response_model=ApprovalList, responses=problem_responses(400))
def list_approvals(
    request: Request,
    caller: Reader,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> ApprovalList:
    """``{"approvals": [...]}``, optionally only those of ``status`` (pending,
    approved, rejected, expired, executed, failed); a pending approval past its
    ``expires_at`` shows as expired."""
    store = request.app.state.runtime.store
    return handlers.list_approvals(store, caller, _now(), status)


@router.get(
    "/approvals/{approval}", response_model=ApprovalWithHistory, responses=problem_responses(404)
)
def get_approval(request: Request, caller: Reader, approval: str) -> ApprovalWithHistory:
    """One approval with ``history``: its events with actor and reason."""
    store = request.app.state.runtime.store
    return handlers.get_approval(store, caller, approval, _now())


async def _decide(
    request: Request, caller: Principal, approval: str, approve: bool
) -> tuple[dict[str, Any], str]:
    body = await parse_body(request, DecisionIn, MAX_BODY_BYTES)
    store = request.app.state.runtime.store
    decided = await run_in_threadpool(
        handlers.decide, store, writer_of(request), caller, approval, approve, body.reason
    )
    return decided, body.reason


_DECISION_RESPONSES = problem_responses(400, 404, 409, 503)


@router.post(
    "/approvals/{approval}/approve",
    response_model=ApprovalExecuted | ApprovalFailed,
    openapi_extra=documented(DecisionIn),
    responses=_DECISION_RESPONSES,
)
async def approve(
    request: Request, caller: Decider, approval: str
) -> ApprovalExecuted | ApprovalFailed:
    """Approve ``{"reason"}`` and execute the action once → ``{"approval", "result"}``
    (or ``"error"`` when it failed: the approval is then ``failed``). 403
    ``self_approval`` for the requester; 403 ``approver_not_independent`` for a key
    that acts for the requester (it created it, was created by it, or one key made
    both), a key created after the request, and the key a revocation targets; 403
    for a role that may not perform the action; 409 ``approval_expired`` past
    ``expires_at``, 409 unless pending."""
    decided, reason = await _decide(request, caller, approval, approve=True)
    if decided["status"] == "executed":
        results = decided.pop("results", [])
        return ApprovalExecuted(approval=ApprovalView.model_validate(decided), result=results)
    return await _execute(request, caller, decided, reason)


@router.post(
    "/approvals/{approval}/reject",
    response_model=ApprovalRejected,
    openapi_extra=documented(DecisionIn),
    responses=_DECISION_RESPONSES,
)
async def reject(request: Request, caller: Decider, approval: str) -> ApprovalRejected:
    """Reject ``{"reason"}`` → ``{"approval"}``; the action never runs. The requester
    may reject (withdraw) its own request; the key a revocation targets, and the keys
    it created, may not (403 ``approver_not_independent``). 409 unless pending
    (``approval_expired`` past ``expires_at``)."""
    decided, _ = await _decide(request, caller, approval, approve=False)
    return ApprovalRejected(approval=ApprovalView.model_validate(decided))


# ---------------------------------------------------------------- execution


async def _execute(
    request: Request, caller: Principal, row: dict[str, Any], reason: str
) -> ApprovalExecuted | ApprovalFailed:
    """Run an approved action that is not ledger events (its executor, registered by
    the composition root), then record ``approval.executed`` with the approval's
    ``reason`` (only from ``approved``: never twice)."""
    executors: service.Executors[Request] = request.app.state.executors
    done: service.Execution | TenureError
    try:
        done = await executors.execute(row["action"], request, caller, row["payload"])
    except TenureError as exc:
        done = exc
    return await run_in_threadpool(
        handlers.record_execution, writer_of(request), caller, row["approval"], reason, done
    )


async def rotate_keys(
    request: Request, caller: Principal, payload: Mapping[str, Any]
) -> service.Execution:
    """The executor of an approved ``keys.rotate``: rotate the token signing key."""
    keyring = request.app.state.runtime.keyring()
    rotated = await run_in_threadpool(
        tokens.rotate_signing_key, writer_of(request), keyring, caller, route_action(request)
    )
    return service.Execution(rotated)


async def revoke_key(
    request: Request, caller: Principal, payload: Mapping[str, Any]
) -> service.Execution:
    """The executor of an approved ``apikey.revoke``: revoke the key ``key_id``."""
    action, key_id = route_action(request), payload["key_id"]
    revoked = await run_in_threadpool(
        apikeys.revoke_now, writer_of(request), caller, action, key_id
    )
    return service.Execution(revoked.to_json())
