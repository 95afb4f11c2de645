"""The accounts of the install (``tenure.service.accounts``): tenants that never
see each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class StoredAccount:
    """A recorded account; ``created_by`` names the principal that made it."""

    id: str
    name: str
    created_at: str
    created_by: str


class Accounts(Protocol):
    """Every recorded account."""

    def get(self, account: str) -> StoredAccount | None: ...

    def add(self, account: StoredAccount) -> None:
        """Record ``account``; its id must not be recorded yet."""
        ...

    def listing(self, only: str | None = None) -> list[StoredAccount]:
        """Every account (or only ``only``), by id."""
        ...


# ---------------------------------------------------------------- SQL

_a = t.accounts.c


class SqlAccounts(OnConnection):
    """``Accounts`` on an open connection (SQLite and PostgreSQL)."""

    def get(self, account: str) -> StoredAccount | None:
        found = self.listing(account)
        return found[0] if found else None

    def add(self, account: StoredAccount) -> None:
        self._conn.execute(sa.insert(t.accounts).values(**asdict(account)))

    def listing(self, only: str | None = None) -> list[StoredAccount]:
        query = sa.select(_a.id, _a.name, _a.created_at, _a.created_by).order_by(_a.id)
        if only is not None:
            query = query.where(_a.id == only)
        return [StoredAccount(*row) for row in self._conn.execute(query)]
