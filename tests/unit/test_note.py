"""C2SP signed notes: signing, opening, trust rules and refusal of malformed input."""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.errors import MalformedNote, UnverifiedNote
from tenure.ledger.note import (
    MAX_SIGNATURES,
    NoteSigner,
    NoteVerifier,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

# The example of golang.org/x/mod/sumdb/note (note.go package documentation).
GO_VERIFIER_KEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
GO_TEXT = "This is an example message.\n"
GO_SIGNATURE = (
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM="
)
GO_NOTE = f"{GO_TEXT}\n\u2014 example.com/foo {GO_SIGNATURE}\n"


# Arbitrary Python text, lone surrogates included (hypothesis leaves them out by default).
ANY_TEXT = st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr))


def signer(name: str, seed: int = 0) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------- the Go example vector


def test_go_example_verifier_key_parses_and_round_trips() -> None:
    verifier = NoteVerifier.from_key_string(GO_VERIFIER_KEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == bytes.fromhex("530d903a")
    assert len(verifier.public_key) == 32
    assert verifier.key_string() == GO_VERIFIER_KEY


def test_go_example_note_verifies_with_the_go_example_key() -> None:
    verifier = NoteVerifier.from_key_string(GO_VERIFIER_KEY)
    assert open_note(GO_NOTE, [verifier]) == (GO_TEXT, ["example.com/foo"])


def test_go_example_note_with_tampered_text_is_rejected() -> None:
    verifier = NoteVerifier.from_key_string(GO_VERIFIER_KEY)
    with pytest.raises(UnverifiedNote):
        open_note(GO_NOTE.replace("example message", "example massage"), [verifier])


def test_go_example_note_with_tampered_signature_is_rejected() -> None:
    verifier = NoteVerifier.from_key_string(GO_VERIFIER_KEY)
    raw = bytearray(base64.b64decode(GO_SIGNATURE))
    raw[10] ^= 0x01  # inside the Ed25519 signature, after the 4-byte key id
    with pytest.raises(UnverifiedNote):
        open_note(GO_NOTE.replace(GO_SIGNATURE, _b64(bytes(raw))), [verifier])


def test_go_example_note_with_a_different_key_id_is_not_trusted() -> None:
    verifier = NoteVerifier.from_key_string(GO_VERIFIER_KEY)
    raw = bytearray(base64.b64decode(GO_SIGNATURE))
    raw[0] ^= 0x01  # the key id no longer names the trusted key: signature is ignored
    with pytest.raises(UnverifiedNote, match="not signed by any trusted key"):
        open_note(GO_NOTE.replace(GO_SIGNATURE, _b64(bytes(raw))), [verifier])


def test_go_example_note_signed_under_another_name_is_not_trusted() -> None:
    verifier = NoteVerifier.from_key_string(GO_VERIFIER_KEY)
    with pytest.raises(UnverifiedNote):
        open_note(GO_NOTE.replace("\u2014 example.com/foo", "\u2014 example.com/bar"), [verifier])


def test_go_example_note_with_an_ascii_hyphen_instead_of_an_em_dash_is_malformed() -> None:
    with pytest.raises(MalformedNote):
        parse_note(GO_NOTE.replace("\u2014", "-"))


# ---------------------------------------------------------------- keys


def test_signer_key_id_is_the_c2sp_key_hash() -> None:
    s = signer("tenure.example.com/ledger/default", 7)
    v = s.verifier
    assert v.key_id == key_id(v.name, v.public_key)
    assert NoteVerifier.from_key_string(v.key_string()) == v
    assert v.key_string().startswith(f"{v.name}+{v.key_id.hex()}+")


def test_verifier_key_string_tolerates_surrounding_whitespace() -> None:
    verifier = NoteVerifier.from_key_string(f"  {GO_VERIFIER_KEY}\n")
    assert verifier.key_string() == GO_VERIFIER_KEY


def _go_key_parts() -> tuple[str, str, bytes]:
    name, hex_id, b64 = GO_VERIFIER_KEY.split("+")
    return name, hex_id, base64.b64decode(b64)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "example.com/foo",
        "example.com/foo+530d903a",
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example com+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903g+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d90+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a00+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k=",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k+x",
        "example.com/foo+530d903a+Aeky eRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+Aeky\u00e9Rrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+\u0665\u0663\u0660d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/\udc80+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2l",
    ],
)
def test_malformed_verifier_key_strings_are_refused(key: str) -> None:
    with pytest.raises(MalformedNote):
        NoteVerifier.from_key_string(key)


def test_verifier_key_of_another_signature_type_is_refused() -> None:
    name, hex_id, raw = _go_key_parts()
    other_type = _b64(bytes([0x02]) + raw[1:])
    too_long = _b64(raw + bytes(1))
    with pytest.raises(MalformedNote):
        NoteVerifier.from_key_string(f"{name}+{hex_id}+{other_type}")
    with pytest.raises(MalformedNote):
        NoteVerifier.from_key_string(f"{name}+{hex_id}+{too_long}")


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "tab\there", "nbsp\u00a0name", "line\u2028sep", "lone\ud800"]
)
def test_signer_names_with_spaces_or_plus_are_refused(name: str) -> None:
    with pytest.raises(MalformedNote):
        signer(name)


@settings(max_examples=300, deadline=None)
@given(key=ANY_TEXT)
def test_parsing_an_arbitrary_verifier_key_string_raises_only_malformed_note(key: str) -> None:
    with contextlib.suppress(MalformedNote):
        NoteVerifier.from_key_string(key)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(["example.com/foo", "k"]),
    hex_id=st.text(alphabet="0123456789abcdefABCDEF\u0660\u0661xyz", max_size=10),
    b64=st.text(alphabet="AekyeR+/=\u00e9 \n", max_size=48),
)
def test_verifier_keys_with_near_miss_ids_and_keys_raise_only_malformed_note(
    name: str, hex_id: str, b64: str
) -> None:
    with contextlib.suppress(MalformedNote):
        NoteVerifier.from_key_string(f"{name}+{hex_id}+{b64}")


# ---------------------------------------------------------------- signing and opening


NOTE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n")
    | st.just("\n"),
    max_size=200,
).map(lambda text: text + "\n")


@settings(max_examples=60, deadline=None)
@given(text=NOTE_TEXT, count=st.integers(min_value=1, max_value=3))
def test_signed_note_opens_to_its_text_and_signer_names(text: str, count: int) -> None:
    signers = [signer(f"log{i}.example", i) for i in range(count)]
    note = sign_note(text, signers)
    assert note.startswith(text + "\n")
    opened = open_note(note, [s.verifier for s in signers])
    assert opened == (text, [s.name for s in signers])
    parsed_text, signatures = parse_note(note)
    assert parsed_text == text
    assert [(sig.name, sig.key_id) for sig in signatures] == [
        (s.name, s.verifier.key_id) for s in signers
    ]
    assert all(len(sig.signature) == 64 for sig in signatures)


@settings(max_examples=40, deadline=None)
@given(text=NOTE_TEXT, data=st.data())
def test_signed_note_with_any_text_character_changed_is_rejected(
    text: str, data: st.DataObject
) -> None:
    s = signer("log.example", 3)
    note = sign_note(text, [s])
    at = data.draw(st.integers(0, len(text) - 2)) if len(text) > 1 else None
    if at is None:
        tampered = "x" + note
    else:
        replacement = "y" if text[at] != "y" else "z"
        tampered = note[:at] + replacement + note[at + 1 :]
    with pytest.raises(UnverifiedNote):
        open_note(tampered, [s.verifier])


def test_signatures_by_unknown_keys_are_ignored() -> None:
    trusted, stranger = signer("log.example", 1), signer("other.example", 2)
    note = sign_note("hello\n", [stranger, trusted])
    assert open_note(note, [trusted.verifier]) == ("hello\n", ["log.example"])


def test_note_signed_only_by_unknown_keys_is_unverified() -> None:
    trusted, stranger = signer("log.example", 1), signer("other.example", 2)
    with pytest.raises(UnverifiedNote):
        open_note(sign_note("hello\n", [stranger]), [trusted.verifier])
    with pytest.raises(UnverifiedNote):
        open_note(sign_note("hello\n", [trusted]), [])


def test_note_signed_by_an_impostor_key_with_the_trusted_name_is_unverified() -> None:
    trusted, impostor = signer("log.example", 1), signer("log.example", 9)
    assert trusted.verifier.key_id != impostor.verifier.key_id
    with pytest.raises(UnverifiedNote):
        open_note(sign_note("hello\n", [impostor]), [trusted.verifier])


def test_a_bad_signature_by_a_trusted_key_rejects_the_whole_note() -> None:
    good, bad = signer("a.example", 1), signer("b.example", 2)
    note = sign_note("hello\n", [good, bad])
    forged_line = bad.signature_line("goodbye\n")
    tampered = note.replace(bad.signature_line("hello\n"), forged_line)
    assert tampered != note
    with pytest.raises(UnverifiedNote, match=r"b\.example"):
        open_note(tampered, [good.verifier, bad.verifier])
    # Without trusting the forger the good signature suffices.
    assert open_note(tampered, [good.verifier]) == ("hello\n", ["a.example"])


def test_rotated_keys_under_one_name_each_verify() -> None:
    old, new = signer("log.example", 1), signer("log.example", 2)
    note = sign_note("rotating\n", [old, new])
    assert open_note(note, [new.verifier]) == ("rotating\n", ["log.example"])
    assert open_note(note, [old.verifier]) == ("rotating\n", ["log.example"])
    assert open_note(note, [old.verifier, new.verifier]) == ("rotating\n", ["log.example"])


def test_signature_with_a_truncated_ed25519_signature_is_unverified() -> None:
    s = signer("log.example", 1)
    raw = s.verifier.key_id + b"\x00" * 10
    note = f"hello\n\n\u2014 log.example {_b64(raw)}\n"
    with pytest.raises(UnverifiedNote):
        open_note(note, [s.verifier])


@pytest.mark.parametrize(
    "text",
    ["no newline", "", "tab\there\n", "carriage\r\n", "nul\x00\n", "bell\x07\n", "\udfff\n"],
)
def test_sign_note_refuses_text_that_is_not_a_note_text(text: str) -> None:
    with pytest.raises(MalformedNote):
        sign_note(text, [signer("log.example")])


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(MalformedNote):
        sign_note("hello\n", [])


_SIG = _b64(b"\x01\x02\x03\x04" + b"\x00" * 64)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "\n",
        "hello\n",
        f"hello\n\u2014 k {_SIG}\n",
        "hello\n\n",
        f"hello\n\n\u2014 k {_SIG}",
        f"hello\n\n- k {_SIG}\n",
        f"hello\n\n\u2014k {_SIG}\n",
        f"hello\n\n\u2014  k {_SIG}\n",
        "hello\n\n\u2014 k\n",
        "hello\n\n\u2014 k \n",
        f"hello\n\n\u2014 k+x {_SIG}\n",
        f"hello\n\n\u2014 k {_SIG[:-2]}\n",
        f"hello\n\n\u2014 k {_SIG} extra\n",
        f"hello\n\n\u2014 k !!{_SIG}\n",
        f"hello\n\n\u2014 k {_SIG}\u00e9\n",
        f"hello\n\n\u2014 k \u00e9{_SIG}\n",
        f"hello\n\n\u2014 k {_b64(b'1234')}\n",
        f"hello\n\n\u2014 k {_SIG}\n\n",
        f"hello\n\n\u2014 k {_SIG}\nnot a signature\n",
        f"tab\there\n\n\u2014 k {_SIG}\n",
        f"cr\r\n\n\u2014 k {_SIG}\n",
        f"lone \ud800 surrogate\n\n\u2014 k {_SIG}\n",
        f"hello\n\n\u2014 k\udc80 {_SIG}\n",
        "hello\n\n" + f"\u2014 k {_SIG}\n" * (MAX_SIGNATURES + 1),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(MalformedNote):
        parse_note(note)
    with pytest.raises(MalformedNote):
        open_note(note, [signer("k").verifier])


def test_a_note_with_the_maximum_number_of_signatures_parses() -> None:
    note = "hello\n\n" + f"\u2014 k {_SIG}\n" * MAX_SIGNATURES
    _, signatures = parse_note(note)
    assert len(signatures) == MAX_SIGNATURES


@settings(max_examples=300, deadline=None)
@given(note=ANY_TEXT)
def test_parsing_arbitrary_text_as_a_note_raises_only_malformed_note(note: str) -> None:
    with contextlib.suppress(MalformedNote):
        parse_note(note)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters() | st.just("\ud800"), max_size=20),
    lines=st.lists(
        st.tuples(
            st.sampled_from(["\u2014 ", "\u2014", "- ", ""]),
            st.sampled_from(["k", "log.example", "", "a b", "\u00e9", "k\udc80"]),
            st.sampled_from([" ", "", "  "]),
            st.sampled_from([_SIG, _SIG[:8], "", "\u00e9" + _SIG, _SIG + "\u00b2", "====", "A"]),
        ).map("".join),
        max_size=3,
    ),
)
def test_near_miss_notes_raise_only_malformed_or_unverified_note(
    text: str, lines: list[str]
) -> None:
    note = text + "\n\n" + "".join(line + "\n" for line in lines)
    with contextlib.suppress(MalformedNote, UnverifiedNote):
        open_note(note, [signer("k").verifier, signer("log.example", 1).verifier])
