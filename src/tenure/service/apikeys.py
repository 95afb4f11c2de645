"""API keys: ``tnr_`` + 52 base32 characters (256 random bits), stored as SHA-256.

Keys are high-entropy, so a fast hash is enough; lookups are by hash and the
final comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.crypto.files import write_atomic
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, Forbidden, NotFound, Unauthenticated
from tenure.store.apikeys import StoredKey
from tenure.store.unit import Store, Transaction

ROLES = ("owner", "admin", "issuer", "support", "auditor", "restorer", "agent")
BOOTSTRAP_FILE = "bootstrap-owner.key"
STORAGE_AUTH = "storage"
"""How a change made directly on the storage is audited (``revoke_on_storage``)."""
MAX_REASON = 2000


@dataclass(frozen=True)
class Principal:
    """An authenticated API key: who it is, in which account, with which role."""

    id: str
    account: str
    role: str
    auth: str = "api_key"
    """How it authenticated: ``api_key``, or ``license`` for a license key."""


def new_api_key() -> str:
    return "tnr_" + base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    """The id of the API key ``key`` (``key_`` + 16 hex digits of its hash): what
    listings show and ``DELETE /v1/apikeys/{id}`` takes."""
    return "key_" + hash_api_key(key)[:16]


def create_api_key(
    store: Store, account: str, role: str, name: str, created_by: str | None = None
) -> tuple[Principal, str]:
    """Create a key on the storage; return its principal and the key itself (shown
    once, never stored). Without ``created_by`` the key is a top of the key lineage,
    like the bootstrap owner key: whoever holds the storage holds the account."""
    with store.write() as tx:
        return insert_api_key(tx, account, role, name, created_by=created_by)


def insert_api_key(
    tx: Transaction, account: str, role: str, name: str, *, created_by: str | None
) -> tuple[Principal, str]:
    """``create_api_key`` inside the caller's write transaction. ``created_by`` is
    the id of the key that asks for it (``tenure.domain.lineage``); None only for keys
    the service makes itself."""
    key = new_api_key()
    key_id = key_id_of(key)
    created_at = format_time(datetime.now(UTC))
    stored = StoredKey(key_id, account, hash_api_key(key), role, name, created_at, None, created_by)
    tx.apikeys.add(stored)
    return Principal(key_id, account, role), key


def creators(tx: Transaction, account: str) -> tuple[dict[str, str | None], dict[str, str]]:
    """Every key of ``account`` (revoked ones too: lineage outlives revocation) →
    the id of the key that created it, and → when it was created."""
    keys = tx.apikeys.listing(account)
    return {k.id: k.created_by for k in keys}, {k.id: k.created_at for k in keys}


def ensure_bootstrap_owner(store: Store, data_dir: Path, account: str) -> str | None:
    """On first start, create the owner key of ``account`` and write it to
    ``<data_dir>/bootstrap-owner.key`` (mode 0600). Returns the key, or None if the
    account already has keys."""
    with store.read() as tx:
        existing = tx.apikeys.count(account)
    if existing:
        return None
    _, key = create_api_key(store, account, "owner", "bootstrap owner")
    write_atomic(data_dir / BOOTSTRAP_FILE, (key + "\n").encode(), mode=0o600)
    return key


def authenticate(store: Store, key: str) -> Principal:
    """The principal of a presented key; raises ``Unauthenticated`` otherwise."""
    digest = hash_api_key(key)
    with store.quick_read() as tx:
        found = tx.apikeys.active_by_hash(digest)
    if found is None or not hmac.compare_digest(found.key_hash, digest):
        raise Unauthenticated("invalid or revoked API key")
    return Principal(found.id, found.account, found.role)


def key_view(key: StoredKey) -> dict[str, Any]:
    """What may be shown of a key: never the key, never its hash."""
    return {
        "id": key.id,
        "role": key.role,
        "name": key.name,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "created_by": key.created_by,
    }


def list_api_keys(store: Store, account: str) -> list[dict[str, Any]]:
    """The account's keys (revoked ones too), oldest first, without keys or hashes,
    each with ``created_by``: the key that created it (None for a top of the key
    lineage: the bootstrap or first owner key, or a key older than lineage)."""
    with store.read() as tx:
        return [key_view(key) for key in tx.apikeys.listing(account)]


def revoke_api_key(
    store: Store, account: str, key_id: str, manageable: Collection[str] = ROLES
) -> dict[str, Any]:
    """Revoke ``key_id`` of ``account`` and return its view. Revoking a revoked key
    changes nothing.

    ``NotFound`` for a key of another account (or none), ``Forbidden`` for a key whose
    role is not in ``manageable``, ``Conflict`` for the account's last active owner key.
    """
    with store.write() as tx:
        return revoke_in(tx, account, key_id, manageable)


def revoke_in(
    tx: Transaction,
    account: str,
    key_id: str,
    manageable: Collection[str] = ROLES,
    *,
    last_owner_ok: bool = False,
) -> dict[str, Any]:
    """``revoke_api_key`` inside the caller's write transaction; ``last_owner_ok``
    revokes the last active owner key too (the storage path's ``--force``)."""
    found = tx.apikeys.get(account, key_id)
    if found is None:
        raise NotFound(f"no API key {key_id}", field="id")
    if found.role not in manageable:
        raise Forbidden(f"this role may not revoke {found.role} keys", field="id")
    if found.revoked_at is not None:
        return key_view(found)
    if (
        found.role == "owner"
        and not last_owner_ok
        and not tx.apikeys.active_owners(account, key_id)
    ):
        raise Conflict(
            "the last active owner key of an account cannot be revoked: create at "
            "least one other owner key first (tenure apikey create --role owner --name …)",
            field="id",
        )
    revoked_at = format_time(datetime.now(UTC))
    tx.apikeys.revoke(account, key_id, revoked_at)
    return {**key_view(found), "revoked_at": revoked_at}
