"""The signed key set: an account's token keys, vouched for by its ledger key
(docs/offline.md, "The signed key set").

The JWKS says which keys sign an account's tokens, but nothing vouches for it: a
client that keeps it in a writable cache trusts whatever the cache holds. The key
set note carries the same public keys as a C2SP signed note, signed by the account's
ledger key, the key auditors already pin. Its text is exactly:

    <origin>
    tenure-keyset v1
    account <account>
    key <kid> <x> <valid from> <valid until>
    …

- ``<origin>``: the account's ledger origin (the name of the key that signs it);
- ``<kid>``: the RFC 7638 thumbprint of the key, ``<x>``: the key itself (base64url,
  unpadded, as the JWK's ``x``); a kid must be the thumbprint of its x;
- ``<valid from>``: when the key was made, ``<valid until>``: the last second a
  token it signed may live (``-`` while it signs), both integer Unix seconds;
- one line per key, in ascending (valid from, kid) order; none for an account
  without keys yet.

The second line makes the note a kind of its own: a checkpoint's second line is a
tree size, so neither can be taken for the other although one key signs both.
Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.crypto import jws
from tenure.errors import InvalidInput, MalformedNote
from tenure.ledger.note import NoteSigner, NoteVerifier, check_key_name, open_note, sign_note

HEADER = "tenure-keyset v1"
MAX_KEYS = 1000
_ACCOUNT = re.compile(r"^account ([a-z0-9][a-z0-9-]{1,62})$")
_KEY = re.compile(
    r"^key ([A-Za-z0-9_-]{43}) ([A-Za-z0-9_-]{43}) (0|[1-9][0-9]{0,15}) (-|0|[1-9][0-9]{0,15})$"
)


@dataclass(frozen=True, slots=True)
class VouchedKey:
    """One token key of the set and the time its tokens may live in."""

    kid: str
    x: str
    valid_from: int
    valid_until: int | None

    def public_key(self) -> Ed25519PublicKey:
        return jws.public_key_from_x(self.x)

    def covers(self, issued_at: int, expires_at: int, leeway: int) -> bool:
        """Whether a token issued at ``issued_at`` and expiring at ``expires_at`` lies
        in this key's life (``leeway`` seconds of clock skew before it was made)."""
        if issued_at < self.valid_from - leeway:
            return False
        return self.valid_until is None or expires_at <= self.valid_until


@dataclass(frozen=True, slots=True)
class KeySet:
    """The parsed text of a key set note."""

    origin: str
    account: str
    keys: tuple[VouchedKey, ...]

    def key(self, kid: str) -> VouchedKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """kid → public key, as ``jws.verify`` takes them."""
        return {key.kid: key.public_key() for key in self.keys}


def keyset_text(keyset: KeySet) -> str:
    """The note text of ``keyset`` (the exact format in the module docstring).
    Raises ``MalformedNote`` for an origin that is not a key name."""
    check_key_name(keyset.origin)
    lines = [keyset.origin, HEADER, f"account {keyset.account}"]
    for key in sorted(keyset.keys, key=lambda k: (k.valid_from, k.kid)):
        until = "-" if key.valid_until is None else str(key.valid_until)
        lines.append(f"key {key.kid} {key.x} {key.valid_from} {until}")
    text = "\n".join(lines) + "\n"
    parse_keyset_text(text)  # never sign what a verifier would refuse
    return text


def sign_keyset(keyset: KeySet, signers: Sequence[NoteSigner]) -> str:
    """``keyset`` as a C2SP signed note, signed by every signer."""
    return sign_note(keyset_text(keyset), signers)


def open_keyset(note: str, verifiers: Iterable[NoteVerifier]) -> KeySet:
    """The key set in ``note`` once a signature by one of ``verifiers`` holds.

    Raises ``MalformedNote`` for a note or text that breaks the format and
    ``UnverifiedNote`` when no trusted key signed it (or a trusted key's signature
    is bad).
    """
    text, _ = open_note(note, verifiers)
    return parse_keyset_text(text)


def parse_keyset_text(text: str) -> KeySet:
    """The key set of a note text, unverified; ``MalformedNote`` names the bad line."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise MalformedNote("a key set has an origin, a header and an account line")
    origin, header, account_line, *key_lines = lines[:-1]
    check_key_name(origin)
    if header != HEADER:
        raise MalformedNote(f"the second line of a key set must be {HEADER!r}")
    account = _ACCOUNT.fullmatch(account_line)
    if account is None:
        raise MalformedNote("the third line of a key set must be 'account <account id>'")
    if len(key_lines) > MAX_KEYS:
        raise MalformedNote(f"a key set holds at most {MAX_KEYS} keys")
    keys = tuple(_key(line, number) for number, line in enumerate(key_lines, start=4))
    if len({key.kid for key in keys}) != len(keys):
        raise MalformedNote("a key set names a kid twice")
    return KeySet(origin, account[1], keys)


def _key(line: str, number: int) -> VouchedKey:
    match = _KEY.fullmatch(line)
    if match is None:
        raise MalformedNote(f"line {number} of the key set is not 'key <kid> <x> <from> <until>'")
    kid, x, start, end = match.groups()
    try:
        thumbprint = jws.jwk_thumbprint(jws.public_key_from_x(x))
    except InvalidInput:
        raise MalformedNote(f"line {number} of the key set holds no Ed25519 key") from None
    if thumbprint != kid:
        raise MalformedNote(f"line {number} of the key set: the kid is not the key's thumbprint")
    until = None if end == "-" else int(end)
    if until is not None and until < int(start):
        raise MalformedNote(f"line {number} of the key set ends before it starts")
    return VouchedKey(kid, x, int(start), until)
