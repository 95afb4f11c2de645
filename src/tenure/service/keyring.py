"""The token signing key ring of each account (docs/offline.md "Signing keys and
JWKS").

Public keys and their lifecycle live in ``signing_keys``; private keys live in the
key store, sealed under the master key, and never in the database. The newest key
that is not retired signs. A retired key stays published until ``publish_until``:
its retirement plus the longest offline token lifetime of the account's plans, so
every token it signed can still be verified until it expires.

The same published keys are also offered as a key set note signed by the account's
ledger key(s) (``signed_keyset``): what an SDK pinned to the ledger key trusts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typing_extensions import TypedDict

from tenure.crypto import jws
from tenure.crypto.keyset import KeySet, VouchedKey, sign_keyset
from tenure.crypto.keystore import LedgerKeyStore, TokenKeyStore
from tenure.domain.answers import closed
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.domain.values import Time
from tenure.ledger.note import Ed25519Signer, NoteSigner, NoteVerifier
from tenure.store.signing_keys import StoredSigningKey
from tenure.store.unit import Store, Transaction

DEFAULT_TOKEN_TTL = timedelta(hours=24)


@closed
class SigningKeyView(TypedDict):
    """A signing key's public part and lifecycle (``KeyRing.listing``)."""

    kid: str
    public_key: str
    created_at: Time
    retired_at: Time | None
    publish_until: Time | None


@closed
class KeyList(TypedDict):
    """The account's signing keys, newest first."""

    keys: list[SigningKeyView]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519Signer


class KeyRing:
    """Signing keys per account: the current one, rotation, and what JWKS publishes."""

    def __init__(self, store: Store, keys: TokenKeyStore) -> None:
        self._store = store
        self._keys = keys

    def current(self, account: str, now: datetime) -> SigningKey:
        """The key that signs for ``account`` now; the first one is made on first use."""
        with self._store.quick_read() as tx:
            kid = tx.signing_keys.current(account)
        if kid is not None:
            return SigningKey(kid, self._keys.load(account, kid))
        with self._store.write() as tx:
            # Another request (or process) may have made it meanwhile.
            kid = tx.signing_keys.current(account)
            if kid is not None:
                return SigningKey(kid, self._keys.load(account, kid))
            return self._create(tx, account, now)

    def rotate_in(self, tx: Transaction, account: str, now: datetime) -> dict[str, Any]:
        """Inside the caller's write transaction: retire the current key (published
        on until every token it may have signed has expired) and make a new one."""
        until = format_time(now + _longest_token_life(tx, account))
        tx.signing_keys.retire(account, format_time(now), until)
        created = self._create(tx, account, now)
        return {"id": created.kid, "kid": created.kid, "created_at": format_time(now)}

    def published(self, account: str, now: datetime) -> dict[str, Ed25519PublicKey]:
        """The keys a verifier needs now: the current one, and retired ones whose tokens
        may still be valid."""
        return {
            row["kid"]: jws.public_key_from_x(row["public_key"])
            for row in _published(self.listing(account), now)
        }

    def signed_keyset(
        self, account: str, origin: str, now: datetime, signers: Sequence[NoteSigner]
    ) -> str:
        """The keys ``published`` gives, with their lives, as a key set note (format in
        ``tenure.crypto.keyset``) whose origin line is ``origin``, signed by
        ``signers`` (the account's ledger keys) at ``now``, with the account's longest
        token lifetime: what bounds the life it gives the key that signs now."""
        with self._store.read() as tx:
            rows = _published(_listing(tx, account), now)
            lifetime = _longest_token_life(tx, account)
        keyset = KeySet(
            origin,
            account,
            math.floor(now.timestamp()),
            math.ceil(lifetime.total_seconds()),
            tuple(_vouched(row) for row in rows),
        )
        return sign_keyset(keyset, signers)

    def listing(self, account: str) -> list[SigningKeyView]:
        """Every key of the account, newest first, public parts only."""
        with self._store.read() as tx:
            return _listing(tx, account)

    def _create(self, tx: Transaction, account: str, now: datetime) -> SigningKey:
        kid, private = self._keys.create(account)  # on the token, with PKCS#11
        public = jws.public_jwk(private.public_key(), kid)["x"]
        tx.signing_keys.add(account, StoredSigningKey(kid, public, format_time(now)))
        return SigningKey(kid, private)


def _listing(tx: Transaction, account: str) -> list[SigningKeyView]:
    return [
        {
            "kid": key.kid,
            "public_key": key.public_key,
            "created_at": key.created_at,
            "retired_at": key.retired_at,
            "publish_until": key.publish_until,
        }
        for key in tx.signing_keys.listing(account)
    ]


def ledger_signers(
    store: LedgerKeyStore, origin: str, verifier_keys: Sequence[str]
) -> list[NoteSigner]:
    """Who signs an account's key set: the key of its current ``origin``, then the
    keys of its earlier origins (``verifier_keys``, the ledger's published verifier
    keys: earlier epochs) that ``store`` still holds, so that an application pinned
    to an earlier epoch's key keeps verifying, as checkpoints keep every signature
    during an overlap. The current origin's key must exist (the ledger writer makes
    it with the first checkpoint)."""
    names = [origin] + [NoteVerifier.from_key_string(key).name for key in verifier_keys]
    held = [name for name in dict.fromkeys(names) if store.has_ledger_key(name)]
    return [store.ledger_signer(name) for name in held]


def _vouched(row: SigningKeyView) -> VouchedKey:
    """A key row as the key set vouches for it: made at ``created_at`` (rounded
    down), its tokens living until ``publish_until`` (rounded up) once retired."""
    start = math.floor(parse_time(row["created_at"]).timestamp())
    end = row["publish_until"] if row["retired_at"] is not None else None
    until = None if end is None else math.ceil(parse_time(end).timestamp())
    return VouchedKey(row["kid"], row["public_key"], start, until)


def _published(rows: list[SigningKeyView], now: datetime) -> list[SigningKeyView]:
    """The key rows a verifier needs at ``now``: the current key, and retired ones
    whose tokens may still be valid."""
    stamp = format_time(now)
    return [
        row for row in rows if row["retired_at"] is None or (row["publish_until"] or "") > stamp
    ]


def _longest_token_life(tx: Transaction, account: str) -> timedelta:
    """The longest a token of the account may live: the longest ``offline_token_ttl``
    of any plan version (at least a day), a month counted as 31 days, so that no
    token minted in any month outlives it."""
    ttls = {row["offline_token_ttl"] for row in tx.projection.rows(account, "plan_versions")}
    return max([DEFAULT_TOKEN_TTL, *(parse_duration(ttl).longest() for ttl in ttls if ttl)])
