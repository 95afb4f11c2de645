"""API keys (``tenure.service.apikeys``): stored by the SHA-256 of the key, never
the key; each names the key that created it (key lineage, ``tenure.domain.lineage``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import raw
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class StoredKey:
    """An API key as stored: its hash, never the key."""

    id: str
    account: str
    key_hash: str
    role: str
    name: str
    created_at: str
    revoked_at: str | None = None
    created_by: str | None = None
    """The key that created it; None for a top of the key lineage."""


class ApiKeys(Protocol):
    """The API keys of every account."""

    def add(self, key: StoredKey) -> None:
        """Store ``key``; its id and hash must be new."""
        ...

    def active_by_hash(self, key_hash: str) -> StoredKey | None:
        """The key not revoked whose hash is ``key_hash``, or None."""
        ...

    def get(self, account: str, key_id: str) -> StoredKey | None:
        """``account``'s key ``key_id`` (revoked or not); None for another account's."""
        ...

    def listing(self, account: str) -> list[StoredKey]:
        """Every key of ``account`` (revoked ones too), oldest first (then by id)."""
        ...

    def count(self, account: str) -> int:
        """How many keys ``account`` has (revoked ones too)."""
        ...

    def active_owners(self, account: str, besides: str) -> int:
        """How many owner keys of ``account`` other than ``besides`` are not revoked."""
        ...

    def revoke(self, account: str, key_id: str, at: str) -> None:
        """Mark ``account``'s key ``key_id`` revoked at ``at``."""
        ...


# ---------------------------------------------------------------- SQL

_k = t.api_keys.c
_COLUMNS = (
    _k.id, _k.account, _k.key_hash, _k.role, _k.name, _k.created_at, _k.revoked_at, _k.created_by
)  # fmt: skip
# The hot path (every request authenticates): straight to the driver.
_BY_HASH = (
    "SELECT id, account, key_hash, role, name, created_at, revoked_at, created_by "
    "FROM api_keys WHERE key_hash = :key_hash AND revoked_at IS NULL"
)


class SqlApiKeys(OnConnection):
    """``ApiKeys`` on an open connection (SQLite and PostgreSQL)."""

    def add(self, key: StoredKey) -> None:
        self._conn.execute(sa.insert(t.api_keys).values(**asdict(key)))

    def active_by_hash(self, key_hash: str) -> StoredKey | None:
        row = raw.execute(self._conn, _BY_HASH, {"key_hash": key_hash}).fetchone()
        return None if row is None else StoredKey(*row)

    def get(self, account: str, key_id: str) -> StoredKey | None:
        query = sa.select(*_COLUMNS).where(_k.account == account, _k.id == key_id)
        row = self._conn.execute(query).first()
        return None if row is None else StoredKey(*row)

    def listing(self, account: str) -> list[StoredKey]:
        query = sa.select(*_COLUMNS).where(_k.account == account).order_by(_k.created_at, _k.id)
        return [StoredKey(*row) for row in self._conn.execute(query)]

    def count(self, account: str) -> int:
        query = sa.select(sa.func.count()).select_from(t.api_keys).where(_k.account == account)
        return int(self._conn.scalar(query) or 0)

    def active_owners(self, account: str, besides: str) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(t.api_keys)
            .where(
                _k.account == account,
                _k.role == "owner",
                _k.revoked_at.is_(None),
                _k.id != besides,
            )
        )
        return int(self._conn.scalar(query) or 0)

    def revoke(self, account: str, key_id: str, at: str) -> None:
        self._conn.execute(
            sa.update(t.api_keys)
            .where(_k.account == account, _k.id == key_id)
            .values(revoked_at=at)
        )
