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

Who may decide is the rule of ``check_decider``: an approval counts only from a key
that acts for another principal than the requester (``tenure.domain.lineage``) and
existed before the request; the key a revocation targets takes no part in deciding
it. The service hands the decision the lineages it needs (``DecisionFacts``).

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
    require_row,
)
from tenure.domain.lineage import KeyLineage, same_principal
from tenure.domain.state import Row, StateView
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, Forbidden, InvalidInput

ACTIONS: dict[str, str] = {
    "restore": "ledger.restore",
    "license.revoke": "license.change",
    "keys.rotate": "keys.manage",
    "plan.retire": "catalog.apply",
    "catalog.apply": "catalog.apply",
    "apikey.revoke": "apikey.manage",
}
"""Gated action → the policy action (``tenure.service.policy.POLICY``) whose roles, or
the owner, may approve or reject it."""

LEDGER_ACTIONS = frozenset({"license.revoke", "plan.retire", "catalog.apply"})
"""Actions whose effect is ledger events, appended atomically with the approval."""


class SelfApproval(Forbidden):
    """The principal that asked for an action may not approve it."""

    code = "self_approval"


class ApproverNotIndependent(Forbidden):
    """The deciding key acts for the requester (key lineage), is newer than the
    request, or is the key (or made by the key) a revocation targets."""

    code = "approver_not_independent"


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
    row = require_row(view, "approvals", approval, "approval")
    if row["status"] != "pending":
        raise Conflict(f"approval {approval} is already {row['status']}")
    return row, now >= row["expires_at"]


@dataclass(frozen=True)
class DecisionFacts:
    """What deciding an approval needs from outside the projection: when it was
    requested (its ``approval.requested`` event's time) and the lineages of the
    requesting key and, for ``apikey.revoke``, of the key to be revoked."""

    requested_at: str
    requester: KeyLineage
    target: KeyLineage | None = None


def _refuse_target(row: Row, decider: KeyLineage, verdict: str, target: KeyLineage) -> None:
    """The key a revocation targets decides nothing about it, and the keys it created
    cannot reject it: a stolen key must not veto its own removal."""
    if decider.key == target.key:
        raise ApproverNotIndependent(
            f"this key is the key to be revoked by approval {row['approval']}: "
            "it takes no part in deciding its revocation"
        )
    if verdict == "reject" and decider.made_by(target.key):
        raise ApproverNotIndependent(
            "this key was created by the key to be revoked (directly or through keys it "
            f"created): it cannot reject approval {row['approval']}"
        )


def check_decider(row: Row, decider: KeyLineage, verdict: str, facts: DecisionFacts) -> None:
    """Raise unless ``decider`` may give ``verdict`` on the approval ``row``.

    ``SelfApproval`` when the requester approves (it may reject: withdraw).
    ``ApproverNotIndependent`` when the key to be revoked decides on its revocation,
    a key it created rejects it, or the approver acts for the same principal as the
    requester (``same_principal``) or was created at or after the request.
    """
    if facts.requester.key != row["requested_by"]:
        raise Conflict(f"the facts given are not those of approval {row['approval']}")
    if facts.target is not None:
        _refuse_target(row, decider, verdict, facts.target)
    if verdict != "approve":
        return
    if decider.key == facts.requester.key:
        raise SelfApproval(
            f"approval {row['approval']} was requested by this key: "
            "a different principal must approve it"
        )
    why = same_principal(decider, facts.requester)
    if why is not None:
        raise ApproverNotIndependent(f"{why}: another principal must approve {row['approval']}")
    if decider.created_at >= facts.requested_at:
        raise ApproverNotIndependent(
            f"this key was created after the request ({facts.requested_at}): only keys "
            f"that existed before it may approve {row['approval']}"
        )


@dataclass(frozen=True)
class DecideApproval(Command):
    """Approve or reject a pending approval as the key ``decider``.

    Approving a ledger action appends its events and ``approval.executed`` with
    ``approval.approved``, all or nothing. A request past its ``expires_at`` is
    recorded as ``approval.expired`` and the result says ``"status": "expired"``
    (the caller answers ``ApprovalExpired``). Raises ``SelfApproval`` or
    ``ApproverNotIndependent`` (``check_decider``) for a key that may not decide,
    ``Conflict`` unless the approval is pending.
    """

    name: ClassVar[str] = "decide_approval"
    approval: str
    decider: KeyLineage
    verdict: Literal["approve", "reject"]
    facts: DecisionFacts

    def request(self) -> dict[str, Any]:
        # The facts follow from the approval and the key: they are not the request.
        return {
            "command": self.name,
            "approval": self.approval,
            "decider": self.decider.key,
            "verdict": self.verdict,
        }

    def decide(self, view: StateView, ctx: Context) -> Decision:
        now = format_time(ctx.now)
        row, expired = _pending(view, self.approval, now)
        check_decider(row, self.decider, self.verdict, self.facts)
        ref = {"approval": self.approval}
        if expired:
            result = {**row, "status": "expired"}
            return Decision([Draft("approval.expired", ref)], result)
        if self.verdict == "reject":
            return Decision([Draft("approval.rejected", ref)], {**row, "status": "rejected"})
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
        row = require_row(view, "approvals", self.approval, "approval")
        if row["status"] != "approved":
            raise Conflict(f"approval {self.approval} is {row['status']}, not approved")
        drafts = list(self.also.decide(view, ctx).drafts) if self.also is not None else []
        data = {"approval": self.approval, "outcome": self.outcome, "detail": self.detail}
        drafts.append(Draft("approval.executed", data))
        status = "executed" if self.outcome == "succeeded" else "failed"
        return Decision(drafts, {**row, "status": status, "detail": self.detail})
