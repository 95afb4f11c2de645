"""API keys (SPEC "Governance and security"): create (the key is shown once), list,
revoke. Owner and admin only; an admin may neither create nor revoke owner keys.
A key of another account does not exist for the caller (404, never 403). The use
cases are ``tenure.service.handlers.apikeys``.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import writer_of
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import NEEDS_APPROVAL
from tenure.service import apikeys
from tenure.service.apikeys import Principal
from tenure.service.handlers import apikeys as handlers
from tenure.service.views import ApiKeyList, ApiKeyView, ApprovalPending, CreatedApiKey, Role

router = APIRouter(prefix="/v1", tags=["apikeys"], responses=problem_responses(401, 403))

MAX_BODY_BYTES = 4 * 1024
Manager = Annotated[Principal, Depends(require("apikey.manage"))]
if get_args(Role) != apikeys.ROLES:  # pragma: no cover - a guard for whoever adds a role
    raise RuntimeError("service.views.Role must list exactly service.apikeys.ROLES")
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ApiKeyIn(BaseModel):
    """A key to create: its ``role`` (one of ``ROLES``) and a ``name`` for people."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    name: Name


@router.post(
    "/apikeys",
    status_code=201,
    response_model=CreatedApiKey,
    responses=problem_responses(400, 503),
    openapi_extra=documented(ApiKeyIn),
)
async def create_api_key(request: Request, caller: Manager) -> CreatedApiKey:
    """Create ``{"role", "name"}`` → 201 ``{"id", "role", "name", "created_by",
    "key"}``.

    The key is shown here once and stored only as a hash. It records the calling key
    as its creator (``created_by``): it acts for that key in the two-person rule
    (docs/approvals.md). 403 when an admin asks for an owner key.
    """
    body = await parse_body(request, ApiKeyIn, MAX_BODY_BYTES)
    return await run_in_threadpool(
        handlers.create_api_key, writer_of(request), caller, body.role, body.name
    )


@router.get("/apikeys", response_model=ApiKeyList)
def list_api_keys(request: Request, caller: Manager) -> ApiKeyList:
    """The account's keys ``{"apikeys": [{"id", "role", "name", "created_at",
    "revoked_at", "created_by"}]}``, never the keys or their hashes. ``created_by``
    is the key that created it, null for the bootstrap or first owner key and for
    keys older than key lineage (docs/approvals.md)."""
    return handlers.list_api_keys(request.app.state.runtime.store, caller)


@router.delete(
    "/apikeys/{key_id}",
    response_model=ApiKeyView,
    responses={**NEEDS_APPROVAL, **problem_responses(404, 409, 503)},
)
async def revoke_api_key(request: Request, caller: Manager, key_id: str) -> Any:
    """Revoke a key → its listing with ``revoked_at`` set; it gets 401 from then on.

    Revoking another principal's active owner or admin key needs a second
    principal's approval: 202 ``{"approval": {...}}`` (docs/approvals.md).
    404 for a key not of this account, 403 when an admin revokes an owner key, 409 for
    the account's last active owner key.
    """
    runtime = request.app.state.runtime
    revoked = await run_in_threadpool(
        handlers.revoke_api_key, runtime.store, writer_of(request), runtime.settings, caller, key_id
    )
    if isinstance(revoked, ApprovalPending):
        return JSONResponse(revoked.to_json(), status_code=202)
    return revoked
