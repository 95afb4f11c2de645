"""What a verifier of tokens and revocation lists trusts: the SDK (``tenure.sdk.trust``
is its public name) and ``tenure token verify`` (docs/offline.md, "The SDK's trust
anchor").

With ``ledger_key`` (the account's ledger verifier key, shipped with the
application) the SDK trusts only keys that a key set note signed by that key vouches
for, and only for the time the note gives them: the cache holds the note itself and
every start verifies it again, so nothing written into the cache can add a key.
Without it, the SDK trusts the first key set it sees (trust on first use): the
cached JWKS at start, or the service's at activation; later keys come only from the
service at the client's URL, never from the cache.

Pure: the caller fetches and stores the documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.crypto import jws
from tenure.crypto.keyset import KeySet, issued_at, open_keyset, under_keyset
from tenure.errors import InvalidInput, MalformedNote, TokenRejected, UnverifiedNote
from tenure.ledger.note import NoteVerifier

JWKS_FILE = "jwks.json"
KEYSET_FILE = "keyset.note"
CLOCK_SKEW = 60
"""Leeway between the clocks of the service that made a key and the one that used it."""


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The keys the SDK verifies with and the document they came from."""

    keys: Mapping[str, Ed25519PublicKey]
    document: bytes
    """What the cache keeps: the signed key set note, or the JWKS without a ledger key."""
    vouched: KeySet | None = None
    """The verified key set that vouches for ``keys``; None when trusted on first use."""

    @property
    def file_name(self) -> str:
        return JWKS_FILE if self.vouched is None else KEYSET_FILE

    def verify(self, text: str, *, typ: str, now: float, **expected: Any) -> dict[str, Any]:
        """``jws.verify`` with these keys, then, under a ledger key, the key's life:
        a kid the key set does not vouch for, or a token outside its key's life,
        raises ``TokenRejected`` with reason ``untrusted_key``. ``expected`` holds
        ``jws.verify``'s ``issuer``, ``audience`` and ``subject``."""
        try:
            claims = jws.verify(text, self.keys, typ=typ, now=now, **expected)
        except TokenRejected as rejected:
            if self.vouched is None:
                raise
            raise under_keyset(rejected) from None
        self.check_life(text, claims)
        return claims

    def check_life(self, text: str, claims: Mapping[str, Any]) -> None:
        """Under a ledger key: ``untrusted_key`` unless the signing key's vouched life
        covers the token (``KeySet.check_token``: signed after the key was made,
        expiring before its end, living no longer than the note's token lifetime)."""
        if self.vouched is None:
            return
        kid = jws.signing_kid(text)
        self.vouched.check_token(kid, issued_at(claims), claims["exp"], CLOCK_SKEW)


class TrustAnchor:
    """How documents from the service or the cache become ``TrustedKeys``."""

    def __init__(self, ledger_key: str | None) -> None:
        """``ledger_key`` is a C2SP Ed25519 verifier key (``name+hash+base64``), or
        several separated by white space (the lines of ``GET /v1/ledger/key``: any one
        of them vouches). Raises ``InvalidInput`` (field ``ledger_key``) for anything
        else."""
        self.verifiers: tuple[NoteVerifier, ...] = ()
        if ledger_key is None:
            return
        try:
            self.verifiers = tuple(NoteVerifier.from_key_string(k) for k in ledger_key.split())
        except MalformedNote as error:
            raise InvalidInput(f"ledger_key: {error.message}", field="ledger_key") from None
        if not self.verifiers:
            raise InvalidInput("ledger_key is empty", field="ledger_key")

    @property
    def pinned(self) -> bool:
        """Whether a ledger key anchors trust (else: trust on first use)."""
        return bool(self.verifiers)

    @property
    def file_name(self) -> str:
        """The cache file that holds the trusted document."""
        return KEYSET_FILE if self.pinned else JWKS_FILE

    def trust(self, document: bytes, account: str | None) -> TrustedKeys:
        """The keys of ``document``: a key set note signed by the ledger key and made
        for ``account`` (None: whichever account it names), or a JWKS when no ledger
        key is pinned.

        Raises ``TokenRejected`` with reason ``untrusted_keyset`` for a note that is
        malformed, not signed by the ledger key or for another account, and
        ``InvalidInput`` for a JWKS that breaks ``jws.keys_from_jwks``'s rules.
        """
        if not self.verifiers:
            return TrustedKeys(jws.keys_from_jwks(document), document)
        try:
            vouched = open_keyset(document.decode("utf-8"), self.verifiers)
        except UnicodeDecodeError:
            raise TokenRejected("key set refused: not UTF-8", "untrusted_keyset") from None
        except (MalformedNote, UnverifiedNote) as error:
            raise TokenRejected(f"key set refused: {error.message}", "untrusted_keyset") from None
        if account is not None and vouched.account != account:
            raise TokenRejected(
                f"key set refused: it is account {vouched.account!r}'s, not {account!r}'s",
                "untrusted_keyset",
            )
        return TrustedKeys(vouched.public_keys(), document, vouched)
