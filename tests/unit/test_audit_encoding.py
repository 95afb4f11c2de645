"""``audit.encoded_body``, the decision path's encoder of audit entries, writes the
same bytes as ``canonical_json`` of the entry's body, whatever the entry holds."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tenure.canonical import MAX_SAFE_INTEGER, canonical_json
from tenure.service.audit import AuditEntry, encoded_body, storable

TEXT = st.text(max_size=30) | st.sampled_from(["check", "ok", "TNR-2427Y", "é", "😀", "\x00"])
INTS = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)
DETAIL = st.dictionaries(
    TEXT, st.none() | st.booleans() | INTS | TEXT | st.lists(INTS, max_size=3), max_size=4
)


@st.composite
def entries(draw: Any) -> AuditEntry:
    return AuditEntry(
        draw(TEXT),
        draw(TEXT),
        draw(TEXT),
        draw(st.sampled_from(["api_key", "license", "internal"])),
        draw(TEXT),
        draw(st.sampled_from(["allowed", "denied"])),
        draw(TEXT),
        target=draw(st.none() | TEXT),
        rationale=draw(st.none() | TEXT),
        events=draw(st.none() | st.tuples(INTS, INTS)),
        detail=draw(st.none() | DETAIL),
    )


@given(entries(), INTS, st.binary(min_size=32, max_size=32))
def test_the_fast_encoding_is_the_canonical_one(entry: AuditEntry, seq: int, prev: bytes) -> None:
    entry = storable(entry)  # as the chain stores it
    time = "2026-12-08T00:00:00.000000Z"
    assert encoded_body(entry, seq, time, prev) == canonical_json(entry.body(seq, time, prev))
