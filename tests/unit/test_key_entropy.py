"""Keys are unguessable: license keys carry 160 bits, API keys 256 (≥ 128 each)."""

from __future__ import annotations

import base64

from tenure.crypto.keystore import LicenseKeys
from tenure.service.apikeys import new_api_key

MINIMUM_BITS = 128


def _b32_bits(text: str) -> int:
    padded = text.upper() + "=" * (-len(text) % 8)
    return 8 * len(base64.b32decode(padded))


def test_license_keys_carry_at_least_128_bits() -> None:
    keys = LicenseKeys(bytes(range(32)))
    key = keys.key("default", "TNR-AAAAA-BBBBB-CCCCC-DDDDD")
    assert key.startswith("TNRK-")
    bits = _b32_bits(key.removeprefix("TNRK-").replace("-", ""))
    assert bits == 160 >= MINIMUM_BITS
    # Derived per (account, serial) under a secret: another serial, another key.
    assert keys.key("default", "TNR-AAAAA-BBBBB-CCCCC-DDDDE") != key


def test_api_keys_carry_at_least_128_bits() -> None:
    key = new_api_key()
    assert key.startswith("tnr_")
    assert _b32_bits(key.removeprefix("tnr_")) == 256 >= MINIMUM_BITS
    assert new_api_key() != key
