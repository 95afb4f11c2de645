"""The two-person rule: dangerous actions as approval requests, decided by a second
principal, executed exactly once.

An approval moves ``pending`` → ``approved`` → ``executed`` (or ``failed``), or
``pending`` → ``rejected`` / ``expired``; the projector refuses any other step, so
whichever of two racing approvals the writer serializes second is refused
(``Conflict``) and the action runs once. Actions that are ledger events (revoking,
retiring a plan, applying a catalog) are appended by ``DecideApproval`` in the same
command as ``approval.approved`` and ``approval.executed``; the others (key rotation,
restore, API key revocation) run after the approval commits and are recorded by
``RecordExecution``.

Pure like the other commands: time and ids come from ``Context``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

from tenure.domain.catalog import ApplyCatalog, Catalog, PlanSpec, ProductSpec, diff_catalog
from tenure.domain.commands import (
    Command,
    Context,
    Decision,
    Draft,
    RetirePlan,
    RevokeLicense,
)
from tenure.domain.state import Row, StateView
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, Forbidden, InvalidInput, NotFound

ACTIONS: dict[str, str] = {
    "restore": "ledger.restore",
    "license.revoke": "license.change",
    "keys.rotate": "keys.manage",
    "plan.retire": "catalog.apply",
    "catalog.apply": "catalog.apply",
    "apikey.revoke": "apikey.manage",
}
"""Gated action → the policy action (``tenure.api.roles.POLICY``) whose roles, or
the owner, may approve or reject it."""

LEDGER_ACTIONS = frozenset({"license.revoke", "plan.retire", "catalog.apply"})
"""Actions whose effect is ledger events, appended atomically with the approval."""


class SelfApproval(Forbidden):
    """The principal that asked for an action may not approve it."""

    code = "self_approval"


class ApprovalExpired(Conflict):
    """The approval was not decided before its ``expires_at``."""

    code = "approval_expired"


def approval_id(ctx: Context) -> str:
    """A fresh ``apr_`` id (26 base32 characters)."""
    return "apr_" + base64.b32encode(ctx.random_token()).decode().rstrip("=")[:26].lower()


def catalog_from_json(data: dict[str, Any]) -> Catalog:
    """The ``Catalog`` whose ``to_json`` is ``data`` (an approval's payload)."""
    products = tuple(
        ProductSpec(p["code"], p["name"], tuple(p["features"])) for p in data["products"]
    )
    plans = tuple(
        PlanSpec(**{**p, "core": tuple(p["core"]), "entitlements": dict(p["entitlements"])})
        for p in data["plans"]
    )
    return Catalog(products, plans)


def action_commands(action: str, payload: dict[str, Any], view: StateView) -> list[Command]:
    """The commands that carry out a ledger action; ``[]`` for the others."""
    if action == "license.revoke":
        return [RevokeLicense(serial) for serial in payload["serials"]]
    if action == "plan.retire":
        return [RetirePlan(payload["plan"])]
    if action == "catalog.apply":
        catalog = catalog_from_json(payload["catalog"])
        return [ApplyCatalog(catalog, diff_catalog(view, catalog))]
    return []


def status_at(row: Row, now: str) -> str:
    """The status to show: a pending approval past ``expires_at`` shows as expired
    before anyone records ``approval.expired``."""
    if row["status"] == "pending" and now >= row["expires_at"]:
        return "expired"
    return str(row["status"])


@dataclass(frozen=True)
class RequestApproval(Command):
    """Hold ``action`` on ``target`` until a second principal approves it."""

    name: ClassVar[str] = "request_approval"
    action: str
    target: str
    requested_by: str
    ttl_seconds: float
    payload: dict[str, Any] = field(default_factory=dict)

    def decide(self, view: StateView, ctx: Context) -> Decision:
        if self.action not in ACTIONS:
            raise InvalidInput(f"{self.action!r} is not an action that needs approval")
        data = {
            "approval": approval_id(ctx),
            "action": self.action,
            "target": self.target,
            "payload": self.payload,
            "requested_by": self.requested_by,
            "expires_at": format_time(ctx.now + timedelta(seconds=self.ttl_seconds)),
        }
        result = {**data, "status": "pending", "detail": None}
        return Decision([Draft("approval.requested", data)], result)


def _pending(view: StateView, approval: str, now: str) -> tuple[Row, bool]:
    """The approval's row and whether it has expired; ``NotFound`` or ``Conflict``
    (naming its status) unless it is pending."""
    row = view.get("approvals", (approval,))
    if row is None:
        raise NotFound(f"approval {approval} not found")
    if row["status"] != "pending":
        raise Conflict(f"approval {approval} is already {row['status']}")
    return row, now >= row["expires_at"]


@dataclass(frozen=True)
class DecideApproval(Command):
    """Approve or reject a pending approval as ``decided_by``.

    Approving a ledger action appends its events and ``approval.executed`` with
    ``approval.approved``, all or nothing. A request past its ``expires_at`` is
    recorded as ``approval.expired`` and the result says ``"status": "expired"``
    (the caller answers ``ApprovalExpired``). Raises ``SelfApproval`` when the
    requester approves, ``Conflict`` unless the approval is pending.
    """

    name: ClassVar[str] = "decide_approval"
    approval: str
    decided_by: str
    verdict: Literal["approve", "reject"]

    def decide(self, view: StateView, ctx: Context) -> Decision:
        now = format_time(ctx.now)
        row, expired = _pending(view, self.approval, now)
        ref = {"approval": self.approval}
        if expired:
            result = {**row, "status": "expired"}
            return Decision([Draft("approval.expired", ref)], result)
        if self.verdict == "reject":
            return Decision([Draft("approval.rejected", ref)], {**row, "status": "rejected"})
        if row["requested_by"] == self.decided_by:
            raise SelfApproval(
                f"approval {self.approval} was requested by this key: "
                "a different principal must approve it"
            )
        drafts = [Draft("approval.approved", ref)]
        if row["action"] not in LEDGER_ACTIONS:
            return Decision(drafts, {**row, "status": "approved"})
        results = []
        for command in action_commands(row["action"], row["payload"], view):
            decision = command.decide(view, ctx)
            drafts.extend(decision.drafts)
            results.append(decision.result)
        done = {**ref, "outcome": "succeeded", "detail": None}
        drafts.append(Draft("approval.executed", done))
        return Decision(drafts, {**row, "status": "executed", "results": results})


@dataclass(frozen=True)
class RecordExecution(Command):
    """Record what executing an approved (non-ledger) action came to, with the
    action's own record (``also``, such as ``RecordRestore``) in the same append.
    ``Conflict`` unless the approval is ``approved``: an approval executes once."""

    name: ClassVar[str] = "record_approval_execution"
    approval: str
    outcome: Literal["succeeded", "failed"]
    detail: str | None = None
    also: Command | None = None

    def request(self) -> dict[str, Any]:
        also = self.also.request() if self.also is not None else None
        return {
            "command": self.name,
            "approval": self.approval,
            "outcome": self.outcome,
            "detail": self.detail,
            "also": also,
        }

    def decide(self, view: StateView, ctx: Context) -> Decision:
        row = view.get("approvals", (self.approval,))
        if row is None:
            raise NotFound(f"approval {self.approval} not found")
        if row["status"] != "approved":
            raise Conflict(f"approval {self.approval} is {row['status']}, not approved")
        drafts = list(self.also.decide(view, ctx).drafts) if self.also is not None else []
        data = {"approval": self.approval, "outcome": self.outcome, "detail": self.detail}
        drafts.append(Draft("approval.executed", data))
        status = "executed" if self.outcome == "succeeded" else "failed"
        return Decision(drafts, {**row, "status": status, "detail": self.detail})
