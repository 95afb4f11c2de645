"""License file vectors (docs/offline.md, "License files"): plain and encrypted
files, and the ones a reader must refuse."""

from __future__ import annotations

import base64
from typing import Any

from tenure.crypto import license_file

from .collection import JWKS, KEYSET, LEDGER_KEY, Collection, accept, reject
from .jose import replace_payload
from .world import (
    ACCOUNT,
    CURRENT_KEY,
    DAY,
    LAPTOP,
    LICENSE_KEY,
    NOW,
    OTHER_DEVICE,
    WRONG_LICENSE_KEY,
    Device,
    claims,
    fixed_iv,
)

TOKEN = "tokens/valid.jwt"


def file_inputs(device: Device = LAPTOP, **changes: Any) -> dict[str, Any]:
    return {
        "jwks": JWKS,
        "serial": device.serial,
        "fingerprint": device.fingerprint,
        "fingerprint_hash": device.fingerprint_hash,
        **changes,
    }


def issue(body: dict[str, Any], license_key: str | None = None, label: str = "") -> str:
    return license_file.issue(
        body,
        CURRENT_KEY.private,
        CURRENT_KEY.kid,
        license_key,
        LAPTOP.serial if license_key else None,
        lambda size: fixed_iv(label)[:size],
    )


def build_license_files(out: Collection, checkpoint: dict[str, Any], token: str) -> None:
    """The license file vectors; ``token`` (an offline token) is armored as one too."""
    body = claims(
        LAPTOP, "license-file", issued=NOW - DAY, expires=NOW + 300 * DAY, checkpoint=checkpoint
    )
    plain = issue(body)
    encrypted = issue(body, LICENSE_KEY, "encrypted")
    with_key = file_inputs(license_key=LICENSE_KEY)
    valid = [
        ("plain", plain, "A plain license file of the laptop.", file_inputs()),
        (
            "encrypted",
            encrypted,
            "An encrypted license file of the laptop, read with the license key.",
            with_key,
        ),
    ]
    for name, text, description, inputs in valid:
        out.vector(
            "license-file",
            name,
            out.file(f"license-files/{name}.lic", text),
            description,
            inputs,
            accept(claims=body),
        )
    expired = claims(
        LAPTOP,
        "license-file-expired",
        issued=NOW - 400 * DAY,
        expires=NOW - 301,
        checkpoint=checkpoint,
    )
    lines = plain.splitlines()
    rewrapped = "".join(lines[1:-1])
    bad_armor = "\n".join([lines[0], *split(rewrapped, 60), lines[-1]]) + "\n"
    cases = [
        (
            "expired",
            issue(expired),
            "Expired 301 seconds ago: past the 300 seconds of leeway.",
            file_inputs(),
            reject("expired"),
        ),
        (
            "forged-payload-tampered",
            license_file.armor(
                replace_payload(license_file.dearmor(plain), {**body, "exp": NOW + 3000 * DAY})
            ),
            "The plain file with a later expiry; the signature is the original.",
            file_inputs(),
            reject("bad_signature"),
        ),
        (
            "encrypted-tampered",
            tamper_ciphertext(encrypted),
            "The encrypted file with one bit of its ciphertext flipped.",
            with_key,
            reject("invalid_license_file"),
        ),
        (
            "bad-armor",
            bad_armor,
            "The plain file's base64 wrapped at 60 characters, not 64.",
            file_inputs(),
            reject("invalid_license_file"),
        ),
        (
            "token-as-license-file",
            license_file.armor(token),
            "An offline token armored as a license file.",
            file_inputs(),
            reject("typ_mismatch"),
        ),
    ]
    for name, text, description, inputs, expect in cases:
        path = out.file(f"license-files/{name}.lic", text)
        out.vector("license-file", name, path, description, inputs, expect)
    again = [
        (
            "encrypted-without-key",
            "license-files/encrypted.lic",
            "The encrypted file, read without the license key.",
            file_inputs(),
            reject("invalid_license_file"),
        ),
        (
            "encrypted-wrong-key",
            "license-files/encrypted.lic",
            "The encrypted file, read with another license key.",
            file_inputs(license_key=WRONG_LICENSE_KEY),
            reject("invalid_license_file"),
        ),
        (
            "other-device",
            "license-files/plain.lic",
            "The plain file, read on another device.",
            file_inputs(OTHER_DEVICE),
            reject("wrong_fingerprint"),
        ),
    ]
    for name, path, description, inputs, expect in again:
        out.vector("license-file", name, path, description, inputs, expect)
    under_keyset(out, body, checkpoint)


def under_keyset(out: Collection, body: dict[str, Any], checkpoint: dict[str, Any]) -> None:
    """Under the key set note a file need only be signed in its key's life."""
    keyset = file_inputs(keyset=KEYSET, ledger_key=LEDGER_KEY, account=ACCOUNT)
    del keyset["jwks"]
    out.vector(
        "license-file",
        "keyset-plain",
        "license-files/plain.lic",
        "The plain file under the key set note: signed in its key's life, living 300 "
        "days, past the end the note gives that key.",
        keyset,
        accept(claims=body),
    )
    before = claims(
        LAPTOP,
        "license-file-backdated",
        issued=CURRENT_KEY.valid_from - DAY,
        expires=NOW + 300 * DAY,
        checkpoint=checkpoint,
    )
    path = out.file("license-files/keyset-signed-before-key.lic", issue(before))
    out.vector(
        "license-file",
        "keyset-signed-before-key",
        path,
        "Signed by the current key, dated a day before that key was made (a stolen key "
        "backdating a file): refused under the key set note.",
        keyset,
        reject("untrusted_key"),
    )
    out.vector(
        "license-file",
        "keyset-signed-before-key-jwks",
        path,
        "The same file under the JWKS, which says nothing about a key's life.",
        file_inputs(),
        accept(claims=before),
    )


def split(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)]


def tamper_ciphertext(armored: str) -> str:
    """The armored JWE with the first bit of its ciphertext flipped."""
    head, key, iv, ciphertext, tag = license_file.dearmor(armored).split(".")
    raw = bytearray(base64.urlsafe_b64decode(ciphertext + "=" * (-len(ciphertext) % 4)))
    raw[0] ^= 0x80
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii")
    return license_file.armor(".".join((head, key, iv, flipped, tag)))
