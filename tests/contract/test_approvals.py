"""The two-person rule in the domain (docs/approvals.md): requests, decisions by a
second principal, expiry, and execution exactly once, through the real writer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from support.shop import ACCOUNT, Probe, Shop
from tenure.domain.approvals import (
    ApprovalExpired,
    DecideApproval,
    DecisionFacts,
    RecordExecution,
    RequestApproval,
    SelfApproval,
)
from tenure.domain.commands import Command, RetirePlan
from tenure.domain.events import Actor
from tenure.domain.lineage import KeyLineage
from tenure.errors import Conflict, TenureError
from tenure.service.ledger import Outcome, Submission
from tenure.service.replay import rebuild
from tenure.store.unit import SqlStore

REQUESTER = Actor("key_requester", "issuer", "api_key")
APPROVER = Actor("key_approver", "admin", "api_key")
OTHER = Actor("key_other", "owner", "api_key")


def run(shop: Shop, command: Command, actor: Actor, reason: str | None = None) -> Outcome:
    return shop.ledger.execute(Submission(ACCOUNT, command, actor, reason=reason))


def ask(shop: Shop, action: str, payload: dict[str, object], ttl: float = 3600) -> str:
    command = RequestApproval(action, "target", REQUESTER.id, ttl, payload)
    outcome = run(shop, command, REQUESTER, "asked")
    assert outcome.result["status"] == "pending"
    return str(outcome.result["approval"])


def decision(approval: str, actor: Actor, verdict: Literal["approve", "reject"]) -> DecideApproval:
    """``actor`` decides as a key independent of the requester (key lineage is the
    subject of tests/unit/test_key_lineage.py), made before the request."""
    decider = KeyLineage((actor.id,), "2000-01-01T00:00:00.000000Z")
    facts = DecisionFacts("2001-01-01T00:00:00.000000Z", KeyLineage((REQUESTER.id,), ""))
    return DecideApproval(approval, decider, verdict, facts)


def approve(shop: Shop, approval: str, actor: Actor = APPROVER) -> Outcome:
    return run(shop, decision(approval, actor, "approve"), actor, "looks right")


def events_of(shop: Shop, outcome: Outcome) -> list[tuple[str, str, str | None]]:
    return [(e.type, e.actor.id, e.reason) for e in outcome.events]


def test_the_requester_cannot_approve_their_own_request(shop: Shop, probe: Probe) -> None:
    approval = ask(shop, "keys.rotate", {})
    before = probe.snapshot()
    with pytest.raises(SelfApproval):
        approve(shop, approval, REQUESTER)
    assert probe.snapshot()[:3] == before[:3]


def test_an_approved_revocation_appends_its_events_with_the_approval(shop: Shop) -> None:
    serial = shop.license(shop.customer("c1"), "o1")
    approval = ask(shop, "license.revoke", {"serials": [serial]})
    outcome = approve(shop, approval)
    assert events_of(shop, outcome) == [
        ("approval.approved", APPROVER.id, "looks right"),
        ("license.revoked", APPROVER.id, "looks right"),
        ("approval.executed", APPROVER.id, "looks right"),
    ]
    assert outcome.result["status"] == "executed"
    with pytest.raises(Conflict, match="already executed"):
        approve(shop, approval, OTHER)


def test_a_failing_action_leaves_the_approval_pending(shop: Shop) -> None:
    """Two requests to revoke one license: once the first is approved, approving the
    second fails as a whole (nothing appended) and it can still be rejected."""
    serial = shop.license(shop.customer("c2"), "o2")
    first = ask(shop, "license.revoke", {"serials": [serial]})
    second = ask(shop, "license.revoke", {"serials": [serial]})
    approve(shop, first, OTHER)
    with pytest.raises(Conflict, match="revoked"):
        approve(shop, second)
    rejected = run(shop, decision(second, OTHER, "reject"), OTHER, "moot")
    assert rejected.result["status"] == "rejected"


def test_a_rejected_request_never_executes(shop: Shop) -> None:
    approval = ask(shop, "plan.retire", {"plan": Shop.PLAN})
    outcome = run(shop, decision(approval, APPROVER, "reject"), APPROVER, "not now")
    assert events_of(shop, outcome) == [("approval.rejected", APPROVER.id, "not now")]
    with pytest.raises(Conflict, match="already rejected"):
        approve(shop, approval, OTHER)


def test_an_expired_request_is_recorded_as_expired_and_cannot_be_approved(shop: Shop) -> None:
    approval = ask(shop, "plan.retire", {"plan": Shop.PLAN}, ttl=0)
    outcome = approve(shop, approval)
    assert outcome.result["status"] == "expired"
    assert [e.type for e in outcome.events] == ["approval.expired"]
    with pytest.raises(Conflict, match="already expired"):
        approve(shop, approval, OTHER)
    assert issubclass(ApprovalExpired, Conflict)


def test_a_retired_plan_issues_no_new_licenses(shop: Shop) -> None:
    approval = ask(shop, "plan.retire", {"plan": Shop.PLAN})
    approve(shop, approval)
    with pytest.raises(Conflict, match="retired"):
        shop.license(shop.customer("c4"), "o4")
    with pytest.raises(Conflict, match="already retired"):
        shop.run(RetirePlan(Shop.PLAN))


def test_a_non_ledger_action_executes_once_after_approval(shop: Shop) -> None:
    approval = ask(shop, "keys.rotate", {})
    assert approve(shop, approval).result["status"] == "approved"
    done = run(shop, RecordExecution(approval, "succeeded"), APPROVER)
    assert done.result["status"] == "executed"
    with pytest.raises(Conflict, match="executed, not approved"):
        run(shop, RecordExecution(approval, "succeeded"), APPROVER)


def test_two_concurrent_approvals_execute_once(shop: Shop) -> None:
    serial = shop.license(shop.customer("c5"), "o5")
    approval = ask(shop, "license.revoke", {"serials": [serial]})
    results: list[Outcome | TenureError] = []
    barrier = threading.Barrier(2)

    def decide(actor: Actor) -> None:
        barrier.wait()
        try:
            results.append(approve(shop, approval, actor))
        except TenureError as exc:
            results.append(exc)

    threads = [threading.Thread(target=decide, args=(a,)) for a in (APPROVER, OTHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r for r in results if isinstance(r, Outcome)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert (len(done), len(refused)) == (1, 1)
    assert [e.type for e in done[0].events].count("license.revoked") == 1


def test_approvals_replay_to_the_same_state(shop: Shop, probe: Probe) -> None:
    approval = ask(shop, "keys.rotate", {})
    approve(shop, approval)
    ask(shop, "plan.retire", {"plan": Shop.PLAN}, ttl=0)
    before = probe.digest().digest
    rebuild(SqlStore(probe.engine), ACCOUNT)
    assert probe.digest().digest == before


def test_expiry_is_computed_from_the_ttl(shop: Shop) -> None:
    start = datetime.now(UTC)
    outcome = run(shop, RequestApproval("keys.rotate", "t", REQUESTER.id, 7200), REQUESTER)
    expires = datetime.fromisoformat(outcome.result["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=2) <= expires - start < timedelta(hours=2, minutes=1)
