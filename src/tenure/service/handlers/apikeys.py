"""The use cases of API keys: create (the key is shown once), list, revoke. Owner and
admin only; an admin may neither create nor revoke owner keys. Revoking another
principal's active owner or admin key needs a second principal's approval."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tenure.config import Settings
from tenure.domain.storable import text_problem
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, InvalidInput
from tenure.service import apikeys, approvals, audit
from tenure.service.apikeys import MAX_REASON, STORAGE_AUTH, Principal
from tenure.service.audit import AuditEntry, request_entry
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


# ---------------------------------------------------------------- on the storage


def revoke_on_storage(
    store: Store,
    account: str,
    key_id: str,
    operator: str,
    reason: str,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Revoke ``key_id`` of ``account`` directly on the storage, without approval, and
    return its view: the way out when the two-person rule cannot revoke a stolen key
    (docs/approvals.md, "Limits and recovery"). Whoever holds the storage holds the
    account, so the audit entry names the storage operator (principal
    ``storage:<operator>``, role owner, auth ``storage``) with ``reason``, in the same
    transaction. Safe while servers run: the write lock orders it with their writers,
    and they look every key up on each request, so the key gets 401 at once.

    ``InvalidInput`` (field ``reason``) for an empty or unstorable reason, ``NotFound``
    for a key not of ``account``, ``Conflict`` for the account's last active owner key
    unless ``force`` (that refusal is audited, as denied).
    """
    why = reason.strip()
    problem = "is empty" if not why else text_problem(why, MAX_REASON)
    if problem is not None:
        raise InvalidInput(f"--reason {problem}", field="reason")
    entry = AuditEntry(
        account, f"storage:{operator}", "owner", STORAGE_AUTH, "revoke_api_key",
        "allowed", "ok", target=key_id[:80], rationale=why, detail={"forced": force},
    )  # fmt: skip
    try:
        with store.write() as tx:
            revoked = apikeys.revoke_in(tx, account, key_id, last_owner_ok=force)
            audited = replace(entry, detail={"forced": force, "role": revoked["role"]})
            audit.append(tx.audit, [audited], format_time(datetime.now(UTC)))
            return revoked
    except Conflict as refused:
        with store.write() as tx:
            denied = replace(entry, outcome="denied", code=refused.code)
            audit.append(tx.audit, [denied], format_time(datetime.now(UTC)))
        raise
