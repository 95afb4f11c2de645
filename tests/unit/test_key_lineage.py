"""Key lineage and who may decide an approval (tenure.domain.lineage,
tenure.domain.approvals.check_decider): pure rules, checked key tree by key tree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.domain.approvals import (
    ApproverNotIndependent,
    DecisionFacts,
    SelfApproval,
    check_decider,
)
from tenure.domain.lineage import KeyLineage, line_of, lineage_of, same_principal
from tenure.errors import Conflict

BEFORE, ASKED, AFTER = (f"2026-01-0{day}T00:00:00.000000Z" for day in (1, 2, 3))

# root ── alice ── alice-ci
#      │        └─ alice-bot
#      └─ bob
# old (created before lineage was recorded) ── old-child
CREATORS: dict[str, str | None] = {
    "root": None,
    "alice": "root",
    "bob": "root",
    "alice-ci": "alice",
    "alice-bot": "alice",
    "old": None,
    "old-child": "old",
    "first-owner": "key_of_another_account",
}


def key(name: str, created_at: str = BEFORE) -> KeyLineage:
    return lineage_of(name, CREATORS, dict.fromkeys(CREATORS, created_at))


def row(requested_by: str, action: str = "keys.rotate", **payload: Any) -> dict[str, Any]:
    return {"approval": "apr_x", "action": action, "requested_by": requested_by, "payload": payload}


def facts(requested_by: str, target: str | None = None) -> DecisionFacts:
    return DecisionFacts(ASKED, key(requested_by), None if target is None else key(target))


def decide(decider: KeyLineage, requested_by: str, verdict: str = "approve") -> None:
    check_decider(row(requested_by), decider, verdict, facts(requested_by))


def test_a_line_runs_from_the_key_up_to_a_top() -> None:
    assert line_of("alice-ci", CREATORS) == ("alice-ci", "alice", "root")
    assert line_of("root", CREATORS) == ("root",)
    assert line_of("first-owner", CREATORS) == ("first-owner",)  # made from another account
    assert line_of("unknown", CREATORS) == ("unknown",)
    assert line_of("a", {"a": "b", "b": "a"}) == ("a", "b")  # a cycle ends the line


@pytest.mark.parametrize(
    ("one", "other", "why"),
    [
        ("alice", "alice", "is the requesting key"),
        ("alice-ci", "alice", "was created by the requesting key"),
        ("alice", "alice-ci", "created the requesting key"),
        ("root", "alice-ci", "created the requesting key"),
        ("alice-ci", "alice-bot", "made by the same key (alice)"),
        ("alice", "bob", None),
        ("alice-ci", "bob", None),
        ("old", "alice", None),
        ("old-child", "old", "was created by the requesting key"),
        ("first-owner", "root", None),
    ],
)
def test_keys_act_for_one_principal_when_one_made_the_other_or_one_key_made_both(
    one: str, other: str, why: str | None
) -> None:
    found = same_principal(key(one), key(other))
    assert (found is None) if why is None else (found is not None and why in found)
    assert (same_principal(key(other), key(one)) is None) == (found is None)


def test_the_requester_may_withdraw_but_never_approve() -> None:
    with pytest.raises(SelfApproval):
        decide(key("alice"), "alice")
    decide(key("alice"), "alice", "reject")


@pytest.mark.parametrize("approver", ["alice-ci", "alice-bot", "root"])
def test_a_key_of_the_same_principal_cannot_approve(approver: str) -> None:
    with pytest.raises(ApproverNotIndependent):
        decide(key(approver), "alice-ci" if approver != "alice-ci" else "alice")


def test_the_bootstrap_keys_requests_cannot_be_approved_by_any_key_it_made() -> None:
    for approver in ("alice", "bob", "alice-ci"):
        with pytest.raises(ApproverNotIndependent, match="created by the requesting key"):
            decide(key(approver), "root")


def test_people_made_by_the_root_approve_each_other() -> None:
    decide(key("bob"), "alice-ci")
    decide(key("alice-bot"), "bob")


def test_a_key_created_at_or_after_the_request_cannot_approve() -> None:
    for created in (ASKED, AFTER):
        with pytest.raises(ApproverNotIndependent, match="created after the request"):
            decide(key("bob", created), "alice")


def test_a_key_of_unknown_lineage_counts_if_it_is_not_the_requester_and_is_older() -> None:
    decide(key("old"), "alice")
    decide(key("alice"), "old")
    with pytest.raises(SelfApproval):
        decide(key("old"), "old")
    with pytest.raises(ApproverNotIndependent):
        decide(key("old", AFTER), "alice")


def test_the_target_of_a_revocation_neither_approves_nor_rejects_it() -> None:
    asked = row("bob", "apikey.revoke", key_id="alice")
    known = facts("bob", target="alice")
    for verdict in ("approve", "reject"):
        with pytest.raises(ApproverNotIndependent, match="to be revoked"):
            check_decider(asked, key("alice"), verdict, known)


def test_keys_the_target_made_cannot_reject_its_revocation_but_may_approve_it() -> None:
    asked = row("bob", "apikey.revoke", key_id="alice")
    known = facts("bob", target="alice")
    with pytest.raises(ApproverNotIndependent, match="created by the key to be revoked"):
        check_decider(asked, key("alice-ci"), "reject", known)
    check_decider(asked, key("alice-ci"), "approve", known)
    check_decider(asked, key("bob"), "reject", known)  # the requester withdraws


def test_facts_of_another_request_are_refused() -> None:
    with pytest.raises(Conflict):
        check_decider(row("alice"), key("bob"), "approve", facts("bob"))


@st.composite
def key_trees(draw: st.DrawFn) -> dict[str, str | None]:
    """A forest of up to 12 keys: each made by an earlier key or by none."""
    size = draw(st.integers(1, 12))
    creators: dict[str, str | None] = {}
    for index in range(size):
        made_by = draw(st.one_of(st.none(), st.integers(0, max(index - 1, 0))))
        creators[f"k{index}"] = None if made_by is None or index == 0 else f"k{made_by}"
    return creators


@given(key_trees(), st.data())
def test_acting_for_one_principal_is_symmetric_and_follows_creation(
    creators: dict[str, str | None], data: st.DataObject
) -> None:
    names = sorted(creators)
    one, other = data.draw(st.sampled_from(names)), data.draw(st.sampled_from(names))
    created = dict.fromkeys(creators, BEFORE)
    a, b = lineage_of(one, creators, created), lineage_of(other, creators, created)
    related = same_principal(a, b) is not None
    assert related == (same_principal(b, a) is not None)
    if creators[one] == other or one == other:
        assert related
    tops_only = set(a.line) & set(b.line) <= {a.line[-1]} - {one, other}
    assert related != tops_only
