"""Customers' wrapped data keys in memory (``tenure.store.data_keys.DataKeys``)."""

from __future__ import annotations

from typing import Any

from tenure.store.data_keys import StoredDataKey


class MemoryDataKeys:
    """``DataKeys`` over a dict keyed by (account, customer)."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._keys: dict[tuple[str, str], StoredDataKey] = tables.setdefault("data_keys", {})

    def get(self, account: str, customer: str) -> StoredDataKey | None:
        return self._keys.get((account, customer))

    def add(self, account: str, key: StoredDataKey) -> bool:
        if (account, key.customer) in self._keys:
            return False
        self._keys[account, key.customer] = key
        return True

    def delete(self, account: str, customer: str) -> bool:
        return self._keys.pop((account, customer), None) is not None

    def customers(self, account: str) -> list[str]:
        return sorted(customer for owner, customer in self._keys if owner == account)
