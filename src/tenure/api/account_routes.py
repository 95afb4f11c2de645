"""Accounts (owner only). The owners of the operator account (the install's default
account) create accounts and see them all; an owner of any other account sees only
its own, and another account does not exist for it (404, never 403). The use cases
are ``tenure.service.handlers.accounts``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import writer_of
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.service import accounts
from tenure.service.apikeys import Principal
from tenure.service.handlers import accounts as handlers
from tenure.service.views import AccountList, AccountView, CreatedAccount

router = APIRouter(prefix="/v1", tags=["accounts"], responses=problem_responses(401, 403))
Owner = Annotated[Principal, Depends(require("account.manage"))]
MAX_BODY_BYTES = 4 * 1024


class AccountIn(BaseModel):
    """A new account: its ``id`` (lower-case letters, digits, dashes) and ``name``."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=accounts.ACCOUNT_ID.pattern)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


@router.post(
    "/accounts",
    status_code=201,
    response_model=CreatedAccount,
    responses=problem_responses(400, 409, 503),
    openapi_extra=documented(AccountIn),
)
async def create_account(request: Request, caller: Owner) -> CreatedAccount:
    """Create ``{"id", "name"}`` → 201 ``{"id", "name", "created_at", "owner_key_id",
    "owner_key"}`` (operator account owners only). The new account's first owner key
    is shown here once; its ledger starts with a signed empty checkpoint. 409 if the
    id is taken."""
    body = await parse_body(request, AccountIn, MAX_BODY_BYTES)
    operator = runtime_of(request).settings.default_account
    return await run_in_threadpool(
        handlers.create_account, writer_of(request), caller, operator, body.id, body.name
    )


@router.get("/accounts", response_model=AccountList)
def list_accounts(request: Request, caller: Owner) -> AccountList:
    """``{"accounts": [{"id", "name", "created_at"}]}``: all of them for the operator
    account's owners, the caller's own for any other owner."""
    runtime = runtime_of(request)
    return handlers.list_accounts(runtime.store, caller, runtime.settings.default_account)


@router.get("/accounts/{account_id}", response_model=AccountView, responses=problem_responses(404))
def get_account(request: Request, caller: Owner, account_id: str) -> AccountView:
    """One account; 404 for an account the caller may not see."""
    runtime = runtime_of(request)
    return handlers.get_account(runtime.store, caller, runtime.settings.default_account, account_id)
