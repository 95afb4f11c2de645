"""The audit log API: ``GET /v1/audit`` pages the account's audit chain (auditor and
owner), ``GET /v1/audit/head`` names its size and last hash."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from tenure.api.auth import require
from tenure.api.problems import problem_responses
from tenure.api.schemas import answers
from tenure.service import audit
from tenure.service.apikeys import Principal
from tenure.service.audit import MAX_PAGE, AuditFilter, AuditHead, AuditPage

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(401, 403))
Auditor = Annotated[Principal, Depends(require("audit.read"))]
Term = Annotated[str | None, Query(min_length=1, max_length=80)]


@router.get(
    "",
    response_model=None,
    responses={**answers(AuditPage, "One page of entries"), **problem_responses(400)},
)
def list_audit(
    request: Request,
    caller: Auditor,
    cursor: Annotated[int | None, Query(ge=0, le=2**53 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    order: Literal["asc", "desc"] = "asc",
    action: Term = None,
    outcome: Literal["allowed", "denied"] | None = None,
    principal: Term = None,
    target: Term = None,
) -> AuditPage:
    """Audit entries ``{"entries": [...], "next_cursor": cursor | null}``, oldest first (or
    newest first with ``order=desc``), filtered by ``action`` (``check``,
    ``suspend_license``, ``create_api_key``, …), ``outcome``, ``principal`` (an API
    key id or ``license:<serial>``) and ``target`` (a serial, customer id, key id).

    Each entry: ``{"seq", "time", "principal": {"id", "role", "auth"}, "action",
    "target", "outcome", "code", "rationale", "events": [first_seq, count] | null,
    "detail", "prev", "hash"}``. Pass ``next_cursor`` as ``cursor`` for the next page.
    """
    where = AuditFilter(action, outcome, principal, target)
    with request.app.state.runtime.store.read() as tx:
        entries, following = audit.page(
            tx.audit, caller.account, cursor, limit, where, newest_first=order == "desc"
        )
    return {"entries": entries, "next_cursor": following}


@router.get("/head", response_model=None, responses=answers(AuditHead, "The chain's head"))
def audit_head(request: Request, caller: Auditor) -> AuditHead:
    """``{"size", "hash"}``: how many entries the account's chain holds, and the hash
    of the last one (all zeros before the first). Keep it to detect truncation later."""
    with request.app.state.runtime.store.read() as tx:
        return audit.head(tx.audit, caller.account)
