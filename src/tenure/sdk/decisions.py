"""Local entitlement decisions on a verified offline token (docs/offline.md, "The Python SDK").

Pure: the caller passes the token's grant, the time and the latest time seen. The
hot path of ``LicenseClient.check`` does not call ``decide``: it looks the
entitlement up in a ``Window`` of precomputed decisions, valid while the clock stays
inside ``[floor, until)``. Every other instant comes here.

Reasons, in the order ``decide`` checks them:

1. ``revoked`` — a revocation list named the license, the activation or the token.
2. ``not_activated`` — no verified token (never activated, or a cache that failed
   verification); ``untrusted_key`` when the cached token is signed by a key that
   the pinned ledger key does not vouch for (a forged or foreign cache).
3. ``clock_rollback`` — the clock is more than 5 minutes behind the latest time seen
   (or more than the 60 s skew leeway before the token's ``nbf``).
4. before ``exp``: ``ok`` when the value is truthy, else ``not_entitled``.
5. ``exp <= now < exp + grace``: ``offline_grace`` (allowed) for a truthy ``core``
   entitlement, ``not_entitled`` for a falsy or missing one, ``token_expired`` for the
   rest.
6. ``token_expired``.

``source`` says what decided: ``token`` (the signed token), ``revocation``, ``clock``
or ``none`` (no token).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Reason = Literal[
    "ok",
    "not_entitled",
    "offline_grace",
    "token_expired",
    "revoked",
    "clock_rollback",
    "not_activated",
    "untrusted_key",
]
Source = Literal["token", "revocation", "clock", "none"]
Value = bool | int | None

ROLLBACK_TOLERANCE = 300
"""A clock this many seconds behind the latest time seen is rolled back."""
CLOCK_SKEW = 60
"""Leeway for ``nbf`` against the local clock, as in token verification."""
PERSIST_EVERY = 5.0
"""The latest time seen is written at most this often (seconds); it bounds how long
a hot window stays open, so the rollback tolerance is effectively 300 to 305 s."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this application use ``entitlement`` now?"."""

    allowed: bool
    reason: Reason
    value: Value
    source: Source


NOT_ACTIVATED = Decision(False, "not_activated", None, "none")
UNTRUSTED_KEY = Decision(False, "untrusted_key", None, "none")
REVOKED = Decision(False, "revoked", None, "revocation")
CLOCK_ROLLBACK = Decision(False, "clock_rollback", None, "clock")
NOT_ENTITLED = Decision(False, "not_entitled", None, "token")


@dataclass(frozen=True, slots=True)
class Grant:
    """A verified offline token and the claims ``check`` decides from."""

    token: str
    serial: str
    issuer: str
    jti: str
    activation: str
    issued_at: int
    not_before: int
    expires_at: int
    grace: int
    entitlements: Mapping[str, bool | int]
    core: frozenset[str]

    @property
    def refresh_at(self) -> float:
        """When two thirds of the token's lifetime have passed."""
        return self.issued_at + (self.expires_at - self.issued_at) * 2 / 3


@dataclass(frozen=True, slots=True)
class Window:
    """Decisions that hold for every instant in ``[floor, until)``."""

    floor: float
    until: float
    decisions: dict[str, Decision] = field(default_factory=dict)
    missing: Decision = NOT_ENTITLED


CLOSED = Window(math.inf, -math.inf)
"""A window no instant is in: every check takes the slow path."""


def open_window(grant: Grant | None, revoked: bool, last_seen: float) -> Window:
    """The hot window after the clock was seen at ``last_seen``: until the token's
    ``exp`` or ``PERSIST_EVERY`` seconds later, whichever is first."""
    if grant is None or revoked:
        return CLOSED
    floor = max(last_seen - ROLLBACK_TOLERANCE, grant.not_before - CLOCK_SKEW)
    until = min(float(grant.expires_at), last_seen + PERSIST_EVERY)
    decisions = {name: _within_lifetime(value) for name, value in grant.entitlements.items()}
    return Window(floor, until, decisions)


def decide(
    grant: Grant | None,
    revoked: bool,
    entitlement: str,
    now: float,
    last_seen: float,
    absent: Decision = NOT_ACTIVATED,
) -> Decision:
    """Decide ``entitlement`` at ``now`` (see the module docstring for the order);
    ``absent`` is the answer without a grant (``NOT_ACTIVATED`` or ``UNTRUSTED_KEY``)."""
    if revoked:
        return REVOKED
    if grant is None:
        return absent
    if now < last_seen - ROLLBACK_TOLERANCE or now < grant.not_before - CLOCK_SKEW:
        return CLOCK_ROLLBACK
    value = grant.entitlements.get(entitlement)
    if now < grant.expires_at:
        return _within_lifetime(value)
    if now < grant.expires_at + grant.grace:
        if not value:
            return Decision(False, "not_entitled", value, "token")
        if entitlement in grant.core:
            return Decision(True, "offline_grace", value, "token")
    return Decision(False, "token_expired", value, "token")


def _within_lifetime(value: Value) -> Decision:
    if not value:  # None (not granted), False and 0 all grant nothing
        return Decision(False, "not_entitled", value, "token")
    return Decision(True, "ok", value, "token")
