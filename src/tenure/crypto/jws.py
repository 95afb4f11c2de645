"""Strict EdDSA-only JWS in compact serialization, and Ed25519 JWKs (RFC 7515/7517/8037).

One algorithm, pinned: a token's header never chooses how it is verified. The header
must be exactly ``{"alg": "EdDSA", "typ": …, "kid": …}``; ``jku``, ``x5u``, ``jwk``,
``crit`` and every other member are refused, and nothing is ever fetched. The rules
are those of ``docs/offline.md`` ("Verifying a token"); every rejection raises
``TokenRejected`` with a stable ``reason``.

This module is pure: no I/O, no clock (``now`` is a parameter), and it needs only
``cryptography``, ``orjson`` and the standard library so that ``tenure.sdk`` can
import it without the server's dependencies.

Why not a library: joserfc's ``jwt.decode`` checks neither ``exp`` nor ``aud``, PyJWT
needs ``algorithms=`` to be safe, and both cost more per verify than the Ed25519
verify itself. Here a verify is a regex match, a cached header lookup, the
signature check and one JSON parse.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeGuard

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.canonical import canonical_json
from tenure.errors import InvalidInput, TokenRejected
from tenure.ledger.note import Ed25519Signer

try:  # pydantic, which the API's /openapi.json comes from, reads only this one on 3.11
    from typing_extensions import TypedDict
except ImportError:  # pragma: no cover - the SDK alone: the same type, for mypy and readers
    from typing import TypedDict

ALG: Literal["EdDSA"] = "EdDSA"
MAX_TOKEN_LENGTH = 256 * 1024
"""Longer input is ``malformed`` before any decoding (bounds the work an attacker buys)."""
MAX_KID_LENGTH = 128
MAX_HEADER_SEGMENT = 1024
"""An honest header (kid ≤ 128 printable characters) is far shorter than this."""
HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXTET = {char: index for index, char in enumerate(_ALPHABET)}
# Unused low bits of the last character that a canonical encoding leaves zero,
# indexed by len(segment) % 4 (a remainder of 1 is never valid).
_UNUSED_BITS = (0, 0, 0x0F, 0x03)
_PADDING = ("", "", "==", "=")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_COMPACT = re.compile(r"([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)")
_SIGNATURE_CHARS = 86  # 64 bytes, unpadded
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


# ------------------------------------------------------------------ base64url


def b64url_encode(raw: bytes) -> str:
    """base64url of ``raw`` without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Decode strict unpadded base64url: canonical alphabet, no padding, no whitespace.

    Raises ``InvalidInput`` for any other character, an impossible length, or a
    non-canonical last character (unused bits set), so each byte string has exactly
    one accepted encoding.
    """
    raw = _decode_segment(segment) if _SEGMENT.fullmatch(segment) else None
    if raw is None:
        raise InvalidInput("not strict unpadded base64url")
    return raw


def _decode_segment(segment: str) -> bytes | None:
    """Decode a segment already known to hold only base64url characters, or None."""
    remainder = len(segment) % 4
    if remainder == 1:
        return None
    if remainder and _SIXTET[segment[-1]] & _UNUSED_BITS[remainder]:
        return None
    return base64.urlsafe_b64decode(segment + _PADDING[remainder])


# ------------------------------------------------------------------ strict JSON


class _DuplicateMember(Exception):
    """Raised inside the JSON decoder when an object repeats a member name."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateMember
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} overflows a double")
    return number


_STRICT_JSON = json.JSONDecoder(
    object_pairs_hook=_unique_members,
    parse_constant=_no_constant,
    parse_float=_finite_float,
)


def _parse_object(raw: bytes, what: str, reason: str, duplicate_reason: str) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object without duplicate names (at any depth)."""
    try:
        value = _STRICT_JSON.decode(raw.decode("utf-8"))
    except _DuplicateMember:
        raise TokenRejected(f"{what} repeats a member name", duplicate_reason) from None
    except (ValueError, RecursionError):
        raise TokenRejected(f"{what} is not valid JSON", reason) from None
    if type(value) is not dict:
        raise TokenRejected(f"{what} is not a JSON object", reason)
    return value


# ------------------------------------------------------------------ keys


def _is_kid(kid: object) -> TypeGuard[str]:
    return type(kid) is str and len(kid) <= MAX_KID_LENGTH and _PRINTABLE.fullmatch(kid) is not None


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url unpadded) of an Ed25519 public key."""
    x = b64url_encode(public_key.public_bytes_raw())
    members = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'
    return b64url_encode(hashlib.sha256(members.encode("ascii")).digest())


class PublicJWK(TypedDict):
    """An Ed25519 public key as RFC 8037 describes it (``public_jwk``)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class KeySet(TypedDict):
    """An RFC 7517 key set (``jwks``)."""

    keys: list[PublicJWK]


# Closed (additionalProperties: false) in the API's schema; set here as pydantic reads
# it, without importing pydantic (the SDK imports this module).
PublicJWK.__pydantic_config__ = KeySet.__pydantic_config__ = {"extra": "forbid"}  # type: ignore[attr-defined]


def public_jwk(public_key: Ed25519PublicKey, kid: str) -> PublicJWK:
    """The public JWK (RFC 8037 OKP) of ``public_key`` under ``kid``.

    Raises ``InvalidInput`` if ``kid`` is empty, longer than 128 characters or not
    printable ASCII (a kid ``verify`` would refuse).
    """
    if not _is_kid(kid):
        raise InvalidInput("kid must be 1 to 128 printable ASCII characters", field="kid")
    x = b64url_encode(public_key.public_bytes_raw())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALG, "use": "sig"}


def public_key_from_x(x: str) -> Ed25519PublicKey:
    """The Ed25519 public key whose JWK ``x`` member is ``x``; ``InvalidInput`` if it
    is not 32 bytes of strict base64url."""
    raw = b64url_decode(x)
    if len(raw) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes", field="x")
    return Ed25519PublicKey.from_public_bytes(raw)


def jwks(keys: Mapping[str, Ed25519PublicKey]) -> KeySet:
    """An RFC 7517 key set ``{"keys": [...]}`` of ``keys`` (kid → public key), in order."""
    return {"keys": [public_jwk(key, kid) for kid, key in keys.items()]}


def keys_from_jwks(document: Any) -> dict[str, Ed25519PublicKey]:
    """The verification keys (kid → public key) of a key set, parsed strictly.

    ``document`` is the parsed key set or its JSON text. Every key must be
    ``kty`` ``OKP``, ``crv`` ``Ed25519``, carry a printable ``kid`` of at most 128
    characters and a strict base64url ``x`` of 32 bytes; ``alg`` and ``use``, when
    present, must be ``EdDSA`` and ``sig``. A key set that repeats a kid, holds a
    private key (``d``) or breaks any rule raises ``InvalidInput`` naming the member.
    """
    if isinstance(document, str | bytes):
        document = _parse_jwks_text(document)
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidInput("a key set is an object with a list of keys", field="keys")
    found: dict[str, Ed25519PublicKey] = {}
    for index, jwk in enumerate(document["keys"]):
        kid, key = _key_from_jwk(jwk, f"keys[{index}]")
        if kid in found:
            raise InvalidInput(f"kid {kid!r} appears twice", field=f"keys[{index}].kid")
        found[kid] = key
    return found


def _parse_jwks_text(text: str | bytes) -> Any:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        return _parse_object(raw, "key set", "malformed", "duplicate")
    except TokenRejected as exc:
        raise InvalidInput(f"key set: {exc.message}", field="keys") from None


def _key_from_jwk(jwk: Any, where: str) -> tuple[str, Ed25519PublicKey]:
    if not isinstance(jwk, Mapping):
        raise InvalidInput("a key must be an object", field=where)
    expected = {"kty": "OKP", "crv": "Ed25519"}
    optional = {"alg": ALG, "use": "sig"}
    for member, value in expected.items():
        if jwk.get(member) != value:
            raise InvalidInput(f"{member} must be {value!r}", field=f"{where}.{member}")
    for member, value in optional.items():
        if member in jwk and jwk[member] != value:
            raise InvalidInput(f"{member} must be {value!r}", field=f"{where}.{member}")
    if "d" in jwk:
        raise InvalidInput("a key set must not hold private keys", field=f"{where}.d")
    kid = jwk.get("kid")
    if not _is_kid(kid):
        raise InvalidInput("kid must be 1 to 128 printable ASCII characters", field=f"{where}.kid")
    x = jwk.get("x")
    raw = _decode_segment(x) if type(x) is str and _SEGMENT.fullmatch(x) else None
    if raw is None or len(raw) != 32:
        raise InvalidInput("x must be 32 bytes of strict base64url", field=f"{where}.x")
    return kid, Ed25519PublicKey.from_public_bytes(raw)


# ------------------------------------------------------------------ sign


@functools.lru_cache(maxsize=64)
def _header_segment(kid: str, typ: str) -> str:
    if not _is_kid(kid):
        raise InvalidInput("kid must be 1 to 128 printable ASCII characters", field="kid")
    if type(typ) is not str or not typ:
        raise InvalidInput("typ must be a non-empty string", field="typ")
    return b64url_encode(orjson.dumps({"alg": ALG, "kid": kid, "typ": typ}))


def sign(claims: Mapping[str, Any], private_key: Ed25519Signer, kid: str, typ: str) -> str:
    """Sign ``claims`` as a compact JWS with header ``{"alg":"EdDSA","kid":…,"typ":…}``.

    The claims are encoded as canonical JSON (RFC 8785). Raises ``InvalidInput`` if
    they leave Tenure's JSON domain (e.g. floats), if ``exp`` is missing or ``exp``,
    ``nbf`` or ``iat`` is not an integer, or if ``kid`` or ``typ`` is unusable: a token
    ``verify`` would always refuse is never minted.
    """
    body = claims if type(claims) is dict else dict(claims)
    _check_time_claims(body, InvalidInput)
    head = _header_segment(kid, typ)
    signing_input = head + "." + b64url_encode(canonical_json(body))
    signature = private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)


# ------------------------------------------------------------------ verify


@functools.lru_cache(maxsize=256)
def _parse_header(segment: str) -> tuple[str, str, str]:
    """``(alg, typ, kid)`` of a header segment that has exactly those string members.

    Cached because a key ring's tokens share a handful of headers; only valid
    headers are cached (a raised rejection is not), and segments are length-bounded.
    """
    raw = _decode_segment(segment)
    if raw is None:
        raise TokenRejected("header is not strict base64url", "malformed")
    header = _parse_object(raw, "header", "bad_header", "bad_header")
    if header.keys() != HEADER_MEMBERS:
        extra = sorted(header.keys() - HEADER_MEMBERS)
        missing = sorted(HEADER_MEMBERS - header.keys())
        raise TokenRejected(
            f"header must have exactly alg, typ and kid (extra {extra}, missing {missing})",
            "bad_header",
        )
    alg, typ, kid = header["alg"], header["typ"], header["kid"]
    if type(alg) is not str or type(typ) is not str:
        raise TokenRejected("alg and typ must be strings", "bad_header")
    if not _is_kid(kid):
        raise TokenRejected("kid must be 1 to 128 printable ASCII characters", "bad_header")
    return alg, typ, kid


def verify(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    typ: str,
    now: float,
    leeway: float = 60,
    issuer: str | None = None,
    audience: str | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """Verify a compact JWS under the rules of docs/offline.md and return its claims.

    Checks, in order: three strict base64url parts; a header of exactly ``alg``
    (``EdDSA``), ``typ`` (equal to ``typ``) and ``kid`` (a key of ``keys``); a valid
    64-byte Ed25519 signature; claims that are a JSON object without duplicate names,
    NaN or Infinity, with an integer ``exp`` and integer ``nbf``/``iat`` when present;
    ``iss``, ``aud`` (a string, or a list containing ``audience``) and ``sub`` when
    expected; finally ``nbf`` not after ``now + leeway`` and ``exp`` after
    ``now - leeway``. Raises ``TokenRejected`` whose ``reason`` names the first
    broken rule; nothing is ever fetched.
    """
    fits = isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH
    parts = _COMPACT.fullmatch(token) if fits else None
    if parts is None:
        raise TokenRejected("not a compact JWS of three base64url parts", "malformed")
    head, body, signature = parts.groups()
    if len(head) > MAX_HEADER_SEGMENT:
        raise TokenRejected("header is too long", "bad_header")
    alg, found_typ, kid = _parse_header(head)
    if alg != ALG:
        raise TokenRejected(f"algorithm {alg!r} is not allowed", "alg_not_allowed")
    if found_typ != typ:
        raise TokenRejected(f"typ {found_typ!r} is not {typ!r}", "typ_mismatch")
    key = keys.get(kid)
    if key is None:
        raise TokenRejected(f"kid {kid!r} is not in the key set", "unknown_kid")
    _check_signature(key, token[: len(head) + 1 + len(body)], signature)
    payload = _decode_segment(body)
    if payload is None:
        raise TokenRejected("payload is not strict base64url", "malformed")
    claims = _parse_object(payload, "claims", "malformed", "duplicate_claim")
    _check_time_claims(claims, _bad_claim)
    _check_identity(claims, issuer, audience, subject)
    _check_validity(claims, now, leeway)
    return claims


def signing_kid(token: str) -> str:
    """The ``kid`` of the header of ``token``, a compact JWS that ``verify`` accepted.
    Raises ``TokenRejected`` for a token whose header ``verify`` would refuse."""
    return _parse_header(token.split(".", 1)[0])[2]


def _check_signature(key: Ed25519PublicKey, signing_input: str, segment: str) -> None:
    signature = _decode_segment(segment) if len(segment) == _SIGNATURE_CHARS else None
    if signature is None:
        raise TokenRejected("signature is not 64 bytes of strict base64url", "bad_signature")
    try:
        key.verify(signature, signing_input.encode("ascii"))
    except InvalidSignature:
        raise TokenRejected("signature does not verify", "bad_signature") from None


def _bad_claim(message: str, field: str) -> TokenRejected:
    return TokenRejected(message, "bad_claim", field=field)


def _check_time_claims(claims: Mapping[str, Any], error: Callable[..., Exception]) -> None:
    """``exp`` is required, and ``exp``/``nbf``/``iat`` are integers (never bool/float)."""
    if "exp" not in claims:
        raise error("claims have no exp", field="exp")
    for name in ("exp", "nbf", "iat"):
        if name in claims and type(claims[name]) is not int:
            raise error(f"{name} must be an integer number of seconds", field=name)


def _check_identity(
    claims: Mapping[str, Any], issuer: str | None, audience: str | None, subject: str | None
) -> None:
    if issuer is not None and claims.get("iss") != issuer:
        raise TokenRejected(f"issuer is not {issuer!r}", "wrong_issuer")
    if audience is not None:
        aud = claims.get("aud")
        if not (aud == audience or (type(aud) is list and audience in aud)):
            raise TokenRejected(f"audience is not {audience!r}", "wrong_audience")
    if subject is not None and claims.get("sub") != subject:
        raise TokenRejected(f"subject is not {subject!r}", "wrong_subject")


def _check_validity(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    nbf = claims.get("nbf")
    if nbf is not None and nbf > now + leeway:
        raise TokenRejected("token is not valid yet (nbf)", "not_yet_valid")
    if claims["exp"] <= now - leeway:
        raise TokenRejected("token has expired (exp)", "expired")
