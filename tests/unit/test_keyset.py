"""The signed key set (docs/offline.md, "The signed key set"): its exact text, its
signature by the ledger key, the refusal of anything else, and how the SDK's trust
anchor turns it into the keys it verifies tokens with."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from tenure.crypto import jws
from tenure.crypto.keyset import KeySet, VouchedKey, keyset_text, open_keyset, sign_keyset
from tenure.errors import InvalidInput, MalformedNote, TokenRejected, UnverifiedNote
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from tenure.ledger.note import NoteSigner, parse_note, sign_note
from tenure.sdk import TOKEN_TYP, fingerprint_hash
from tenure.sdk.decisions import Grant
from tenure.sdk.tokens import verify_token
from tenure.sdk.trust import TrustAnchor

from .test_sdk_support import ACCOUNT, FINGERPRINT, KEY, KID, NOW, SERIAL, claims, token

ORIGIN = "licensing.example/ledger/default"
LEDGER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))
OTHER_LEDGER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([8]) * 32))
X = jws.public_jwk(KEY.public_key(), KID)["x"]
RETIRED = Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
RETIRED_KID = jws.jwk_thumbprint(RETIRED.public_key())
RETIRED_X = jws.public_jwk(RETIRED.public_key(), RETIRED_KID)["x"]


LIFETIME = 86_400
"""The account's longest token lifetime the notes of these tests state."""


def keyset(*keys: VouchedKey, account: str = ACCOUNT) -> KeySet:
    """A key set signed at ``NOW``."""
    return KeySet(ORIGIN, account, NOW, LIFETIME, keys)


CURRENT = VouchedKey(KID, X, NOW - 3600, None)
OLD = VouchedKey(RETIRED_KID, RETIRED_X, NOW - 90 * 86_400, NOW + 86_400)


# ---------------------------------------------------------------- the format


def test_the_text_is_exactly_the_documented_format() -> None:
    text = keyset_text(keyset(CURRENT, OLD))
    assert text == (
        f"{ORIGIN}\n"
        "tenure-keyset v2\n"
        f"account {ACCOUNT}\n"
        f"time {NOW}\n"
        f"token-lifetime {LIFETIME}\n"
        f"key {RETIRED_KID} {RETIRED_X} {NOW - 90 * 86_400} {NOW + 86_400}\n"
        f"key {KID} {X} {NOW - 3600} -\n"
    )


def test_a_signed_key_set_opens_with_the_ledger_key_to_what_was_signed() -> None:
    note = sign_keyset(keyset(CURRENT, OLD), [LEDGER])
    opened = open_keyset(note, [LEDGER.verifier])
    assert opened == keyset(OLD, CURRENT)  # in (valid from, kid) order
    assert opened.public_keys()[KID].public_bytes_raw() == KEY.public_key().public_bytes_raw()
    assert keyset(account="empty").keys == ()
    assert open_keyset(sign_keyset(keyset(account="empty"), [LEDGER]), [LEDGER.verifier]).keys == ()


def test_a_key_set_signed_by_another_key_or_altered_is_refused() -> None:
    note = sign_keyset(keyset(CURRENT), [OTHER_LEDGER])
    with pytest.raises(UnverifiedNote):
        open_keyset(note, [LEDGER.verifier])
    genuine = sign_keyset(keyset(CURRENT), [LEDGER])
    text, _ = parse_note(genuine)
    widened = text + f"key {RETIRED_KID} {RETIRED_X} 0 -\n"
    with pytest.raises(UnverifiedNote):
        open_keyset(genuine.replace(text, widened), [LEDGER.verifier])


HEAD = f"{ORIGIN}\ntenure-keyset v2\naccount default\ntime 100\ntoken-lifetime 86400\n"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (HEAD.replace("v2", "v1"), "second line"),
        (HEAD.replace("account default", "account Default"), "third line"),
        (f"{ORIGIN}\ntenure-keyset v2\naccount default\n", "a time and a token-lifetime"),
        (HEAD.replace("time 100", "time 0100"), "fourth line"),
        (HEAD.replace("time 100", "time -1"), "fourth line"),
        (HEAD.replace("token-lifetime 86400", "token-lifetime 0"), "fifth line"),
        (HEAD.replace("token-lifetime 86400\n", ""), "a time and a token-lifetime"),
        (HEAD + f"key {KID} {X} 5 4\n", "ends before"),
        (HEAD + f"key {KID} {RETIRED_X} 0 -\n", "thumbprint"),
        (HEAD + f"key {KID} {X} 01 -\n", "line 6"),
        (HEAD + f"key {KID} {X} 0 - \n", "line 6"),
        (HEAD + f"key {KID} {X} 0 -\nkey {KID} {X} 1 -\n", "twice"),
    ],
)
def test_a_text_that_breaks_the_format_is_malformed_even_when_signed(text: str, why: str) -> None:
    note = sign_note(text, [LEDGER])
    with pytest.raises(MalformedNote, match=why):
        open_keyset(note, [LEDGER.verifier])


def test_a_checkpoint_and_a_key_set_signed_by_one_key_cannot_be_taken_for_each_other() -> None:
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, 812, bytes(32)), [LEDGER])
    with pytest.raises(MalformedNote):
        open_keyset(checkpoint, [LEDGER.verifier])
    with pytest.raises(MalformedNote):
        open_checkpoint(sign_keyset(keyset(CURRENT), [LEDGER]), [LEDGER.verifier])


@given(st.text(max_size=400))
def test_arbitrary_notes_fail_only_with_the_documented_errors(text: str) -> None:
    with contextlib.suppress(MalformedNote, UnverifiedNote):
        open_keyset(text, [LEDGER.verifier])
    with contextlib.suppress(MalformedNote, UnverifiedNote):
        open_keyset(sign_note(text + "\n", [LEDGER]), [LEDGER.verifier])


# ---------------------------------------------------------------- the SDK's anchor


def verify(text: str, *keys: VouchedKey) -> Grant:
    """``text`` verified as the SDK does under a ledger key vouching for ``keys``."""
    trusted = TrustAnchor(LEDGER.verifier.key_string()).trust(
        sign_keyset(keyset(*keys), [LEDGER]).encode(), ACCOUNT
    )
    return verify_token(
        text, trusted, serial=SERIAL, device_hash=fingerprint_hash(SERIAL, FINGERPRINT),
        account=ACCOUNT, now=NOW + 10,
    )  # fmt: skip


def test_a_token_whose_key_the_ledger_key_vouches_for_verifies() -> None:
    grant = verify(token(), CURRENT)
    assert grant.entitlements["seats"] == 5


def test_a_token_signed_by_a_key_outside_the_key_set_is_untrusted() -> None:
    with pytest.raises(TokenRejected) as refused:
        verify(token(), OLD)
    assert refused.value.reason == "untrusted_key"


def test_a_retired_key_is_trusted_only_for_tokens_ending_in_its_vouched_life() -> None:
    within = jws.sign(claims(exp=NOW + 86_400), RETIRED, RETIRED_KID, TOKEN_TYP)
    assert verify(within, OLD).expires_at == NOW + 86_400
    beyond = jws.sign(claims(exp=NOW + 86_401), RETIRED, RETIRED_KID, TOKEN_TYP)
    with pytest.raises(TokenRejected) as refused:
        verify(beyond, OLD)
    assert refused.value.reason == "untrusted_key"
    before = jws.sign(claims(iat=NOW - 91 * 86_400), RETIRED, RETIRED_KID, TOKEN_TYP)
    with pytest.raises(TokenRejected) as too_early:
        verify(before, OLD)
    assert too_early.value.reason == "untrusted_key"


def test_the_anchor_refuses_a_key_set_for_another_account_or_signed_by_another_key() -> None:
    anchor = TrustAnchor(LEDGER.verifier.key_string())
    foreign = sign_keyset(keyset(CURRENT, account="another"), [LEDGER])
    other = sign_keyset(keyset(CURRENT), [OTHER_LEDGER])
    for document in (foreign.encode(), other.encode(), b"\xff", orjson.dumps(jws.jwks({}))):
        with pytest.raises(TokenRejected) as refused:
            anchor.trust(document, ACCOUNT)
        assert refused.value.reason == "untrusted_keyset"


def test_without_a_ledger_key_the_anchor_reads_a_jwks() -> None:
    anchor = TrustAnchor(None)
    assert not anchor.pinned
    assert set(anchor.trust(orjson.dumps(jws.jwks({KID: KEY.public_key()})), ACCOUNT).keys) == {KID}
    with pytest.raises(InvalidInput):
        anchor.trust(b"not json", ACCOUNT)


def test_a_ledger_key_that_is_not_a_verifier_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as refused:
        TrustAnchor("licensing.example+00000000+AAAA")
    assert refused.value.field == "ledger_key"


def test_the_anchor_takes_every_line_of_get_ledger_key() -> None:
    lines = f"{OTHER_LEDGER.verifier.key_string()}\n{LEDGER.verifier.key_string()}\n"
    note = sign_keyset(keyset(CURRENT), [LEDGER])
    assert set(TrustAnchor(lines).trust(note.encode(), ACCOUNT).keys) == {KID}
    with pytest.raises(InvalidInput):
        TrustAnchor(" \n")
