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

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import entry_for, execute_audited, submit_audited
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.domain.approvals import (
    ACTIONS,
    ApprovalExpired,
    DecideApproval,
    RecordExecution,
)
from tenure.domain.commands import Command
from tenure.domain.events import Actor
from tenure.domain.timefmt import format_time
from tenure.errors import Forbidden, TenureError
from tenure.service import apikeys
from tenure.service import approvals as service
from tenure.service.apikeys import Principal
from tenure.service.ledger import Outcome, Submission, Write
from tenure.service.policy import POLICY, allowed, manageable_roles, require_may_manage
from tenure.store.unit import SqlTransaction

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


def _actor(caller: Principal) -> Actor:
    return Actor(caller.id, caller.role, caller.auth)


def _submission(caller: Principal, command: Command, reason: str | None) -> Submission:
    return Submission(caller.account, command, _actor(caller), reason=reason)


def _accepted(outcome: Outcome) -> JSONResponse:
    return JSONResponse({"approval": outcome.result}, status_code=202)


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
    submission = service.approval_request(settings, caller, action, target, payload, reason)
    return _accepted(await submit_audited(request, submission))


def request_approval_in_thread(
    request: Request,
    caller: Principal,
    action: str,
    target: str,
    payload: dict[str, Any],
    reason: str | None,
) -> dict[str, Any]:
    """``request_approval`` for code in the thread pool → the approval."""
    settings = request.app.state.runtime.settings
    submission = service.approval_request(settings, caller, action, target, payload, reason)
    return execute_audited(request, submission).result


@router.get("/approvals", response_model=None, responses=problem_responses(400))
def list_approvals(
    request: Request,
    caller: Reader,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> dict[str, Any]:
    """``{"approvals": [...]}``, optionally only those of ``status`` (pending,
    approved, rejected, expired, executed, failed); a pending approval past its
    ``expires_at`` shows as expired."""
    store = request.app.state.runtime.store
    return {"approvals": service.list_approvals(store, caller.account, _now(), status)}


@router.get("/approvals/{approval}", response_model=None, responses=problem_responses(404))
def get_approval(request: Request, caller: Reader, approval: str) -> dict[str, Any]:
    """One approval with ``history``: its events with actor and reason."""
    store = request.app.state.runtime.store
    return service.get_approval(store, caller.account, approval, _now())


def _require_may_decide(caller: Principal, row: dict[str, Any]) -> None:
    """The approver needs the role the action itself needs, or the owner role."""
    needed = ACTIONS[row["action"]]
    if caller.role != "owner" and not allowed(caller.role, needed):
        roles = ", ".join(sorted(POLICY[needed] | {"owner"}))
        raise Forbidden(
            f"deciding on {row['action']} needs one of the roles {roles}", action=needed
        )
    if row["action"] == "apikey.revoke":
        require_may_manage(caller, row["payload"]["role"])


async def _decide(
    request: Request, caller: Principal, approval: str, verdict: str
) -> tuple[Outcome, str]:
    body = await parse_body(request, DecisionIn, MAX_BODY_BYTES)
    store = request.app.state.runtime.store
    row = await run_in_threadpool(service.read_row, store, caller.account, approval)
    _require_may_decide(caller, row)
    decider, facts = await run_in_threadpool(
        service.decision_facts, store, caller.account, row, caller.id
    )
    command = DecideApproval(
        approval, decider, "approve" if verdict == "approve" else "reject", facts
    )
    outcome = await submit_audited(request, _submission(caller, command, body.reason))
    if outcome.result["status"] == "expired":
        raise ApprovalExpired(f"approval {approval} expired at {row['expires_at']}")
    return outcome, body.reason


_DECISION_RESPONSES = problem_responses(400, 404, 409, 503)


@router.post(
    "/approvals/{approval}/approve",
    response_model=None,
    openapi_extra=documented(DecisionIn),
    responses=_DECISION_RESPONSES,
)
async def approve(request: Request, caller: Decider, approval: str) -> dict[str, Any]:
    """Approve ``{"reason"}`` and execute the action once → ``{"approval", "result"}``
    (or ``"error"`` when it failed: the approval is then ``failed``). 403
    ``self_approval`` for the requester; 403 ``approver_not_independent`` for a key
    that acts for the requester (it created it, was created by it, or one key made
    both), a key created after the request, and the key a revocation targets; 403
    for a role that may not perform the action; 409 ``approval_expired`` past
    ``expires_at``, 409 unless pending."""
    outcome, reason = await _decide(request, caller, approval, "approve")
    if outcome.result["status"] == "executed":
        results = outcome.result.pop("results", [])
        return {"approval": outcome.result, "result": results}
    return await _execute(request, caller, outcome.result, reason)


@router.post(
    "/approvals/{approval}/reject",
    response_model=None,
    openapi_extra=documented(DecisionIn),
    responses=_DECISION_RESPONSES,
)
async def reject(request: Request, caller: Decider, approval: str) -> dict[str, Any]:
    """Reject ``{"reason"}`` → ``{"approval"}``; the action never runs. The requester
    may reject (withdraw) its own request; the key a revocation targets, and the keys
    it created, may not (403 ``approver_not_independent``). 409 unless pending
    (``approval_expired`` past ``expires_at``)."""
    outcome, _ = await _decide(request, caller, approval, "reject")
    return {"approval": outcome.result}


# ---------------------------------------------------------------- execution


async def _execute(
    request: Request, caller: Principal, row: dict[str, Any], reason: str
) -> dict[str, Any]:
    """Run an approved action that is not ledger events (its executor, registered by
    the composition root), then record ``approval.executed`` with the approval's
    ``reason`` (only from ``approved``: never twice)."""
    approval = row["approval"]
    executors: service.Executors[Request] = request.app.state.executors
    try:
        execution = await executors.execute(row["action"], request, caller, row["payload"])
    except TenureError as exc:
        failed = RecordExecution(approval, "failed", exc.message[:500])
        done = await submit_audited(request, _submission(caller, failed, reason))
        return {"approval": done.result, "error": {"code": exc.code, "detail": exc.message}}
    result = execution.result
    command = RecordExecution(approval, "succeeded", None, execution.also)
    done = await submit_audited(request, _submission(caller, command, reason))
    if execution.also is not None:
        result["event"] = done.events[0].seq
    return {"approval": done.result, "result": result}


async def rotate_keys(
    request: Request, caller: Principal, payload: Mapping[str, Any]
) -> service.Execution:
    """The executor of an approved ``keys.rotate``: rotate the token signing key."""
    keyring = request.app.state.runtime.keyring()
    now = datetime.now(UTC)

    def rotate(conn: sa.Connection) -> dict[str, Any]:
        result: dict[str, Any] = keyring.rotate_in(SqlTransaction(conn), caller.account, now)
        return result

    # phase b: governance (a typed operation replaces the Write adapter)
    write = Write(caller.account, rotate, entry_for(request, caller, target="keys.rotate"))
    return service.Execution((await submit_audited(request, write)).result)


async def revoke_key(
    request: Request, caller: Principal, payload: Mapping[str, Any]
) -> service.Execution:
    """The executor of an approved ``apikey.revoke``: revoke the key ``key_id``."""
    manageable = manageable_roles(caller)
    key_id = payload["key_id"]

    def revoke(conn: sa.Connection) -> dict[str, Any]:
        return apikeys.revoke_in(SqlTransaction(conn), caller.account, key_id, manageable)

    # phase b: governance (a typed operation replaces the Write adapter)
    write = Write(caller.account, revoke, entry_for(request, caller, target=key_id[:80]))
    return service.Execution((await submit_audited(request, write)).result)
