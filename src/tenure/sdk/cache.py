"""The SDK's on-disk cache: token, key set and state, each replaced atomically.

``cache_dir`` holds these files:

- ``token.jws`` — the current offline token (compact JWS text);
- ``keyset.note`` — with a ledger key: the key set note, signed by that key, that
  vouched for the token's key; without one, ``jwks.json`` — the key set that
  verified it;
- ``state.json`` — ``{"account", "until", "last_seen", "revoked"}``: the account the
  token belongs to, the revocation cursor, the latest time the clock showed, and what
  revoked the token (``null`` while nothing did);
- ``checkpoint.note`` — with a ledger key: the newest signed checkpoint a proven
  check verified; the next proven check must prove its ledger extends it.

Nothing read here is trusted: the client verifies the key set note against its
ledger key, and the token against the keys it trusts, before using it. A missing or
unreadable file reads as absent, never as an error: an application with a damaged
cache is simply not activated (``untrusted_key`` when it holds a token that no
trusted key signed).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from tenure.crypto.files import write_atomic
from tenure.crypto.trust import JWKS_FILE, KEYSET_FILE, TrustAnchor, TrustedKeys
from tenure.errors import InvalidInput, TokenRejected
from tenure.sdk.decisions import Grant
from tenure.sdk.tokens import verify_token

TOKEN_FILE = "token.jws"  # noqa: S105 - a file name, not a secret
STATE_FILE = "state.json"
CHECKPOINT_FILE = "checkpoint.note"
__all__ = [
    "CHECKPOINT_FILE",
    "JWKS_FILE",
    "KEYSET_FILE",
    "STATE_FILE",
    "TOKEN_FILE",
    "Cache",
    "CacheState",
]
PRIVATE = 0o600


@dataclass(frozen=True, slots=True)
class CacheState:
    account: str | None = None
    until: int = 0
    last_seen: float = 0.0
    revoked: str | None = None


class Cache:
    """Reads and atomically replaces the files of one cache directory.

    Writes are serialized by a lock: ``write_atomic`` names its temporary file by
    process id, so two threads of one process must not write the same file at once.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writing = threading.Lock()

    def token(self) -> str | None:
        raw = self._read(TOKEN_FILE)
        try:
            return None if raw is None else raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return None

    def keys(self, file_name: str) -> bytes | None:
        """The cached key document: ``keyset.note`` or ``jwks.json``."""
        return self._read(file_name)

    def checkpoint(self) -> str | None:
        """The cached checkpoint note, unverified."""
        raw = self._read(CHECKPOINT_FILE)
        try:
            return None if raw is None else raw.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def save_checkpoint(self, note: str) -> None:
        with self._writing:
            write_atomic(self.directory / CHECKPOINT_FILE, note.encode("utf-8"), PRIVATE)

    def state(self) -> CacheState:
        raw = self._read(STATE_FILE)
        try:
            loaded = orjson.loads(raw) if raw is not None else {}
            return _state_from(loaded)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return CacheState()

    def save(
        self, *, token: str | None = None, keys: TrustedKeys | None = None, state: CacheState
    ) -> None:
        """Write the given files; the state last, so it never names a token not on disk."""
        with self._writing:
            if keys is not None:
                write_atomic(self.directory / keys.file_name, keys.document, PRIVATE)
            if token is not None:
                write_atomic(self.directory / TOKEN_FILE, token.encode("ascii"), PRIVATE)
            write_atomic(self.directory / STATE_FILE, orjson.dumps(asdict(state)), PRIVATE)

    def drop_token(self, state: CacheState) -> None:
        """Record ``state`` (which says what revoked the token), then delete the token."""
        with self._writing:
            write_atomic(self.directory / STATE_FILE, orjson.dumps(asdict(state)), PRIVATE)
            (self.directory / TOKEN_FILE).unlink(missing_ok=True)

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except OSError:
            return None


def _state_from(loaded: object) -> CacheState:
    if not isinstance(loaded, dict):
        raise TypeError("state is not an object")
    account, revoked = loaded.get("account"), loaded.get("revoked")
    until, last_seen = loaded.get("until", 0), loaded.get("last_seen", 0.0)
    if account is not None and type(account) is not str:
        raise TypeError("account")
    if revoked is not None and type(revoked) is not str:
        raise TypeError("revoked")
    if type(until) is not int or type(last_seen) not in (int, float):
        raise TypeError("until or last_seen")
    return CacheState(account, until, float(last_seen), revoked)


@dataclass(frozen=True, slots=True)
class Restored:
    """What a cache directory holds, after verification."""

    state: CacheState
    keys: TrustedKeys | None
    grant: Grant | None
    last_seen: float
    refused: str | None = None
    """``untrusted_key`` when the cache holds a token no trusted key signed."""


def restore(
    cache: Cache, anchor: TrustAnchor, serial: str, device_hash: str, now: float
) -> Restored:
    """The cached state, key set and token, the key set verified against ``anchor``
    and the token once against its keys (expired or not: ``decide`` judges time). A
    token that does not verify, or a cache naming no account, gives no grant;
    nothing here raises."""
    state = cache.state()
    raw, token = cache.keys(anchor.file_name), cache.token()
    if state.account is None:
        return Restored(state, None, None, state.last_seen)
    keys = _trusted(anchor, raw, state.account)
    if token is None or state.revoked is not None:
        return Restored(state, keys, None, state.last_seen)
    if keys is None:
        refused = "untrusted_key" if anchor.pinned else None
        return Restored(state, None, None, state.last_seen, refused)
    try:
        grant = verify_token(
            token, keys, serial=serial, device_hash=device_hash,
            account=state.account, now=now, stale_ok=True,
        )  # fmt: skip
    except TokenRejected as rejected:
        refused = "untrusted_key" if rejected.reason == "untrusted_key" else None
        return Restored(state, keys, None, state.last_seen, refused)
    # The token's iat is the server's time: the clock has been at least there.
    return Restored(state, keys, grant, max(state.last_seen, float(grant.issued_at)))


def _trusted(anchor: TrustAnchor, raw: bytes | None, account: str) -> TrustedKeys | None:
    """The cached keys, if the anchor trusts them."""
    if raw is None:
        return None
    try:
        return anchor.trust(raw, account)
    except (InvalidInput, TokenRejected):
        return None
