"""The use cases of approvals (the two-person rule, docs/approvals.md): request one
for a gated action, list and read them, decide one, and record how executing an
approved action went. What executes an approved action that is not a ledger command
is registered by the composition root (``tenure.service.approvals.Executors``)."""

from __future__ import annotations

from typing import Any

from tenure.config import Settings
from tenure.domain.approvals import (
    ACTIONS,
    ApprovalExpired,
    DecideApproval,
    RecordExecution,
    RequestApproval,
)
from tenure.domain.state import Row
from tenure.errors import Forbidden, TenureError
from tenure.service import approvals
from tenure.service.apikeys import Principal
from tenure.service.approvals import Execution
from tenure.service.handlers import Submit
from tenure.service.ledger import Submission
from tenure.service.policy import POLICY, allowed, require_may_manage
from tenure.service.views import (
    ApprovalExecuted,
    ApprovalFailed,
    ApprovalList,
    ApprovalPending,
    ApprovalView,
    ApprovalWithHistory,
    ExecutionError,
)
from tenure.store.unit import Store


def request_approval(
    submit: Submit,
    settings: Settings,
    caller: Principal,
    action: str,
    target: str,
    payload: dict[str, Any],
    reason: str | None,
) -> ApprovalPending:
    """Record an ``approval.requested`` for ``action`` by ``caller`` instead of
    acting, expiring after ``TENURE_APPROVAL_TTL_HOURS`` → the approval. ``payload``
    is what executing it needs: never secrets or personal data."""
    ttl = settings.approval_ttl_hours * 3600
    command = RequestApproval(action, target, caller.id, ttl, payload)
    submission = Submission.by(caller, command, reason)
    return ApprovalPending(approval=ApprovalView.model_validate(submit(submission).result))


def list_approvals(store: Store, caller: Principal, now: str, status: str | None) -> ApprovalList:
    """The account's approvals (only those of ``status`` as of ``now`` when given),
    newest expiry first; ``InvalidInput`` for an unknown status."""
    found = approvals.list_approvals(store, caller.account, now, status)
    return ApprovalList(approvals=[ApprovalView.model_validate(view) for view in found])


def get_approval(store: Store, caller: Principal, approval: str, now: str) -> ApprovalWithHistory:
    """One approval with its events; ``NotFound`` for an unknown one."""
    return ApprovalWithHistory.model_validate(
        approvals.get_approval(store, caller.account, approval, now)
    )


def _require_may_decide(caller: Principal, row: Row) -> None:
    """The approver needs the role the action itself needs, or the owner role."""
    needed = ACTIONS[row["action"]]
    if caller.role != "owner" and not allowed(caller.role, needed):
        roles = ", ".join(sorted(POLICY[needed] | {"owner"}))
        raise Forbidden(
            f"deciding on {row['action']} needs one of the roles {roles}", action=needed
        )
    if row["action"] == "apikey.revoke":
        require_may_manage(caller, row["payload"]["role"])


def decide(
    store: Store, submit: Submit, caller: Principal, approval: str, approve: bool, reason: str
) -> dict[str, Any]:
    """Approve (``approve``) or reject ``approval`` with ``reason`` → the approval as
    the decision left it (``executed`` when approving executed ledger commands, with
    their ``results``). ``NotFound`` for an unknown approval, ``Forbidden`` for a role
    that may not decide it or a decider that is not independent of the requester,
    ``ApprovalExpired`` past its ``expires_at``, ``Conflict`` unless pending."""
    row = approvals.read_row(store, caller.account, approval)
    _require_may_decide(caller, row)
    decider, facts = approvals.decision_facts(store, caller.account, row, caller.id)
    command = DecideApproval(approval, decider, "approve" if approve else "reject", facts)
    decided: dict[str, Any] = submit(Submission.by(caller, command, reason)).result
    if decided["status"] == "expired":
        raise ApprovalExpired(f"approval {approval} expired at {row['expires_at']}")
    return decided


def record_execution(
    submit: Submit,
    caller: Principal,
    approval: str,
    reason: str,
    done: Execution | TenureError,
) -> ApprovalExecuted | ApprovalFailed:
    """Record ``approval.executed`` (only from ``approved``: never twice) with the
    approval's ``reason``: succeeded with ``done``'s result, or failed with its error."""
    if isinstance(done, TenureError):
        failed = RecordExecution(approval, "failed", done.message[:500])
        recorded = submit(Submission.by(caller, failed, reason))
        error = ExecutionError(code=done.code, detail=done.message)
        return ApprovalFailed(approval=ApprovalView.model_validate(recorded.result), error=error)
    result = done.result
    command = RecordExecution(approval, "succeeded", None, done.also)
    recorded = submit(Submission.by(caller, command, reason))
    if done.also is not None:
        result["event"] = recorded.events[0].seq
    return ApprovalExecuted(approval=ApprovalView.model_validate(recorded.result), result=result)
