"""Accounts (owner only). The owners of the operator account (the install's default
account) create accounts and see them all; an owner of any other account sees only
its own, and another account does not exist for it (404, never 403)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints

from tenure.api.auditing import entry_for, submit_audited
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import Account, AccountList, CreatedAccount, answers
from tenure.errors import Forbidden, NotFound
from tenure.service import accounts
from tenure.service.apikeys import Principal
from tenure.service.ledger import SignRequest, Write
from tenure.store.unit import SqlTransaction

router = APIRouter(prefix="/v1", tags=["accounts"], responses=problem_responses(401, 403))
Owner = Annotated[Principal, Depends(require("account.manage"))]
MAX_BODY_BYTES = 4 * 1024


class AccountIn(BaseModel):
    """A new account: its ``id`` (lower-case letters, digits, dashes) and ``name``."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=accounts.ACCOUNT_ID.pattern)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _operator(request: Request) -> str:
    operator: str = request.app.state.runtime.settings.default_account
    return operator


@router.post(
    "/accounts",
    status_code=201,
    response_model=None,
    responses={**answers(CreatedAccount, "Created", 201), **problem_responses(400, 409, 503)},
    openapi_extra=documented(AccountIn),
)
async def create_account(request: Request, caller: Owner) -> JSONResponse:
    """Create ``{"id", "name"}`` → 201 ``{"id", "name", "created_at", "owner_key_id",
    "owner_key"}`` (operator account owners only). The new account's first owner key
    is shown here once; its ledger starts with a signed empty checkpoint. 409 if the
    id is taken."""
    body = await parse_body(request, AccountIn, MAX_BODY_BYTES)
    if caller.account != _operator(request):
        raise Forbidden("only owners of the operator account create accounts")

    def create(conn: sa.Connection) -> dict[str, Any]:
        return accounts.create_in(SqlTransaction(conn), body.id, body.name, caller.id)

    entry = entry_for(request, caller, target=body.id)
    # phase b: governance (a typed operation replaces the Write adapter)
    outcome = await submit_audited(request, Write(caller.account, create, entry))
    await submit_audited(request, SignRequest(body.id))
    return JSONResponse(outcome.result, status_code=201)


@router.get("/accounts", response_model=None, responses=answers(AccountList, "The accounts"))
def list_accounts(request: Request, caller: Owner) -> dict[str, Any]:
    """``{"accounts": [{"id", "name", "created_at"}]}``: all of them for the operator
    account's owners, the caller's own for any other owner."""
    only = None if caller.account == _operator(request) else caller.account
    return {"accounts": accounts.list_accounts(request.app.state.runtime.store, only)}


@router.get(
    "/accounts/{account_id}",
    response_model=None,
    responses={**answers(Account, "The account"), **problem_responses(404)},
)
def get_account(request: Request, caller: Owner, account_id: str) -> dict[str, Any]:
    """One account; 404 for an account the caller may not see."""
    if caller.account not in (account_id, _operator(request)):
        raise NotFound(f"no account {account_id}", field="id")
    return accounts.get_account(request.app.state.runtime.store, account_id)
