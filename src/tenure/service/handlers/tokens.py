"""The use cases of offline tokens and their signing keys (docs/offline.md): mint and
refresh a device's token, revoke one, issue a license file to an air-gapped device,
ask to rotate the signing key and rotate it (once a second principal approved it:
``keys.rotate`` is gated). The API's token routes call them.

A token or a license file is not a ledger event: its audit entry is chained through
``Record`` (the API's ``AuditBatcher``), durable before the answer. What it depends
on (the heartbeat that holds the device's seat, the node-locked activation) goes to
the ledger writer first, audited there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tenure.config import Settings
from tenure.crypto.keystore import LedgerKeyStore, LicenseKeys
from tenure.domain.activations import ActivateDevice, RenewLease, RevokeToken, activation_id
from tenure.domain.activations import fingerprint_hash as hash_fingerprint
from tenure.domain.timefmt import parse_duration
from tenure.errors import NotFound
from tenure.service.apikeys import Principal
from tenure.service.audit import AuditEntry, request_entry
from tenure.service.checks import require_own_license
from tenure.service.handlers import Submit
from tenure.service.handlers.approvals import request_approval
from tenure.service.handlers.audited import AuditedChange
from tenure.service.keyring import KeyRing
from tenure.service.ledger import SignRequest, Submission
from tenure.service.tokens import (
    IssuedLicenseFile,
    Minted,
    MintedToken,
    NotActivated,
    RevokedToken,
    Tokens,
    issued_license_file,
    revoked_token,
)
from tenure.service.views import ApprovalPending
from tenure.store.unit import Transaction

Record = Callable[[Sequence[AuditEntry]], None]
"""Chains audit entries, returning once they are durable; raises
``StorageUnavailable`` if they were not (the API's ``AuditBatcher``)."""

PERPETUAL_FILE_LIFETIME = timedelta(days=365)


def _now() -> datetime:
    return datetime.now(UTC)


def _jwks_url(settings: Settings, account: str) -> str:
    # Never from the request's Host header (docs/hardening.md): from the settings.
    return settings.public(f"/.well-known/jwks.json?{urlencode({'account': account})}")


def _hold_seat_for_token(
    submit: Submit, settings: Settings, caller: Principal, activation: str
) -> None:
    """A heartbeat that makes a floating lease outlast the token about to be minted
    (a lease that ended while the device was offline is taken back if a seat is
    free: ``Conflict`` ``seat_limit`` otherwise); ``NotActivated`` for an unknown
    device."""
    heartbeat = RenewLease(activation, settings.lease_seconds, covering_tokens=True)
    try:
        submit(Submission.by(caller, heartbeat))
    except NotFound:
        raise NotActivated("this device is not activated: activate it first") from None


def _answer_minted(
    record: Record,
    settings: Settings,
    caller: Principal,
    minted: Minted,
    action: str,
    previous: str | None,
) -> MintedToken:
    detail = {"jti": minted.claims["jti"], "activation": minted.claims["act"]}
    if previous is not None:
        detail["previous"] = previous
    record([request_entry(caller, action, minted.claims["sub"], detail)])
    return minted.answer(caller.account, _jwks_url(settings, caller.account))


def mint_token(
    submit: Submit,
    record: Record,
    tokens: Tokens,
    settings: Settings,
    caller: Principal,
    serial: str,
    fingerprint: str,
) -> MintedToken:
    """A token for the device of ``fingerprint`` on license ``serial``, its floating
    lease renewed to outlast it, audited as ``mint_token``. ``NotActivated`` when the
    device holds no seat, ``LicenseInactive`` for a license that may not be used."""
    fph = hash_fingerprint(serial, fingerprint)
    _hold_seat_for_token(submit, settings, caller, activation_id(caller.account, serial, fph))
    minted = tokens.mint(caller.account, serial, fph, _now())
    return _answer_minted(record, settings, caller, minted, "mint_token", None)


def refresh_token(
    submit: Submit,
    record: Record,
    tokens: Tokens,
    settings: Settings,
    caller: Principal,
    holder: str | None,
    token: str,
) -> MintedToken:
    """The next token for the activation of ``token`` (expired or not, signed by the
    caller's account), renewing its lease as a heartbeat does, audited as
    ``refresh_token``. ``TokenRejected`` for a token the account did not sign,
    ``Forbidden`` for a token of another license than ``holder``'s (a ``License``
    credential's), ``TokenRevoked`` for a revoked token or activation,
    ``LicenseInactive`` for a license that may not be used."""
    now = _now()
    claims = tokens.verify_for_refresh(caller.account, token, now)
    require_own_license(holder, claims["sub"])
    # Before the heartbeat: a revoked token renews no lease and writes nothing.
    tokens.refuse_if_revoked(caller.account, claims, now)
    _hold_seat_for_token(submit, settings, caller, claims["act"])
    minted = tokens.mint(caller.account, claims["sub"], claims["fph"], _now(), claims["jti"])
    return _answer_minted(record, settings, caller, minted, "refresh_token", claims["jti"])


def revoke_token(
    submit: Submit, caller: Principal, serial: str, jti: str, reason: str
) -> RevokedToken:
    """Put token ``jti`` of license ``serial`` on the revocation list with ``reason``
    → ``{"serial", "jti", "revoked": true}`` (again: unchanged)."""
    outcome = submit(Submission.by(caller, RevokeToken(serial, jti), reason))
    return revoked_token(outcome.result)


def _file_lifetime(expires: str | None, now: datetime) -> timedelta:
    if expires is None:
        return PERPETUAL_FILE_LIFETIME  # the token claims cap it at the license's end
    return parse_duration(expires, field="expires").after(now) - now


def issue_license_file(
    submit: Submit,
    record: Record,
    tokens: Tokens,
    license_keys: LicenseKeys,
    settings: Settings,
    caller: Principal,
    serial: str,
    fingerprint: str,
    expires: str | None,
    encrypt: bool,
) -> IssuedLicenseFile:
    """Bind the device of ``fingerprint`` to license ``serial`` (a node-locked
    activation, taking a seat) → an armored license file living ``expires`` (ISO
    8601; None: the rest of the license's term, at most a year for a perpetual one),
    encrypted with a key derived from the license key when ``encrypt``; audited as
    ``issue_license_file``. ``InvalidInput`` (field ``expires``) for a malformed
    duration, before anything is written."""
    now = _now()
    lifetime = _file_lifetime(expires, now)
    fph = hash_fingerprint(serial, fingerprint)
    activate = ActivateDevice(serial, fph, settings.lease_seconds, mode="node-locked")
    submit(Submission.by(caller, activate))
    license_key = license_keys.key(caller.account, serial) if encrypt else None
    text, claims = tokens.license_file(caller.account, serial, fph, now, lifetime, license_key)
    detail = {"jti": claims["jti"], "activation": claims["act"], "encrypted": encrypt}
    record([request_entry(caller, "issue_license_file", serial, detail)])
    return issued_license_file(text, claims, encrypt)


# ---------------------------------------------------------------- signing keys


def signed_keyset(
    submit: Submit, tokens: Tokens, keystore: LedgerKeyStore, caller: Principal
) -> str:
    """The caller's account's token keys as a key set note signed by its ledger key
    now; an account without a ledger key yet gets one first (the writer makes it
    with the account's first checkpoint). ``NotFound`` if it still has none."""
    note = tokens.signed_keyset(caller.account, keystore, _now())
    if note is None:
        submit(SignRequest(caller.account))
        note = tokens.signed_keyset(caller.account, keystore, _now())
    if note is None:
        raise NotFound(f"account {caller.account} has no ledger key yet")
    return note


def request_rotation(submit: Submit, settings: Settings, caller: Principal) -> ApprovalPending:
    """Ask a second principal to approve making a new signing key for the caller's
    account (``keys.rotate``) → the approval; ``rotate_signing_key`` executes it."""
    return request_approval(submit, settings, caller, "keys.rotate", caller.account, {}, None)


@dataclass(frozen=True)
class RotateSigningKey(AuditedChange):
    """Retire the account's current signing key and make a new one at ``now`` →
    ``{"id", "kid", "created_at"}`` of the new key."""

    keyring: KeyRing = field(repr=False)
    now: datetime

    def run(self, tx: Transaction) -> dict[str, Any]:
        return self.keyring.rotate_in(tx, self.account, self.now)


def rotate_signing_key(
    submit: Submit, keyring: KeyRing, caller: Principal, action: str
) -> dict[str, Any]:
    """Rotate the caller's account's token signing key now, audited as ``action``
    (the decision that executes the approved rotation) → the new key."""
    entry = request_entry(caller, action, target="keys.rotate")
    result: dict[str, Any] = submit(RotateSigningKey(entry, keyring, datetime.now(UTC))).result
    return result
