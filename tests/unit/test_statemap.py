"""The state map (tenure.ledger.statemap) against a reference written here from the
rule in docs/state.md, and its proofs, bucketed top and incremental updates."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.errors import MalformedNote
from tenure.ledger.checkpoint import Checkpoint, parse_checkpoint
from tenure.ledger.statemap import (
    BUCKET_BITS,
    ZERO,
    MapTop,
    bucket_hash,
    bucket_of,
    map_root,
    prove,
    root_from_path,
    row_leaf,
)


def reference_root(leaves: dict[bytes, bytes], depth: int = 0) -> bytes:
    """The rule, read literally: empty -> zeros, one leaf -> its L, else
    SHA-256(0x01 || left || right) splitting on bit ``depth`` (MSB first)."""
    if not leaves:
        return bytes(32)
    if len(leaves) == 1:
        return next(iter(leaves.values()))

    def bit_of(k: bytes) -> int:
        return (int.from_bytes(k, "big") >> (255 - depth)) & 1

    left = {k: v for k, v in leaves.items() if bit_of(k) == 0}
    right = {k: v for k, v in leaves.items() if bit_of(k) == 1}
    return hashlib.sha256(
        b"\x01" + reference_root(left, depth + 1) + reference_root(right, depth + 1)
    ).digest()


# Keys that share long prefixes (the same bucket, the same first bytes) as well as
# random ones, so that splits deep inside a bucket and above it are both exercised.
prefixes = st.sampled_from([b"", b"\x00", b"\x00\x00", b"\xab\xcd\xef", b"\xff" * 30])
keys = st.builds(
    lambda prefix, rest: (prefix + rest)[:32],
    prefixes,
    st.binary(min_size=32, max_size=32),
)
maps = st.dictionaries(keys, st.binary(min_size=32, max_size=32), max_size=40)


def top_of(leaves: dict[bytes, bytes]) -> tuple[MapTop, dict[int, list[tuple[bytes, bytes]]]]:
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    for k, leaf in leaves.items():
        buckets.setdefault(bucket_of(k), []).append((k, leaf))
    return MapTop({b: bucket_hash(v) for b, v in buckets.items()}), buckets


@settings(deadline=None)
@given(maps)
def test_the_root_is_the_reference_rule(leaves: dict[bytes, bytes]) -> None:
    expected = reference_root(leaves)
    assert map_root(leaves.items()) == expected
    assert top_of(leaves)[0].root() == expected
    assert (map_root([]), MapTop().root()) == (ZERO, ZERO)


@settings(deadline=None)
@given(maps)
def test_every_leaf_proves_and_a_changed_proof_does_not(leaves: dict[bytes, bytes]) -> None:
    top, buckets = top_of(leaves)
    root = top.root()
    for k, leaf in leaves.items():
        siblings = prove(top, buckets[bucket_of(k)], k)
        assert root_from_path(k, leaf, siblings) == root
        other = bytes([leaf[0] ^ 1]) + leaf[1:]
        assert root_from_path(k, other, siblings) != root
        if siblings:
            bent = [bytes([siblings[-1][0] ^ 1]) + siblings[-1][1:]]
            assert root_from_path(k, leaf, siblings[:-1] + bent) != root


@settings(max_examples=60, deadline=None)
@given(maps, st.lists(st.tuples(keys, st.binary(min_size=32, max_size=32) | st.none())))
def test_incremental_updates_equal_a_fresh_build(
    leaves: dict[bytes, bytes], changes: list[tuple[bytes, bytes | None]]
) -> None:
    top = top_of(leaves)[0]
    current = dict(leaves)
    for k, leaf in changes:
        if leaf is None:
            current.pop(k, None)
        else:
            current[k] = leaf
        bucket = bucket_of(k)
        inside = [(key, value) for key, value in current.items() if bucket_of(key) == bucket]
        top.update({bucket: bucket_hash(inside)})
        assert top.root() == reference_root(current)
        assert top.count() == len(current)


def test_a_leaf_is_keyed_by_table_and_key_and_hashes_its_row() -> None:
    k, leaf = row_leaf("licenses", ("LIC-1",), {"serial": "LIC-1", "status": "active"})
    assert k == hashlib.sha256(b'["licenses",["LIC-1"]]').digest()
    value = hashlib.sha256(b'{"serial":"LIC-1","status":"active"}').digest()
    assert leaf == hashlib.sha256(b"\x00" + k + value).digest()
    assert bucket_of(k) == int.from_bytes(k[:2], "big") >> (16 - BUCKET_BITS)
    assert row_leaf("licenses", ("LIC-1",), {"serial": "LIC-1", "status": "revoked"})[1] != leaf


def test_a_checkpoint_carries_the_state_root_on_its_extension_line() -> None:
    state = hashlib.sha256(b"state").digest()
    checkpoint = Checkpoint("tenure.example/ledger/default", 7, hashlib.sha256().digest(), state)
    body = checkpoint.body()
    assert body.splitlines()[3].startswith("tenure-state ")
    assert parse_checkpoint(body) == checkpoint
    old = Checkpoint(checkpoint.origin, 7, checkpoint.root)
    assert parse_checkpoint(old.body()) == old
    assert old.state is None
    with pytest.raises(MalformedNote, match="extension"):
        parse_checkpoint(body.replace("tenure-state", "tenure-other"))
    with pytest.raises(MalformedNote):
        parse_checkpoint(body + "tenure-state " + body.splitlines()[3].split()[1] + "\n")
