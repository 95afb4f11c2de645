"""``check_bodies.quick_question`` and ``quick_questions`` read ``POST /v1/check`` and
``/v1/check/batch`` bodies without pydantic; they must never accept a body that
``CheckBody`` or ``BatchBody`` (with ``parse_body``'s storable check) refuses, nor
read one differently. Property-tested on JSON objects built from the check's own
fields and from near misses of each."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tenure.api.check_bodies import (
    QUICK_BODY_BYTES,
    BatchBody,
    CheckBody,
    Question,
    Questions,
    quick_question,
    quick_questions,
)
from tenure.domain.storable import first_unstorable

_text = st.one_of(
    st.text(max_size=210),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=201),
    st.sampled_from(["", "seats", "feature:export-pdf", "TNR-1", "a\x00b", "é", "\ud800"]),
)
_value = st.one_of(
    _text,
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**64),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
_fields = st.sampled_from(
    ["license", "entitlement", "fingerprint", "proof", "known_size", "License", "extra"]
)
_bodies = st.dictionaries(_fields, _value, max_size=6)


def _slow(data: dict[str, Any]) -> CheckBody | None:
    """What ``parse_body(request, CheckBody)`` makes of ``data`` (None: refused)."""
    if first_unstorable(data, 64 * 1024) is not None:
        return None
    try:
        return CheckBody.model_validate(data)
    except ValidationError:
        return None


@settings(max_examples=600, deadline=None)
@given(_bodies)
def test_a_quick_read_agrees_with_the_model(data: dict[str, Any]) -> None:
    try:
        raw = orjson.dumps(data)
    except TypeError:  # a lone surrogate: not JSON orjson writes, nor reads
        return
    quick = quick_question(raw)
    if quick is None:
        return  # the model decides, as before
    slow = _slow(data)
    assert slow is not None, f"quick accepted what the model refuses: {data!r}"
    assert quick == Question(
        slow.license, slow.entitlement, slow.fingerprint, slow.proof, slow.known_size
    )


@pytest.mark.parametrize(
    ("body", "read"),
    [
        (b'{"license": "TNR-1", "entitlement": "seats"}', True),
        (b'{"license": "TNR-1", "entitlement": "seats", "proof": true, "known_size": 3}', True),
        (b'{"license": "TNR-1", "entitlement": "seats", "proof": 1}', False),
        (b'{"license": "TNR-1", "entitlement": "seats", "known_size": true}', False),
        (b'{"license": "TNR-1", "entitlement": "seats", "known_size": -1}', False),
        (b'{"license": "TNR-1"}', False),
        (b'{"license": "", "entitlement": "seats"}', False),
        (b'{"license": "TNR\\u00001", "entitlement": "seats"}', False),
        (b'{"license": "TNR-1", "entitlement": "seats", "other": 1}', False),
        (b'["license"]', False),
        (b"not json", False),
        (b'{"license": "' + b"x" * QUICK_BODY_BYTES + b'", "entitlement": "seats"}', False),
    ],
)
def test_only_plainly_valid_bodies_are_read_quickly(body: bytes, read: bool) -> None:
    assert (quick_question(body) is not None) is read


_batches = st.one_of(
    st.dictionaries(
        st.sampled_from(["checks", "proof", "known_size", "check"]),
        st.one_of(st.lists(_bodies, max_size=4), _value),
        max_size=3,
    ),
    st.builds(lambda items: {"checks": items}, st.lists(_bodies, max_size=4)),
)


@settings(max_examples=600, deadline=None)
@given(_batches)
def test_a_quick_batch_read_agrees_with_the_model(data: dict[str, Any]) -> None:
    try:
        raw = orjson.dumps(data)
    except TypeError:
        return
    quick = quick_questions(raw)
    if quick is None:
        return
    assert first_unstorable(data, 64 * 1024) is None
    try:
        slow = BatchBody.model_validate(data)
    except ValidationError:
        raise AssertionError(f"quick accepted what the model refuses: {data!r}") from None
    expected = Questions(
        [Question(q.license, q.entitlement, q.fingerprint) for q in slow.checks],
        slow.proof,
        slow.known_size,
    )
    assert quick == expected


_ONE = b'{"license": "a", "entitlement": "seats"}'


@pytest.mark.parametrize(
    ("body", "read"),
    [
        (b'{"checks": [{"license": "TNR-1", "entitlement": "seats"}]}', True),
        (b'{"checks": [], "proof": true}', True),
        (b'{"checks": [{"license": "TNR-1", "entitlement": "seats", "proof": true}]}', False),
        (b'{"checks": [{"license": "TNR-1"}]}', False),
        (b'{"checks": {"license": "TNR-1"}}', False),
        (b'{"checks": [], "extra": 1}', False),
        (
            b'{"checks": ['
            + b",".join([b'{"license": "a", "entitlement": "seats"}'] * 1001)
            + b"]}",
            False,
        ),
    ],
)
def test_only_plainly_valid_batches_are_read_quickly(body: bytes, read: bool) -> None:
    assert (quick_questions(body) is not None) is read
