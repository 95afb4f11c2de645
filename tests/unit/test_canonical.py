"""Canonical JSON: byte-for-byte RFC 8785 over Tenure's float-free JSON domain."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.canonical import MAX_SAFE_INTEGER, canonical_json, hashed_json, parse_json
from tenure.errors import InvalidInput
from tenure.ledger.statemap import value_hash

# Text that leans on the cases where encoders differ: ASCII control characters,
# escapes, non-ASCII BMP characters and astral characters (surrogate pairs in UTF-16).
TRICKY = st.sampled_from(
    [
        *["", "a", "A", "\x00", "\x1f", "\x7f", '"', "\\", "/", "\u00e9", "\u2028", "\ufeff"],
        *["\uffff", "\U0001f600", "\U00010000", "\U0010ffff", "\ue000", "\u20ac", "\U0001d11e"],
    ]
)
TEXT = st.one_of(
    st.text(max_size=12),
    st.lists(TRICKY, max_size=4).map("".join),
    st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=3),
)
INTS = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, 1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, -(2**31), 10**15]),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, TEXT)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(TEXT, children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_canonical_json_equals_the_rfc8785_reference_encoder(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=60, deadline=None)
@given(value=st.dictionaries(TEXT, SCALARS, min_size=2, max_size=8))
def test_object_members_are_sorted_by_utf16_code_units(value: dict[str, Any]) -> None:
    encoded = canonical_json(value)
    keys = list(orjson.loads(encoded))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))
    assert encoded == rfc8785.dumps(value)


@settings(max_examples=40, deadline=None)
@given(value=JSON)
def test_canonical_json_parses_back_to_the_same_value(value: Any) -> None:
    assert orjson.loads(canonical_json(value)) == value
    assert parse_json(canonical_json(value)) == value


@settings(max_examples=30, deadline=None)
@given(value=JSON)
def test_canonical_json_is_idempotent_through_a_parse(value: Any) -> None:
    once = canonical_json(value)
    assert canonical_json(orjson.loads(once)) == once


def test_astral_keys_sort_before_high_bmp_keys_as_in_utf16() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FF61; code points sort the other way.
    value = {"\uff61": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == '{"a":3,"\U0001f600":2,"\uff61":1}'.encode()
    assert canonical_json([value]) == rfc8785.dumps([value])


def test_nested_astral_keys_deep_inside_ascii_objects_are_sorted_by_utf16() -> None:
    value = {"outer": [{"x": {"\uffff": 0, "\U00010000": 1}}]}
    assert canonical_json(value) == rfc8785.dumps(value)


def test_known_encoding_of_a_small_event_like_object() -> None:
    value = {"b": [True, None, -1], "a": "\u00e9\n", "c": {}}
    assert canonical_json(value) == b'{"a":"\xc3\xa9\\n","b":[true,null,-1],"c":{}}'


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (1.0, "$"),
        (0.5, "$"),
        (float("nan"), "$"),
        (float("inf"), "$"),
        (-0.0, "$"),
        ({"a": 1.5}, "$.a"),
        ([0, [1, 2.0]], "$[1][1]"),
        (MAX_SAFE_INTEGER + 1, "$"),
        (-MAX_SAFE_INTEGER - 1, "$"),
        (2**64, "$"),
        ({"n": [10**16]}, "$.n[0]"),
        ({1: "x"}, "$"),
        ({"ok": {None: 1}}, "$.ok"),
        ({("a",): 1}, "$"),
        ("\ud800", "$"),
        (["ok", "x\udfffy"], "$[1]"),
        ({"\udc00": 1}, "$"),
        ({"k": "\ud83d"}, "$.k"),
        ((1, 2), "$"),
        ({1, 2}, "$"),
        (b"bytes", "$"),
        ({"a": object()}, "$.a"),
    ],
)
def test_values_outside_the_json_domain_raise_invalid_input(value: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        canonical_json(value)
    assert info.value.field == field


@settings(max_examples=40, deadline=None)
@given(
    value=JSON,
    bad=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=MAX_SAFE_INTEGER + 1),
        st.integers(max_value=-MAX_SAFE_INTEGER - 1),
        st.integers(0xD800, 0xDFFF).map(chr),
    ),
    wrap=st.sampled_from(["list", "dict", "bare"]),
)
def test_any_out_of_domain_member_raises_invalid_input(value: Any, bad: Any, wrap: str) -> None:
    poisoned: Any = {"ok": value, "bad": bad} if wrap == "dict" else [value, bad]
    if wrap == "bare":
        poisoned = bad
    with pytest.raises(InvalidInput):
        canonical_json(poisoned)


@settings(max_examples=50, deadline=None)
@given(key=st.integers(0xD800, 0xDFFF).map(chr), astral=st.booleans())
def test_lone_surrogate_keys_raise_invalid_input_on_both_encoder_paths(
    key: str, astral: bool
) -> None:
    value = {key: 1, ("\U0001f600" if astral else "a"): 2}
    with pytest.raises(InvalidInput):
        canonical_json(value)


def test_bool_is_not_mistaken_for_an_int_and_int_subclasses_are_refused() -> None:
    assert canonical_json([True, False, 1, 0]) == b"[true,false,1,0]"

    class Number(int):
        pass

    with pytest.raises(InvalidInput):
        canonical_json(Number(3))


@pytest.mark.parametrize("data", [b"", b"{", b"[1,]", b"\xff", b"{'a':1}", b"nul"])
def test_parse_json_refuses_invalid_json_with_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_json(data)


@settings(max_examples=150, deadline=None)
@given(row=st.dictionaries(TEXT, JSON, max_size=6))
def test_the_state_map_hashes_rows_as_rfc8785_encodes_them(row: dict[str, Any]) -> None:
    """The state map's fast encoder (orjson) agrees with the reference on every value
    of the domain, non-BMP keys included (docs/state.md: SHA-256(JCS(row)))."""
    assert value_hash(row) == hashlib.sha256(rfc8785.dumps(row)).digest()


@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_the_hashing_encoder_equals_the_rfc8785_reference_on_the_domain(value: Any) -> None:
    """``hashed_json`` (the state digest's and state map's encoder, orjson without the
    domain walk) writes exactly JCS for every value of Tenure's domain."""
    assert hashed_json(value) == rfc8785.dumps(value)
