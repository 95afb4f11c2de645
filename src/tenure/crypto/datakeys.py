"""Per-customer data keys for personal data, and the AEAD that seals fields with them.

Each customer with sealed personal data has a 32-byte data key, stored in the
database (``tenure.store.data_keys``) wrapped with AES-256-GCM under a subkey of the
master key, with account and customer as associated data: a wrapped key copied to
another customer's row does not unwrap, and the database alone (or any copy of it)
opens nothing without the master key. Deleting the row is crypto-shredding the
customer's personal data.

Release 0.2.0 kept the same wrapped bytes, base64-encoded, in files
``<data-dir>/datakeys/<account>/<customer>.key``; ``legacy_key_files`` and
``read_key_file`` read them for their import into the database.

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
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenure.canonical import canonical_json
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


class DataKeyWrap:
    """Wraps and unwraps customers' data keys under the master key's ``datakeys``
    subkey (format ``tdk1 || nonce || AES-256-GCM(key)``, associated data
    ``JCS(["tenure.datakey.v1", account, customer])``)."""

    def __init__(self, master: bytes) -> None:
        self._aead = AESGCM(derive_key(master, "datakeys"))

    @staticmethod
    def _ad(account: str, customer: str) -> bytes:
        if not (_NAME.fullmatch(account) and _NAME.fullmatch(customer)):
            raise InvalidInput("not an account and customer id", field="customer")
        return canonical_json(["tenure.datakey.v1", account, customer])

    def new_key(self, account: str, customer: str) -> tuple[bytes, bytes]:
        """A fresh data key for the customer and its wrapped form: (key, wrapped)."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        return key, _WRAP_VERSION + nonce + self._aead.encrypt(
            nonce, key, self._ad(account, customer)
        )

    def unwrap(self, account: str, customer: str, wrapped: bytes, where: str) -> bytes:
        """The data key in ``wrapped``. Raises ``ConfigurationError`` naming ``where``
        if it is not a wrapped key of this customer under this master key (another
        master key, a row or file moved from another customer, altered bytes)."""
        ad = self._ad(account, customer)
        if wrapped[:4] != _WRAP_VERSION or len(wrapped) != 4 + 12 + 32 + 16:
            raise ConfigurationError(f"{where} is not a wrapped data key")
        try:
            return self._aead.decrypt(wrapped[4:16], wrapped[16:], ad)
        except InvalidTag:
            raise ConfigurationError(f"{where} does not unwrap with the master key") from None


def legacy_key_files(directory: Path) -> Iterator[tuple[str, str, Path]]:
    """``(account, customer, path)`` of each 0.2.0 key file under ``directory``
    (``<account>/<customer>.key``), in name order; nothing if there is no directory.
    Files whose names are not an account and a customer id are not key files and are
    left alone."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*/*.key")):
        account, customer = path.parent.name, path.stem
        if _NAME.fullmatch(account) and _NAME.fullmatch(customer):
            yield account, customer, path


def read_key_file(path: Path) -> bytes:
    """The wrapped key a 0.2.0 key file holds (base64 of it on one line). Raises
    ``ConfigurationError`` for a file that is not base64."""
    try:
        return base64.b64decode(path.read_bytes().strip(), validate=True)
    except binascii.Error as exc:
        raise ConfigurationError(f"data key file {path} is not base64") from exc


def remove_key_file(path: Path) -> None:
    """Delete an imported key file, then its account directory if that is now empty;
    the parent directories are fsynced so the deletion survives a crash."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _fsync_dir(path.parent)
    with contextlib.suppress(OSError):  # not empty: other key files remain
        path.parent.rmdir()
        _fsync_dir(path.parent.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
