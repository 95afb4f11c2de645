"""The fixed world the conformance vectors are made in (docs/vectors/README.md).

Every key comes from a labelled seed, every time from ``NOW`` and every id from a
label, so the generator writes the same bytes on every machine and every run:
Ed25519 signatures are deterministic, and the one random input of the formats (the
IV of an encrypted license file) is derived from a label too. These keys are test
keys, published on purpose: never use them for anything else.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenure.crypto import jws
from tenure.crypto.keyset import VouchedKey
from tenure.crypto.keystore import LicenseKeys
from tenure.domain.activations import activation_id, fingerprint_hash
from tenure.domain.commands import customer_id, license_serial
from tenure.ledger.note import NoteSigner

NOW = 1_767_225_600
"""2026-01-01T00:00:00Z: the clock every expiry decision of the vectors uses."""
HOUR = 3600
DAY = 86_400
TOKEN_LEEWAY = 60

ACCOUNT = "default"
OTHER_ACCOUNT = "other"
ORIGIN_PREFIX = "tenure.example.com/ledger"
ORIGIN = f"{ORIGIN_PREFIX}/{ACCOUNT}"
ISSUER = ORIGIN
"""A token's ``iss`` is ``<ledger origin prefix>/<account>``, as the ledger origin."""
PRODUCT = "studio"
ENTITLEMENTS: dict[str, bool | int] = {
    "feature:cloud-sync": True,
    "feature:export-pdf": True,
    "quota:api-calls": 10_000,
    "seats": 5,
}
CORE = ["feature:export-pdf"]
GRACE = 14 * DAY
LICENSE_EXPIRES_AT = "2026-12-01T00:00:00.000000Z"


def seed(label: str) -> bytes:
    """32 bytes that depend on ``label`` only."""
    return hashlib.sha256(f"tenure conformance vectors v1: {label}".encode()).digest()


def private_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed(label))


def label_id(prefix: str, label: str) -> str:
    """An id of Tenure's shape (``tok_`` + 26 lower-case base32) drawn from ``label``."""
    return prefix + base64.b32encode(seed(label)).decode().lower()[:26]


@dataclass(frozen=True)
class TokenKey:
    """A token signing key: its private part, its kid and the life the key set gives it."""

    private: Ed25519PrivateKey
    valid_from: int
    valid_until: int | None

    @property
    def kid(self) -> str:
        return jws.jwk_thumbprint(self.private.public_key())

    @property
    def x(self) -> str:
        return jws.b64url_encode(self.private.public_key().public_bytes_raw())

    def vouched(self) -> VouchedKey:
        return VouchedKey(self.kid, self.x, self.valid_from, self.valid_until)


CURRENT_KEY = TokenKey(private_key("token key: current"), NOW - 10 * DAY, None)
"""The account's signing key, made ten days ago."""
TOKEN_LIFETIME = 30 * DAY
"""The account's longest offline token lifetime: the key set note states it."""
ROTATED_KEY = TokenKey(private_key("token key: rotated"), NOW - 200 * DAY, NOW + 20 * DAY)
"""Rotated out ten days ago; published for 30 days (the longest token life) after that."""
OLD_NOTE_TIME = NOW - 60 * DAY
"""When the old key set note was signed: the rotated key still signed then."""
ATTACKER_KEY = TokenKey(private_key("token key: attacker"), NOW - DAY, None)
"""A key the account never had."""

LEDGER_SIGNER = NoteSigner(ORIGIN, private_key("ledger key"))
"""The account's ledger key: signs checkpoints and the key set note."""
IMPOSTOR_SIGNER = NoteSigner(ORIGIN, private_key("ledger key: impostor"))
"""Another key under the ledger key's name (its key id differs)."""
OTHER_ORIGIN_SIGNER = NoteSigner(
    f"{ORIGIN_PREFIX}/{OTHER_ACCOUNT}", private_key("ledger key: other")
)


@dataclass(frozen=True)
class Device:
    """One device of a license: its fingerprint, the hash a token carries, its activation."""

    serial: str
    fingerprint: str

    @property
    def fingerprint_hash(self) -> str:
        return fingerprint_hash(self.serial, self.fingerprint)

    @property
    def activation(self) -> str:
        return activation_id(ACCOUNT, self.serial, self.fingerprint_hash)


def serial(order: str) -> str:
    customer = customer_id(ACCOUNT, "vectors-customer-1")
    return license_serial(ACCOUNT, PRODUCT, customer, order)


SERIAL = serial("order-1001")
REVOKED_SERIAL = serial("order-1002")
"""A license revoked on the ledger."""
OTHER_SERIAL = serial("order-1003")
"""A license of the same customer that the tokens of ``SERIAL`` must not pass for."""
LAPTOP = Device(SERIAL, "vectors-laptop-01")
DESKTOP = Device(SERIAL, "vectors-desktop-02")
"""Its activation was deactivated."""
OTHER_DEVICE = Device(SERIAL, "vectors-tablet-03")
REVOKED_LICENSE_DEVICE = Device(REVOKED_SERIAL, "vectors-laptop-01")
LICENSE_KEY = LicenseKeys(seed("license key secret")).key(ACCOUNT, SERIAL)
WRONG_LICENSE_KEY = LicenseKeys(seed("another license key secret")).key(ACCOUNT, SERIAL)


def fixed_iv(label: str) -> bytes:
    """The AES-GCM IV of an encrypted license file (random when the service makes one)."""
    return seed(f"iv: {label}")[:12]


def claims(
    device: Device,
    jti_label: str,
    *,
    issued: int,
    expires: int,
    checkpoint: dict[str, Any],
    **changes: Any,
) -> dict[str, Any]:
    """The claims of an offline token (or license file) of ``device``, docs/offline.md."""
    body: dict[str, Any] = {
        "iss": ISSUER,
        "sub": device.serial,
        "aud": PRODUCT,
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "jti": label_id("tok_", jti_label),
        "act": device.activation,
        "fph": device.fingerprint_hash,
        "ent": dict(ENTITLEMENTS),
        "core": list(CORE),
        "grace": GRACE,
        "lic": {"status": "active", "expires_at": LICENSE_EXPIRES_AT},
        "ckpt": checkpoint,
    }
    body.update(changes)
    return body
