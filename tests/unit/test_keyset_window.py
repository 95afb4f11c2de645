"""The life a key set note gives each key (docs/offline.md, "The signed key set"):
a key still signing is vouched for only until the note's time plus the account's
longest token lifetime, so an old note cannot vouch for what its key signs later."""

from __future__ import annotations

import pytest

from tenure.crypto import jws, license_file
from tenure.crypto.keyset import KeySet, VouchedKey, sign_keyset
from tenure.errors import TokenRejected
from tenure.sdk import TOKEN_TYP, fingerprint_hash
from tenure.sdk.decisions import Grant
from tenure.sdk.tokens import verify_token
from tenure.sdk.trust import CLOCK_SKEW, TrustAnchor

from .test_keyset import LEDGER, ORIGIN, RETIRED, RETIRED_KID, RETIRED_X, X
from .test_sdk_support import ACCOUNT, FINGERPRINT, KEY, KID, NOW, SERIAL, claims

DAY = 86_400
LIFETIME = 7 * DAY
SIGNING = VouchedKey(KID, X, NOW - 100 * DAY, None)
RETIRED_KEY = VouchedKey(RETIRED_KID, RETIRED_X, NOW - 90 * DAY, NOW + 5 * DAY)


def note_at(time: int, *keys: VouchedKey) -> KeySet:
    return KeySet(ORIGIN, ACCOUNT, time, LIFETIME, keys or (SIGNING, RETIRED_KEY))


def refusal(keyset: KeySet, issued: int, expires: int, kid: str = KID) -> str | None:
    try:
        keyset.check_token(kid, issued, expires, CLOCK_SKEW)
    except TokenRejected as rejected:
        return rejected.reason
    return None


def test_a_key_still_signing_is_vouched_for_until_the_note_time_plus_the_lifetime() -> None:
    keyset = note_at(NOW)
    assert keyset.life(SIGNING) == (NOW - 100 * DAY, NOW + LIFETIME)
    assert keyset.life(RETIRED_KEY) == (NOW - 90 * DAY, NOW + 5 * DAY)
    assert refusal(keyset, NOW, NOW + LIFETIME) is None
    late = NOW + CLOCK_SKEW  # minted by a server whose clock is ahead of the note's
    assert refusal(keyset, late, late + LIFETIME) is None
    assert refusal(keyset, late + 1, late + 1 + LIFETIME) == "untrusted_key"


def test_an_old_note_refuses_a_token_its_current_key_signed_after_the_window() -> None:
    old = note_at(NOW - 60 * DAY)
    assert refusal(old, NOW, NOW + DAY) == "untrusted_key"
    assert refusal(old, NOW, NOW + 365 * DAY) == "untrusted_key"
    # What the key signed while the note was fresh still lies in it.
    assert refusal(old, NOW - 60 * DAY, NOW - 59 * DAY) is None


def test_a_token_living_longer_than_the_note_lifetime_is_refused_inside_the_window() -> None:
    keyset = note_at(NOW)
    assert refusal(keyset, NOW - DAY, NOW - DAY + LIFETIME) is None
    assert refusal(keyset, NOW - DAY, NOW - DAY + LIFETIME + 1) == "untrusted_key"


def test_a_token_issued_before_its_key_or_after_it_expires_is_refused() -> None:
    keyset = note_at(NOW)
    born = SIGNING.valid_from
    assert refusal(keyset, born - CLOCK_SKEW, born + DAY) is None
    assert refusal(keyset, born - CLOCK_SKEW - 1, born + DAY) == "untrusted_key"
    assert refusal(keyset, NOW, NOW - 1) == "untrusted_key"
    assert refusal(keyset, NOW, NOW + DAY, kid="not-in-the-note") == "untrusted_key"


def test_a_license_file_need_only_be_signed_in_its_key_life() -> None:
    keyset, leeway = note_at(NOW), 300
    keyset.check_signed(KID, NOW - DAY, leeway)  # it may live for a year after
    keyset.check_signed(RETIRED_KID, NOW + 5 * DAY + leeway, leeway)
    for kid, issued in ((KID, NOW + LIFETIME + leeway + 1), (RETIRED_KID, NOW - 91 * DAY)):
        with pytest.raises(TokenRejected) as refused:
            keyset.check_signed(kid, issued, leeway)
        assert refused.value.reason == "untrusted_key"


def verify_at(keyset: KeySet, text: str, now: int) -> Grant:
    """``text`` as the SDK verifies it under a ledger key that signed ``keyset``."""
    trusted = TrustAnchor(LEDGER.verifier.key_string()).trust(
        sign_keyset(keyset, [LEDGER]).encode(), ACCOUNT
    )
    return verify_token(
        text, trusted, serial=SERIAL, device_hash=fingerprint_hash(SERIAL, FINGERPRINT),
        account=ACCOUNT, now=now,
    )  # fmt: skip


def test_the_sdk_refuses_a_token_past_the_window_of_its_cached_note() -> None:
    later = NOW + 60 * DAY
    forged = jws.sign(claims(iat=later, nbf=later, exp=later + DAY), KEY, KID, TOKEN_TYP)
    with pytest.raises(TokenRejected) as refused:
        verify_at(note_at(NOW), forged, later)
    assert refused.value.reason == "untrusted_key"
    assert verify_at(note_at(later), forged, later).expires_at == later + DAY


def test_a_revocation_list_of_a_retired_key_is_held_to_the_same_life() -> None:
    listing = claims(iat=NOW + 6 * DAY, exp=NOW + 6 * DAY + 300)
    text = jws.sign(listing, RETIRED, RETIRED_KID, TOKEN_TYP)
    with pytest.raises(TokenRejected) as refused:
        verify_at(note_at(NOW), text, NOW + 6 * DAY)
    assert refused.value.reason == "untrusted_key"


def test_license_file_read_under_a_note_wants_a_file_signed_in_its_key_life() -> None:
    keyset = note_at(NOW)
    fph = fingerprint_hash(SERIAL, FINGERPRINT)

    def read(issued: int) -> dict[str, object]:
        body = claims(iat=issued, nbf=NOW, exp=NOW + 365 * DAY)
        text = license_file.issue(body, KEY, KID)
        return license_file.read(
            text, keyset.public_keys(), now=NOW, fingerprint_hash=fph, vouched=keyset
        )

    assert read(NOW)["exp"] == NOW + 365 * DAY  # a year, past the key's vouched end
    with pytest.raises(TokenRejected) as refused:
        read(NOW + LIFETIME + license_file.LEEWAY + 1)
    assert refused.value.reason == "untrusted_key"
