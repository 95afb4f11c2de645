"""``ApiKeys`` in memory (``tenure.store.apikeys``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tenure.store.apikeys import StoredKey


class MemoryApiKeys:
    """``ApiKeys`` over a dict by key id."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._keys: dict[str, StoredKey] = tables.setdefault("apikeys", {})

    def add(self, key: StoredKey) -> None:
        if key.id in self._keys or any(k.key_hash == key.key_hash for k in self._keys.values()):
            raise ValueError(f"API key {key.id} is stored already")
        self._keys[key.id] = key

    def active_by_hash(self, key_hash: str) -> StoredKey | None:
        found = (k for k in self._keys.values() if k.key_hash == key_hash)
        return next((k for k in found if k.revoked_at is None), None)

    def get(self, account: str, key_id: str) -> StoredKey | None:
        key = self._keys.get(key_id)
        return key if key is not None and key.account == account else None

    def listing(self, account: str) -> list[StoredKey]:
        mine = [k for k in self._keys.values() if k.account == account]
        return sorted(mine, key=lambda k: (k.created_at, k.id))

    def count(self, account: str) -> int:
        return len(self.listing(account))

    def active_owners(self, account: str, besides: str) -> int:
        return sum(
            1
            for k in self.listing(account)
            if k.role == "owner" and k.revoked_at is None and k.id != besides
        )

    def revoke(self, account: str, key_id: str, at: str) -> None:
        key = self.get(account, key_id)
        if key is not None:
            self._keys[key_id] = replace(key, revoked_at=at)
