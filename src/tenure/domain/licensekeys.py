"""The shapes of what names a license: its serial (``TNR-…``), its Tenure key
(``TNRK-…``), and a key it had in the system it was imported from (docs/import.md),
stored only as ``hash_legacy_key``."""

from __future__ import annotations

import hashlib
import re

SERIAL_PATTERN = re.compile(r"TNR-[A-Z2-7]{5}(?:-[A-Z2-7]{5}){3}", re.ASCII)
TENURE_KEY_PATTERN = re.compile(r"TNRK-[A-Z2-7]{8}(?:-[A-Z2-7]{8}){3}", re.ASCII)
LEGACY_KEY_PREFIX = b"tenure.legacy-key.v1\x00"


def is_serial(text: str) -> bool:
    """True when ``text`` has the shape of a license serial (``TNR-XXXXX-…``)."""
    return SERIAL_PATTERN.fullmatch(text) is not None


def is_tenure_key(text: str) -> bool:
    """True when ``text`` has the shape of a Tenure license key (``TNRK-…``)."""
    return TENURE_KEY_PATTERN.fullmatch(text) is not None


def hash_legacy_key(key: str) -> str:
    """The stored form of a legacy key: SHA-256 of a domain-separation prefix and the
    key, so it can never be mistaken for (or matched against) a Tenure key hash."""
    return hashlib.sha256(LEGACY_KEY_PREFIX + key.encode("utf-8", "surrogatepass")).hexdigest()
