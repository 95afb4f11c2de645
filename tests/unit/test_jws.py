"""Strict EdDSA-only JWS: round trips, the attack suite, JWKs and joserfc interop."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.crypto import jws
from tenure.errors import InvalidInput, TokenRejected

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
KID = jws.jwk_thumbprint(PUB)
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
OTHER_KID = jws.jwk_thumbprint(OTHER.public_key())
KEYS: dict[str, Ed25519PublicKey] = {KID: PUB}

TYP = "tenure-offline+jwt"
NOW = 1_764_378_000
ISS = "https://licensing.example/default"
AUD = "acme-editor"
SUB = "LIC-7Q2M4K"
CLAIMS: dict[str, Any] = {
    "iss": ISS,
    "sub": SUB,
    "aud": AUD,
    "iat": NOW,
    "nbf": NOW,
    "exp": NOW + 86_400,
    "jti": "tok_" + "A" * 26,
    "fph": "f" * 64,
    "ent": {"feature:export-pdf": True, "seats": 5},
    "core": ["feature:export-pdf"],
}
HEADER: dict[str, Any] = {"alg": "EdDSA", "kid": KID, "typ": TYP}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def encode_json(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def forge(
    header: Any = None,
    claims: Any = None,
    key: Ed25519PrivateKey = KEY,
    signature: bytes | None = None,
) -> str:
    """A token with arbitrary header and claims (dicts, or raw JSON bytes), Ed25519-signed."""
    head = b64(encode_json(HEADER if header is None else header))
    body = b64(encode_json(CLAIMS if claims is None else claims))
    signing_input = f"{head}.{body}"
    sig = key.sign(signing_input.encode()) if signature is None else signature
    return f"{signing_input}.{b64(sig)}"


def check(token: str, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "typ": TYP,
        "now": NOW,
        "issuer": ISS,
        "audience": AUD,
        "subject": SUB,
    }
    return jws.verify(token, KEYS, **(options | overrides))


def good() -> str:
    return jws.sign(CLAIMS, KEY, KID, TYP)


def replace_part(token: str, index: int, part: str) -> str:
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


def with_claims(**changes: Any) -> str:
    return forge(claims=CLAIMS | changes)


def without_claim(name: str) -> str:
    return forge(claims={k: v for k, v in CLAIMS.items() if k != name})


def with_header(**changes: Any) -> str:
    return forge(header=HEADER | changes)


def hs256(secret: bytes) -> str:
    header = b64(encode_json({"alg": "HS256", "kid": KID, "typ": TYP}))
    signing_input = f"{header}.{b64(encode_json(CLAIMS))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def alg_none(signature: str) -> str:
    header = b64(encode_json({"alg": "none", "kid": KID, "typ": TYP}))
    return f"{header}.{b64(encode_json(CLAIMS))}.{signature}"


def flip_bit(segment: str, byte: int, bit: int) -> str:
    raw = bytearray(jws.b64url_decode(segment))
    raw[byte] ^= 1 << bit
    return b64(bytes(raw))


def noncanonical(segment: str) -> str:
    """The same bytes with unused low bits of the last character set: a second encoding."""
    assert len(segment) % 4 in (2, 3)
    return segment[:-1] + jws._ALPHABET[jws._ALPHABET.index(segment[-1]) | 1]


def resign(head: str, body: str) -> str:
    return f"{head}.{body}.{b64(KEY.sign(f'{head}.{body}'.encode()))}"


def one_too_many(segment: str) -> str:
    """Extend ``segment`` to a length of 1 mod 4, which no byte string encodes to."""
    return segment + "A" * ((1 - len(segment)) % 4 or 4)


def noncanonical_payload() -> str:
    head, body, _ = good().split(".")
    return resign(head, noncanonical(body))


def noncanonical_header() -> str:
    head, body, _ = good().split(".")
    if len(head) % 4 == 0:
        head = b64(encode_json(HEADER).replace(b"{", b"{ ", 1))
    return resign(noncanonical(head), body)


PUBLIC_RAW = PUB.public_bytes_raw()
JWK_JSON = json.dumps(jws.public_jwk(PUB, KID)).encode()

# (id, token builder, expected reason). Builders run inside the test, under the
# no-network guard below.
ATTACKS: list[tuple[str, Callable[[], str], str]] = [
    ("alg-none-empty-signature", lambda: alg_none(""), "alg_not_allowed"),
    ("alg-none-garbage-signature", lambda: alg_none(b64(b"garbage" * 9)), "alg_not_allowed"),
    ("alg-hs256-public-key-bytes-secret", lambda: hs256(PUBLIC_RAW), "alg_not_allowed"),
    ("alg-hs256-jwk-json-secret", lambda: hs256(JWK_JSON), "alg_not_allowed"),
    ("alg-Ed25519", lambda: with_header(alg="Ed25519"), "alg_not_allowed"),
    ("alg-lowercase-eddsa", lambda: with_header(alg="eddsa"), "alg_not_allowed"),
    ("alg-uppercase-EDDSA", lambda: with_header(alg="EDDSA"), "alg_not_allowed"),
    ("alg-ES256", lambda: with_header(alg="ES256"), "alg_not_allowed"),
    ("alg-not-a-string", lambda: with_header(alg=["EdDSA"]), "bad_header"),
    ("kid-unknown", lambda: with_header(kid="nope"), "unknown_kid"),
    ("kid-path-traversal", lambda: with_header(kid="../../etc/passwd"), "unknown_kid"),
    ("kid-sql-injection", lambda: with_header(kid="1' OR '1'='1"), "unknown_kid"),
    ("kid-129-chars", lambda: with_header(kid="k" * 129), "bad_header"),
    ("kid-10k-chars", lambda: with_header(kid="k" * 10_000), "bad_header"),
    ("kid-non-printable", lambda: with_header(kid=KID + "\x00"), "bad_header"),
    ("kid-empty", lambda: with_header(kid=""), "bad_header"),
    ("kid-not-a-string", lambda: with_header(kid=7), "bad_header"),
    ("header-jku", lambda: with_header(jku="https://evil.example/jwks.json"), "bad_header"),
    ("header-x5u", lambda: with_header(x5u="https://evil.example/cert.pem"), "bad_header"),
    ("header-jwk", lambda: with_header(jwk=jws.public_jwk(OTHER.public_key(), "x")), "bad_header"),
    ("header-crit", lambda: with_header(crit=["exp"]), "bad_header"),
    ("header-x5c", lambda: with_header(x5c=["MIIB"]), "bad_header"),
    ("header-extra-member", lambda: with_header(cty="JWT"), "bad_header"),
    ("header-missing-typ", lambda: forge(header={"alg": "EdDSA", "kid": KID}), "bad_header"),
    ("header-missing-kid", lambda: forge(header={"alg": "EdDSA", "typ": TYP}), "bad_header"),
    ("header-array", lambda: forge(header=["EdDSA", KID, TYP]), "bad_header"),
    ("header-string", lambda: forge(header="EdDSA"), "bad_header"),
    ("header-not-json", lambda: forge(header=b"{alg:EdDSA}"), "bad_header"),
    ("header-not-utf8", lambda: forge(header=b'{"alg":"\xff"}'), "bad_header"),
    (
        "header-duplicate-alg",
        lambda: forge(
            header=f'{{"alg":"none","alg":"EdDSA","kid":"{KID}","typ":"{TYP}"}}'.encode()
        ),
        "bad_header",
    ),
    ("typ-wrong", lambda: with_header(typ="JWT"), "typ_mismatch"),
    ("typ-other-tenure-type", lambda: with_header(typ="tenure-revocations+jwt"), "typ_mismatch"),
    ("expired", lambda: with_claims(exp=NOW - 61), "expired"),
    ("expired-exactly-at-leeway", lambda: with_claims(exp=NOW - 60), "expired"),
    ("nbf-in-future", lambda: with_claims(nbf=NOW + 61), "not_yet_valid"),
    ("exp-float", lambda: with_claims(exp=float(NOW + 3600)), "bad_claim"),
    ("exp-string", lambda: with_claims(exp=str(NOW + 3600)), "bad_claim"),
    ("exp-bool", lambda: with_claims(exp=True), "bad_claim"),
    ("exp-null", lambda: with_claims(exp=None), "bad_claim"),
    ("exp-missing", lambda: without_claim("exp"), "bad_claim"),
    ("nbf-float", lambda: with_claims(nbf=float(NOW)), "bad_claim"),
    ("iat-string", lambda: with_claims(iat="yesterday"), "bad_claim"),
    ("aud-wrong", lambda: with_claims(aud="other-product"), "wrong_audience"),
    ("aud-list-without-ours", lambda: with_claims(aud=["a", "b"]), "wrong_audience"),
    ("aud-missing", lambda: without_claim("aud"), "wrong_audience"),
    ("iss-wrong", lambda: with_claims(iss="https://evil.example/default"), "wrong_issuer"),
    ("sub-wrong", lambda: with_claims(sub="LIC-OTHER"), "wrong_subject"),
    (
        "payload-tampered",
        lambda: replace_part(good(), 1, b64(encode_json(CLAIMS | {"sub": "LIC-OTHER"}))),
        "bad_signature",
    ),
    (
        "payload-tampered-seats",
        lambda: replace_part(
            good(),
            1,
            b64(encode_json(CLAIMS | {"ent": {"feature:export-pdf": True, "seats": 500}})),
        ),
        "bad_signature",
    ),
    (
        "signature-truncated-one-byte",
        lambda: replace_part(good(), 2, b64(jws.b64url_decode(good().split(".")[2])[:-1])),
        "bad_signature",
    ),
    (
        "signature-extended-one-byte",
        lambda: replace_part(good(), 2, b64(jws.b64url_decode(good().split(".")[2]) + b"\0")),
        "bad_signature",
    ),
    (
        "signature-bit-flipped",
        lambda: replace_part(good(), 2, flip_bit(good().split(".")[2], 5, 3)),
        "bad_signature",
    ),
    ("signature-empty", lambda: replace_part(good(), 2, ""), "bad_signature"),
    ("signature-zeros", lambda: replace_part(good(), 2, b64(bytes(64))), "bad_signature"),
    (
        "other-account-key-not-in-set",
        lambda: forge(header=HEADER | {"kid": OTHER_KID}, key=OTHER),
        "unknown_kid",
    ),
    ("kid-maps-to-different-key", lambda: forge(key=OTHER), "bad_signature"),
    ("four-parts", lambda: good() + "." + b64(b"x"), "malformed"),
    ("two-parts", lambda: good().rsplit(".", 1)[0], "malformed"),
    ("one-part", lambda: good().split(".")[0], "malformed"),
    ("empty-token", lambda: "", "malformed"),
    ("padding-in-header", lambda: replace_part(good(), 0, good().split(".")[0] + "="), "malformed"),
    ("padding-in-signature", lambda: good() + "==", "malformed"),
    ("whitespace-trailing-newline", lambda: good() + "\n", "malformed"),
    ("whitespace-inside", lambda: good()[:20] + " " + good()[20:], "malformed"),
    (
        "non-base64-standard-alphabet",
        lambda: good().replace("-", "+").replace("_", "/") + "+/",
        "malformed",
    ),
    ("non-base64-unicode", lambda: "é" + good(), "malformed"),
    ("base64-noncanonical-payload", noncanonical_payload, "malformed"),
    ("base64-noncanonical-header", noncanonical_header, "malformed"),
    (
        "base64-impossible-length-payload",
        lambda: resign(good().split(".")[0], one_too_many(good().split(".")[1])),
        "malformed",
    ),
    (
        "base64-impossible-length-header",
        lambda: resign(one_too_many(good().split(".")[0]), good().split(".")[1]),
        "malformed",
    ),
    ("too-long", lambda: good() + "A" * jws.MAX_TOKEN_LENGTH, "malformed"),
    ("claims-array", lambda: forge(claims=[CLAIMS]), "malformed"),
    ("claims-string", lambda: forge(claims="claims"), "malformed"),
    ("claims-not-json", lambda: forge(claims=b"{'exp': 1}"), "malformed"),
    ("claims-nan", lambda: forge(claims=b'{"exp": NaN}'), "malformed"),
    ("claims-infinity", lambda: forge(claims=b'{"exp": 1, "x": -Infinity}'), "malformed"),
    ("claims-float-overflow", lambda: forge(claims=b'{"exp": 1, "x": 1e400}'), "malformed"),
    ("claims-not-utf8", lambda: forge(claims=b'{"exp": 1, "x": "\xc3"}'), "malformed"),
    ("claims-utf8-bom", lambda: forge(claims=b"\xef\xbb\xbf" + encode_json(CLAIMS)), "malformed"),
    ("claims-deeply-nested", lambda: forge(claims=b"[" * 100_000 + b"]" * 100_000), "malformed"),
    (
        "claims-duplicate-sub",
        lambda: forge(claims=encode_json(CLAIMS)[:-1] + b', "sub": "LIC-OTHER"}'),
        "duplicate_claim",
    ),
    (
        "claims-duplicate-nested",
        lambda: forge(claims=encode_json(CLAIMS)[:-1] + b', "x": {"seats": 1, "seats": 9}}'),
        "duplicate_claim",
    ),
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: verification never fetches."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_attack_suite_has_at_least_thirty_distinct_tokens() -> None:
    tokens = {build() for _, build, _ in ATTACKS}
    assert len(tokens) == len(ATTACKS) >= 30


@pytest.mark.parametrize(
    ("build", "reason"),
    [pytest.param(build, reason, id=name) for name, build, reason in ATTACKS],
)
def test_attack_token_is_rejected_with_its_reason(build: Callable[[], str], reason: str) -> None:
    token = build()
    with pytest.raises(TokenRejected) as caught:
        check(token)
    assert caught.value.reason == reason
    assert caught.value.code == "token_rejected"


def test_token_that_is_not_text_is_malformed() -> None:
    with pytest.raises(TokenRejected) as caught:
        jws.verify(good().encode(), KEYS, typ=TYP, now=NOW)  # type: ignore[arg-type]
    assert caught.value.reason == "malformed"


def test_module_imports_nothing_that_can_reach_the_network() -> None:
    allowed = {"__future__", "base64", "binascii", "collections", "functools", "hashlib", "json"}
    allowed |= {"math", "os", "re", "typing", "orjson", "cryptography", "tenure"}
    allowed |= {"typing_extensions"}  # typing's backport, for the JWKS answer's TypedDict
    for module in ("jws.py", "license_file.py"):
        source = (Path(jws.__file__).parent / module).read_text()
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert imported <= allowed, (module, imported - allowed)


# ------------------------------------------------------------------ acceptance


def test_signed_token_verifies_and_returns_the_claims() -> None:
    assert check(good()) == CLAIMS


def test_header_is_exactly_alg_kid_typ_in_that_order() -> None:
    head = good().split(".")[0]
    assert jws.b64url_decode(head) == f'{{"alg":"EdDSA","kid":"{KID}","typ":"{TYP}"}}'.encode()


def test_claims_are_canonical_json() -> None:
    body = good().split(".")[1]
    assert (
        jws.b64url_decode(body)
        == json.dumps(CLAIMS, sort_keys=True, separators=(",", ":")).encode()
    )


def test_token_verifies_without_identity_expectations() -> None:
    assert jws.verify(good(), KEYS, typ=TYP, now=NOW) == CLAIMS


def test_audience_list_containing_ours_is_accepted() -> None:
    assert check(with_claims(aud=["other", AUD]))["aud"] == ["other", AUD]


def test_clock_skew_within_leeway_is_accepted() -> None:
    assert check(with_claims(exp=NOW - 59))["exp"] == NOW - 59
    assert check(with_claims(nbf=NOW + 60))["nbf"] == NOW + 60


def test_leeway_is_a_parameter() -> None:
    with pytest.raises(TokenRejected, match="expired"):
        check(with_claims(exp=NOW - 1), leeway=0)
    assert check(with_claims(exp=NOW - 1000), leeway=1001)["exp"] == NOW - 1000


def test_nbf_and_iat_are_optional() -> None:
    token = jws.sign({"exp": NOW + 1}, KEY, KID, TYP)
    assert jws.verify(token, KEYS, typ=TYP, now=NOW) == {"exp": NOW + 1}


def test_expired_is_reported_only_after_identity_checks_pass() -> None:
    with pytest.raises(TokenRejected) as caught:
        check(with_claims(exp=NOW - 3600, sub="LIC-OTHER"))
    assert caught.value.reason == "wrong_subject"


def test_key_set_with_several_keys_picks_by_kid() -> None:
    keys = {KID: PUB, OTHER_KID: OTHER.public_key()}
    other_token = jws.sign(CLAIMS, OTHER, OTHER_KID, TYP)
    assert jws.verify(other_token, keys, typ=TYP, now=NOW) == CLAIMS
    assert jws.verify(good(), keys, typ=TYP, now=NOW) == CLAIMS


def test_sign_accepts_any_mapping() -> None:
    from types import MappingProxyType

    assert jws.sign(MappingProxyType(CLAIMS), KEY, KID, TYP) == good()


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        ({"sub": "x"}, "exp"),
        ({"exp": 1.5}, "exp"),
        ({"exp": True}, "exp"),
        ({"exp": 1, "nbf": "0"}, "nbf"),
        ({"exp": 1, "x": 0.5}, "$.x"),
    ],
)
def test_sign_refuses_claims_verify_would_reject(claims: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        jws.sign(claims, KEY, KID, TYP)
    assert caught.value.field == field


@pytest.mark.parametrize(("kid", "typ"), [("", TYP), ("k" * 129, TYP), ("a\nb", TYP), (KID, "")])
def test_sign_refuses_unusable_kid_or_typ(kid: str, typ: str) -> None:
    with pytest.raises(InvalidInput):
        jws.sign(CLAIMS, KEY, kid, typ)


# ------------------------------------------------------------------ base64url


@pytest.mark.parametrize("segment", ["A", "AB=", "AB CD", "AB+/", "ABC\n", "AB", "ABD"])
def test_b64url_decode_is_strict(segment: str) -> None:
    # "AB" and "ABD" have unused bits set: a second encoding of the same bytes.
    with pytest.raises(InvalidInput):
        jws.b64url_decode(segment)


@given(st.binary(max_size=100))
def test_b64url_round_trips(raw: bytes) -> None:
    assert jws.b64url_decode(jws.b64url_encode(raw)) == raw


# ------------------------------------------------------------------ JWK and JWKS


def test_thumbprint_matches_rfc_8037_example() -> None:
    # RFC 8037 appendix A.2/A.3: the example Ed25519 key and its thumbprint.
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    key = Ed25519PublicKey.from_public_bytes(x)
    assert jws.jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_public_jwk_has_the_contract_members() -> None:
    assert jws.public_jwk(PUB, KID) == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(PUBLIC_RAW),
        "kid": KID,
        "alg": "EdDSA",
        "use": "sig",
    }


def test_jwks_round_trips_through_keys_from_jwks() -> None:
    keys = {KID: PUB, OTHER_KID: OTHER.public_key()}
    document = jws.jwks(keys)
    assert [jwk["kid"] for jwk in document["keys"]] == [KID, OTHER_KID]
    parsed = jws.keys_from_jwks(json.dumps(document))
    assert {kid: key.public_bytes_raw() for kid, key in parsed.items()} == {
        kid: key.public_bytes_raw() for kid, key in keys.items()
    }


def test_minimal_jwk_without_alg_and_use_is_accepted() -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(PUBLIC_RAW), "kid": KID}
    assert list(jws.keys_from_jwks({"keys": [jwk]})) == [KID]


GOOD_JWK = jws.public_jwk(PUB, KID)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "keys"),
        ({"keys": {}}, "keys"),
        ('{"keys": [], "keys": []}', "keys"),
        ("not json", "keys"),
        ({"keys": ["x"]}, "keys[0]"),
        ({"keys": [GOOD_JWK | {"kty": "EC"}]}, "keys[0].kty"),
        ({"keys": [GOOD_JWK | {"kty": "RSA"}]}, "keys[0].kty"),
        ({"keys": [GOOD_JWK | {"crv": "Ed448"}]}, "keys[0].crv"),
        ({"keys": [GOOD_JWK | {"crv": "X25519"}]}, "keys[0].crv"),
        ({"keys": [GOOD_JWK | {"alg": "ES256"}]}, "keys[0].alg"),
        ({"keys": [GOOD_JWK | {"alg": "Ed25519"}]}, "keys[0].alg"),
        ({"keys": [GOOD_JWK | {"use": "enc"}]}, "keys[0].use"),
        ({"keys": [GOOD_JWK | {"d": b64(bytes(32))}]}, "keys[0].d"),
        ({"keys": [GOOD_JWK | {"x": b64(PUBLIC_RAW) + "="}]}, "keys[0].x"),
        ({"keys": [GOOD_JWK | {"x": b64(PUBLIC_RAW[:31])}]}, "keys[0].x"),
        ({"keys": [GOOD_JWK | {"x": "!" * 43}]}, "keys[0].x"),
        ({"keys": [GOOD_JWK | {"x": 7}]}, "keys[0].x"),
        ({"keys": [{k: v for k, v in GOOD_JWK.items() if k != "kid"}]}, "keys[0].kid"),
        ({"keys": [GOOD_JWK | {"kid": "k" * 129}]}, "keys[0].kid"),
        ({"keys": [GOOD_JWK, GOOD_JWK]}, "keys[1].kid"),
    ],
)
def test_keys_from_jwks_is_strict(document: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        jws.keys_from_jwks(document)
    assert caught.value.field == field


# ------------------------------------------------------------------ properties

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
TIME_CLAIMS = {"exp", "nbf", "iat"}


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=8))
def test_sign_then_verify_round_trips_arbitrary_claims(extra: dict[str, Any]) -> None:
    claims = {k: v for k, v in extra.items() if k not in TIME_CLAIMS} | {"exp": NOW + 1}
    assert jws.verify(jws.sign(claims, KEY, KID, TYP), KEYS, typ=TYP, now=NOW) == claims


TOKEN = good()


@settings(max_examples=500)
@given(st.integers(0, len(TOKEN) - 1), st.characters(max_codepoint=0x17F))
def test_any_single_character_change_is_rejected(position: int, replacement: str) -> None:
    mutated = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    if mutated == TOKEN:
        return
    with pytest.raises(TokenRejected):
        check(mutated)


@settings(max_examples=200)
@given(st.integers(0, len(TOKEN) - 1))
def test_any_deleted_character_is_rejected(position: int) -> None:
    with pytest.raises(TokenRejected):
        check(TOKEN[:position] + TOKEN[position + 1 :])


# ------------------------------------------------------------------ joserfc interop


@pytest.fixture
def joserfc_quiet() -> Iterator[None]:
    # joserfc warns that RFC 9864 deprecates the polymorphic "EdDSA" name; the
    # contract (docs/offline.md) pins "EdDSA", so the warning is expected here.
    from joserfc.errors import SecurityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        yield


@pytest.mark.usefixtures("joserfc_quiet")
def test_joserfc_verifies_our_tokens_with_our_jwk() -> None:
    from joserfc import jws as jose_jws
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet, OKPKey

    jwk: Any = jws.public_jwk(PUB, KID)
    key_set: Any = jws.jwks(KEYS)
    key = OKPKey.import_key(jwk)
    assert key.thumbprint() == KID
    compact = jose_jws.deserialize_compact(good(), key, algorithms=["EdDSA"])
    assert compact.headers() == HEADER
    decoded = jose_jwt.decode(good(), KeySet.import_key_set(key_set), algorithms=["EdDSA"])
    assert decoded.claims == CLAIMS


@pytest.mark.usefixtures("joserfc_quiet")
def test_joserfc_signed_tokens_verify_with_ours() -> None:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import OKPKey

    private = OKPKey.import_key(KEY)
    token = jose_jwt.encode(HEADER, CLAIMS, private, algorithms=["EdDSA"])
    assert check(token) == CLAIMS
    forged = jose_jwt.encode(HEADER, CLAIMS, OKPKey.import_key(OTHER), algorithms=["EdDSA"])
    with pytest.raises(TokenRejected, match="signature"):
        check(forged)
