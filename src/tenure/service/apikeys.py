"""API keys: ``tnr_`` + 52 base32 characters (256 random bits), stored as SHA-256.

Keys are high-entropy, so a fast hash is enough; lookups are by hash and the
final comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from tenure.crypto.files import write_atomic
from tenure.domain.timefmt import format_time
from tenure.errors import Unauthenticated
from tenure.store import tables as t
from tenure.store.engine import read_transaction, write_transaction

ROLES = ("owner", "admin", "issuer", "support", "auditor", "restorer", "agent")
BOOTSTRAP_FILE = "bootstrap-owner.key"


@dataclass(frozen=True)
class Principal:
    """An authenticated API key: who it is, in which account, with which role."""

    id: str
    account: str
    role: str


def new_api_key() -> str:
    return "tnr_" + base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: sa.Engine, account: str, role: str, name: str) -> tuple[Principal, str]:
    """Create a key; return its principal and the key itself (shown once, never stored)."""
    key = new_api_key()
    key_id = "key_" + hash_api_key(key)[:16]
    with write_transaction(engine) as conn:
        conn.execute(
            sa.insert(t.api_keys).values(
                id=key_id,
                account=account,
                key_hash=hash_api_key(key),
                role=role,
                name=name,
                created_at=format_time(datetime.now(UTC)),
            )
        )
    return Principal(key_id, account, role), key


def ensure_bootstrap_owner(engine: sa.Engine, data_dir: Path, account: str) -> str | None:
    """On first start, create the owner key of ``account`` and write it to
    ``<data_dir>/bootstrap-owner.key`` (mode 0600). Returns the key, or None if the
    account already has keys."""
    with read_transaction(engine) as conn:
        existing = conn.scalar(
            sa.select(sa.func.count())
            .select_from(t.api_keys)
            .where(t.api_keys.c.account == account)
        )
    if existing:
        return None
    _, key = create_api_key(engine, account, "owner", "bootstrap owner")
    write_atomic(data_dir / BOOTSTRAP_FILE, (key + "\n").encode(), mode=0o600)
    return key


def authenticate(engine: sa.Engine, key: str) -> Principal:
    """The principal of a presented key; raises ``Unauthenticated`` otherwise."""
    digest = hash_api_key(key)
    with read_transaction(engine) as conn:
        row = conn.execute(
            sa.select(
                t.api_keys.c.id, t.api_keys.c.account, t.api_keys.c.role, t.api_keys.c.key_hash
            ).where(t.api_keys.c.key_hash == digest, t.api_keys.c.revoked_at.is_(None))
        ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise Unauthenticated("invalid or revoked API key")
    return Principal(row.id, row.account, row.role)
