"""Which licenses get lifecycle notices (docs/webhooks.md, "Lifecycle notices")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenure.domain.timefmt import format_time
from tenure.errors import InvalidInput
from tenure.ops.notices import EXPIRING, GRACE, Notice, due_notices, parse_leads

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
LEADS = (1, 7, 30)
PLANS: dict[tuple[str, int], Any] = {
    ("pro", 1): {"plan": "pro", "version": 1, "grace": "P14D"},
    ("basic", 1): {"plan": "basic", "version": 1, "grace": None},
}


def license_row(serial: str, expires_in: timedelta | None, **extra: Any) -> dict[str, Any]:
    return {
        "serial": serial,
        "customer": "cus_1",
        "plan": "pro",
        "plan_version": 1,
        "status": "active",
        "expires_at": None if expires_in is None else format_time(NOW + expires_in),
        **extra,
    }


def test_lead_days_parse_sorted_and_positive() -> None:
    assert parse_leads("30,7,1") == (1, 7, 30)
    assert parse_leads(" 7 , 7,30") == (7, 30)
    for bad in ("", "0", "x", "-1"):
        with pytest.raises(InvalidInput):
            parse_leads(bad)


@pytest.mark.parametrize(
    ("expires_in", "lead"),
    [
        (timedelta(days=29), 30),
        (timedelta(days=30), 30),
        (timedelta(days=6), 7),
        (timedelta(hours=23), 1),
    ],
)
def test_an_expiring_license_gets_the_smallest_lead_that_applies(
    expires_in: timedelta, lead: int
) -> None:
    [notice] = due_notices([license_row("L1", expires_in)], PLANS, NOW, LEADS)
    assert (notice.kind, notice.lead) == (EXPIRING, lead)


def test_no_notice_beyond_the_longest_lead_or_without_expiry_or_when_not_active() -> None:
    rows = [
        license_row("L1", timedelta(days=31)),
        license_row("L2", None),
        license_row("L3", timedelta(days=2), status="suspended"),
        license_row("L4", timedelta(days=2), status="revoked"),
    ]
    assert due_notices(rows, PLANS, NOW, LEADS) == []


def test_an_expired_license_in_grace_gets_a_grace_notice_and_without_grace_none() -> None:
    rows = [
        license_row("L1", -timedelta(days=1)),
        license_row("L2", -timedelta(days=1), plan="basic"),
        license_row("L3", -timedelta(days=15)),
    ]
    [notice] = due_notices(rows, PLANS, NOW, LEADS)
    assert (notice.kind, notice.serial, notice.lead) == (GRACE, "L1", None)


def test_notice_ids_are_stable_and_a_renewal_gives_new_ones() -> None:
    first = Notice(EXPIRING, "L1", "cus_1", "2026-03-08T00:00:00.000000Z", 7)
    again = Notice(EXPIRING, "L1", "cus_1", "2026-03-08T00:00:00.000000Z", 7)
    renewed = Notice(EXPIRING, "L1", "cus_1", "2027-03-08T00:00:00.000000Z", 7)
    other_lead = Notice(EXPIRING, "L1", "cus_1", "2026-03-08T00:00:00.000000Z", 1)
    assert first.id == again.id
    assert len({first.id, renewed.id, other_lead.id}) == 3
    assert first.id.startswith("ntc_")
    assert set(first.event_data()) == {"notice", "serial", "customer", "expires_at", "lead_days"}
