"""``Accounts`` in memory (``tenure.store.accounts``)."""

from __future__ import annotations

from typing import Any

from tenure.store.accounts import StoredAccount


class MemoryAccounts:
    """``Accounts`` over a dict by id."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._accounts: dict[str, StoredAccount] = tables.setdefault("accounts", {})

    def get(self, account: str) -> StoredAccount | None:
        return self._accounts.get(account)

    def add(self, account: StoredAccount) -> None:
        if account.id in self._accounts:
            raise ValueError(f"account {account.id} is recorded already")
        self._accounts[account.id] = account

    def listing(self, only: str | None = None) -> list[StoredAccount]:
        return [self._accounts[a] for a in sorted(self._accounts) if only in (None, a)]
