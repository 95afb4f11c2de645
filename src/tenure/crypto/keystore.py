"""The master key and the file key store for ledger signing keys.

The master key (32 random bytes) comes from ``TENURE_MASTER_KEY`` (base64) or from
``<data-dir>/master.key``, created with mode 0600 on first use. Signing keys are
stored under ``<data-dir>/keys/`` encrypted with AES-256-GCM under the master key,
with the key's purpose and name as associated data, so a key file moved to another
purpose or account does not decrypt.

The PKCS#11 store (``tenure.crypto.pkcs11``) offers the same two interfaces,
``LedgerKeyStore`` and ``TokenKeyStore``, with keys generated on the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tenure.crypto import jws
from tenure.crypto.files import write_atomic
from tenure.errors import ConfigurationError
from tenure.ledger.note import Ed25519Signer, NoteSigner


def load_master_key(data_dir: Path, from_env: str | None = None) -> bytes:
    """Return the master key, creating ``<data_dir>/master.key`` (0600) if needed."""
    if from_env:
        return _decode_master(from_env, "TENURE_MASTER_KEY")
    path = data_dir / "master.key"
    if not path.exists():
        write_atomic(path, base64.b64encode(os.urandom(32)) + b"\n", mode=0o600)
    return _decode_master(path.read_text(), str(path))


def _decode_master(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise ConfigurationError(f"master key in {where} is not base64") from exc
    if len(key) != 32:
        raise ConfigurationError(f"master key in {where} must be 32 bytes, base64-encoded")
    return key


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte subkey of the master key for one ``purpose`` (HMAC-SHA256 as a PRF)."""
    return hmac.new(master, b"tenure/" + purpose.encode(), hashlib.sha256).digest()


class LedgerKeyStore(Protocol):
    """Ledger signing keys, one per checkpoint origin (its key name)."""

    def has_ledger_key(self, origin: str) -> bool:
        """Whether the key of ``origin`` exists (without creating it)."""
        ...

    def ledger_signer(self, origin: str) -> NoteSigner:
        """The signer whose key name is ``origin``; created on first use."""
        ...


class TokenKeyStore(Protocol):
    """Token signing keys, per account and ``kid`` (the key's JWK thumbprint)."""

    def create(self, account: str) -> tuple[str, Ed25519Signer]:
        """A new key of ``account`` and its kid."""
        ...

    def load(self, account: str, kid: str) -> Ed25519Signer:
        """The key ``kid`` of ``account``; ``ConfigurationError`` if it is missing."""
        ...


class FileKeyStore:
    """Ledger signing keys, one per origin, encrypted at rest under the master key."""

    def __init__(self, directory: Path, master: bytes) -> None:
        self.directory = directory
        self._aead = AESGCM(derive_key(master, "keystore"))
        self._cache: dict[str, NoteSigner] = {}

    def _path(self, origin: str) -> Path:
        name = hashlib.sha256(origin.encode()).hexdigest()[:24]
        return self.directory / f"ledger-{name}.key"

    def has_ledger_key(self, origin: str) -> bool:
        """Whether the key of ``origin`` is in this store (without creating it)."""
        return origin in self._cache or self._path(origin).exists()

    def ledger_signer(self, origin: str) -> NoteSigner:
        """The signer whose key name is ``origin``; created on first use."""
        signer = self._cache.get(origin)
        if signer is None:
            path = self._path(origin)
            private = self._load(path, origin) if path.exists() else self._create(path, origin)
            signer = self._cache[origin] = NoteSigner(origin, private)
        return signer

    def _create(self, path: Path, origin: str) -> Ed25519PrivateKey:
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, seed, b"ledger-key\n" + origin.encode())
        record = {"origin": origin, "alg": "Ed25519", "nonce": nonce.hex(), "sealed": sealed.hex()}
        write_atomic(path, json.dumps(record).encode(), mode=0o600)
        return private

    def _load(self, path: Path, origin: str) -> Ed25519PrivateKey:
        try:
            record = json.loads(path.read_text())
            seed = self._aead.decrypt(
                bytes.fromhex(record["nonce"]),
                bytes.fromhex(record["sealed"]),
                b"ledger-key\n" + origin.encode(),
            )
        except (InvalidTag, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"signing key {path} cannot be opened with this master key"
            ) from exc
        return Ed25519PrivateKey.from_private_bytes(seed)


class TokenKeys:
    """Token signing keys (Ed25519), one file per account and ``kid``, encrypted like
    the ledger keys but under a purpose of their own."""

    def __init__(self, directory: Path, master: bytes) -> None:
        self.directory = directory
        self._aead = AESGCM(derive_key(master, "token-keys"))
        self._cache: dict[tuple[str, str], Ed25519PrivateKey] = {}

    def _path(self, account: str, kid: str) -> Path:
        name = hashlib.sha256(f"{account}\n{kid}".encode()).hexdigest()[:32]
        return self.directory / f"token-{name}.key"

    @staticmethod
    def _associated(account: str, kid: str) -> bytes:
        return f"token-key\n{account}\n{kid}".encode()

    def create(self, account: str) -> tuple[str, Ed25519Signer]:
        """A new key of ``account`` (generated in-process, then sealed) and its kid."""
        private = Ed25519PrivateKey.generate()
        kid = jws.jwk_thumbprint(private.public_key())
        self.store(account, kid, private)
        return kid, private

    def store(self, account: str, kid: str, private: Ed25519PrivateKey) -> None:
        """Seal ``private`` under the master key, as the key ``kid`` of ``account``."""
        seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, seed, self._associated(account, kid))
        record = {"account": account, "kid": kid, "nonce": nonce.hex(), "sealed": sealed.hex()}
        write_atomic(self._path(account, kid), json.dumps(record).encode(), mode=0o600)
        self._cache[account, kid] = private

    def load(self, account: str, kid: str) -> Ed25519PrivateKey:
        """The private key ``kid`` of ``account``; ``ConfigurationError`` if its file is
        missing or does not open with this master key."""
        cached = self._cache.get((account, kid))
        if cached is not None:
            return cached
        path = self._path(account, kid)
        try:
            record = json.loads(path.read_text())
            seed = self._aead.decrypt(
                bytes.fromhex(record["nonce"]),
                bytes.fromhex(record["sealed"]),
                self._associated(account, kid),
            )
        except (OSError, InvalidTag, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"token signing key {kid} of {account} ({path}) cannot be opened"
            ) from exc
        private = self._cache[account, kid] = Ed25519PrivateKey.from_private_bytes(seed)
        return private


class LicenseKeys:
    """License keys derived from a secret: ``HMAC(secret, account ‖ serial)``.

    Derivation (instead of storing a random key) lets an idempotent retry of an
    issuance return the same key while only its SHA-256 is ever stored.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def key(self, account: str, serial: str) -> str:
        mac = hmac.new(self._secret, f"{account}\n{serial}".encode(), hashlib.sha256).digest()
        text = base64.b32encode(mac[:20]).decode()
        return "TNRK-" + "-".join(text[i : i + 8] for i in range(0, 32, 8))

    def key_hash(self, account: str, serial: str) -> str:
        return hash_license_key(self.key(account, serial))


def hash_license_key(key: str) -> str:
    """The stored form of a license key (keys carry 160 random-looking bits)."""
    return hashlib.sha256(key.encode()).hexdigest()
