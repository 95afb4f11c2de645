"""``SigningKeys`` in memory (``tenure.store.signing_keys``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tenure.store.signing_keys import StoredSigningKey


class MemorySigningKeys:
    """``SigningKeys`` over a dict by (account, kid)."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._keys: dict[tuple[str, str], StoredSigningKey] = tables.setdefault("signing_keys", {})

    def current(self, account: str) -> str | None:
        live = [k for k in self.listing(account) if k.retired_at is None]
        return live[0].kid if live else None

    def add(self, account: str, key: StoredSigningKey) -> None:
        if (account, key.kid) in self._keys:
            raise ValueError(f"signing key {key.kid} is stored already")
        self._keys[(account, key.kid)] = key

    def retire(self, account: str, at: str, publish_until: str) -> None:
        for key in self.listing(account):
            if key.retired_at is None:
                retired = replace(key, retired_at=at, publish_until=publish_until)
                self._keys[(account, key.kid)] = retired

    def listing(self, account: str) -> list[StoredSigningKey]:
        mine = [k for (owner, _), k in self._keys.items() if owner == account]
        mine.sort(key=lambda k: k.kid)
        mine.sort(key=lambda k: k.created_at, reverse=True)
        return mine
