"""Entitlement decisions: reason codes in order, grace boundaries, overrides, purity."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.domain import decisions
from tenure.domain.decisions import ALLOWING_REASONS, REASONS, Decision, decide, license_status
from tenure.domain.timefmt import format_time
from tenure.errors import InvalidInput

ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRY = datetime(2027, 1, 1, tzinfo=UTC)
GRACE_END = EXPIRY + timedelta(days=14)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def plan_version(grace: str | None = "P14D") -> dict[str, Any]:
    grants: dict[str, bool | int] = {
        "seats": 5,
        "feature:sso": True,
        "feature:audit": False,
        "quota:calls": 0,
        "module:analytics": True,
    }
    return {
        "plan": "pro",
        "version": 1,
        "product": "acme",
        "entitlements": grants,
        "core": ["feature:sso"],
        "duration": "P1Y",
        "grace": grace,
        "offline_token_ttl": "PT24H",
        "activation": "floating",
    }


def license_row(
    status: str = "active",
    expires_at: datetime | None = EXPIRY,
    overrides: dict[str, bool | int] | None = None,
) -> dict[str, Any]:
    return {
        "serial": "TNR-AAAAA-BBBBB-CCCCC-DDDDD",
        "product": "acme",
        "customer": "cus_" + "a" * 26,
        "plan": "pro",
        "plan_version": 1,
        "order_ref": "o-1",
        "key_hash": "0" * 64,
        "status": status,
        "issued_at": format_time(ISSUED),
        "expires_at": None if expires_at is None else format_time(expires_at),
        "overrides": overrides or {},
    }


# ---------------------------------------------------------------- one test per reason code


def test_unknown_license_is_denied_with_reason_unknown_license_and_reveals_nothing() -> None:
    decision = decide(None, plan_version(), "feature:sso", NOW)
    assert decision.to_json() == {
        "allowed": False,
        "reason": "unknown_license",
        "value": None,
        "status": "unknown",
        "expires_at": None,
    }


def test_revoked_license_is_denied_with_reason_revoked() -> None:
    decision = decide(license_row("revoked"), plan_version(), "feature:sso", NOW)
    assert decision == Decision(False, "revoked", None, "revoked", format_time(EXPIRY))


def test_suspended_license_is_denied_with_reason_suspended_and_reports_its_value() -> None:
    decision = decide(license_row("suspended"), plan_version(), "seats", NOW)
    assert decision == Decision(False, "suspended", 5, "suspended", format_time(EXPIRY))


def test_expired_license_is_denied_with_reason_expired_and_reports_its_value() -> None:
    decision = decide(license_row(), plan_version(), "feature:sso", GRACE_END + timedelta(days=1))
    assert decision == Decision(False, "expired", True, "expired", format_time(EXPIRY))


@pytest.mark.parametrize(
    ("entitlement", "value"),
    [("feature:missing", None), ("feature:audit", False), ("quota:calls", 0)],
)
def test_missing_false_or_zero_entitlement_is_denied_with_reason_not_entitled(
    entitlement: str, value: bool | int | None
) -> None:
    decision = decide(license_row(), plan_version(), entitlement, NOW)
    assert (decision.allowed, decision.reason, decision.value) == (False, "not_entitled", value)
    assert decision.status == "active"


def test_seats_all_in_use_is_denied_with_reason_seat_limit() -> None:
    decision = decide(license_row(), plan_version(), "seats", NOW, seats_in_use=5)
    assert decision == Decision(False, "seat_limit", 5, "active", format_time(EXPIRY))


def test_seats_with_one_free_is_allowed() -> None:
    decision = decide(license_row(), plan_version(), "seats", NOW, seats_in_use=4)
    assert (decision.allowed, decision.reason, decision.value) == (True, "ok", 5)


def test_seats_without_a_count_report_the_seat_count() -> None:
    decision = decide(license_row(), plan_version(), "seats", NOW)
    assert (decision.allowed, decision.reason, decision.value) == (True, "ok", 5)


def test_seats_in_use_only_limits_the_seats_entitlement() -> None:
    decision = decide(license_row(), plan_version(), "feature:sso", NOW, seats_in_use=99)
    assert decision.reason == "ok"


def test_license_inside_grace_is_allowed_with_reason_in_grace() -> None:
    decision = decide(license_row(), plan_version(), "module:analytics", EXPIRY + timedelta(days=1))
    assert decision == Decision(True, "in_grace", True, "in_grace", format_time(EXPIRY))


def test_active_license_is_allowed_with_reason_ok() -> None:
    decision = decide(license_row(), plan_version(), "feature:sso", NOW)
    assert decision == Decision(True, "ok", True, "active", format_time(EXPIRY))


# ---------------------------------------------------------------- guard order


def test_suspended_beats_expired() -> None:
    late = GRACE_END + timedelta(days=30)
    assert license_status(license_row("suspended"), plan_version(), late).status == "suspended"
    assert decide(license_row("suspended"), plan_version(), "feature:sso", late).reason == (
        "suspended"
    )


def test_revoked_beats_suspended_expiry_and_entitlement() -> None:
    late = GRACE_END + timedelta(days=30)
    decision = decide(license_row("revoked"), plan_version(), "feature:missing", late)
    assert (decision.reason, decision.status, decision.value) == ("revoked", "revoked", None)


def test_expired_beats_not_entitled() -> None:
    late = GRACE_END + timedelta(days=30)
    assert decide(license_row(), plan_version(), "feature:audit", late).reason == "expired"


def test_not_entitled_beats_in_grace() -> None:
    inside = EXPIRY + timedelta(days=1)
    assert decide(license_row(), plan_version(), "feature:audit", inside).reason == "not_entitled"


def test_seat_limit_beats_in_grace() -> None:
    inside = EXPIRY + timedelta(days=1)
    decision = decide(license_row(), plan_version(), "seats", inside, seats_in_use=5)
    assert (decision.reason, decision.status) == ("seat_limit", "in_grace")


def test_module_docstring_lists_every_reason_code_in_guard_order() -> None:
    doc = decisions.__doc__ or ""
    positions = [doc.index(f"``{reason}``") for reason in REASONS]
    assert positions == sorted(positions)


# ---------------------------------------------------------------- grace boundaries


@pytest.mark.parametrize(
    ("now", "status", "reason", "allowed"),
    [
        (EXPIRY - TICK, "active", "ok", True),
        (EXPIRY, "in_grace", "in_grace", True),
        (EXPIRY + timedelta(days=7), "in_grace", "in_grace", True),
        (GRACE_END - TICK, "in_grace", "in_grace", True),
        (GRACE_END, "expired", "expired", False),
        (GRACE_END + TICK, "expired", "expired", False),
    ],
    ids=["just-before-expiry", "at-expiry", "inside-grace", "just-before-grace-end",
         "at-grace-end", "after-grace-end"],
)  # fmt: skip
def test_grace_period_boundaries(now: datetime, status: str, reason: str, allowed: bool) -> None:
    assert license_status(license_row(), plan_version(), now).status == status
    decision = decide(license_row(), plan_version(), "feature:sso", now)
    assert (decision.status, decision.reason, decision.allowed) == (status, reason, allowed)


def test_without_grace_a_license_is_expired_exactly_at_expiry() -> None:
    plan = plan_version(grace=None)
    assert license_status(license_row(), plan, EXPIRY - TICK).status == "active"
    assert license_status(license_row(), plan, EXPIRY).status == "expired"
    assert decide(license_row(), plan, "feature:sso", EXPIRY).reason == "expired"


def test_status_reports_expiry_and_grace_end() -> None:
    status = license_status(license_row(), plan_version(), NOW)
    assert (status.expires_at, status.grace_ends_at) == (
        format_time(EXPIRY),
        format_time(GRACE_END),
    )


def test_calendar_grace_follows_month_ends() -> None:
    expiry = datetime(2027, 1, 31, tzinfo=UTC)
    status = license_status(license_row(expires_at=expiry), plan_version(grace="P1M"), expiry)
    assert status.grace_ends_at == "2027-02-28T00:00:00.000000Z"


def test_grace_past_the_year_9999_never_ends() -> None:
    expiry = datetime(9999, 6, 1, tzinfo=UTC)
    row = license_row(expires_at=expiry)
    now = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert license_status(row, plan_version(grace="P1Y"), now).status == "in_grace"


def test_now_in_another_timezone_is_the_same_instant() -> None:
    plus_two = EXPIRY.astimezone(timezone(timedelta(hours=2)))
    assert license_status(license_row(), plan_version(grace=None), plus_two).status == "expired"


# ---------------------------------------------------------------- perpetual licenses


def test_perpetual_license_never_expires() -> None:
    row = license_row(expires_at=None)
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert license_status(row, plan_version(), far) == decisions.Status("active", None, None)
    assert decide(row, plan_version(), "feature:sso", far) == Decision(
        True, "ok", True, "active", None
    )


def test_suspended_perpetual_license_is_denied_with_reason_suspended() -> None:
    decision = decide(license_row("suspended", expires_at=None), plan_version(), "seats", NOW)
    assert (decision.reason, decision.value, decision.expires_at) == ("suspended", 5, None)


# ---------------------------------------------------------------- overrides


def test_override_grants_what_the_plan_withholds() -> None:
    row = license_row(overrides={"feature:audit": True, "quota:calls": 1000})
    assert decide(row, plan_version(), "feature:audit", NOW).reason == "ok"
    decision = decide(row, plan_version(), "quota:calls", NOW)
    assert (decision.allowed, decision.value) == (True, 1000)


def test_override_false_removes_a_planned_feature() -> None:
    row = license_row(overrides={"feature:sso": False})
    decision = decide(row, plan_version(), "feature:sso", NOW)
    assert (decision.allowed, decision.reason, decision.value) == (False, "not_entitled", False)


def test_override_zero_removes_all_seats() -> None:
    row = license_row(overrides={"seats": 0})
    decision = decide(row, plan_version(), "seats", NOW, seats_in_use=0)
    assert (decision.allowed, decision.reason, decision.value) == (False, "not_entitled", 0)


def test_override_raises_the_seat_limit() -> None:
    row = license_row(overrides={"seats": 10})
    assert decide(row, plan_version(), "seats", NOW, seats_in_use=5).reason == "ok"
    assert decide(row, plan_version(), "seats", NOW, seats_in_use=10).reason == "seat_limit"


def test_missing_plan_version_grants_only_overrides_and_no_grace() -> None:
    row = license_row(overrides={"feature:audit": True})
    assert decide(row, None, "feature:audit", NOW).reason == "ok"
    assert decide(row, None, "feature:sso", NOW).reason == "not_entitled"
    assert license_status(row, None, EXPIRY).status == "expired"


# ---------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "entitlement",
    [
        "",
        "sso",
        "feature:",
        "feature:SSO",
        "seat",
        "seats:1",
        "plan:pro",
        "feature:sso\n",
        "x" * 80,
    ],
)
def test_invalid_entitlement_key_raises_invalid_input(entitlement: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decide(license_row(), plan_version(), entitlement, NOW)
    assert info.value.field == "entitlement"


def test_invalid_entitlement_key_raises_even_for_an_unknown_license() -> None:
    with pytest.raises(InvalidInput) as info:
        decide(None, None, "nope", NOW)
    assert info.value.field == "entitlement"


def test_naive_now_raises_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        decide(license_row(), plan_version(), "seats", datetime(2026, 6, 1))
    assert info.value.field == "now"


def test_negative_seats_in_use_raises_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        decide(license_row(), plan_version(), "seats", NOW, seats_in_use=-1)
    assert info.value.field == "seats_in_use"


@pytest.mark.parametrize(
    ("row", "plan", "field"),
    [
        ({**license_row(), "status": "expired"}, plan_version(), "status"),
        ({**license_row(), "expires_at": "2027-01-01"}, plan_version(), "expires_at"),
        (license_row(), plan_version(grace="14 days"), "grace"),
    ],
)
def test_malformed_rows_raise_invalid_input_naming_the_field(
    row: dict[str, Any], plan: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        decide(row, plan, "seats", EXPIRY)
    assert info.value.field == field


# ---------------------------------------------------------------- properties

KEYS = ["seats", "quota:calls", "feature:sso", "feature:audit", "module:analytics"]
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


def _value(key: str) -> st.SearchStrategy[bool | int]:
    if key in ("seats", "quota:calls"):
        return st.integers(0, 20)
    return st.booleans()


@st.composite
def grants(draw: st.DrawFn) -> dict[str, bool | int]:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    return {key: draw(_value(key)) for key in keys}


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    plan = plan_version(grace=draw(st.sampled_from([None, "PT1H", "P14D", "P1M", "P1Y"])))
    plan["entitlements"] = draw(grants())
    row = license_row(
        draw(st.sampled_from(["active", "suspended", "revoked"])),
        draw(st.none() | times),
        draw(grants()),
    )
    known = draw(st.booleans())
    seats = draw(st.none() | st.integers(0, 25))
    return (row if known else None, plan, draw(st.sampled_from(KEYS)), draw(times), seats)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_decisions_are_deterministic_pure_and_consistent(case: tuple[Any, ...]) -> None:
    row, plan, entitlement, now, seats = case
    before = copy.deepcopy((row, plan))
    decision = decide(row, plan, entitlement, now, seats)
    assert decide(row, plan, entitlement, now, seats) == decision
    assert (row, plan) == before
    assert decision.reason in REASONS
    assert decision.allowed is (decision.reason in ALLOWING_REASONS)
    if decision.reason in ("revoked", "suspended", "unknown_license"):
        assert not decision.allowed
    if decision.reason in ("revoked", "unknown_license"):
        assert decision.value is None
    if row is None:
        assert decision.reason == "unknown_license"
    elif row["status"] in ("revoked", "suspended"):
        assert decision.reason == row["status"]
        assert decision.status == row["status"]
    assert set(decision.to_json()) == {"allowed", "reason", "value", "status", "expires_at"}
