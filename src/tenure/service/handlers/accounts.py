"""The use cases of accounts: create one (operator account owners only), list them,
read one. An owner of any other account sees only its own; another account does not
exist for it (``NotFound``, never ``Forbidden``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenure.errors import Forbidden, NotFound
from tenure.service import accounts
from tenure.service.apikeys import Principal
from tenure.service.audit import request_entry
from tenure.service.handlers import Submit
from tenure.service.handlers.audited import AuditedChange
from tenure.service.ledger import SignRequest
from tenure.service.views import AccountList, AccountView, CreatedAccount
from tenure.store.unit import Store, Transaction


@dataclass(frozen=True)
class CreateAccount(AuditedChange):
    """Create account ``new`` named ``name`` with its first owner key, made by the
    entry's principal → the account with that key."""

    new: str
    name: str

    def run(self, tx: Transaction) -> dict[str, Any]:
        return accounts.create_in(tx, self.new, self.name, self.entry.principal)


def create_account(
    submit: Submit, caller: Principal, operator: str, account: str, name: str
) -> CreatedAccount:
    """Create ``account`` named ``name`` → it, with its first owner key (shown only
    here); its ledger starts with a signed empty checkpoint. ``Forbidden`` unless the
    caller is of the ``operator`` account; ``InvalidInput`` for a malformed id,
    ``Conflict`` for a taken one."""
    if caller.account != operator:
        raise Forbidden("only owners of the operator account create accounts")
    entry = request_entry(caller, "create_account", target=account)
    created = submit(CreateAccount(entry, account, name))
    submit(SignRequest(account))
    return CreatedAccount.model_validate(created.result)


def list_accounts(store: Store, caller: Principal, operator: str) -> AccountList:
    """Every account for the ``operator`` account's owners; the caller's own for any
    other owner."""
    only = None if caller.account == operator else caller.account
    found = accounts.list_accounts(store, only)
    return AccountList(accounts=[AccountView.model_validate(view) for view in found])


def get_account(store: Store, caller: Principal, operator: str, account: str) -> AccountView:
    """One account; ``NotFound`` for an account the caller may not see."""
    if caller.account not in (account, operator):
        raise NotFound(f"no account {account}", field="id")
    return AccountView.model_validate(accounts.get_account(store, account))
