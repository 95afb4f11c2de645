"""Every parser of outside input, fuzzed: it answers with its documented error (a
``TenureError``) or a value, never another exception; and a signed artefact with a
byte flipped, inserted or deleted is never accepted."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenure.crypto import jws, license_file
from tenure.durability import segments
from tenure.errors import TenureError
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from tenure.ledger.note import NoteSigner, open_note, parse_note
from tenure.service.catalog import parse_catalog
from tenure.service.legacy_import import parse_rows

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NOW = 1_800_000_000.0
KID = "fuzz-key"
ORIGIN = "tenure.localhost/ledger/fuzz"
SERIAL = "TNR-AAAAA-BBBBB-CCCCC-DDDDD"
LICENSE_KEY = "fuzz-license-key-with-enough-entropy-0123456789"
FPH = "a" * 64

_PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEYS = {KID: _PRIVATE.public_key()}
SIGNER = NoteSigner(ORIGIN, _PRIVATE)
CLAIMS = {"sub": SERIAL, "exp": int(NOW) + 3600, "iat": int(NOW), "fph": FPH, "ent": {"a": 1}}
TOKEN = jws.sign(CLAIMS, _PRIVATE, KID, "tenure-offline+jwt")
LICENSE_FILE = license_file.issue(
    {**CLAIMS}, _PRIVATE, KID, LICENSE_KEY, SERIAL, random_bytes=lambda n: b"\x07" * n
)
NOTE = sign_checkpoint(Checkpoint(ORIGIN, 7, b"\x01" * 32), [SIGNER])
LEAVES = [f'{{"account":"fuzz","seq":{seq},"type":"x"}}'.encode() for seq in range(10, 13)]
SEGMENT = segments.encode("fuzz", 10, LEAVES)
SEGMENT_NAME = segments.SegmentName(10, 13)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with one byte flipped, inserted or deleted (always different)."""
    kind = draw(st.sampled_from(["flip", "insert", "delete"]))
    at = draw(st.integers(0, len(original) - 1))
    if kind == "flip":
        bit = 1 << draw(st.integers(0, 7))
        return original[:at] + bytes([original[at] ^ bit]) + original[at + 1 :]
    if kind == "insert":
        return original[:at] + bytes([draw(st.integers(0, 255))]) + original[at:]
    return original[:at] + original[at + 1 :]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _verify_token(token: str) -> Any:
    return jws.verify(token, KEYS, typ="tenure-offline+jwt", now=NOW)


def _read_license_file(text: str) -> Any:
    return license_file.read(
        text, KEYS, now=NOW, fingerprint_hash=FPH, license_key=LICENSE_KEY, serial=SERIAL
    )


def test_the_fixtures_are_valid() -> None:
    assert _verify_token(TOKEN)["sub"] == SERIAL
    assert _read_license_file(LICENSE_FILE)["fph"] == FPH
    assert open_checkpoint(NOTE, [SIGNER.verifier]).size == 7
    assert segments.decode(SEGMENT, "fuzz", SEGMENT_NAME) == LEAVES


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(_text)))
def test_arbitrary_text_never_crashes_the_text_parsers(text: str) -> None:
    for parse in (
        _verify_token,
        _read_license_file,
        parse_note,
        parse_checkpoint,
        lambda t: open_note(t, [SIGNER.verifier]),
        parse_catalog,
    ):
        with contextlib.suppress(TenureError):
            parse(text)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["csv", "json"]))
def test_arbitrary_bytes_never_crash_the_import_parsers(data: bytes, fmt: Any) -> None:
    with contextlib.suppress(TenureError):
        parse_rows(fmt, data)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_segment_decoder(data: bytes) -> None:
    with contextlib.suppress(TenureError):
        segments.decode(data, "fuzz", SEGMENT_NAME)


@FUZZ
@given(mutated(TOKEN.encode()))
def test_a_mutated_token_is_rejected(data: bytes) -> None:
    with pytest.raises(TenureError):
        _verify_token(_text(data))


@FUZZ
@given(mutated(LICENSE_FILE.encode()))
def test_a_mutated_license_file_is_rejected_or_means_the_same(data: bytes) -> None:
    # Armor is text around the body: whitespace inside it may change harmlessly.
    try:
        claims = _read_license_file(_text(data))
    except TenureError:
        return
    assert claims == _read_license_file(LICENSE_FILE)


def test_non_ascii_in_the_armor_is_an_invalid_license_file() -> None:
    lines = LICENSE_FILE.splitlines()
    lines[1] = "\u00e9" + lines[1][1:]
    with pytest.raises(TenureError):
        _read_license_file("\n".join(lines) + "\n")


@FUZZ
@given(mutated(NOTE.encode()))
def test_a_mutated_signed_checkpoint_is_rejected(data: bytes) -> None:
    with pytest.raises(TenureError):
        open_checkpoint(_text(data), [SIGNER.verifier])


@FUZZ
@given(mutated(SEGMENT))
def test_a_mutated_segment_is_rejected_or_identical(data: bytes) -> None:
    try:
        leaves = segments.decode(data, "fuzz", SEGMENT_NAME)
    except segments.BadSegment:
        return
    assert leaves == LEAVES


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )
)
def test_catalog_documents_of_any_shape_never_crash(document: Any) -> None:
    import yaml

    with contextlib.suppress(TenureError):
        parse_catalog(yaml.safe_dump(document))
