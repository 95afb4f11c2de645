"""C2SP signed notes with Ed25519 keys (signature type 0x01).

A signed note is UTF-8 text ending in a newline, a blank line, then one signature
line per signer: ``— <key name> <base64(key id ‖ signature)>``. The key id is the
first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key). A verifier key is
shared as the string ``<name>+<hex key id>+<base64(0x01 ‖ public key)>``.

Verification follows the spec's trust rules: signatures by unknown keys are ignored,
a bad signature by a known key rejects the whole note, and a note with no valid
signature from a known key is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tenure.errors import MalformedNote, UnverifiedNote

ED25519_TYPE = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100


class Ed25519Signer(Protocol):
    """A private Ed25519 key that signs and gives its public key: an in-process
    ``Ed25519PrivateKey``, or a key held on a PKCS#11 token
    (``tenure.crypto.pkcs11.TokenKey``) whose private part never leaves the token.
    Ed25519 is deterministic: one key gives one signature per message, wherever it is
    held."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


def check_key_name(name: str) -> None:
    """Raise ``MalformedNote`` unless ``name`` is a valid key name (no spaces, no '+')."""
    if not name or "+" in name or any(ch.isspace() or _is_surrogate(ch) for ch in name):
        raise MalformedNote(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")


def _is_surrogate(ch: str) -> bool:
    """A lone UTF-16 surrogate: a ``str`` character that has no UTF-8 encoding."""
    return "\ud800" <= ch <= "\udfff"


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte id of an Ed25519 key named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_key_string(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hexid+base64key``; raise ``MalformedNote`` if it is not one."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise MalformedNote("verifier key must look like name+keyid+base64key")
        name, hex_id, b64_key = parts
        check_key_name(name)
        try:
            kid = bytes.fromhex(hex_id)
            raw = base64.b64decode(b64_key, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise MalformedNote("verifier key has a malformed id or key") from exc
        if base64.b64encode(raw).decode() != b64_key:
            raise MalformedNote("verifier key is not canonical base64")
        if len(kid) != 4 or len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise MalformedNote("verifier key is not an Ed25519 (type 0x01) key")
        public = raw[1:]
        if key_id(name, public) != kid:
            raise MalformedNote("verifier key id does not match its name and key")
        return cls(name, kid, public)

    def key_string(self) -> str:
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """An Ed25519 private key with a name; signs note texts."""

    def __init__(self, name: str, private_key: Ed25519Signer) -> None:
        check_key_name(name)
        self.name = name
        self._private = private_key
        public = _raw_public(private_key.public_key())
        self.verifier = NoteVerifier(name, key_id(name, public), public)

    def signature_line(self, text: str) -> str:
        signature = self._private.sign(text.encode())
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if any((ch < " " and ch != "\n") or _is_surrogate(ch) for ch in text):
        raise MalformedNote("note text must not contain control characters or lone surrogates")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Return ``text`` signed by every signer, as a signed note."""
    _check_text(text)
    if not signers:
        raise MalformedNote("a signed note needs at least one signer")
    return text + "\n" + "".join(signer.signature_line(text) for signer in signers)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


def parse_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signatures, without verifying them."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise MalformedNote("signed note has no blank line before its signatures")
    text = note[: split + 1]
    _check_text(text)
    lines = note[split + 2 :].splitlines()
    if not lines:
        raise MalformedNote("signed note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote("signed note has too many signature lines")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNote("signature line does not start with an em dash and a space")
    name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    check_key_name(name)
    try:
        raw = base64.b64decode(b64, validate=True) if sep else b""
    except (ValueError, binascii.Error) as exc:  # ValueError: non-ASCII text
        raise MalformedNote("signature is not valid base64") from exc
    if len(raw) < 5:
        raise MalformedNote("signature is too short")
    return NoteSignature(name, raw[:4], raw[4:])


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> tuple[str, list[str]]:
    """Verify a signed note; return its text and the names of the keys that signed it.

    Raises ``MalformedNote`` if the note is not well formed and ``UnverifiedNote`` if a
    known key's signature is bad or no known key signed it.
    """
    text, signatures = parse_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[str] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None or sig.name in verified:
            continue
        if not verifier.verify(text.encode(), sig.signature):
            raise UnverifiedNote(f"signature by {sig.name} does not verify")
        verified.append(sig.name)
    if not verified:
        raise UnverifiedNote("note is not signed by any trusted key")
    return text, verified
