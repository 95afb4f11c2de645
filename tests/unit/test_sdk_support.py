"""Shared by the SDK unit tests (holds no tests): a signing key, tokens minted with the real
``jws.sign``, and cache directories laid out as ``activate()`` leaves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenure.crypto import jws
from tenure.sdk import TOKEN_TYP, LicenseClient, fingerprint_hash
from tenure.sdk.cache import Cache, CacheState
from tenure.sdk.trust import TrustAnchor

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = jws.jwk_thumbprint(KEY.public_key())
JWKS = orjson.dumps(jws.jwks({KID: KEY.public_key()}))
NOW = 1_764_378_000
TTL = 86_400
GRACE = 14 * 86_400
ACCOUNT = "default"
SERIAL = "LIC-7Q2M4K"
LICENSE_KEY = "TNRK-AAAAAAAA-BBBBBBBB-CCCCCCCC-DDDDDDDD"
FINGERPRINT = "machine-1234"
URL = "https://licensing.example"
JTI = "tok_" + "a" * 26
ACT = "act_" + "b" * 26


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": f"https://ledger.example/{ACCOUNT}",
        "sub": SERIAL,
        "aud": "studio",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + TTL,
        "jti": JTI,
        "act": ACT,
        "fph": fingerprint_hash(SERIAL, FINGERPRINT),
        "ent": {
            "feature:export-pdf": True,
            "feature:cloud-sync": True,
            "feature:scripting": False,
            "seats": 5,
        },
        "core": ["feature:export-pdf"],
        "grace": GRACE,
        "lic": {"status": "active", "expires_at": None},
        "ckpt": None,
    }
    base.update(changes)
    return base


def token(**changes: Any) -> str:
    return jws.sign(claims(**changes), KEY, KID, TOKEN_TYP)


def write_cache(directory: Path, minted: str, **state: Any) -> None:
    keys = TrustAnchor(None).trust(JWKS, ACCOUNT)
    Cache(directory).save(token=minted, keys=keys, state=CacheState(ACCOUNT, **state))


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def client(cache_dir: Path, clock: Clock, **options: Any) -> LicenseClient:
    options.setdefault("refresh", False)
    return LicenseClient(URL, LICENSE_KEY, SERIAL, FINGERPRINT, cache_dir, clock=clock, **options)
