"""The state map in memory (``tenure.store.state_map.StateMap``): leaves written by
``MemoryProjection`` through ``record_leaves``, buckets by ``settle``."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from tenure.domain.state import Row
from tenure.ledger.statemap import Bucket, Leaf, MapTop, bucket_hash, bucket_hashes, bucket_of
from tenure.store.state_map import leaf_changes


def record_leaves(
    tables: dict[str, Any],
    account: str,
    written: Sequence[tuple[int, bytes, bytes]],
    removed: Sequence[tuple[int, bytes]],
) -> None:
    """What ``state_map.write_leaves`` does in SQL."""
    leaves: dict[bytes, bytes] = tables.setdefault("state_leaves", {}).setdefault(account, {})
    for _, k in removed:
        leaves.pop(k, None)
    for _, k, leaf in written:
        leaves[k] = leaf


def clear_leaves(tables: dict[str, Any], account: str) -> None:
    tables.setdefault("state_leaves", {}).pop(account, None)
    tables.setdefault("state_buckets", {}).pop(account, None)


class MemoryStateMap:
    """``StateMap`` in memory; the root lives beside the account's head."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._leaves: dict[str, dict[bytes, bytes]] = tables.setdefault("state_leaves", {})
        self._buckets: dict[str, dict[int, Bucket]] = tables.setdefault("state_buckets", {})
        self._roots: dict[str, bytes] = tables.setdefault("state_roots", {})
        self._ledgers: dict[str, Any] = tables.setdefault("ledger", {})
        self._tables = tables

    def buckets(self, account: str) -> dict[int, Bucket]:
        return dict(self._buckets.get(account, {}))

    def bucket_leaves(self, account: str, buckets: Collection[int]) -> dict[int, list[Leaf]]:
        found: dict[int, list[Leaf]] = {bucket: [] for bucket in buckets}
        for k, leaf in self._leaves.get(account, {}).items():
            if bucket_of(k) in found:
                found[bucket_of(k)].append((k, leaf))
        return found

    def leaves(self, account: str) -> Iterator[Leaf]:
        return iter(list(self._leaves.get(account, {}).items()))

    def index(self, account: str, table: str, rows: Iterable[Row]) -> None:
        record_leaves(self._tables, account, leaf_changes(table, rows, ())[0], ())

    def settle(self, account: str, buckets: Collection[int]) -> dict[int, Bucket]:
        settled = {b: bucket_hash(v) for b, v in self.bucket_leaves(account, buckets).items()}
        stored = self._buckets.setdefault(account, {})
        for bucket, value in settled.items():
            if value[0]:
                stored[bucket] = value
            else:
                stored.pop(bucket, None)
        return settled

    def rebuild(self, account: str, buckets: Collection[int] | None = None) -> bytes:
        if buckets is not None:
            self.settle(account, buckets)
        else:
            self._buckets[account] = bucket_hashes(self.leaves(account))
        root = MapTop(self.buckets(account)).root()
        self.set_root(account, root)
        return root

    def root(self, account: str) -> bytes | None:
        return self._roots.get(account) if account in self._ledgers else None

    def set_root(self, account: str, root: bytes) -> None:
        if account in self._ledgers:
            self._roots[account] = root
