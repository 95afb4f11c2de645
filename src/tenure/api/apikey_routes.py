"""API keys (SPEC "Governance and security"): create (the key is shown once), list,
revoke. Owner and admin only; an admin may neither create nor revoke owner keys.
A key of another account does not exist for the caller (404, never 403).
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.concurrency import run_in_threadpool

from tenure.api.approval_routes import request_approval
from tenure.api.auditing import entry_for, submit_audited
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import NEEDS_APPROVAL, ApiKey, ApiKeyList, CreatedApiKey, Role, answers
from tenure.service import apikeys, approvals
from tenure.service.apikeys import Principal
from tenure.service.ledger import Write
from tenure.service.policy import manageable_roles, require_may_manage
from tenure.store.unit import SqlTransaction, Store

router = APIRouter(prefix="/v1", tags=["apikeys"], responses=problem_responses(401, 403))

MAX_BODY_BYTES = 4 * 1024
Manager = Annotated[Principal, Depends(require("apikey.manage"))]
if get_args(Role) != apikeys.ROLES:  # pragma: no cover - a guard for whoever adds a role
    raise RuntimeError("schemas.Role must list exactly service.apikeys.ROLES")
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ApiKeyIn(BaseModel):
    """A key to create: its ``role`` (one of ``ROLES``) and a ``name`` for people."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    name: Name


def _store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


@router.post(
    "/apikeys",
    status_code=201,
    response_model=None,
    responses={**answers(CreatedApiKey, "Created", 201), **problem_responses(400, 503)},
    openapi_extra=documented(ApiKeyIn),
)
async def create_api_key(request: Request, caller: Manager) -> JSONResponse:
    """Create ``{"role", "name"}`` → 201 ``{"id", "role", "name", "created_by",
    "key"}``.

    The key is shown here once and stored only as a hash. It records the calling key
    as its creator (``created_by``): it acts for that key in the two-person rule
    (docs/approvals.md). 403 when an admin asks for an owner key.
    """
    body = await parse_body(request, ApiKeyIn, MAX_BODY_BYTES)
    require_may_manage(caller, body.role)

    def create(conn: sa.Connection) -> dict[str, Any]:
        created, key = apikeys.insert_api_key(
            SqlTransaction(conn), caller.account, body.role, body.name, created_by=caller.id
        )
        return {
            "id": created.id,
            "role": created.role,
            "name": body.name,
            "created_by": caller.id,
            "key": key,
        }

    entry = entry_for(request, caller, detail={"role": body.role})
    # phase b: governance (a typed operation replaces the Write adapter)
    outcome = await submit_audited(request, Write(caller.account, create, entry))
    return JSONResponse(outcome.result, status_code=201)


@router.get("/apikeys", response_model=None, responses=answers(ApiKeyList, "The keys"))
def list_api_keys(request: Request, caller: Manager) -> dict[str, Any]:
    """The account's keys ``{"apikeys": [{"id", "role", "name", "created_at",
    "revoked_at", "created_by"}]}``, never the keys or their hashes. ``created_by``
    is the key that created it, null for the bootstrap or first owner key and for
    keys older than key lineage (docs/approvals.md)."""
    return {"apikeys": apikeys.list_api_keys(_store(request), caller.account)}


@router.delete(
    "/apikeys/{key_id}",
    response_model=None,
    responses={
        **answers(ApiKey, "The revoked key"),
        **NEEDS_APPROVAL,
        **problem_responses(404, 409, 503),
    },
)
async def revoke_api_key(request: Request, caller: Manager, key_id: str) -> Any:
    """Revoke a key → its listing with ``revoked_at`` set; it gets 401 from then on.

    Revoking another principal's active owner or admin key needs a second
    principal's approval: 202 ``{"approval": {...}}`` (docs/approvals.md).
    404 for a key not of this account, 403 when an admin revokes an owner key, 409 for
    the account's last active owner key.
    """
    manageable = manageable_roles(caller)
    target = await run_in_threadpool(
        approvals.find_api_key, _store(request), caller.account, key_id
    )
    if (
        target is not None
        and key_id != caller.id
        and target["role"] in approvals.PRIVILEGED_ROLES
        and target["revoked_at"] is None
    ):
        require_may_manage(caller, target["role"])
        payload = {"key_id": key_id, "role": target["role"]}
        return await request_approval(request, caller, "apikey.revoke", key_id, payload, None)

    def revoke(conn: sa.Connection) -> dict[str, Any]:
        return apikeys.revoke_in(SqlTransaction(conn), caller.account, key_id, manageable)

    entry = entry_for(request, caller, target=key_id[:80])
    # phase b: governance (a typed operation replaces the Write adapter)
    outcome = await submit_audited(request, Write(caller.account, revoke, entry))
    return outcome.result
