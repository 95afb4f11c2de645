"""License files: armor, HKDF + A256GCM JWE, issue/read, checked by an independent reader."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from tenure.crypto import jws
from tenure.crypto import license_file as lf
from tenure.errors import InvalidInput, InvalidLicenseFile, TokenRejected

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
KID = jws.jwk_thumbprint(PUB)
KEYS: dict[str, Ed25519PublicKey] = {KID: PUB}
NOW = 1_764_378_000
SERIAL = "LIC-7Q2M4K"
LICENSE_KEY = "TNRK-AAAAAAAA-BBBBBBBB-CCCCCCCC-DDDDDDDD"
FPH = hashlib.sha256(b"this machine").hexdigest()
CLAIMS: dict[str, Any] = {
    "iss": "https://licensing.example/default",
    "sub": SERIAL,
    "aud": "acme-editor",
    "iat": NOW,
    "nbf": NOW,
    "exp": NOW + 365 * 86_400,
    "fph": FPH,
    "ent": {"feature:export-pdf": True, "seats": 5},
    "core": ["feature:export-pdf"],
}
FIXED_IV = bytes(range(100, 112))


def fixed_random(size: int) -> bytes:
    return FIXED_IV[:size]


def encrypted_file(claims: dict[str, Any] = CLAIMS) -> str:
    return lf.issue(claims, KEY, KID, LICENSE_KEY, SERIAL, random_bytes=fixed_random)


def read(text: str, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "now": NOW,
        "fingerprint_hash": FPH,
        "license_key": LICENSE_KEY,
        "serial": SERIAL,
    }
    return lf.read(text, KEYS, **(options | overrides))


# ------------------------------------------------------------------ an independent reader


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with hmac, so the key derivation is checked independently."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def independent_read(text: str, license_key: str, serial: str) -> tuple[dict[str, Any], str]:
    """Open a license file from the contract alone: armor, JWE, JWS. Returns (claims, kid)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == "-----BEGIN TENURE LICENSE FILE-----"
    assert lines[-1] == "-----END TENURE LICENSE FILE-----"
    assert all(len(line) == 64 for line in lines[1:-2])
    body = base64.b64decode("".join(lines[1:-1]), validate=True).decode("ascii")
    head, encrypted_key, iv, ciphertext, tag = body.split(".")
    assert json.loads(unb64url(head)) == {
        "alg": "dir",
        "enc": "A256GCM",
        "cty": "JWT",
        "kid": serial,
    }
    assert encrypted_key == ""
    key = hkdf_sha256(license_key.encode(), serial.encode(), b"tenure.license-file.v1", 32)
    plain = AESGCM(key).decrypt(
        unb64url(iv), unb64url(ciphertext) + unb64url(tag), head.encode("ascii")
    )
    jws_head, jws_body, signature = plain.decode("ascii").split(".")
    PUB.verify(unb64url(signature), f"{jws_head}.{jws_body}".encode())
    header = json.loads(unb64url(jws_head))
    assert header == {"alg": "EdDSA", "kid": KID, "typ": "tenure-license-file+jwt"}
    return json.loads(unb64url(jws_body)), header["kid"]


def test_independent_reader_opens_an_issued_encrypted_file() -> None:
    text = lf.issue(CLAIMS, KEY, KID, LICENSE_KEY, SERIAL)
    claims, kid = independent_read(text, LICENSE_KEY, SERIAL)
    assert claims == CLAIMS
    assert kid == KID


def test_derive_file_key_is_rfc_5869_hkdf_with_the_contract_inputs() -> None:
    expected = hkdf_sha256(LICENSE_KEY.encode(), SERIAL.encode(), b"tenure.license-file.v1", 32)
    assert lf.derive_file_key(LICENSE_KEY, SERIAL) == expected
    assert lf.derive_file_key(LICENSE_KEY, "LIC-OTHER") != expected


def test_jwe_uses_the_given_iv_and_an_empty_encrypted_key() -> None:
    body = lf.dearmor(encrypted_file())
    head, encrypted_key, iv, _, tag = body.split(".")
    assert encrypted_key == ""
    assert unb64url(iv) == FIXED_IV
    assert len(unb64url(tag)) == 16
    assert unb64url(head) == (
        b'{"alg":"dir","enc":"A256GCM","cty":"JWT","kid":"' + SERIAL.encode() + b'"}'
    )


def test_joserfc_decrypts_our_jwe_with_the_derived_key() -> None:
    from joserfc import jwe
    from joserfc.jwk import OctKey

    body = lf.dearmor(encrypted_file())
    opened = jwe.decrypt_compact(body, OctKey.import_key(lf.derive_file_key(LICENSE_KEY, SERIAL)))
    assert opened.plaintext is not None
    assert jws.verify(opened.plaintext.decode(), KEYS, typ=lf.TYP, now=NOW) == CLAIMS


# ------------------------------------------------------------------ round trips


def test_encrypted_file_round_trips() -> None:
    assert read(encrypted_file()) == CLAIMS


def test_serial_defaults_to_the_jwe_kid() -> None:
    assert read(encrypted_file(), serial=None) == CLAIMS


def test_unencrypted_file_round_trips_and_is_a_plain_jws() -> None:
    text = lf.issue(CLAIMS, KEY, KID)
    assert lf.dearmor(text).count(".") == 2
    assert read(text, license_key=None) == CLAIMS


def test_encrypt_and_decrypt_round_trip() -> None:
    token = jws.sign(CLAIMS, KEY, KID, lf.TYP)
    assert lf.decrypt(lf.encrypt(token, LICENSE_KEY, SERIAL), LICENSE_KEY, SERIAL) == token


def test_each_encryption_draws_a_fresh_iv() -> None:
    assert lf.issue(CLAIMS, KEY, KID, LICENSE_KEY, SERIAL) != lf.issue(
        CLAIMS, KEY, KID, LICENSE_KEY, SERIAL
    )


@given(st.text(min_size=1, max_size=300))
def test_armor_round_trips_any_text(body: str) -> None:
    assert lf.dearmor(lf.armor(body)) == body


def test_armor_has_64_character_lines() -> None:
    text = lf.armor("x" * 100)
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines[0] == lf.BEGIN
    assert lines[-1] == lf.END
    assert [len(line) for line in lines[1:-1]] == [64, 64, 8]


def test_crlf_line_endings_and_surrounding_whitespace_are_accepted() -> None:
    text = "\r\n  \r\n" + encrypted_file().replace("\n", " \r\n") + "\r\n\r\n"
    assert read(text) == CLAIMS


# ------------------------------------------------------------------ clock skew


def test_expired_within_leeway_is_accepted() -> None:
    assert read(encrypted_file(CLAIMS | {"exp": NOW - 299}))["exp"] == NOW - 299


def test_not_yet_valid_within_leeway_is_accepted() -> None:
    assert read(encrypted_file(CLAIMS | {"nbf": NOW + 300}))["nbf"] == NOW + 300


def test_expired_beyond_leeway_is_rejected() -> None:
    with pytest.raises(TokenRejected) as caught:
        read(encrypted_file(CLAIMS | {"exp": NOW - 300}))
    assert caught.value.reason == "expired"


def test_not_yet_valid_beyond_leeway_is_rejected() -> None:
    with pytest.raises(TokenRejected) as caught:
        read(encrypted_file(CLAIMS | {"nbf": NOW + 301}))
    assert caught.value.reason == "not_yet_valid"


# ------------------------------------------------------------------ rejections


def test_wrong_license_key_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(InvalidLicenseFile, match="wrong license key") as caught:
        read(encrypted_file(), license_key=LICENSE_KEY.replace("A", "Z"))
    assert caught.value.code == "invalid_license_file"


def test_encrypted_file_without_a_license_key_is_rejected() -> None:
    with pytest.raises(InvalidLicenseFile, match="license key is needed"):
        read(encrypted_file(), license_key=None)


def test_file_for_another_serial_is_rejected() -> None:
    with pytest.raises(InvalidLicenseFile, match="LIC-OTHER"):
        read(encrypted_file(), serial="LIC-OTHER")


def test_unencrypted_file_for_another_serial_is_rejected() -> None:
    with pytest.raises(TokenRejected) as caught:
        read(lf.issue(CLAIMS, KEY, KID), license_key=None, serial="LIC-OTHER")
    assert caught.value.reason == "wrong_subject"


def test_wrong_fingerprint_is_rejected() -> None:
    with pytest.raises(TokenRejected) as caught:
        read(encrypted_file(), fingerprint_hash=hashlib.sha256(b"another machine").hexdigest())
    assert caught.value.reason == "wrong_fingerprint"


def test_file_without_fph_is_rejected() -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != "fph"}
    with pytest.raises(TokenRejected) as caught:
        read(encrypted_file(claims))
    assert caught.value.reason == "wrong_fingerprint"


def test_offline_token_is_not_a_license_file() -> None:
    token = jws.sign(CLAIMS, KEY, KID, "tenure-offline+jwt")
    with pytest.raises(TokenRejected) as caught:
        read(lf.armor(token), license_key=None)
    assert caught.value.reason == "typ_mismatch"


def test_unknown_signing_key_is_rejected() -> None:
    with pytest.raises(TokenRejected) as caught:
        lf.read(encrypted_file(), {}, now=NOW, fingerprint_hash=FPH, license_key=LICENSE_KEY)
    assert caught.value.reason == "unknown_kid"


def tamper_line(text: str, line: int) -> str:
    lines = text.splitlines()
    target = lines[line]
    lines[line] = target[:10] + ("B" if target[10] != "B" else "C") + target[11:]
    return "\n".join(lines) + "\n"


def test_tampered_encrypted_armor_is_rejected() -> None:
    with pytest.raises(InvalidLicenseFile):
        read(tamper_line(encrypted_file(), 3))


def test_tampered_signed_armor_is_rejected() -> None:
    with pytest.raises(TokenRejected):
        read(tamper_line(lf.issue(CLAIMS, KEY, KID), 3), license_key=None)


@pytest.mark.parametrize("keep", [1, 2, -2, -1])
def test_truncated_file_is_rejected(keep: int) -> None:
    lines = encrypted_file().splitlines()
    with pytest.raises(InvalidLicenseFile):
        read("\n".join(lines[:keep]))


def test_file_with_a_missing_middle_line_is_rejected() -> None:
    # The cut may remove dots too, leaving a body that reads as a (broken) JWS.
    lines = encrypted_file().splitlines()
    with pytest.raises((InvalidLicenseFile, TokenRejected)):
        read("\n".join(lines[:2] + lines[3:]))


GOOD_ARMOR = lf.armor("a.b.c" * 30 + "x")  # 151 bytes: the base64 ends in "=="
GOOD_LINES = GOOD_ARMOR.splitlines()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(GOOD_ARMOR.replace("BEGIN TENURE", "BEGIN OTHER"), id="wrong-label"),
        pytest.param("comment\n" + GOOD_ARMOR, id="text-before-begin"),
        pytest.param(GOOD_ARMOR + "trailer\n", id="text-after-end"),
        pytest.param(f"{lf.BEGIN}\n{lf.END}\n", id="no-body"),
        pytest.param("\n".join([GOOD_LINES[0], "", *GOOD_LINES[1:]]), id="blank-line"),
        pytest.param("\n".join([GOOD_LINES[0], "".join(GOOD_LINES[1:-1]), lf.END]), id="one-line"),
        pytest.param(GOOD_ARMOR.replace("=", ""), id="padding-missing"),
        pytest.param(GOOD_ARMOR.replace("Y", "*", 1), id="non-base64"),
        pytest.param(lf.armor("x").replace("eA==", "eB=="), id="non-canonical-base64"),
        pytest.param(
            "\n".join([lf.BEGIN, base64.b64encode(b"\xff\xfe").decode(), lf.END]), id="not-utf8"
        ),
    ],
)
def test_dearmor_is_strict(text: str) -> None:
    with pytest.raises(InvalidLicenseFile):
        lf.dearmor(text)


def jwe_parts() -> list[str]:
    return lf.dearmor(encrypted_file()).split(".")


def swap(index: int, value: str) -> str:
    parts = jwe_parts()
    parts[index] = value
    return ".".join(parts)


def header(**members: Any) -> str:
    base = {"alg": "dir", "enc": "A256GCM", "cty": "JWT", "kid": SERIAL}
    return jws.b64url_encode(json.dumps(base | members).encode())


@pytest.mark.parametrize(
    "jwe",
    [
        pytest.param(lambda: ".".join(jwe_parts()[:4]), id="four-parts"),
        pytest.param(lambda: ".".join([*jwe_parts(), ""]), id="six-parts"),
        pytest.param(lambda: swap(1, jws.b64url_encode(bytes(32))), id="encrypted-key-present"),
        pytest.param(lambda: swap(2, jws.b64url_encode(bytes(16))), id="iv-16-bytes"),
        pytest.param(lambda: swap(4, jws.b64url_encode(bytes(12))), id="tag-short"),
        pytest.param(lambda: swap(3, ""), id="ciphertext-empty"),
        pytest.param(lambda: swap(3, jwe_parts()[3] + "="), id="padded"),
        pytest.param(lambda: swap(0, header(alg="A256KW")), id="alg-not-dir"),
        pytest.param(lambda: swap(0, header(enc="A128GCM")), id="enc-not-a256gcm"),
        pytest.param(lambda: swap(0, header(zip="DEF")), id="extra-header-member"),
        pytest.param(lambda: swap(0, header(kid="LIC-OTHER")), id="kid-changed"),
        pytest.param(lambda: swap(0, header(kid=7)), id="kid-not-a-string"),
        pytest.param(lambda: swap(0, jws.b64url_encode(b"[]")), id="header-array"),
        pytest.param(lambda: swap(0, jws.b64url_encode(b"{")), id="header-not-json"),
        pytest.param(lambda: swap(3, jws.b64url_encode(b"x" * 40)), id="ciphertext-swapped"),
    ],
)
def test_decrypt_is_strict(jwe: Any) -> None:
    with pytest.raises(InvalidLicenseFile):
        lf.decrypt(jwe(), LICENSE_KEY, None)


def test_issue_encrypted_without_serial_is_refused() -> None:
    with pytest.raises(InvalidInput):
        lf.issue(CLAIMS, KEY, KID, LICENSE_KEY)
