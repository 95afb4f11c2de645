"""Revocation list vectors (docs/offline.md, "Revocations"): the lists the revoked
tokens are checked against, and lists a reader must refuse."""

from __future__ import annotations

from typing import Any

from tenure.sdk import REVOCATIONS_TYP

from .collection import JWKS, Collection, accept, reject
from .jose import compact, header, sign
from .world import (
    ACCOUNT,
    ATTACKER_KEY,
    CURRENT_KEY,
    DESKTOP,
    ISSUER,
    LAPTOP,
    NOW,
    OTHER_ACCOUNT,
    OTHER_SERIAL,
    REVOKED_LICENSE_DEVICE,
    label_id,
)

LAPTOP_REVOCATIONS = "revocations/laptop-license.jwt"
"""The laptop license's list: suspended, reinstated, the desktop deactivated, a token revoked."""
REVOKED_REVOCATIONS = "revocations/revoked-license.jwt"
"""The list of a license that was revoked."""
REVOKED_JTI_LABEL = "revoked-token"
UNTIL = 40


def revocation_inputs() -> dict[str, Any]:
    """What the reader of the laptop license's list is given."""
    return {
        "jwks": JWKS,
        "account": ACCOUNT,
        "issuer": ISSUER,
        "subject": LAPTOP.serial,
        "since": 0,
    }


def revocation_claims(serial: str, **entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A revocation list for the reader of ``serial``'s License credential."""
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": ACCOUNT,
        "sub": serial,
        "iat": NOW - 60,
        "exp": NOW + 240,
        "since": 0,
        "until": UNTIL,
        "licenses": [],
        "activations": [],
        "tokens": [],
    }
    body.update(entries)
    return body


def laptop_revocations() -> dict[str, Any]:
    serial = LAPTOP.serial
    return revocation_claims(
        serial,
        licenses=[
            {"serial": serial, "status": "suspended", "seq": 20},
            {"serial": serial, "status": "active", "seq": 22},
        ],
        activations=[{"activation": DESKTOP.activation, "serial": serial, "seq": 31}],
        tokens=[{"jti": label_id("tok_", REVOKED_JTI_LABEL), "serial": serial, "seq": 35}],
    )


def add(out: Collection, name: str, path: str, description: str, expect: dict[str, Any]) -> None:
    out.vector(
        "revocation-list",
        name,
        path,
        description,
        revocation_inputs(),
        expect,
    )


def build_revocation_lists(out: Collection) -> None:
    """The two lists the revoked tokens use, and the lists a reader refuses."""
    revoked_serial = REVOKED_LICENSE_DEVICE.serial
    revoked = revocation_claims(
        revoked_serial, licenses=[{"serial": revoked_serial, "status": "revoked", "seq": 38}]
    )
    out.file(REVOKED_REVOCATIONS, sign(CURRENT_KEY, revoked, REVOCATIONS_TYP))
    listing = laptop_revocations()
    add(
        out,
        "valid",
        out.file(LAPTOP_REVOCATIONS, sign(CURRENT_KEY, listing, REVOCATIONS_TYP)),
        "The laptop license's list: a suspension and a reinstatement, a deactivated "
        "activation and a revoked token.",
        accept(claims=listing),
    )
    without_sub = {name: value for name, value in listing.items() if name != "sub"}
    cases = [
        (
            "other-license",
            {**listing, "sub": OTHER_SERIAL},
            "A list made for another license of the account.",
            "wrong_subject",
        ),
        (
            "other-account",
            {**listing, "aud": OTHER_ACCOUNT},
            "A list made for another account.",
            "wrong_audience",
        ),
        (
            "account-wide",
            without_sub,
            "A list fetched with an API key: it covers the account and names no license.",
            "wrong_subject",
        ),
        (
            "expired",
            {**listing, "iat": NOW - 900, "exp": NOW - 600},
            "A list that expired ten minutes ago.",
            "expired",
        ),
        (
            "other-since",
            {**listing, "since": 5},
            "A list from seq 5, when the reader asked from 0.",
            "bad_claim",
        ),
    ]
    for name, body, description, reason in cases:
        path = out.file(f"revocations/{name}.jwt", sign(CURRENT_KEY, body, REVOCATIONS_TYP))
        add(out, name, path, description, reject(reason))
    forgotten = {**listing, "tokens": []}
    forged = compact(header(CURRENT_KEY, REVOCATIONS_TYP), forgotten, ATTACKER_KEY.private.sign)
    add(
        out,
        "forged",
        out.file("revocations/forged.jwt", forged),
        "A list that forgets the revoked token, signed by a key the account never had.",
        reject("bad_signature"),
    )
    add(
        out,
        "token-as-list",
        "tokens/valid.jwt",
        "An offline token presented as a revocation list.",
        reject("typ_mismatch"),
    )
