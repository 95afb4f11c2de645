"""The use cases of API keys: create (the key is shown once), list, revoke. Owner and
admin only; an admin may neither create nor revoke owner keys. Revoking another
principal's active owner or admin key needs a second principal's approval."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenure.config import Settings
from tenure.service import apikeys, approvals
from tenure.service.apikeys import Principal
from tenure.service.audit import request_entry
from tenure.service.handlers import Submit
from tenure.service.handlers.approvals import request_approval
from tenure.service.handlers.audited import AuditedChange
from tenure.service.policy import manageable_roles, require_may_manage
from tenure.service.views import ApiKeyList, ApiKeyView, ApprovalPending, CreatedApiKey
from tenure.store.unit import Store, Transaction


@dataclass(frozen=True)
class CreateApiKey(AuditedChange):
    """A key of ``role`` named ``name``, created by the entry's principal → the key
    (shown only here) with its id."""

    role: str
    name: str

    def run(self, tx: Transaction) -> dict[str, Any]:
        maker = self.entry.principal
        created, key = apikeys.insert_api_key(
            tx, self.account, self.role, self.name, created_by=maker
        )
        return {
            "id": created.id,
            "role": created.role,
            "name": self.name,
            "created_by": maker,
            "key": key,
        }


@dataclass(frozen=True)
class RevokeApiKey(AuditedChange):
    """Revoke the account's key ``key_id`` (of one of the ``manageable`` roles) → its
    view (``tenure.service.apikeys.revoke_in``)."""

    key_id: str
    manageable: frozenset[str]

    def run(self, tx: Transaction) -> dict[str, Any]:
        return apikeys.revoke_in(tx, self.account, self.key_id, self.manageable)


def create_api_key(submit: Submit, caller: Principal, role: str, name: str) -> CreatedApiKey:
    """Create a key of ``role`` for the caller's account, recording the caller as its
    creator (it acts for the caller in the two-person rule) → it, with the key shown
    only here. ``Forbidden`` for a role the caller may not manage."""
    require_may_manage(caller, role)
    entry = request_entry(caller, "create_api_key", detail={"role": role})
    return CreatedApiKey.model_validate(submit(CreateApiKey(entry, role, name)).result)


def list_api_keys(store: Store, caller: Principal) -> ApiKeyList:
    """The account's keys, revoked ones too, oldest first; never keys or hashes."""
    found = apikeys.list_api_keys(store, caller.account)
    return ApiKeyList(apikeys=[ApiKeyView.model_validate(view) for view in found])


def revoke_api_key(
    store: Store, submit: Submit, settings: Settings, caller: Principal, key_id: str
) -> ApiKeyView | ApprovalPending:
    """Revoke the account's key ``key_id`` → its view; or, for another principal's
    active owner or admin key, request a second principal's approval → the approval.
    ``NotFound`` for a key not of this account, ``Forbidden`` for a role the caller
    may not manage, ``Conflict`` for the account's last active owner key."""
    target = approvals.find_api_key(store, caller.account, key_id)
    if (
        target is not None
        and key_id != caller.id
        and target["role"] in approvals.PRIVILEGED_ROLES
        and target["revoked_at"] is None
    ):
        require_may_manage(caller, target["role"])
        payload = {"key_id": key_id, "role": target["role"]}
        return request_approval(submit, settings, caller, "apikey.revoke", key_id, payload, None)
    return revoke_now(submit, caller, "revoke_api_key", key_id)


def revoke_now(submit: Submit, caller: Principal, action: str, key_id: str) -> ApiKeyView:
    """Revoke ``key_id`` without asking for approval, audited as ``action`` (an
    approved revocation is audited as the decision that executes it)."""
    entry = request_entry(caller, action, target=key_id[:80])
    manageable = frozenset(manageable_roles(caller))
    return ApiKeyView.model_validate(submit(RevokeApiKey(entry, key_id, manageable)).result)
