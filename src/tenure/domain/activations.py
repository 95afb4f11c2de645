"""Activations (SPEC "Offline operation"): devices holding a license's seats.

A device is known by the hash of its fingerprint, salted with the serial, and its
activation id is derived from that hash: activating the same device again finds the
same activation (no "fingerprint taken" after an upgrade or a restore). Seats are
counted from the license's ``license_seats`` row: node-locked holders keep their
seat until deactivated, floating holders until their lease ends. Lease ends are
compared with the clock at decision time, so an expired lease frees its seat
without an event.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from typing_extensions import TypedDict

from tenure.canonical import canonical_json
from tenure.domain.answers import closed
from tenure.domain.commands import Command, Context, Decision, Draft, require_row
from tenure.domain.decisions import effective_entitlements, license_status
from tenure.domain.state import Row, StateView
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.domain.values import ActivationId, Hex64, Serial, Time
from tenure.errors import Conflict, NotFound

USABLE_STATUSES = frozenset({"active", "in_grace"})


class LicenseInactive(Conflict):
    """The license is suspended, revoked or expired: it cannot take or keep seats."""

    code = "license_inactive"


class SeatLimitReached(Conflict):
    """Every seat of the license is held by another device."""

    code = "seat_limit"


def fingerprint_hash(serial: str, fingerprint: str) -> str:
    """The stored form of a device fingerprint (the fingerprint itself never is)."""
    return hashlib.sha256(
        canonical_json(["tenure.fingerprint.v1", serial, fingerprint])
    ).hexdigest()


def activation_id(account: str, serial: str, fingerprint_hash: str) -> str:
    """The activation of one device on one license: the same inputs, the same id."""
    digest = hashlib.sha256(
        canonical_json(["tenure.activation.v1", account, serial, fingerprint_hash])
    ).digest()
    return "act_" + base64.b32encode(digest).decode().lower()[:26]


def holds_seat(lease_expires_at: str | None, now: datetime) -> bool:
    """A holder keeps its seat if node-locked (no lease) or its lease has not ended."""
    return lease_expires_at is None or parse_time(lease_expires_at) > now


@closed
class Activation(TypedDict):
    """An activation as the API answers it (``activation_view``)."""

    id: ActivationId
    serial: Serial
    fingerprint_hash: Hex64
    mode: Literal["floating", "node-locked"]
    status: Literal["active", "lease_expired", "deactivated"]
    lease_expires_at: Time | None


@closed
class ActivationList(TypedDict):
    """The activations of a license."""

    activations: list[Activation]


def activation_view(row: Row, now: datetime) -> Activation:
    """The public form of an activation row; ``status`` says ``lease_expired`` for a
    floating activation whose lease has ended."""
    status = row["status"]
    if status == "active" and not holds_seat(row["lease_expires_at"], now):
        status = "lease_expired"
    return {
        "id": row["activation"],
        "serial": row["serial"],
        "fingerprint_hash": row["fingerprint_hash"],
        "mode": row["mode"],
        "status": status,
        "lease_expires_at": row["lease_expires_at"],
    }


def _usable_license(view: StateView, serial: str, now: datetime) -> tuple[Row, Row]:
    """The license and its plan version; ``LicenseInactive`` unless it may hold seats."""
    license_row = require_row(view, "licenses", serial, "license")
    plan = view.get("plan_versions", (license_row["plan"], license_row["plan_version"]))
    if plan is None:
        raise NotFound(f"plan {license_row['plan']} v{license_row['plan_version']} not found")
    status = license_status(license_row, plan, now).status
    if status not in USABLE_STATUSES:
        raise LicenseInactive(f"license {serial} is {status}: it cannot hold seats")
    return license_row, plan


def _require_free_seat(
    view: StateView, license_row: Row, plan: Row, activation: str, now: datetime
) -> None:
    seats = effective_entitlements(plan, license_row).get("seats")
    if seats is None or isinstance(seats, bool):
        return
    row = view.get("license_seats", (license_row["serial"],))
    holders = (row or {}).get("holders", {})
    taken = sum(
        1 for other, lease in holders.items() if other != activation and holds_seat(lease, now)
    )
    if taken >= seats:
        raise SeatLimitReached(
            f"license {license_row['serial']} has {seats} seats and all are held",
            field="seats",
        )


def _lease_end(ctx: Context, seconds: int) -> str:
    return format_time(ctx.now + timedelta(seconds=seconds))


def _needs_renewal(lease_expires_at: str, now: datetime, lease_seconds: int) -> bool:
    """Renew (append an event) only once more than half of the lease has passed."""
    return parse_time(lease_expires_at) - now < timedelta(seconds=lease_seconds / 2)


@dataclass(frozen=True)
class ActivateDevice(Command):
    """Bind a device to a license, or find its existing activation (renewing a
    floating lease that is more than half used)."""

    name: ClassVar[str] = "activate_device"
    serial: str
    fingerprint_hash: str
    lease_seconds: int
    mode: str | None = None
    """``node-locked`` or ``floating``; None takes the plan's (a license file binds
    its air-gapped device node-locked, whatever the plan says)."""

    def decide(self, view: StateView, ctx: Context) -> Decision:
        license_row, plan = _usable_license(view, self.serial, ctx.now)
        activation = activation_id(ctx.account, self.serial, self.fingerprint_hash)
        current = view.get("activations", (activation,))
        mode = self.mode or plan["activation"]
        if current is not None and current["status"] == "active":
            lease = current["lease_expires_at"]
            if holds_seat(lease, ctx.now):
                return _renewed_if_due(current, ctx, self.lease_seconds, created=False)
        _require_free_seat(view, license_row, plan, activation, ctx.now)
        data = {
            "activation": activation,
            "serial": self.serial,
            "fingerprint_hash": self.fingerprint_hash,
            "mode": mode,
            "lease_expires_at": _lease_end(ctx, self.lease_seconds) if mode == "floating" else None,
        }
        result = {**data, "created": current is None}
        return Decision([Draft("activation.created", data)], result)


@dataclass(frozen=True)
class RenewLease(Command):
    """A heartbeat: keep a floating activation's seat (taking it back if its lease
    ended and a seat is free). A node-locked activation answers as it is."""

    name: ClassVar[str] = "renew_lease"
    activation: str
    lease_seconds: int
    covering_tokens: bool = False
    """Before an offline token is minted: make the lease last at least the plan's
    ``offline_token_ttl``, so that no other device can take the seat while the token
    still works offline."""

    def decide(self, view: StateView, ctx: Context) -> Decision:
        current = _activation_row(view, self.activation)
        license_row, plan = _usable_license(view, current["serial"], ctx.now)
        seconds = self.lease_seconds
        if self.covering_tokens:
            ttl = parse_duration(plan["offline_token_ttl"]).after(ctx.now) - ctx.now
            seconds = max(seconds, int(ttl.total_seconds()))
        if current["mode"] == "floating" and not holds_seat(current["lease_expires_at"], ctx.now):
            _require_free_seat(view, license_row, plan, self.activation, ctx.now)
            return _renewal(current, ctx, seconds)
        return _renewed_if_due(current, ctx, seconds, created=False)


@dataclass(frozen=True)
class DeactivateDevice(Command):
    """Free the seat of an activation; deactivating again changes nothing."""

    name: ClassVar[str] = "deactivate_device"
    activation: str

    def decide(self, view: StateView, ctx: Context) -> Decision:
        current = require_row(view, "activations", self.activation, "activation")
        result = {**_result(current), "status": "deactivated"}
        if current["status"] != "active":
            return Decision([], result)
        data = {"activation": self.activation, "serial": current["serial"]}
        return Decision([Draft("activation.deactivated", data)], result)


@dataclass(frozen=True)
class RevokeToken(Command):
    """Put an offline token on the revocation list; revoking it again changes nothing."""

    name: ClassVar[str] = "revoke_token"
    serial: str
    jti: str

    def decide(self, view: StateView, ctx: Context) -> Decision:
        require_row(view, "licenses", self.serial, "license")
        data = {"serial": self.serial, "jti": self.jti}
        existing = view.get("revoked_tokens", (self.jti,))
        if existing is not None:
            if existing["serial"] != self.serial:
                raise NotFound(f"token {self.jti} is not a token of license {self.serial}")
            return Decision([], {**data, "revoked": True})
        return Decision([Draft("token.revoked", data)], {**data, "revoked": True})


def _activation_row(view: StateView, activation: str) -> Row:
    row = require_row(view, "activations", activation, "activation")
    if row["status"] != "active":
        raise Conflict(f"activation {activation} was deactivated; activate the device again")
    return row


def _result(row: Row) -> dict[str, Any]:
    return {
        "activation": row["activation"],
        "serial": row["serial"],
        "fingerprint_hash": row["fingerprint_hash"],
        "mode": row["mode"],
        "lease_expires_at": row["lease_expires_at"],
    }


def _renewal(row: Row, ctx: Context, lease_seconds: int) -> Decision:
    lease = _lease_end(ctx, lease_seconds)
    data = {"activation": row["activation"], "serial": row["serial"], "lease_expires_at": lease}
    result = {**_result(row), "lease_expires_at": lease, "created": False}
    return Decision([Draft("activation.renewed", data)], result)


def _renewed_if_due(row: Row, ctx: Context, lease_seconds: int, created: bool) -> Decision:
    lease = row["lease_expires_at"]
    if lease is not None and _needs_renewal(lease, ctx.now, lease_seconds):
        return _renewal(row, ctx, lease_seconds)
    return Decision([], {**_result(row), "created": created})
