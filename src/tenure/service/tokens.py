"""Offline tokens and the revocation list (docs/offline.md).

A token states one license's entitlements on one activation, signed with the
account's current key. Minting reads the state and writes nothing: tokens are not
ledger events (each mint is an audit entry, written by the caller). Revocations are
read from the ledger itself, so the list is exactly what the signed log says.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from typing_extensions import TypedDict

from tenure.crypto import jws, license_file
from tenure.crypto.keystore import LedgerKeyStore
from tenure.domain.activations import (
    USABLE_STATUSES,
    LicenseInactive,
    activation_id,
    holds_seat,
)
from tenure.domain.answers import closed
from tenure.domain.decisions import Status, effective_entitlements, license_status
from tenure.domain.state import Row
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.domain.values import ActivationId, Serial, Time, TokenId
from tenure.errors import Conflict, NotFound, TenureError, TokenRejected
from tenure.service.keyring import KeyRing, ledger_signers
from tenure.store.records import StoredCheckpoint
from tenure.store.unit import Store, Transaction

TOKEN_TYP = "tenure-offline+jwt"  # noqa: S105 - a media type, not a secret
REVOCATIONS_TYP = "tenure-revocations+jwt"
REVOKING_EVENTS = (
    "license.revoked",
    "license.suspended",
    "license.reinstated",
    "activation.deactivated",
    "token.revoked",
)


class NotActivated(Conflict):
    """No active activation of this device holds a seat of the license."""

    code = "not_activated"


class TokenRevoked(Conflict):
    """The token to refresh was revoked: its ``jti`` is on the revocation list, or
    its activation was deactivated. A revoked token is never refreshed."""

    code = "token_revoked"


@dataclass(frozen=True)
class _State:
    """What a token states, read in one snapshot."""

    license: Row
    plan: Row
    status: Status
    held: Row
    checkpoint: StoredCheckpoint | None


@closed
class MintedToken(TypedDict):
    """A minted offline token (``Minted.answer``)."""

    token: str
    expires_at: Time
    jti: TokenId
    account: str
    jwks_url: str


@closed
class IssuedLicenseFile(TypedDict):
    """An armored license file (``issued_license_file``)."""

    license_file: str
    expires_at: Time
    jti: TokenId
    activation: ActivationId
    encrypted: bool


def issued_license_file(text: str, claims: dict[str, Any], encrypted: bool) -> IssuedLicenseFile:
    """The answer of ``POST /v1/licenses/{serial}/license-file``: the file ``text`` and
    what its ``claims`` say (its end, token id and activation)."""
    return {
        "license_file": text,
        "expires_at": format_time(datetime.fromtimestamp(claims["exp"], UTC)),
        "jti": claims["jti"],
        "activation": claims["act"],
        "encrypted": encrypted,
    }


@closed
class RevokedToken(TypedDict):
    """A token on the revocation list (``revoked_token``)."""

    serial: Serial
    jti: TokenId
    revoked: Literal[True]


def revoked_token(result: dict[str, Any]) -> RevokedToken:
    """The answer of ``POST /v1/licenses/{serial}/tokens/{jti}/revoke``: the
    ``RevokeToken`` command's ``result``."""
    return {"serial": result["serial"], "jti": result["jti"], "revoked": True}


@dataclass(frozen=True)
class Minted:
    token: str
    claims: dict[str, Any]

    def answer(self, account: str, jwks_url: str) -> MintedToken:
        expires = format_time(datetime.fromtimestamp(self.claims["exp"], UTC))
        return {
            "token": self.token,
            "expires_at": expires,
            "jti": self.claims["jti"],
            "account": account,
            "jwks_url": jwks_url,
        }


def new_token_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return "tok_" + base64.b32encode(random_bytes(20)).decode().lower()[:26]


class Tokens:
    """Mints and refreshes offline tokens of the accounts of one store."""

    def __init__(self, store: Store, keyring: KeyRing, issuer_prefix: str) -> None:
        self._store = store
        self._keyring = keyring
        self._issuer_prefix = issuer_prefix.rstrip("/")

    def issuer(self, account: str) -> str:
        return f"{self._issuer_prefix}/{account}"

    def mint(
        self,
        account: str,
        serial: str,
        fingerprint_hash: str,
        now: datetime,
        replacing: str | None = None,
    ) -> Minted:
        """A token for the activation of ``fingerprint_hash`` on ``serial``, living for
        the plan's ``offline_token_ttl`` (never past the end of the license).

        Raises ``NotFound`` for an unknown license, ``LicenseInactive`` for one that
        may not be used now, and ``NotActivated`` when this device holds no seat. A
        refresh names the token it replaces (``replacing``, its ``jti``): then
        ``TokenRevoked`` if that token or its activation has been revoked.
        """
        state = self._state(account, serial, fingerprint_hash, now, replacing)
        lifetime = parse_duration(state.plan["offline_token_ttl"]).after(now) - now
        claims = self._claims(account, state, now, lifetime)
        signing = self._keyring.current(account, now)
        return Minted(jws.sign(claims, signing.private, signing.kid, TOKEN_TYP), claims)

    def license_file(
        self,
        account: str,
        serial: str,
        fingerprint_hash: str,
        now: datetime,
        lifetime: timedelta,
        license_key: str | None,
    ) -> tuple[str, dict[str, Any]]:
        """An armored license file for an activated device (encrypted with a key
        derived from ``license_key`` when given); raises as ``mint`` does."""
        state = self._state(account, serial, fingerprint_hash, now)
        claims = self._claims(account, state, now, lifetime)
        signing = self._keyring.current(account, now)
        text = license_file.issue(
            claims, signing.private, signing.kid, license_key, serial if license_key else None
        )
        return text, claims

    def _state(
        self,
        account: str,
        serial: str,
        fingerprint_hash: str,
        now: datetime,
        replacing: str | None = None,
    ) -> _State:
        activation = activation_id(account, serial, fingerprint_hash)
        with self._store.quick_read() as tx:
            if replacing is not None:
                # Read again in the mint's own snapshot: a revocation that landed
                # after the refresh was first checked still stops it.
                _refuse_revoked(tx, account, replacing, activation)
            license_row, plan, status = _license_in_use(tx, account, serial, now)
            held = tx.projection.row(account, "activations", (activation,))
            checkpoint = tx.ledger.checkpoint(account)
        if (
            held is None
            or held["status"] != "active"
            or not holds_seat(held["lease_expires_at"], now)
        ):
            raise NotActivated(f"this device holds no seat of {serial}: activate it first")
        return _State(license_row, plan, status, held, checkpoint)

    def verify_for_refresh(self, account: str, token: str, now: datetime) -> dict[str, Any]:
        """The claims of a token this account signed, expired or not (a refresh may
        come after a long time offline); ``TokenRejected`` for anything else."""
        keys = self._keyring.published(account, now)
        try:
            return jws.verify(
                token, keys, typ=TOKEN_TYP, now=now.timestamp(), issuer=self.issuer(account)
            )
        except TokenRejected as rejected:
            if rejected.reason != "expired":
                raise
            expired = rejected
        # Expiry is checked last, so everything else held. Verify the token again, in
        # full, as of the last second of its life.
        exp = _claimed_expiry(token)
        if exp is None:
            raise expired
        return jws.verify(token, keys, typ=TOKEN_TYP, now=exp - 1, issuer=self.issuer(account))

    def refuse_if_revoked(self, account: str, claims: dict[str, Any], now: datetime) -> None:
        """Refuse to refresh a token (the verified ``claims``) that is revoked: raise
        ``TokenRevoked`` when its ``jti`` is on the revocation list or its activation
        was deactivated, ``LicenseInactive`` when its license is revoked, suspended or
        expired, ``NotFound`` when the license is gone. A revoked token is never
        exchanged for a fresh one (docs/offline.md, "Refreshing")."""
        with self._store.quick_read() as tx:
            _refuse_revoked(tx, account, claims["jti"], claims["act"])
            _license_in_use(tx, account, claims["sub"], now)

    def _claims(
        self, account: str, state: _State, now: datetime, lifetime: timedelta
    ) -> dict[str, Any]:
        license_row, plan, status, held = state.license, state.plan, state.status, state.held
        checkpoint = state.checkpoint
        start = int(now.timestamp())
        end = now + max(lifetime, timedelta(seconds=1))
        license_end = status.grace_ends_at if status.status == "in_grace" else status.expires_at
        if license_end is not None:
            end = min(end, parse_time(license_end))
        grace = plan["grace"]
        return {
            "iss": self.issuer(account),
            "sub": license_row["serial"],
            "aud": license_row["product"],
            "iat": start,
            "nbf": start,
            "exp": max(int(end.timestamp()), start + 1),
            "jti": new_token_id(),
            "act": held["activation"],
            "fph": held["fingerprint_hash"],
            "ent": effective_entitlements(plan, license_row),
            "core": list(plan["core"]),
            "grace": int((parse_duration(grace).after(now) - now).total_seconds()) if grace else 0,
            "lic": {"status": status.status, "expires_at": license_row["expires_at"]},
            "ckpt": None
            if checkpoint is None
            else {"size": checkpoint.size, "root": base64.b64encode(checkpoint.root).decode()},
        }

    def signed_keyset(self, account: str, store: LedgerKeyStore, now: datetime) -> str | None:
        """The account's published token keys as a key set note signed by its ledger
        key (and by the keys of its earlier epochs that ``store`` still holds), the
        origin line being its current ledger origin; None while the account has no
        ledger key yet (the writer makes it with the first checkpoint)."""
        with self._store.read() as tx:
            head = tx.ledger.head(account)
            recorded = tx.ledger.verifier_keys(account)
        origin = head.origin if head else self.issuer(account)
        if not store.has_ledger_key(origin):
            return None
        signers = ledger_signers(store, origin, recorded)
        return self._keyring.signed_keyset(account, origin, now, signers)

    # ------------------------------------------------------------ revocations

    def revocations(self, account: str, since: int, serial: str | None, now: datetime) -> str:
        """The signed revocation list of ledger events from ``since`` on, addressed
        to its reader: ``aud`` is the account and, when ``serial`` is given (a
        License credential), ``sub`` is that license, whose entries alone it holds."""
        with self._store.read() as tx:
            head = tx.ledger.head(account)
            size = head.size if head else 0
            leaves = _revoking_leaves(tx, account, since, serial)
        claims: dict[str, Any] = {
            "iss": self.issuer(account),
            "aud": account,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + 300,
            "since": since,
            "until": size,
            "licenses": [],
            "activations": [],
            "tokens": [],
        }
        if serial is not None:
            claims["sub"] = serial
        for seq, leaf in leaves:
            if seq < since or seq >= size:
                continue
            event = orjson.loads(leaf)
            kind, data = event["type"], event["data"]
            if kind == "activation.deactivated":
                claims["activations"].append(
                    {"activation": data["activation"], "serial": data["serial"], "seq": seq}
                )
            elif kind == "token.revoked":
                claims["tokens"].append({"jti": data["jti"], "serial": data["serial"], "seq": seq})
            elif kind in REVOKING_EVENTS:
                status = {"license.reinstated": "active"}.get(kind, kind.split(".")[1])
                claims["licenses"].append({"serial": data["serial"], "status": status, "seq": seq})
        signing = self._keyring.current(account, now)
        return jws.sign(claims, signing.private, signing.kid, REVOCATIONS_TYP)


def _license_in_use(
    tx: Transaction, account: str, serial: str, now: datetime
) -> tuple[Row, Row, Status]:
    """The license, its plan version and its status now; ``NotFound`` for an unknown
    license, ``LicenseInactive`` for one that may not be used now."""
    license_row = tx.projection.row(account, "licenses", (serial,))
    if license_row is None:
        raise NotFound(f"license {serial} not found")
    key = (license_row["plan"], license_row["plan_version"])
    plan = tx.projection.row(account, "plan_versions", key)
    if plan is None:
        raise NotFound(f"plan {key[0]} v{key[1]} not found")
    status = license_status(license_row, plan, now)
    if status.status not in USABLE_STATUSES:
        raise LicenseInactive(f"license {serial} is {status.status}")
    return license_row, plan, status


def _refuse_revoked(tx: Transaction, account: str, jti: str, activation: str) -> None:
    """``TokenRevoked`` if token ``jti`` is revoked or its ``activation`` deactivated."""
    if tx.projection.row(account, "revoked_tokens", (jti,)) is not None:
        raise TokenRevoked(f"token {jti} was revoked: it cannot be refreshed")
    held = tx.projection.row(account, "activations", (activation,))
    if held is not None and held["status"] == "deactivated":
        raise TokenRevoked(
            f"the activation of token {jti} was deactivated: it cannot be refreshed "
            "(activate the device again for a new token)"
        )


def _revoking_leaves(
    tx: Transaction, account: str, since: int, serial: str | None
) -> list[tuple[int, bytes]]:
    if serial is not None:
        return [
            (seq, leaf)
            for seq, leaf in tx.ledger.events_about(account, serial)
            if seq >= since and _type_of(leaf) in REVOKING_EVENTS
        ]
    return tx.revocations.events(account, since, REVOKING_EVENTS)


def _claimed_expiry(token: str) -> int | None:
    """The ``exp`` a token claims, unverified (the caller verifies it as of that time)."""
    try:
        claims = orjson.loads(jws.b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError, TenureError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return exp if isinstance(exp, int) and not isinstance(exp, bool) else None


def _type_of(leaf: bytes) -> str:
    kind: str = orjson.loads(leaf)["type"]
    return kind
