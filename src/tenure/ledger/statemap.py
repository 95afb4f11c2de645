"""The state map: a sparse Merkle map over the rows of an account's projection
(docs/state.md gives the exact format; this module is its reference).

- key ``k = SHA-256(JCS([table, key]))``, ``key`` the JSON array of the row's key
  columns; value hash ``v = SHA-256(JCS(row))``; leaf hash ``L = SHA-256(0x00 ‖ k ‖ v)``;
- a subtree holding no leaf hashes to 32 zero bytes, one holding exactly one leaf to
  that leaf's ``L``, any other at depth ``d`` to ``SHA-256(0x01 ‖ left ‖ right)``,
  splitting on bit ``d`` of ``k``, most significant bit first. The root is depth 0.

The store keeps every leaf and, per *bucket* (the first ``BUCKET_BITS`` bits of
``k``), the bucket subtree's leaf count and hash; ``MapTop`` holds the tree above the
buckets in memory, so a changed row costs one bucket recomputation and
``BUCKET_BITS`` hashes, and a proof one bucket read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tenure.canonical import hashed_json
from tenure.errors import InvalidInput

HASH_SIZE = 32
ZERO = bytes(HASH_SIZE)
BUCKET_BITS = 16
BUCKETS = 1 << BUCKET_BITS

Leaf = tuple[bytes, bytes]
"""``(k, L)``: a leaf's key and its leaf hash."""
Bucket = tuple[int, bytes]
"""``(count, hash)``: how many leaves a bucket holds and its subtree hash."""
_EMPTY: Bucket = (0, ZERO)


def state_key(table: str, key: Sequence[Any]) -> bytes:
    """``k`` of the row of ``table`` whose key columns hold ``key``."""
    return hashlib.sha256(hashed_json([table, list(key)])).digest()


def value_hash(row: Mapping[str, Any]) -> bytes:
    """``SHA-256(JCS(row))``, the row as the state digest sees it. A value outside
    the domain (only a row written by someone else can hold one) gets a hash no
    genuine row has."""
    try:
        return hashlib.sha256(hashed_json(row)).digest()
    except InvalidInput:
        return hashlib.sha256(b"\xffnot a Tenure value").digest()


def map_leaf(k: bytes, value: bytes) -> bytes:
    """``L = SHA-256(0x00 ‖ k ‖ value)``."""
    return hashlib.sha256(b"\x00" + k + value).digest()


def row_leaf(table: str, key: Sequence[Any], row: Mapping[str, Any]) -> Leaf:
    """``(k, L)`` of one projection row."""
    k = state_key(table, key)
    return k, map_leaf(k, value_hash(row))


def inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def bit(k: bytes, depth: int) -> int:
    """Bit ``depth`` of ``k``, most significant bit of the first byte first."""
    return (k[depth >> 3] >> (7 - (depth & 7))) & 1


def bucket_of(k: bytes) -> int:
    """The bucket of ``k``: its first ``BUCKET_BITS`` bits."""
    return int.from_bytes(k[:4], "big") >> (32 - BUCKET_BITS)


def _split(leaves: Sequence[Leaf], depth: int) -> int:
    """Index of the first leaf whose bit ``depth`` is 1 (``leaves`` sorted by k)."""
    low, high = 0, len(leaves)
    while low < high:
        middle = (low + high) // 2
        if bit(leaves[middle][0], depth):
            high = middle
        else:
            low = middle + 1
    return low


def subtree_hash(leaves: Sequence[Leaf], depth: int = 0) -> bytes:
    """The hash of the subtree at ``depth`` holding ``leaves`` (sorted by k, sharing
    their first ``depth`` bits)."""
    if not leaves:
        return ZERO
    if len(leaves) == 1:
        return leaves[0][1]
    cut = _split(leaves, depth)
    return inner(subtree_hash(leaves[:cut], depth + 1), subtree_hash(leaves[cut:], depth + 1))


def map_root(leaves: Iterable[Leaf]) -> bytes:
    """The root of the map holding ``leaves`` (any order, distinct keys)."""
    return subtree_hash(sorted(leaves))


def subtree_path(leaves: Sequence[Leaf], k: bytes, depth: int) -> list[bytes]:
    """Siblings from ``depth`` down to where ``k`` stands alone among ``leaves`` (sorted,
    sharing their first ``depth`` bits, ``k`` among them)."""
    siblings: list[bytes] = []
    while len(leaves) > 1:
        cut = _split(leaves, depth)
        if bit(k, depth):
            siblings.append(subtree_hash(leaves[:cut], depth + 1))
            leaves = leaves[cut:]
        else:
            siblings.append(subtree_hash(leaves[cut:], depth + 1))
            leaves = leaves[:cut]
        depth += 1
    return siblings


def root_from_path(k: bytes, leaf: bytes, siblings: Sequence[bytes]) -> bytes:
    """The root a proof implies: fold ``siblings`` (depth 0 first) into ``leaf``."""
    h = leaf
    for depth in range(len(siblings) - 1, -1, -1):
        h = inner(siblings[depth], h) if bit(k, depth) else inner(h, siblings[depth])
    return h


def bucket_hashes(leaves: Iterable[Leaf]) -> dict[int, Bucket]:
    """``(count, hash)`` of every bucket ``leaves`` fall in (any order)."""
    by_bucket: dict[int, list[Leaf]] = {}
    for k, leaf in leaves:
        by_bucket.setdefault(bucket_of(k), []).append((k, leaf))
    return {bucket: bucket_hash(held) for bucket, held in by_bucket.items()}


def bucket_hash(leaves: Sequence[Leaf]) -> Bucket:
    """``(count, hash)`` of a bucket from its leaves (any order)."""
    return len(leaves), subtree_hash(sorted(leaves), BUCKET_BITS)


class MapTop:
    """The map above the buckets: for each depth ``d < BUCKET_BITS``, the count and
    hash of every non-empty node, from the buckets' ``(count, hash)``."""

    def __init__(self, buckets: Mapping[int, Bucket] | None = None) -> None:
        # levels[d][prefix] = (count, hash) for non-empty nodes; d == BUCKET_BITS: buckets.
        self.levels: list[dict[int, Bucket]] = [{} for _ in range(BUCKET_BITS + 1)]
        if buckets:
            self.update(buckets)

    def _node(self, depth: int, prefix: int) -> Bucket:
        return self.levels[depth].get(prefix, _EMPTY)

    def update(self, changed: Mapping[int, Bucket]) -> None:
        """Take the new ``(count, hash)`` of each changed bucket, and recompute the
        nodes above them, level by level (a node holding one leaf is that leaf)."""
        bottom = self.levels[BUCKET_BITS]
        for bucket, value in changed.items():
            if value[0]:
                bottom[bucket] = value
            else:
                bottom.pop(bucket, None)
        prefixes = set(changed)
        sha256 = hashlib.sha256
        for depth in range(BUCKET_BITS - 1, -1, -1):
            below, here = self.levels[depth + 1], self.levels[depth]
            prefixes = {prefix >> 1 for prefix in prefixes}
            for prefix in prefixes:
                left = below.get(prefix << 1, _EMPTY)
                right = below.get((prefix << 1) | 1, _EMPTY)
                count = left[0] + right[0]
                if count == 0:
                    here.pop(prefix, None)
                elif count == 1:
                    here[prefix] = (1, left[1] if left[0] else right[1])
                else:
                    here[prefix] = (count, sha256(b"\x01" + left[1] + right[1]).digest())

    def root(self) -> bytes:
        return self._node(0, 0)[1]

    def count(self) -> int:
        return self._node(0, 0)[0]

    def bucket(self, bucket: int) -> Bucket:
        return self._node(BUCKET_BITS, bucket)

    def path(self, bucket: int) -> tuple[list[bytes], bool]:
        """Siblings of ``bucket``'s path from depth 0, and whether the path ends in
        this top part (a node holding one leaf) rather than inside the bucket."""
        siblings: list[bytes] = []
        for depth in range(BUCKET_BITS):
            if self._node(depth, bucket >> (BUCKET_BITS - depth))[0] <= 1:
                return siblings, True
            child = bucket >> (BUCKET_BITS - depth - 1)
            siblings.append(self._node(depth + 1, child ^ 1)[1])
        return siblings, self.bucket(bucket)[0] <= 1


def prove(top: MapTop, bucket_leaves: Sequence[Leaf], k: bytes) -> list[bytes]:
    """The siblings proving leaf ``k`` under ``top.root()``, given every leaf of its
    bucket (any order)."""
    siblings, alone = top.path(bucket_of(k))
    if not alone:
        siblings += subtree_path(sorted(bucket_leaves), k, BUCKET_BITS)
    return siblings
