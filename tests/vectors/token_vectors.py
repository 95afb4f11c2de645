"""Offline token vectors (docs/offline.md): valid, expired, revoked and forged
tokens, under the JWKS and under the signed key set."""

from __future__ import annotations

from typing import Any

from tenure.canonical import canonical_json
from tenure.crypto import jws
from tenure.sdk import TOKEN_TYP

from . import jose
from .collection import JWKS, KEYSET, LEDGER_KEY, OLD_KEYSET, Collection, accept, reject
from .jose import (
    compact,
    header,
    hmac_with_public_key,
    replace_payload,
    sign_other_bytes,
)
from .revocation_vectors import LAPTOP_REVOCATIONS, REVOKED_JTI_LABEL, REVOKED_REVOCATIONS
from .world import (
    ACCOUNT,
    ATTACKER_KEY,
    CURRENT_KEY,
    DAY,
    DESKTOP,
    HOUR,
    ISSUER,
    LAPTOP,
    NOW,
    ORIGIN_PREFIX,
    OTHER_ACCOUNT,
    OTHER_DEVICE,
    OTHER_SERIAL,
    PRODUCT,
    REVOKED_LICENSE_DEVICE,
    ROTATED_KEY,
    Device,
    TokenKey,
    claims,
)


def sign(key: TokenKey, body: dict[str, Any], typ: str = TOKEN_TYP) -> str:
    return jose.sign(key, body, typ)


def token_inputs(device: Device = LAPTOP, *, trust: str = "jwks", **changes: Any) -> Any:
    """What a verifier of ``device``'s tokens is given; ``trust`` ``keyset`` pins the
    ledger key and takes the keys from the signed key set instead of the JWKS."""
    keys = {"jwks": JWKS} if trust == "jwks" else {"keyset": KEYSET, "ledger_key": LEDGER_KEY}
    return {
        **keys,
        "account": ACCOUNT,
        "issuer": ISSUER,
        "audience": PRODUCT,
        "subject": device.serial,
        "fingerprint": device.fingerprint,
        "fingerprint_hash": device.fingerprint_hash,
        **changes,
    }


class TokenVectors:
    """Writes the token vectors of one ledger head (the ``ckpt`` claim)."""

    def __init__(self, out: Collection, checkpoint: dict[str, Any]) -> None:
        self.out = out
        self.checkpoint = checkpoint
        self.valid_claims = self.claims(LAPTOP, "valid", NOW - HOUR, NOW + 23 * HOUR)

    def claims(self, device: Device, label: str, issued: int, expires: int, **changes: Any) -> Any:
        return claims(
            device, label, issued=issued, expires=expires, checkpoint=self.checkpoint, **changes
        )

    def token(
        self, name: str, text: str, description: str, inputs: Any, expect: dict[str, Any]
    ) -> str:
        path = self.out.file(f"tokens/{name}.jwt", text)
        self.out.vector("offline-token", name, path, description, inputs, expect)
        return path

    def again(
        self, name: str, path: str, description: str, inputs: Any, expect: dict[str, Any]
    ) -> None:
        """Another vector on a file already written: the same token, other inputs."""
        self.out.vector("offline-token", name, path, description, inputs, expect)

    def build(self) -> None:
        valid_claims = self.valid_claims
        valid = sign(CURRENT_KEY, valid_claims)
        path = self.token(
            "valid",
            valid,
            "A token of the laptop, signed by the current key.",
            token_inputs(),
            accept(claims=valid_claims),
        )
        self.time_vectors()
        self.forgeries(valid, valid_claims)
        self.bindings(path)
        self.revoked(path)
        self.under_keyset(path)

    def time_vectors(self) -> None:
        cases = [
            ("expired", NOW - 25 * HOUR, NOW - HOUR, "Expired an hour ago.", reject("expired")),
            (
                "expired-within-leeway",
                NOW - 24 * HOUR,
                NOW - 30,
                "Expired 30 seconds ago, inside the 60 seconds of clock-skew leeway.",
                None,
            ),
            (
                "expired-at-leeway",
                NOW - 24 * HOUR,
                NOW - 60,
                "Expired exactly 60 seconds ago: exp <= now - leeway is expired.",
                reject("expired"),
            ),
            (
                "not-yet-valid",
                NOW + HOUR,
                NOW + 25 * HOUR,
                "Valid from an hour from now (nbf).",
                reject("not_yet_valid"),
            ),
        ]
        for name, issued, expires, description, expect in cases:
            body = self.claims(LAPTOP, name, issued, expires)
            self.token(
                name,
                sign(CURRENT_KEY, body),
                description,
                token_inputs(),
                expect or accept(claims=body),
            )

    def forgeries(self, valid: str, valid_claims: dict[str, Any]) -> None:
        widened = {**valid_claims, "ent": {**valid_claims["ent"], "seats": 500}}
        attacker_jwk = jws.public_jwk(ATTACKER_KEY.private.public_key(), ATTACKER_KEY.kid)
        signing_input = valid.rsplit(".", 1)[0]
        cases = [
            (
                "forged-wrong-key",
                compact(header(CURRENT_KEY, TOKEN_TYP), valid_claims, ATTACKER_KEY.private.sign),
                "Signed by a key the account never had, under the current key's kid.",
                "bad_signature",
            ),
            (
                "forged-alg-none",
                compact(header(CURRENT_KEY, TOKEN_TYP, alg="none"), widened, None),
                'alg "none" and no signature.',
                "alg_not_allowed",
            ),
            (
                "forged-alg-hs256",
                compact(
                    header(CURRENT_KEY, TOKEN_TYP, alg="HS256"),
                    widened,
                    hmac_with_public_key(CURRENT_KEY),
                ),
                "HS256 keyed with the current key's public bytes (algorithm confusion).",
                "alg_not_allowed",
            ),
            (
                "forged-payload-tampered",
                replace_payload(valid, widened),
                "The valid token with its seats raised to 500; the signature is the original.",
                "bad_signature",
            ),
            (
                "forged-kid-unknown",
                compact(header(ATTACKER_KEY, TOKEN_TYP), valid_claims, ATTACKER_KEY.private.sign),
                "Signed by a key the account never had, under that key's own kid.",
                "unknown_kid",
            ),
            (
                "forged-signature-over-json",
                sign_other_bytes(CURRENT_KEY, TOKEN_TYP, widened, canonical_json(widened)),
                "The current key's signature over the claims' JSON, not over header.payload.",
                "bad_signature",
            ),
            (
                "forged-signature-of-other-token",
                sign_other_bytes(CURRENT_KEY, TOKEN_TYP, widened, signing_input.encode("ascii")),
                "The current key's signature of the valid token, on other claims.",
                "bad_signature",
            ),
            (
                "forged-embedded-jwk",
                compact(
                    header(CURRENT_KEY, TOKEN_TYP, jwk=attacker_jwk),
                    widened,
                    ATTACKER_KEY.private.sign,
                ),
                "Signed by the attacker, whose key rides in a jwk header: keys come from the "
                "key set only, and the header has exactly alg, kid and typ.",
                "bad_header",
            ),
            (
                "wrong-typ",
                sign(CURRENT_KEY, valid_claims, "JWT"),
                'Signed by the current key with typ "JWT".',
                "typ_mismatch",
            ),
            (
                "license-file-as-token",
                sign(CURRENT_KEY, valid_claims, "tenure-license-file+jwt"),
                "A license file's JWS presented as an offline token.",
                "typ_mismatch",
            ),
            (
                "other-issuer",
                sign(CURRENT_KEY, {**valid_claims, "iss": f"{ORIGIN_PREFIX}/{OTHER_ACCOUNT}"}),
                "Signed by the current key, but issued for another account.",
                "wrong_issuer",
            ),
        ]
        for name, text, description, reason in cases:
            self.token(name, text, description, token_inputs(), reject(reason))

    def bindings(self, valid: str) -> None:
        other_license = Device(OTHER_SERIAL, LAPTOP.fingerprint)
        self.again(
            "other-device",
            valid,
            "The valid token, checked on another device of the license.",
            token_inputs(OTHER_DEVICE),
            reject("wrong_fingerprint"),
        )
        self.again(
            "other-license",
            valid,
            "The valid token, checked for another license.",
            token_inputs(other_license),
            reject("wrong_subject"),
        )

    def revoked(self, valid: str) -> None:
        revocations: dict[str, Any] = {"revocations": LAPTOP_REVOCATIONS, "revocations_since": 0}
        self.again(
            "not-revoked",
            valid,
            "The valid token and its license's revocation list, which suspends and then "
            "reinstates the license: the latest entry counts.",
            token_inputs(**revocations),
            accept(claims=self.valid_claims),
        )
        cases = [
            (
                REVOKED_JTI_LABEL,
                LAPTOP,
                LAPTOP_REVOCATIONS,
                "A token whose jti the revocation list names.",
                "token",
            ),
            (
                "revoked-activation",
                DESKTOP,
                LAPTOP_REVOCATIONS,
                "A token of the desktop, whose activation the revocation list deactivates.",
                "activation",
            ),
            (
                "revoked-license",
                REVOKED_LICENSE_DEVICE,
                REVOKED_REVOCATIONS,
                "A token of a license the revocation list revokes.",
                "license_revoked",
            ),
        ]
        for name, device, listing, description, what in cases:
            body = self.claims(device, name, NOW - HOUR, NOW + 23 * HOUR)
            self.token(
                name,
                sign(CURRENT_KEY, body),
                description,
                token_inputs(device, revocations=listing, revocations_since=0),
                reject("revoked", revoked_by=what),
            )

    def under_keyset(self, valid: str) -> None:
        keyset = token_inputs(trust="keyset")
        self.again(
            "keyset-valid",
            valid,
            "The valid token, its key vouched for by the key set note.",
            keyset,
            accept(claims=self.valid_claims),
        )
        in_life = self.claims(LAPTOP, "rotated-in-life", NOW - 11 * DAY, NOW + 19 * DAY)
        path = self.token(
            "rotated-key-in-life",
            sign(ROTATED_KEY, in_life),
            "Signed by the rotated key before its rotation, expiring inside its vouched life.",
            keyset,
            accept(claims=in_life),
        )
        self.again(
            "rotated-key-in-life-jwks",
            path,
            "The same token under the JWKS.",
            token_inputs(),
            accept(claims=in_life),
        )
        past_life = self.claims(LAPTOP, "rotated-past-life", NOW - HOUR, NOW + 25 * DAY)
        path = self.token(
            "rotated-key-past-life",
            sign(ROTATED_KEY, past_life),
            "Signed by the rotated key after its rotation (a stolen key), expiring after the "
            "last second the key set gives that key.",
            keyset,
            reject("untrusted_key"),
        )
        self.again(
            "rotated-key-past-life-jwks",
            path,
            "The same token under the JWKS alone, which says nothing about a key's life: "
            "only the signed key set catches it.",
            token_inputs(),
            accept(claims=past_life),
        )
        self.again(
            "keyset-kid-not-vouched",
            "tokens/forged-kid-unknown.jwt",
            "A token signed by a key the key set note does not name.",
            keyset,
            reject("untrusted_key"),
        )
        self.old_note()
        outliving = self.claims(LAPTOP, "outlives-lifetime", NOW - 5 * DAY, NOW + 26 * DAY)
        path = self.token(
            "keyset-token-outlives-lifetime",
            sign(CURRENT_KEY, outliving),
            "Signed by the current key, inside its vouched life, but living 31 days: longer "
            "than the token lifetime the key set note states (30 days).",
            keyset,
            reject("untrusted_key"),
        )
        self.again(
            "keyset-token-outlives-lifetime-jwks",
            path,
            "The same token under the JWKS, which states no token lifetime.",
            token_inputs(),
            accept(claims=outliving),
        )

    def old_note(self) -> None:
        """A token the rotated key signed an hour ago: inside the life today's note
        gives that key, far past the window of a note from when it still signed."""
        late = self.claims(LAPTOP, "old-note-past-window", NOW - HOUR, NOW + 23 * HOUR)
        path = self.token(
            "old-note-past-window",
            sign(ROTATED_KEY, late),
            "Signed by the rotated key an hour ago, checked under the key set note of "
            "sixty days ago, which lists that key as signing: a key still signing is "
            "vouched for only until the note's time plus its token lifetime.",
            token_inputs(trust="keyset", keyset=OLD_KEYSET),
            reject("untrusted_key"),
        )
        self.again(
            "old-note-past-window-current-note",
            path,
            "The same token under today's note, which vouches for the rotated key until "
            "its tokens' end.",
            token_inputs(trust="keyset"),
            accept(claims=late),
        )
