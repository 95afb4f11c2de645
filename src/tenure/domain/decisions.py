"""Entitlement decisions: does a license grant an entitlement at a given instant?

Pure: the caller passes the projection rows and ``now``; nothing here reads a clock
or performs I/O, so the same rows and instant always give the same ``Decision``.
Standard library only: the SDK re-runs ``decide`` over proven rows
(``tenure.sdk.proofs``) without loading the server's dependencies.

Reason codes
------------
``decide`` checks these guards in this order and answers with the first that
applies; each code is a stable string that clients may branch on:

1. ``unknown_license`` — no such license. Denied; status ``unknown``; nothing about
   the license (value, expiry) is revealed.
2. ``revoked`` — the license was revoked (terminal). Denied; value ``None``.
3. ``suspended`` — the license is suspended. Denied. Suspension beats expiry.
4. ``expired`` — past its expiry and past the plan's grace period. Denied.
5. ``not_entitled`` — the effective value (plan version, then license overrides) is
   missing, ``false`` or ``0``. Denied.
6. ``seat_limit`` — only for ``seats`` when ``seats_in_use`` is given: the seats
   already taken are ``>=`` the seat count, so one more does not fit. Denied.
7. ``in_grace`` — past expiry but inside the grace period. Allowed.
8. ``ok`` — allowed.

``allowed`` is true exactly when the reason is ``in_grace`` or ``ok``.

``value`` is the effective entitlement value whenever the license is known and not
revoked — including when it is suspended or expired, so a client can say what
reinstating or renewing would restore; ``allowed`` alone is the gate. A revoked
license is over for good, so its value is ``None``.

Time boundaries
---------------
A license with ``expires_at`` is expired from that instant on: at ``now ==
expires_at`` it is ``in_grace`` if its plan has a grace period, else ``expired``.
Grace is half-open: ``expires_at <= now < grace end`` is ``in_grace`` and ``now ==
grace end`` is ``expired``. ``expires_at`` of ``None`` means perpetual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from tenure.domain.state import Row
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.errors import InvalidInput

ENTITLEMENT_KEY_PATTERN = r"^(seats|(feature|module|quota):[a-z0-9][a-z0-9._-]{0,63})$"

StatusName = Literal["active", "suspended", "revoked", "expired", "in_grace"]
Reason = Literal[
    "unknown_license",
    "revoked",
    "suspended",
    "expired",
    "not_entitled",
    "seat_limit",
    "in_grace",
    "ok",
]

REASONS: tuple[Reason, ...] = get_args(Reason)
"""Every reason code, in the order ``decide`` checks its guards."""

ALLOWING_REASONS: frozenset[Reason] = frozenset({"in_grace", "ok"})

# The events' pattern; fullmatch so that a trailing newline does not slip through.
_ENTITLEMENT_KEY = re.compile(ENTITLEMENT_KEY_PATTERN, re.ASCII)
_STORED_STATUSES = frozenset({"active", "suspended", "revoked"})
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Status:
    """A license's status at one instant, with the times it was derived from.

    ``grace_ends_at`` is set whenever the license expires and its plan has a grace
    period, whatever the status.
    """

    status: StatusName
    expires_at: str | None
    grace_ends_at: str | None


CheckStatus = Literal["active", "in_grace", "expired", "suspended", "revoked", "unknown"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this license use this entitlement now?"."""

    allowed: bool
    reason: Reason
    value: bool | int | None
    status: CheckStatus
    expires_at: str | None

    def to_json(self) -> dict[str, Any]:
        """``{"allowed", "reason", "value", "status", "expires_at"}`` for the API."""
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "value": self.value,
            "status": self.status,
            "expires_at": self.expires_at,
        }


def effective_entitlements(plan_version: Row, license_row: Row) -> dict[str, bool | int]:
    """Entitlements a license grants: its plan version's, then its overrides on top."""
    return {**plan_version["entitlements"], **license_row["overrides"]}


def license_status(license_row: Row, plan_version_row: Row | None, now: datetime) -> Status:
    """The status of ``license_row`` at ``now`` (timezone-aware).

    Stored ``suspended`` and ``revoked`` win over the time-derived statuses. An
    expiring license is ``in_grace`` for ``expires_at <= now < grace end`` and
    ``expired`` from the grace end on (from ``expires_at`` itself when the plan has
    no grace, or when ``plan_version_row`` is None). Raises ``InvalidInput`` for a
    naive ``now``, an unknown stored status, or a malformed ``expires_at`` or grace.
    """
    _require_aware(now)
    stored = license_row["status"]
    if stored not in _STORED_STATUSES:
        raise InvalidInput(f"license status {stored!r} is not a stored status", field="status")
    expires_at: str | None = license_row["expires_at"]
    if expires_at is None:
        return Status(stored, None, None)
    expiry = parse_time(expires_at, field="expires_at")
    grace_end = _grace_end(expiry, plan_version_row)
    grace_ends_at = None if grace_end is None else format_time(grace_end)
    if stored != "active" or now < expiry:
        return Status(stored, expires_at, grace_ends_at)
    if grace_end is not None and now < grace_end:
        return Status("in_grace", expires_at, grace_ends_at)
    return Status("expired", expires_at, grace_ends_at)


def decide(
    license_row: Row | None,
    plan_version_row: Row | None,
    entitlement: str,
    now: datetime,
    seats_in_use: int | None = None,
) -> Decision:
    """Decide whether ``license_row`` grants ``entitlement`` at ``now``.

    Applies the guards in the order of the module docstring and returns the first
    reason that holds. ``seats_in_use`` counts seats already taken, not the one being
    asked for. A missing ``plan_version_row`` grants nothing from the plan and no
    grace (overrides still count). Raises ``InvalidInput`` with ``field="entitlement"``
    for a key that is not ``seats`` or ``feature:``/``module:``/``quota:`` + code, with
    ``field="seats_in_use"`` for a negative count, and as ``license_status`` does.
    """
    _check_entitlement_key(entitlement)
    if seats_in_use is not None and seats_in_use < 0:
        raise InvalidInput("seats_in_use must not be negative", field="seats_in_use")
    _require_aware(now)
    if license_row is None:
        return Decision(False, "unknown_license", None, "unknown", None)
    status = license_status(license_row, plan_version_row, now)
    value = _effective_value(license_row, plan_version_row, entitlement)

    def deny(reason: Reason, value: bool | int | None = value) -> Decision:
        return Decision(False, reason, value, status.status, status.expires_at)

    if status.status == "revoked":
        return deny("revoked", None)
    if status.status == "suspended":
        return deny("suspended")
    if status.status == "expired":
        return deny("expired")
    if not value:  # None (not granted), False and 0 all grant nothing
        return deny("not_entitled")
    if entitlement == "seats" and seats_in_use is not None and seats_in_use >= value:
        return deny("seat_limit")
    reason: Reason = "in_grace" if status.status == "in_grace" else "ok"
    return Decision(True, reason, value, status.status, status.expires_at)


def _effective_value(
    license_row: Row, plan_version_row: Row | None, entitlement: str
) -> bool | int | None:
    plan = plan_version_row if plan_version_row is not None else {"entitlements": {}}
    return effective_entitlements(plan, license_row).get(entitlement)


def _grace_end(expiry: datetime, plan_version_row: Row | None) -> datetime | None:
    grace = None if plan_version_row is None else plan_version_row["grace"]
    if grace is None:
        return None
    duration = parse_duration(grace, field="grace")
    try:
        return duration.after(expiry)
    except InvalidInput:
        # A grace period running past the year 9999 has, for any real clock, no end.
        return _LAST_INSTANT


def _check_entitlement_key(entitlement: str) -> None:
    if not isinstance(entitlement, str) or not _ENTITLEMENT_KEY.fullmatch(entitlement):
        raise InvalidInput(
            "entitlement must be seats or feature:, module: or quota: followed by a code",
            field="entitlement",
        )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("now must carry a timezone", field="now")
