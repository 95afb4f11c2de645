"""Building compact JWS by hand, for the vectors that no honest signer would make."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from tenure.canonical import canonical_json
from tenure.crypto import jws

from .world import TokenKey

Sign = Callable[[bytes], bytes]


def compact(header: Mapping[str, Any], claims: Mapping[str, Any], sign: Sign | None) -> str:
    """``header.claims.signature``: the header in the given member order, the claims in
    canonical JSON, the signature ``sign`` makes over the signing input (empty without)."""
    signing_input = ".".join(
        (jws.b64url_encode(orjson.dumps(dict(header))), jws.b64url_encode(canonical_json(claims)))
    )
    signature = sign(signing_input.encode("ascii")) if sign is not None else b""
    return signing_input + "." + jws.b64url_encode(signature)


def sign(key: TokenKey, claims: Mapping[str, Any], typ: str) -> str:
    """What the service signs: ``jws.sign`` with ``key``."""
    return jws.sign(claims, key.private, key.kid, typ)


def header(key: TokenKey, typ: str, **changes: Any) -> dict[str, Any]:
    """Tenure's header (``alg``, ``kid``, ``typ``), with ``changes`` applied."""
    return {"alg": jws.ALG, "kid": key.kid, "typ": typ, **changes}


def hmac_with_public_key(key: TokenKey) -> Sign:
    """HS256 keyed with the public key's bytes: the classic algorithm-confusion forgery."""
    secret = key.private.public_key().public_bytes_raw()
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def replace_payload(token: str, claims: Mapping[str, Any]) -> str:
    """``token`` with its claims swapped and its signature kept."""
    head, _, signature = token.split(".")
    return ".".join((head, jws.b64url_encode(canonical_json(claims)), signature))


def sign_other_bytes(key: TokenKey, typ: str, claims: Mapping[str, Any], signed: bytes) -> str:
    """A token whose signature is ``key``'s valid signature over ``signed`` instead of
    over the token's signing input."""
    unsigned = compact(header(key, typ), claims, None)
    return unsigned + jws.b64url_encode(key.private.sign(signed))
