"""Console sessions without server-side state: the API key, sealed in the cookie.

The cookie holds the signed-in API key encrypted and authenticated with AES-GCM
under a key derived from the master key, with the time it was issued. Nothing is
kept in memory, so any worker of any process that shares the master key opens it;
the key inside is authenticated again on every request, so revoking it ends every
session at once. The CSRF token of a session is an HMAC of the cookie value under
another derived key: a form POST proves it was rendered for this very session.

Before there is a session, the sign-in form is protected the same way: opening it
sets a pre-session cookie (``tenure_signin``, a random nonce, ``SameSite=Strict``)
and the form carries the HMAC of that nonce. Another site can neither read the
token nor make the browser send the cookie with a cross-site POST, so it cannot sign
the browser in with a key of its choosing (login CSRF).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenure.crypto.keystore import derive_key

COOKIE = "tenure_console"
SIGNIN_COOKIE = "tenure_signin"
"""The pre-session cookie: a nonce the sign-in form's token is bound to."""
_SIGNIN_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
_SIGNIN_CONTEXT = "signin:"
"""Separates sign-in tokens from session tokens (cookie values hold no colon)."""
MAX_AGE_SECONDS = 8 * 3600
_NONCE = 12
_CONTEXT = b"tenure/console-session/v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SessionSealer:
    """Seals API keys into cookie values and opens them again; mints CSRF tokens."""

    seal_key: bytes
    csrf_key: bytes
    max_age: int = MAX_AGE_SECONDS
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_master(cls, master: bytes) -> SessionSealer:
        """Subkeys of the master key, one per purpose."""
        return cls(derive_key(master, "console-session"), derive_key(master, "console-csrf"))

    def seal(self, api_key: str) -> str:
        """A cookie value holding ``api_key`` and the time it was sealed."""
        nonce = os.urandom(_NONCE)
        plain = struct.pack(">Q", int(self.clock())) + api_key.encode()
        return _b64(nonce + AESGCM(self.seal_key).encrypt(nonce, plain, _CONTEXT))

    def open(self, value: str) -> str | None:
        """The API key in a cookie value; None if it was not sealed here, was altered,
        or is older than ``max_age`` seconds."""
        try:
            raw = _unb64(value)
            plain = AESGCM(self.seal_key).decrypt(raw[:_NONCE], raw[_NONCE:], _CONTEXT)
            (issued,) = struct.unpack(">Q", plain[:8])
            key = plain[8:].decode()
        except (InvalidTag, binascii.Error, ValueError, struct.error):
            return None
        if not 0 <= self.clock() - issued <= self.max_age:
            return None
        return key

    def csrf_token(self, value: str) -> str:
        """The CSRF token of the session whose cookie value is ``value``."""
        return hmac.new(self.csrf_key, value.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, value: str, token: str) -> bool:
        """Does ``token`` belong to the session ``value``? Constant time; any text
        (non-ASCII included, which ``compare_digest`` refuses as ``str``) is False
        when it is not the token."""
        return hmac.compare_digest(self.csrf_token(value).encode(), token.encode(errors="replace"))

    def signin_token(self, nonce: str) -> str:
        """The sign-in form's token for the pre-session cookie ``nonce``."""
        return self.csrf_token(_SIGNIN_CONTEXT + nonce)

    def signin_valid(self, nonce: str | None, token: str) -> bool:
        """Does ``token`` belong to the pre-session ``nonce``? False without a nonce
        of the form ``new_signin_nonce`` makes; constant time otherwise."""
        if nonce is None or not is_signin_nonce(nonce):
            return False
        return self.csrf_valid(_SIGNIN_CONTEXT + nonce, token)


def new_signin_nonce() -> str:
    """A fresh pre-session nonce (256 random bits)."""
    return secrets.token_urlsafe(32)


def is_signin_nonce(value: str) -> bool:
    """Is ``value`` shaped like a nonce of ``new_signin_nonce``?"""
    return _SIGNIN_NONCE.fullmatch(value) is not None
