"""The signed key set: an account's token keys, vouched for by its ledger key
(docs/offline.md, "The signed key set").

The JWKS says which keys sign an account's tokens, but nothing vouches for it: a
client that keeps it in a writable cache trusts whatever the cache holds. The key
set note carries the same public keys as a C2SP signed note, signed by the account's
ledger key, the key auditors already pin. Its text is exactly:

    <origin>
    tenure-keyset v2
    account <account>
    time <time>
    token-lifetime <lifetime>
    key <kid> <x> <valid from> <valid until>
    …

- ``<origin>``: the account's ledger origin (the name of the key that signs it);
- ``<time>``: when the note was signed; ``<lifetime>``: the account's longest offline
  token lifetime then, in seconds (at least 1); both integer Unix seconds;
- ``<kid>``: the RFC 7638 thumbprint of the key, ``<x>``: the key itself (base64url,
  unpadded, as the JWK's ``x``); a kid must be the thumbprint of its x;
- ``<valid from>``: when the key was made, ``<valid until>``: the last second a
  token it signed may live (``-`` while it signs), both integer Unix seconds;
- one line per key, in ascending (valid from, kid) order; none for an account
  without keys yet.

**A key's life** (``KeySet.life``) runs from ``valid from`` to ``valid until``; a key
still signing is vouched for as if it were retired when the note was signed: until
``time + lifetime``, the bound the key ring gives a retired key's ``publish_until``.
So an old note vouches for nothing its key signs long after it: a token is trusted
only when ``valid from - leeway <= iat <= exp <= end + leeway`` and
``exp - iat <= lifetime`` (``check_token``); a license file, whose own life is
longer, only when it was signed in the key's life (``check_signed``).

The second line makes the note a kind of its own: a checkpoint's second line is a
tree size, so neither can be taken for the other although one key signs both.
Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.crypto import jws
from tenure.errors import InvalidInput, MalformedNote, TokenRejected
from tenure.ledger.note import NoteSigner, NoteVerifier, check_key_name, open_note, sign_note

HEADER = "tenure-keyset v2"
MAX_KEYS = 1000
_ACCOUNT = re.compile(r"^account ([a-z0-9][a-z0-9-]{1,62})$")
_TIME = re.compile(r"^time (0|[1-9][0-9]{0,15})$")
_LIFETIME = re.compile(r"^token-lifetime ([1-9][0-9]{0,15})$")
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
    """None (``-``) while the key signs: ``KeySet.life`` bounds it by the note's time."""

    def public_key(self) -> Ed25519PublicKey:
        return jws.public_key_from_x(self.x)


@dataclass(frozen=True, slots=True)
class KeySet:
    """The parsed text of a key set note."""

    origin: str
    account: str
    time: int
    """When the note was signed, Unix seconds."""
    token_lifetime: int
    """The account's longest offline token lifetime when it was signed, seconds."""
    keys: tuple[VouchedKey, ...]

    def key(self, kid: str) -> VouchedKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """kid → public key, as ``jws.verify`` takes them."""
        return {key.kid: key.public_key() for key in self.keys}

    def life(self, key: VouchedKey) -> tuple[int, int]:
        """The first and last second this note vouches for ``key``'s tokens: a key
        still signing counts as retired at the note's time, so its tokens may live
        until ``time + token_lifetime``, as a retired key's do after its retirement."""
        end = key.valid_until
        return key.valid_from, self.time + self.token_lifetime if end is None else end

    def check_token(self, kid: str, issued: int, expires: int, leeway: float) -> None:
        """A token (or revocation list) signed by ``kid``, issued at ``issued`` and
        expiring at ``expires``, lies in that key's life (``leeway`` seconds of clock
        skew at both ends) and lives no longer than ``token_lifetime``. Raises
        ``TokenRejected`` with reason ``untrusted_key`` otherwise."""
        start, end = self._life_of(kid)
        if not start - leeway <= issued <= expires <= end + leeway:
            raise untrusted(f"it lies outside the life the ledger key gives key {kid}")
        if expires - issued > self.token_lifetime:
            raise untrusted(
                f"it lives longer than the account's longest token lifetime "
                f"({self.token_lifetime} s)"
            )

    def check_signed(self, kid: str, issued: int, leeway: float) -> None:
        """A document signed by ``kid`` at ``issued`` that lives on its own terms (a
        license file) was signed in that key's life; ``untrusted_key`` otherwise."""
        start, end = self._life_of(kid)
        if not start - leeway <= issued <= end + leeway:
            raise untrusted(f"it was not signed in the life the ledger key gives key {kid}")

    def _life_of(self, kid: str) -> tuple[int, int]:
        key = self.key(kid)
        if key is None:
            raise untrusted("its key is not in the key set the ledger key signed")
        return self.life(key)


def untrusted(why: str) -> TokenRejected:
    """The refusal of a token whose key the key set does not vouch for."""
    return TokenRejected(f"untrusted signing key: {why}", "untrusted_key")


def under_keyset(rejected: TokenRejected) -> TokenRejected:
    """``jws.verify``'s refusal as it reads under a key set note: a kid the note does
    not name is ``untrusted_key`` (the note is the whole key set), not ``unknown_kid``."""
    if rejected.reason == "unknown_kid":
        return untrusted("its key is not in the key set the ledger key signed")
    return rejected


def issued_at(claims: Mapping[str, Any]) -> int:
    """When a verified token or file says it was signed: its ``iat``, else its ``nbf``;
    ``untrusted_key`` when it says neither (no key's life can then cover it)."""
    issued = claims.get("iat", claims.get("nbf"))
    if type(issued) is not int:
        raise untrusted("it says not when it was signed")
    return issued


def keyset_text(keyset: KeySet) -> str:
    """The note text of ``keyset`` (the exact format in the module docstring).
    Raises ``MalformedNote`` for an origin that is not a key name."""
    check_key_name(keyset.origin)
    lines = [
        keyset.origin,
        HEADER,
        f"account {keyset.account}",
        f"time {keyset.time}",
        f"token-lifetime {keyset.token_lifetime}",
    ]
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
    if len(lines) < 6 or lines[-1] != "":
        raise MalformedNote(
            "a key set has an origin, a header, an account, a time and a token-lifetime line"
        )
    origin, header, account_line, time_line, lifetime_line, *key_lines = lines[:-1]
    check_key_name(origin)
    if header != HEADER:
        raise MalformedNote(f"the second line of a key set must be {HEADER!r}")
    account = _ACCOUNT.fullmatch(account_line)
    if account is None:
        raise MalformedNote("the third line of a key set must be 'account <account id>'")
    signed_at = _TIME.fullmatch(time_line)
    if signed_at is None:
        raise MalformedNote("the fourth line of a key set must be 'time <unix seconds>'")
    lifetime = _LIFETIME.fullmatch(lifetime_line)
    if lifetime is None:
        raise MalformedNote("the fifth line of a key set must be 'token-lifetime <seconds>'")
    if len(key_lines) > MAX_KEYS:
        raise MalformedNote(f"a key set holds at most {MAX_KEYS} keys")
    keys = tuple(_key(line, number) for number, line in enumerate(key_lines, start=6))
    if len({key.kid for key in keys}) != len(keys):
        raise MalformedNote("a key set names a kid twice")
    return KeySet(origin, account[1], int(signed_at[1]), int(lifetime[1]), keys)


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
