"""The token signing keys of each account (``tenure.service.keyring``): public keys
and their lifecycle; the private keys live in the key store, never here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import raw
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class StoredSigningKey:
    """A signing key's public part (JWK ``x``) and lifecycle."""

    kid: str
    public_key: str
    created_at: str
    retired_at: str | None = None
    publish_until: str | None = None


class SigningKeys(Protocol):
    """The signing keys of every account."""

    def current(self, account: str) -> str | None:
        """The kid of the newest key not retired (then the lowest kid), or None."""
        ...

    def add(self, account: str, key: StoredSigningKey) -> None: ...

    def retire(self, account: str, at: str, publish_until: str) -> None:
        """Retire every key not retired yet, published on until ``publish_until``."""
        ...

    def listing(self, account: str) -> list[StoredSigningKey]:
        """Every key of ``account``, newest first (then by kid)."""
        ...


# ---------------------------------------------------------------- SQL

_s = t.signing_keys.c
# Every token mint asks: straight to the driver.
_CURRENT = (
    "SELECT kid FROM signing_keys WHERE account = :account AND retired_at IS NULL "
    "ORDER BY created_at DESC, kid LIMIT 1"
)


class SqlSigningKeys(OnConnection):
    """``SigningKeys`` on an open connection (SQLite and PostgreSQL)."""

    def current(self, account: str) -> str | None:
        row = raw.execute(self._conn, _CURRENT, {"account": account}).fetchone()
        return None if row is None else str(row[0])

    def add(self, account: str, key: StoredSigningKey) -> None:
        self._conn.execute(sa.insert(t.signing_keys).values(account=account, **asdict(key)))

    def retire(self, account: str, at: str, publish_until: str) -> None:
        self._conn.execute(
            sa.update(t.signing_keys)
            .where(_s.account == account, _s.retired_at.is_(None))
            .values(retired_at=at, publish_until=publish_until)
        )

    def listing(self, account: str) -> list[StoredSigningKey]:
        query = (
            sa.select(_s.kid, _s.public_key, _s.created_at, _s.retired_at, _s.publish_until)
            .where(_s.account == account)
            .order_by(_s.created_at.desc(), _s.kid)
        )
        return [StoredSigningKey(*row) for row in self._conn.execute(query)]
