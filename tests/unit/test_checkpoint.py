"""C2SP tlog-checkpoints: body format, signing by the origin key, strict parsing."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.errors import MalformedNote, UnverifiedNote
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from tenure.ledger.note import NoteSigner, sign_note

ORIGIN = "tenure.example.com/ledger/default"
ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()


def signer(name: str = ORIGIN, seed: int = 1) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def test_checkpoint_body_is_origin_size_and_base64_root_on_three_lines() -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    assert checkpoint.body() == f"{ORIGIN}\n42\n{ROOT_B64}\n"
    assert checkpoint.root_b64 == ROOT_B64
    assert parse_checkpoint(checkpoint.body()) == checkpoint


def test_signed_checkpoint_is_a_signed_note_of_its_body() -> None:
    s = signer()
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    note = sign_checkpoint(checkpoint, [s])
    assert note.startswith(checkpoint.body() + "\n\u2014 " + ORIGIN + " ")
    assert note.count("\n") == 5
    assert open_checkpoint(note, [s.verifier]) == checkpoint


@settings(max_examples=60, deadline=None)
@given(
    origin=st.text(
        st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters="+"),
        min_size=1,
        max_size=40,
    ).filter(lambda name: not any(ch.isspace() for ch in name)),
    size=st.one_of(st.sampled_from([0, 1, 2**63 - 1]), st.integers(0, 2**64 - 1)),
    root=st.binary(min_size=32, max_size=32),
)
def test_signed_checkpoints_round_trip(origin: str, size: int, root: bytes) -> None:
    s = signer(origin)
    checkpoint = Checkpoint(origin, size, root)
    assert parse_checkpoint(checkpoint.body()) == checkpoint
    assert open_checkpoint(sign_checkpoint(checkpoint, [s]), [s.verifier]) == checkpoint


def test_checkpoint_cosigned_during_key_rotation_opens_with_either_key() -> None:
    old, new = signer(seed=1), signer(seed=2)
    checkpoint = Checkpoint(ORIGIN, 3, ROOT)
    note = sign_checkpoint(checkpoint, [old, new])
    assert open_checkpoint(note, [old.verifier]) == checkpoint
    assert open_checkpoint(note, [new.verifier]) == checkpoint


def test_only_the_origin_key_may_sign_a_checkpoint() -> None:
    with pytest.raises(MalformedNote):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [signer("someone.else")])


def test_checkpoint_signed_by_a_trusted_key_of_another_name_is_refused() -> None:
    other = signer("someone.else")
    note = sign_note(Checkpoint(ORIGIN, 1, ROOT).body(), [other])
    with pytest.raises(MalformedNote, match="origin"):
        open_checkpoint(note, [other.verifier])


def test_checkpoint_with_a_changed_size_or_root_is_unverified() -> None:
    s = signer()
    note = sign_checkpoint(Checkpoint(ORIGIN, 10, ROOT), [s])
    with pytest.raises(UnverifiedNote):
        open_checkpoint(note.replace("\n10\n", "\n11\n", 1), [s.verifier])
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(UnverifiedNote):
        open_checkpoint(note.replace(ROOT_B64, other_root), [s.verifier])


def test_checkpoint_signed_by_an_unknown_key_is_unverified() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [signer(seed=1)])
    with pytest.raises(UnverifiedNote):
        open_checkpoint(note, [signer(seed=2).verifier])


ROOT_31 = base64.b64encode(ROOT[:31]).decode()
ROOT_33 = base64.b64encode(ROOT + b"\x00").decode()


@pytest.mark.parametrize(
    "body",
    [
        "",
        f"{ORIGIN}\n1\n{ROOT_B64}",  # missing trailing newline
        f"{ORIGIN}\n1\n{ROOT_B64}\n\n",  # trailing blank line
        f"{ORIGIN}\n1\n{ROOT_B64}\nextension line\n",  # extension lines are refused
        f"{ORIGIN}\n1\n",
        f"{ORIGIN}\n{ROOT_B64}\n",
        f"\n1\n{ROOT_B64}\n",  # empty origin
        f"two words\n1\n{ROOT_B64}\n",
        f"a+b\n1\n{ROOT_B64}\n",
        f"{ORIGIN}\n01\n{ROOT_B64}\n",
        f"{ORIGIN}\n00\n{ROOT_B64}\n",
        f"{ORIGIN}\n-1\n{ROOT_B64}\n",
        f"{ORIGIN}\n+1\n{ROOT_B64}\n",
        f"{ORIGIN}\n 1\n{ROOT_B64}\n",
        f"{ORIGIN}\n1 \n{ROOT_B64}\n",
        f"{ORIGIN}\n1.0\n{ROOT_B64}\n",
        f"{ORIGIN}\n1_000\n{ROOT_B64}\n",
        f"{ORIGIN}\n0x10\n{ROOT_B64}\n",
        f"{ORIGIN}\n\n{ROOT_B64}\n",
        f"{ORIGIN}\n\u00b2\n{ROOT_B64}\n",  # superscript two: isdigit() but not decimal
        f"{ORIGIN}\n\u0661\u0662\n{ROOT_B64}\n",  # Arabic-Indic digits
        f"{ORIGIN}\n{'9' * 5000}\n{ROOT_B64}\n",  # beyond int() string limits
        f"{ORIGIN}\n1\n{ROOT_31}\n",  # root too short
        f"{ORIGIN}\n1\n{ROOT_33}\n",  # root too long
        f"{ORIGIN}\n1\n{ROOT_B64[:-1]}\n",  # bad padding
        f"{ORIGIN}\n1\n{ROOT_B64}=\n",  # excess padding
        f"{ORIGIN}\n1\n{ROOT_B64[:20]}!{ROOT_B64[21:]}\n",  # not base64
        f"{ORIGIN}\n1\n{ROOT_B64[:20]}\u00e9{ROOT_B64[21:]}\n",  # non-ASCII
        f"{ORIGIN}\n1\n {ROOT_B64}\n",
        f"{ORIGIN}\n1\n{ROOT.hex()}\n",  # hex, not base64
        f"{ORIGIN}\r\n1\r\n{ROOT_B64}\r\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(MalformedNote):
        parse_checkpoint(body)


def test_non_canonical_base64_root_is_refused() -> None:
    # The last base64 digit of a 32-byte value carries 4 unused bits that must be zero.
    last = ROOT_B64[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 1]
    body = f"{ORIGIN}\n1\n{ROOT_B64[:-2]}{twin}=\n"
    with pytest.raises(MalformedNote):
        parse_checkpoint(body)


def test_signed_checkpoint_with_an_extension_line_is_refused() -> None:
    s = signer()
    body = Checkpoint(ORIGIN, 1, ROOT).body() + "extension\n"
    note = sign_note(body, [s])
    with pytest.raises(MalformedNote):
        open_checkpoint(note, [s.verifier])


def test_checkpoint_note_without_a_trailing_newline_is_refused() -> None:
    s = signer()
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [s])
    with pytest.raises(MalformedNote):
        open_checkpoint(note.rstrip("\n"), [s.verifier])


def test_checkpoint_note_with_a_malformed_signature_is_refused() -> None:
    s = signer()
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [s])
    with pytest.raises(MalformedNote):
        open_checkpoint(note.replace(f"\u2014 {ORIGIN} ", f"\u2014 {ORIGIN} %"), [s.verifier])


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr)))
def test_parsing_arbitrary_text_as_a_checkpoint_raises_only_malformed_note(text: str) -> None:
    with contextlib.suppress(MalformedNote):
        parse_checkpoint(text)


@settings(max_examples=300, deadline=None)
@given(
    origin=st.sampled_from([ORIGIN, "", "a b", "o\udc00", "\u00e9"]),
    size=st.one_of(
        st.integers(-5, 10**25).map(str),
        st.text(st.sampled_from("0123456789-+ .\u00b2\u0661\u0660"), max_size=6),
    ),
    root=st.one_of(
        st.sampled_from([ROOT_B64, ROOT_31, ROOT_33, ROOT_B64 + "=", "\u00e9" + ROOT_B64[1:]]),
        st.text(st.sampled_from("AZaz09+/=\u00e9 "), max_size=46),
    ),
    tail=st.sampled_from(["\n", "", "\n\n", "\nx\n"]),
)
def test_near_miss_checkpoints_parse_exactly_or_raise_malformed_note(
    origin: str, size: str, root: str, tail: str
) -> None:
    try:
        checkpoint = parse_checkpoint(f"{origin}\n{size}\n{root}{tail}")
    except MalformedNote:
        return
    # Whatever parses is the one canonical spelling of itself.
    assert checkpoint.body() == f"{origin}\n{size}\n{root}{tail}"
