"""Per-customer data keys for personal data, and the AEAD that seals fields with them.

Each customer with sealed personal data has a 32-byte data key in
``<data-dir>/datakeys/<account>/<customer>.key`` (mode 0600), wrapped with
AES-256-GCM under a subkey of the master key, with account and customer as
associated data (a key file moved to another customer does not unwrap). The store
lives outside the database, so ledger backups, site snapshots and exports never
hold a key; destroying the file is crypto-shredding the customer's personal data.

A field is sealed with AES-256-GCM under the data key, a random 96-bit nonce, and
``JCS(["tenure.personal.v1", event id, field])`` as associated data: a ciphertext
copied to another event or field does not open.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenure.canonical import canonical_json
from tenure.crypto.files import write_atomic
from tenure.crypto.keystore import derive_key
from tenure.errors import ConfigurationError, InvalidInput

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_WRAP_VERSION = b"tdk1"


def field_ad(event_id: str, field: str) -> bytes:
    """The associated data of personal ``field`` sealed in event ``event_id``."""
    return canonical_json(["tenure.personal.v1", event_id, field])


def seal_field(key: bytes, event_id: str, field: str, value: str) -> dict[str, str]:
    """``{"nonce", "ct"}`` (base64) of ``value`` under data ``key``."""
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, value.encode(), field_ad(event_id, field))
    return {"nonce": base64.b64encode(nonce).decode(), "ct": base64.b64encode(ct).decode()}


def open_field(key: bytes, event_id: str, field: str, sealed: dict[str, str]) -> str:
    """The plaintext of a sealed field; raises ``InvalidInput`` (field ``field``) if it
    does not open with ``key`` under this event id and field name."""
    try:
        nonce = base64.b64decode(sealed["nonce"], validate=True)
        ct = base64.b64decode(sealed["ct"], validate=True)
        return AESGCM(key).decrypt(nonce, ct, field_ad(event_id, field)).decode()
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag):
        raise InvalidInput(f"sealed {field} does not open with its key", field=field) from None


class DataKeyStore:
    """Data keys by (account, customer), wrapped under the master key, one file each.

    No cache: several processes share the directory, and a key another process
    destroyed must not open anything here afterwards.
    """

    def __init__(self, directory: Path, master: bytes) -> None:
        self.directory = directory
        self._wrap = AESGCM(derive_key(master, "datakeys"))

    def _path(self, account: str, customer: str) -> Path:
        if not (_NAME.fullmatch(account) and _NAME.fullmatch(customer)):
            raise InvalidInput("not an account and customer id", field="customer")
        return self.directory / account / f"{customer}.key"

    @staticmethod
    def _ad(account: str, customer: str) -> bytes:
        return canonical_json(["tenure.datakey.v1", account, customer])

    def create(self, account: str, customer: str) -> bytes:
        """A new data key for the customer, written before it is returned (so no
        ciphertext exists whose key was never stored)."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        wrapped = self._wrap.encrypt(nonce, key, self._ad(account, customer))
        blob = base64.b64encode(_WRAP_VERSION + nonce + wrapped) + b"\n"
        write_atomic(self._path(account, customer), blob, mode=0o600)
        return key

    def get(self, account: str, customer: str) -> bytes | None:
        """The customer's data key, None if there is none (never created, or erased).
        Raises ``ConfigurationError`` for a key file that does not unwrap (another
        master key, or a file moved from another customer)."""
        path = self._path(account, customer)
        try:
            raw = base64.b64decode(path.read_bytes().strip(), validate=True)
        except FileNotFoundError:
            return None
        except binascii.Error as exc:
            raise ConfigurationError(f"data key file {path} is not base64") from exc
        if raw[:4] != _WRAP_VERSION:
            raise ConfigurationError(f"data key file {path} has an unknown format")
        try:
            return self._wrap.decrypt(raw[4:16], raw[16:], self._ad(account, customer))
        except InvalidTag:
            raise ConfigurationError(f"data key file {path} does not unwrap") from None

    def destroy(self, account: str, customer: str) -> bool:
        """Delete the customer's data key; True if there was one. The directory is
        fsynced so the deletion survives a crash."""
        path = self._path(account, customer)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(FileNotFoundError):
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return True
