"""The token signing key ring of each account (docs/offline.md "Signing keys and
JWKS").

Public keys and their lifecycle live in ``signing_keys``; private keys live in the
key store, sealed under the master key, and never in the database. The newest key
that is not retired signs. A retired key stays published until ``publish_until``:
its retirement plus the longest offline token lifetime of the account's plans, so
every token it signed can still be verified until it expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.crypto import jws
from tenure.crypto.keystore import TokenKeyStore
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.ledger.note import Ed25519Signer
from tenure.store import raw
from tenure.store import tables as t
from tenure.store.engine import quick_read, read_transaction, write_transaction

DEFAULT_TOKEN_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519Signer


_CURRENT = (
    "SELECT kid FROM signing_keys WHERE account = :account AND retired_at IS NULL "
    "ORDER BY created_at DESC, kid LIMIT 1"
)


class KeyRing:
    """Signing keys per account: the current one, rotation, and what JWKS publishes."""

    def __init__(self, engine: sa.Engine, keys: TokenKeyStore) -> None:
        self._engine = engine
        self._keys = keys

    def current(self, account: str, now: datetime) -> SigningKey:
        """The key that signs for ``account`` now; the first one is made on first use."""
        with quick_read(self._engine) as conn:
            row = raw.execute(conn, _CURRENT, {"account": account}).fetchone()
        if row is not None:
            return SigningKey(row[0], self._keys.load(account, row[0]))
        with write_transaction(self._engine) as conn:
            # Another request (or process) may have made it meanwhile.
            row = raw.execute(conn, _CURRENT, {"account": account}).fetchone()
            if row is not None:
                return SigningKey(row[0], self._keys.load(account, row[0]))
            return self._create(conn, account, now)

    def rotate_in(self, conn: sa.Connection, account: str, now: datetime) -> dict[str, Any]:
        """Inside the caller's write transaction: retire the current key (published
        on until every token it may have signed has expired) and make a new one."""
        keys = t.signing_keys.c
        until = format_time(now + _longest_token_life(conn, account))
        conn.execute(
            sa.update(t.signing_keys)
            .where(keys.account == account, keys.retired_at.is_(None))
            .values(retired_at=format_time(now), publish_until=until)
        )
        created = self._create(conn, account, now)
        return {"id": created.kid, "kid": created.kid, "created_at": format_time(now)}

    def published(self, account: str, now: datetime) -> dict[str, Ed25519PublicKey]:
        """The keys a verifier needs now: the current one, and retired ones whose tokens
        may still be valid."""
        stamp = format_time(now)
        return {
            row["kid"]: jws.public_key_from_x(row["public_key"])
            for row in self.listing(account)
            if row["retired_at"] is None or (row["publish_until"] or "") > stamp
        }

    def listing(self, account: str) -> list[dict[str, Any]]:
        """Every key of the account, newest first, public parts only."""
        keys = t.signing_keys.c
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                sa.select(
                    keys.kid, keys.public_key, keys.created_at, keys.retired_at, keys.publish_until
                )
                .where(keys.account == account)
                .order_by(keys.created_at.desc(), keys.kid)
            ).all()
        return [dict(row._mapping) for row in rows]

    def _create(self, conn: sa.Connection, account: str, now: datetime) -> SigningKey:
        kid, private = self._keys.create(account)  # on the token, with PKCS#11
        public = private.public_key()
        conn.execute(
            sa.insert(t.signing_keys).values(
                account=account,
                kid=kid,
                public_key=jws.public_jwk(public, kid)["x"],
                created_at=format_time(now),
            )
        )
        return SigningKey(kid, private)


def _longest_token_life(conn: sa.Connection, account: str) -> timedelta:
    """The longest ``offline_token_ttl`` of any plan version of the account."""
    table = t.projection["plan_versions"]
    ttls = conn.scalars(
        sa.select(table.c.offline_token_ttl).where(table.c.account == account).distinct()
    ).all()
    start = parse_time("2000-01-01T00:00:00.000000Z")
    longest = DEFAULT_TOKEN_TTL
    for ttl in ttls:
        if ttl:
            longest = max(longest, parse_duration(ttl).after(start) - start)
    return longest
