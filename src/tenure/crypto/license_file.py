"""License files for air-gapped machines (docs/offline.md, "License files").

A license file is ASCII armor around a body. The body is a JWS (``typ``
``tenure-license-file+jwt``) bound to one fingerprint hash, or a compact JWE
(``dir`` + ``A256GCM``) holding that JWS, whose content key is derived from the
license key with HKDF-SHA256, so only the license key's holder can read it.

Pure: no I/O and no clock (``now`` is a parameter); randomness (the IV) is a
parameter too. Armor and encryption failures raise ``InvalidLicenseFile``; a body
that opens but does not verify raises ``TokenRejected`` with its ``reason``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenure.crypto import jws
from tenure.crypto.keyset import KeySet, issued_at, under_keyset
from tenure.errors import InvalidInput, InvalidLicenseFile, TokenRejected
from tenure.ledger.note import Ed25519Signer

TYP = "tenure-license-file+jwt"
BEGIN = "-----BEGIN TENURE LICENSE FILE-----"
END = "-----END TENURE LICENSE FILE-----"
LINE_LENGTH = 64
HKDF_INFO = b"tenure.license-file.v1"
IV_BYTES = 12
TAG_BYTES = 16
LEEWAY = 300

RandomBytes = Callable[[int], bytes]


# ------------------------------------------------------------------ armor


def armor(body: str) -> str:
    """Wrap ``body`` (UTF-8) in BEGIN/END lines, base64 in 64-character lines."""
    encoded = base64.b64encode(body.encode("utf-8")).decode("ascii")
    lines = [encoded[i : i + LINE_LENGTH] for i in range(0, len(encoded), LINE_LENGTH)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def dearmor(text: str) -> str:
    """The body inside the armor of ``text``.

    Tolerates whitespace around the block, CRLF (or CR) line ends and trailing
    blanks on a line. Anything else is strict: exactly one BEGIN and one END line,
    base64 lines of 64 characters (the last 1 to 64), canonical padded base64 of a
    non-empty UTF-8 body. Raises ``InvalidLicenseFile`` naming what is wrong.
    """
    lines = [line.rstrip(" \t") for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise InvalidLicenseFile(f"a license file starts with {BEGIN} and ends with {END}")
    payload = lines[1:-1]
    if any(len(line) != LINE_LENGTH for line in payload[:-1]) or not (
        0 < len(payload[-1]) <= LINE_LENGTH
    ):
        raise InvalidLicenseFile(f"license file lines must be {LINE_LENGTH} characters")
    encoded = "".join(payload)
    if not encoded.isascii():  # a2b_base64 raises ValueError on non-ASCII text
        raise InvalidLicenseFile("license file body is not base64")
    try:
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:
        raise InvalidLicenseFile("license file body is not base64") from None
    if base64.b64encode(raw).decode("ascii") != encoded:
        raise InvalidLicenseFile("license file body is not canonical base64")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidLicenseFile("license file body is not UTF-8 text") from None


# ------------------------------------------------------------------ encryption


def derive_file_key(license_key: str, serial: str) -> bytes:
    """The 32-byte content key: HKDF-SHA256(license key, salt=serial, info=v1 label)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=serial.encode(), info=HKDF_INFO)
    return hkdf.derive(license_key.encode("utf-8"))


def _protected_header(serial: str) -> str:
    header = {"alg": "dir", "enc": "A256GCM", "cty": "JWT", "kid": serial}
    return jws.b64url_encode(orjson.dumps(header))


def encrypt(
    token: str, license_key: str, serial: str, random_bytes: RandomBytes = os.urandom
) -> str:
    """A compact JWE (``dir``, ``A256GCM``, ``cty`` ``JWT``, ``kid`` = serial) of ``token``.

    The encrypted key is empty, the IV is 96 random bits from ``random_bytes`` and the
    additional data is the ASCII of the base64url protected header (RFC 7516 §5.1).
    """
    iv = random_bytes(IV_BYTES)
    if len(iv) != IV_BYTES:
        raise InvalidInput(f"random_bytes must return {IV_BYTES} bytes", field="random_bytes")
    head = _protected_header(serial)
    sealed = AESGCM(derive_file_key(license_key, serial)).encrypt(
        iv, token.encode("utf-8"), head.encode("ascii")
    )
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return ".".join([head, "", jws.b64url_encode(iv), *map(jws.b64url_encode, (ciphertext, tag))])


def decrypt(jwe: str, license_key: str, serial: str | None = None) -> str:
    """The JWS inside a compact JWE made by ``encrypt``.

    ``serial`` defaults to the header's ``kid``; either way the serial is bound by
    the key derivation and the authenticated header. Raises ``InvalidLicenseFile``
    for a malformed JWE, a header other than ``dir``/``A256GCM``/``JWT``, a file
    for another serial, or a wrong license key (or altered file).
    """
    head, encrypted_key, iv, ciphertext, tag = _jwe_parts(jwe)
    kid = _check_jwe_header(head)
    if serial is not None and kid != serial:
        raise InvalidLicenseFile(f"license file is for serial {kid!r}, not {serial!r}")
    if encrypted_key or len(iv) != IV_BYTES or len(tag) != TAG_BYTES or not ciphertext:
        raise InvalidLicenseFile("JWE parts have the wrong sizes for dir/A256GCM")
    try:
        plain = AESGCM(derive_file_key(license_key, kid)).decrypt(
            iv, ciphertext + tag, head.encode("ascii")
        )
        return plain.decode("utf-8")
    except InvalidTag:
        raise InvalidLicenseFile(
            "license file cannot be decrypted: wrong license key, or the file was altered"
        ) from None
    except UnicodeDecodeError:
        raise InvalidLicenseFile("decrypted license file is not UTF-8 text") from None


def _jwe_parts(jwe: str) -> tuple[str, bytes, bytes, bytes, bytes]:
    parts = jwe.split(".")
    if len(parts) != 5:
        raise InvalidLicenseFile("a JWE in compact serialization has five parts")
    try:
        raw = [jws.b64url_decode(part) for part in parts[1:]]
        jws.b64url_decode(parts[0])
    except InvalidInput:
        raise InvalidLicenseFile("JWE parts must be strict unpadded base64url") from None
    return parts[0], raw[0], raw[1], raw[2], raw[3]


def _check_jwe_header(head: str) -> str:
    """The serial (``kid``) of a protected header that is exactly dir/A256GCM/JWT."""
    try:
        header = orjson.loads(jws.b64url_decode(head))
    except (InvalidInput, orjson.JSONDecodeError):
        raise InvalidLicenseFile("JWE header is not base64url JSON") from None
    kid = header.get("kid") if type(header) is dict else None
    if type(kid) is not str or header != {"alg": "dir", "enc": "A256GCM", "cty": "JWT", "kid": kid}:
        raise InvalidLicenseFile('JWE header must be {"alg":"dir","enc":"A256GCM","cty":"JWT"}')
    return kid


# ------------------------------------------------------------------ issue and read


def issue(
    claims: Mapping[str, Any],
    private_key: Ed25519Signer,
    kid: str,
    license_key: str | None = None,
    serial: str | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> str:
    """An armored license file: the signed claims, encrypted iff ``license_key`` is given.

    Raises ``InvalidInput`` if the claims cannot be signed (see ``jws.sign``) or a
    license key is given without the ``serial`` that salts its derivation.
    """
    token = jws.sign(claims, private_key, kid, TYP)
    if license_key is None:
        return armor(token)
    if serial is None:
        raise InvalidInput("an encrypted license file needs the serial", field="serial")
    return armor(encrypt(token, license_key, serial, random_bytes))


def read(
    text: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    now: float,
    fingerprint_hash: str,
    license_key: str | None = None,
    serial: str | None = None,
    leeway: float = LEEWAY,
    vouched: KeySet | None = None,
) -> dict[str, Any]:
    """Open and verify a license file offline; return its claims.

    Dearmors ``text``, decrypts a JWE body with ``license_key`` and verifies the JWS
    (``typ`` ``tenure-license-file+jwt``, ``leeway`` seconds of clock skew, ``sub``
    equal to ``serial`` when given) and that ``fph`` is ``fingerprint_hash``. With
    ``vouched`` (the key set note ``keys`` came from, verified with the ledger key)
    the file must also have been signed in its key's life there
    (``KeySet.check_signed``; its own ``exp`` may be later).
    Raises ``InvalidLicenseFile`` for bad armor, an encrypted file without a license
    key, or one that does not decrypt; ``TokenRejected`` (reason
    ``wrong_fingerprint`` for another device, ``untrusted_key`` for a key the note
    does not vouch for then) when the body does not verify.
    """
    body = dearmor(text)
    if body.count(".") == 4:
        if license_key is None:
            raise InvalidLicenseFile("license file is encrypted: the license key is needed")
        body = decrypt(body, license_key, serial)
    try:
        claims = jws.verify(body, keys, typ=TYP, now=now, leeway=leeway, subject=serial)
    except TokenRejected as rejected:
        if vouched is None:
            raise
        raise under_keyset(rejected) from None
    if vouched is not None:
        vouched.check_signed(jws.signing_kid(body), issued_at(claims), leeway)
    if claims.get("fph") != fingerprint_hash:
        raise TokenRejected("license file is bound to another device", "wrong_fingerprint")
    return claims
