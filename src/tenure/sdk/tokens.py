"""Verifying what the service sends: offline tokens and revocation lists.

Pure (``now`` is a parameter). A token becomes a ``Grant`` only after ``jws.verify``
(EdDSA only, exact header, signature, strict claims, ``sub``) with keys the client
trusts (``tenure.crypto.trust``: vouched for by the pinned ledger key, or trusted on
first use), and the SDK's own checks: ``fph`` is this device's hash, ``iss`` belongs
to the expected account, and the claims ``check`` reads have their contract types.
Every failure raises ``TokenRejected`` with a stable ``reason``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from tenure.crypto import jws
from tenure.crypto.trust import TrustedKeys
from tenure.errors import InvalidInput, TokenRejected
from tenure.sdk.decisions import Grant

TOKEN_TYP = "tenure-offline+jwt"  # noqa: S105 - a media type, not a secret
REVOCATIONS_TYP = "tenure-revocations+jwt"
REVOKING_STATUSES = frozenset({"revoked", "suspended"})
_TIME_RULES = frozenset({"expired", "not_yet_valid"})


def fingerprint_hash(serial: str, fingerprint: str) -> str:
    """``hex(SHA-256(JCS(["tenure.fingerprint.v1", serial, fingerprint])))``.

    For a list of strings orjson's output is the RFC 8785 encoding. Raises
    ``InvalidInput`` for a string JSON cannot hold (a lone surrogate).
    """
    try:
        encoded = orjson.dumps(["tenure.fingerprint.v1", serial, fingerprint])
    except orjson.JSONEncodeError:
        raise InvalidInput("fingerprint is not valid Unicode", field="fingerprint") from None
    return hashlib.sha256(encoded).hexdigest()


def verify_token(
    token: str,
    trusted: TrustedKeys,
    *,
    serial: str,
    device_hash: str,
    account: str,
    now: float,
    stale_ok: bool = False,
) -> Grant:
    """The grant of ``token`` after every rule of docs/offline.md holds.

    With ``stale_ok`` (a token reloaded from the cache) an expired or not yet valid
    token still verifies: time is then judged by ``decide``, which knows the grace
    period and the clock-rollback rule. Raises ``TokenRejected`` otherwise; its
    reason is ``untrusted_key`` when a pinned ledger key does not vouch for the
    token's key (see ``TrustedKeys.verify``).
    """
    try:
        claims = trusted.verify(token, typ=TOKEN_TYP, now=now, subject=serial)
    except TokenRejected as rejected:
        if not (stale_ok and rejected.reason in _TIME_RULES):
            raise
        # The time rules are checked last: signature, claims and subject all held.
        claims = orjson.loads(jws.b64url_decode(token.split(".")[1]))
        trusted.check_life(token, claims)
    if claims.get("fph") != device_hash:
        raise TokenRejected("token is bound to another device", "wrong_fingerprint")
    if not _issued_for(claims.get("iss"), account):
        raise TokenRejected(f"issuer is not account {account!r}", "wrong_issuer")
    return _grant(token, claims)


def _issued_for(issuer: object, account: str) -> bool:
    """``iss`` is ``<ledger origin prefix>/<account>``; the prefix is the server's."""
    return type(issuer) is str and issuer.endswith("/" + account)


def _grant(token: str, claims: dict[str, Any]) -> Grant:
    ent = claims.get("ent")
    if type(ent) is not dict or not all(type(value) in (bool, int) for value in ent.values()):
        raise TokenRejected("ent must map names to booleans or integers", "bad_claim", field="ent")
    core = claims.get("core")
    if type(core) is not list or not all(type(name) is str for name in core):
        raise TokenRejected("core must be a list of names", "bad_claim", field="core")
    grace = claims.get("grace") or 0
    if type(grace) is not int or grace < 0:
        raise TokenRejected("grace must be a whole number of seconds", "bad_claim", field="grace")
    for name in ("jti", "act", "iss"):
        if type(claims.get(name)) is not str:
            raise TokenRejected(f"{name} must be a string", "bad_claim", field=name)
    issued = claims.get("iat", claims.get("nbf"))
    if type(issued) is not int:
        raise TokenRejected("iat must be an integer", "bad_claim", field="iat")
    return Grant(
        token=token,
        serial=claims["sub"],
        issuer=claims["iss"],
        jti=claims["jti"],
        activation=claims["act"],
        issued_at=issued,
        not_before=claims.get("nbf", issued),
        expires_at=claims["exp"],
        grace=grace,
        entitlements=ent,
        core=frozenset(core),
    )


@dataclass(frozen=True, slots=True)
class RevocationList:
    """The verified claims of a revocation list: ledger entries ``since <= seq < until``."""

    since: int
    until: int
    licenses: tuple[tuple[int, str, str], ...]
    """``(seq, serial, status)``"""
    activations: frozenset[str]
    tokens: frozenset[str]


def verify_revocations(
    text: str, trusted: TrustedKeys, *, since: int, now: float, account: str, serial: str
) -> RevocationList:
    """The revocation list in ``text`` (a JWS, ``typ`` ``tenure-revocations+jwt``).

    Raises ``TokenRejected`` if it does not verify, is not addressed to this reader
    (``aud`` the account: ``wrong_audience``; ``sub`` the license: ``wrong_subject``;
    ``iss`` the account's: ``wrong_issuer``), is not the list asked for (``since``),
    or its entries do not have the contract's shape (``bad_claim``). A list without
    ``aud`` or ``sub`` (made before they existed, or for an API key) is refused.
    """
    claims = trusted.verify(text, typ=REVOCATIONS_TYP, now=now, audience=account, subject=serial)
    if not _issued_for(claims.get("iss"), account):
        raise TokenRejected(f"issuer is not account {account!r}", "wrong_issuer")
    until = claims.get("until")
    if claims.get("since") != since or type(until) is not int or until < since:
        raise TokenRejected("not the revocation list asked for", "bad_claim", field="since")
    try:
        licenses = tuple(
            (int(entry["seq"]), str(entry["serial"]), str(entry["status"]))
            for entry in claims["licenses"]
        )
        activations = frozenset(str(entry["activation"]) for entry in claims["activations"])
        tokens = frozenset(str(entry["jti"]) for entry in claims["tokens"])
    except (KeyError, TypeError, ValueError):
        raise TokenRejected("malformed revocation entries", "bad_claim") from None
    return RevocationList(since, until, licenses, activations, tokens)


def revocation_of(revocations: RevocationList, grant: Grant, *, licenses_only: bool) -> str | None:
    """What in ``revocations`` ends ``grant``: ``license_revoked``,
    ``license_suspended``, ``activation`` or ``token``; ``None`` when nothing does.

    A license's latest entry counts (a reinstatement after a suspension clears it).
    ``licenses_only`` ignores activation and token entries: a list fetched before an
    activation cannot name the activation or token made after it.
    """
    mine = sorted(entry for entry in revocations.licenses if entry[1] == grant.serial)
    if mine and mine[-1][2] in REVOKING_STATUSES:
        return "license_" + mine[-1][2]
    if licenses_only:
        return None
    if grant.activation in revocations.activations:
        return "activation"
    if grant.jti in revocations.tokens:
        return "token"
    return None
