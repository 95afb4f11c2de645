"""The governance use cases (``tenure.service.handlers``) on the store in memory: who
may create accounts and API keys, which revocations need a second principal, what
each request leaves in the audit chain, and the signing key rotation, with a writer
that runs each typed operation in one transaction with its audit entry, as the ledger
writer does."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tenure.config import Settings
from tenure.crypto.keystore import TokenKeys
from tenure.domain.approvals import RequestApproval
from tenure.errors import Conflict, Forbidden, NotFound, TenureError
from tenure.service import apikeys, audit
from tenure.service.apikeys import Principal
from tenure.service.handlers import accounts as account_cases
from tenure.service.handlers import apikeys as key_cases
from tenure.service.handlers import tokens as token_cases
from tenure.service.keyring import KeyRing
from tenure.service.ledger import Outcome, SignRequest, Submission
from tenure.service.views import ApprovalPending
from tenure.store.memory import MemoryStore

OPERATOR = "default"
AT = "2026-06-01T12:00:00.000000Z"


class Writer:
    """What the ledger writer does with an operation, on the memory store: run it in
    a write transaction with its audit entry (allowed), or audit it alone as denied
    when it raises. Signing requests and submissions are remembered."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.signed: list[str] = []
        self.submitted: list[Submission] = []

    def __call__(self, request: Any) -> Outcome:
        if isinstance(request, SignRequest):
            self.signed.append(request.account)
            return Outcome({})
        if isinstance(request, Submission):
            self.submitted.append(request)
            asked = request.command
            assert isinstance(asked, RequestApproval)
            return Outcome(
                {
                    "approval": "apr_1",
                    "action": asked.action,
                    "target": asked.target,
                    "payload": asked.payload,
                    "requested_by": asked.requested_by,
                    "expires_at": AT,
                    "status": "pending",
                    "detail": None,
                }
            )
        try:
            with self.store.write() as tx:
                outcome = Outcome(request.run(tx))
                audit.append(tx.audit, [request.audit_entry(outcome, None)], AT)
                return outcome
        except TenureError as error:
            with self.store.write() as tx:
                audit.append(tx.audit, [request.audit_entry(None, error)], AT)
            raise

    def entries(self, account: str) -> list[dict[str, Any]]:
        with self.store.read() as tx:
            found, _ = audit.page(tx.audit, account, limit=100)
        return found


@pytest.fixture
def writer() -> Writer:
    return Writer(MemoryStore())


def _key(writer: Writer, account: str, role: str, made_by: str | None = None) -> Principal:
    principal, _ = apikeys.create_api_key(writer.store, account, role, role, made_by)
    return principal


# ---------------------------------------------------------------- accounts


def test_an_operator_owner_creates_an_account_with_a_first_owner_key_and_signs_it(
    writer: Writer,
) -> None:
    owner = _key(writer, OPERATOR, "owner")
    created = account_cases.create_account(writer, owner, OPERATOR, "acme", "Acme")
    assert (created.id, created.name, created.owner_key_id) == (
        "acme",
        "Acme",
        apikeys.key_id_of(created.owner_key),
    )
    assert apikeys.authenticate(writer.store, created.owner_key).account == "acme"
    assert writer.signed == ["acme"]
    [entry] = writer.entries(OPERATOR)
    assert (entry["action"], entry["target"], entry["outcome"]) == (
        "create_account",
        "acme",
        "allowed",
    )


def test_a_taken_account_id_is_a_conflict_audited_as_denied(writer: Writer) -> None:
    owner = _key(writer, OPERATOR, "owner")
    account_cases.create_account(writer, owner, OPERATOR, "acme", "Acme")
    with pytest.raises(Conflict):
        account_cases.create_account(writer, owner, OPERATOR, "acme", "Again")
    assert [(e["outcome"], e["code"]) for e in writer.entries(OPERATOR)] == [
        ("allowed", "ok"),
        ("denied", "conflict"),
    ]


def test_an_owner_of_another_account_neither_creates_nor_sees_other_accounts(
    writer: Writer,
) -> None:
    operator_owner = _key(writer, OPERATOR, "owner")
    created = account_cases.create_account(writer, operator_owner, OPERATOR, "acme", "Acme")
    account_cases.create_account(writer, operator_owner, OPERATOR, "zeta", "Zeta")
    acme_owner = apikeys.authenticate(writer.store, created.owner_key)
    with pytest.raises(Forbidden):
        account_cases.create_account(writer, acme_owner, OPERATOR, "evil", "Evil")
    mine = account_cases.list_accounts(writer.store, acme_owner, OPERATOR)
    assert [a.id for a in mine.accounts] == ["acme"]
    with pytest.raises(NotFound):
        account_cases.get_account(writer.store, acme_owner, OPERATOR, "zeta")
    every = account_cases.list_accounts(writer.store, operator_owner, OPERATOR)
    assert [a["id"] for a in every.to_json()["accounts"]] == ["acme", "zeta"]


# ---------------------------------------------------------------- API keys


def test_a_created_key_names_its_creator_and_an_admin_may_not_make_owner_keys(
    writer: Writer,
) -> None:
    admin = _key(writer, OPERATOR, "admin")
    made = key_cases.create_api_key(writer, admin, "issuer", "CI")
    assert (made.role, made.name, made.created_by) == ("issuer", "CI", admin.id)
    assert apikeys.authenticate(writer.store, made.key).id == made.id
    with pytest.raises(Forbidden):
        key_cases.create_api_key(writer, admin, "owner", "nope")
    [listed_admin, listed] = key_cases.list_api_keys(writer.store, admin).apikeys
    assert (listed.id, listed.created_by, listed_admin.id) == (made.id, admin.id, admin.id)
    [entry] = writer.entries(OPERATOR)
    assert (entry["action"], entry["target"], entry["detail"]) == (
        "create_api_key",
        made.id,
        {"role": "issuer"},
    )


def test_revoking_another_principals_owner_key_asks_for_an_approval(writer: Writer) -> None:
    first, second = _key(writer, OPERATOR, "owner"), _key(writer, OPERATOR, "owner")
    settings = Settings(data_dir=Path("unused"))
    pending = key_cases.revoke_api_key(writer.store, writer, settings, first, second.id)
    assert isinstance(pending, ApprovalPending)
    assert (pending.approval.action, pending.approval.target) == ("apikey.revoke", second.id)
    assert pending.approval.payload == {"key_id": second.id, "role": "owner"}
    assert pending.approval.requested_by == first.id
    assert writer.entries(OPERATOR) == []


def test_a_key_revokes_itself_at_once_but_never_the_last_owner_key(writer: Writer) -> None:
    owner = _key(writer, OPERATOR, "owner")
    issuer = _key(writer, OPERATOR, "issuer", owner.id)
    settings = Settings(data_dir=Path("unused"))
    revoked = key_cases.revoke_api_key(writer.store, writer, settings, owner, issuer.id)
    assert not isinstance(revoked, ApprovalPending)
    assert revoked.revoked_at is not None
    with pytest.raises(Conflict):
        key_cases.revoke_api_key(writer.store, writer, settings, owner, owner.id)
    assert [(e["action"], e["target"], e["outcome"]) for e in writer.entries(OPERATOR)] == [
        ("revoke_api_key", issuer.id, "allowed"),
        ("revoke_api_key", owner.id, "denied"),
    ]


# ---------------------------------------------------------------- token signing keys


def test_a_rotation_retires_the_current_key_and_is_audited_as_the_deciding_request(
    writer: Writer, tmp_path: Path
) -> None:
    keyring = KeyRing(writer.store, TokenKeys(tmp_path, os.urandom(32)))
    owner = _key(writer, OPERATOR, "owner")
    first = keyring.current(OPERATOR, datetime(2026, 6, 1, tzinfo=UTC))
    rotated = token_cases.rotate_signing_key(writer, keyring, owner, "approve")
    assert rotated["kid"] != first.kid
    assert keyring.current(OPERATOR, datetime.now(UTC)).kid == rotated["kid"]
    listing = keyring.listing(OPERATOR)
    assert [k["kid"] for k in listing if k["retired_at"] is not None] == [first.kid]
    [entry] = writer.entries(OPERATOR)
    assert (entry["action"], entry["target"]) == ("approve", "keys.rotate")
    assert entry["principal"]["id"] == owner.id
