"""The answers of the governance use cases (accounts, API keys, approvals),
described once: the use cases (``tenure.service.handlers``) return these views, the
routes use them as response models, so ``/openapi.json`` is generated from them.

A view is closed (``additionalProperties: false``) and frozen. It also reads like the
JSON it becomes (``view["id"]``), so code and templates written against the JSON
keep working. Field order is the JSON's key order.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class View(BaseModel):
    """A typed answer (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def __getitem__(self, name: str) -> Any:
        """The member ``name`` of the JSON answer (``KeyError`` if it has none)."""
        for field, info in type(self).model_fields.items():
            if name in (field, info.alias):
                return getattr(self, field)
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The JSON object it answers (aliases as member names)."""
        return self.model_dump(by_alias=True)


Role = Literal[  # the roles of tenure.service.apikeys.ROLES
    "owner", "admin", "issuer", "support", "auditor", "restorer", "agent"
]


# ---------------------------------------------------------------- accounts


class AccountView(View):
    """An account (``tenure.service.accounts``)."""

    id: str
    name: str
    created_at: str


class AccountList(View):
    accounts: list[AccountView]


class CreatedAccount(AccountView):
    """A new account, with its first owner key shown this once."""

    owner_key_id: str
    owner_key: str = Field(description="shown once")


# ---------------------------------------------------------------- API keys


class ApiKeyView(View):
    """An API key: never the key or its hash."""

    id: str
    role: Role
    name: str
    created_at: str
    revoked_at: str | None
    created_by: str | None = Field(
        description="the key that created it; null for a top of the key lineage"
    )


class ApiKeyList(View):
    apikeys: list[ApiKeyView]


class CreatedApiKey(View):
    """A new API key, shown this once."""

    id: str
    role: Role
    name: str
    created_by: str = Field(description="the calling key, which created it")
    key: str = Field(description="shown once")


# ---------------------------------------------------------------- approvals


class ApprovalView(View):
    """An approval request (the two-person rule, docs/approvals.md), its status as of
    when it is shown (a pending one past ``expires_at`` shows as expired)."""

    approval: str
    action: str
    target: str | None
    payload: dict[str, Any]
    requested_by: str
    expires_at: str
    status: Literal["pending", "approved", "rejected", "expired", "executed", "failed"]
    detail: Any


class ApprovalList(View):
    approvals: list[ApprovalView]


class ApprovalEvent(View):
    """One event of an approval: who did what, when, and why."""

    seq: int
    type: str
    time: str
    actor: dict[str, Any]
    reason: str | None


class ApprovalWithHistory(ApprovalView):
    history: list[ApprovalEvent]


class ApprovalPending(View):
    """A gated action's answer: the request a second principal must approve."""

    approval: ApprovalView


class ApprovalRejected(View):
    """A rejected approval: the action never runs."""

    approval: ApprovalView


class ApprovalExecuted(View):
    """An approved action, executed once: what it answered."""

    approval: ApprovalView
    result: Any


class ExecutionError(View):
    code: str
    detail: str


class ApprovalFailed(View):
    """An approved action whose execution failed: the approval is ``failed``."""

    approval: ApprovalView
    error: ExecutionError
