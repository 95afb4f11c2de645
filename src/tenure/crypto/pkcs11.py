"""The PKCS#11 key store: Ed25519 signing keys generated on a token (an HSM; SoftHSM2
in tests), so their private parts never leave it (docs/keys.md).

Keys are generated on the token with ``CKM_EC_EDWARDS_KEY_PAIR_GEN`` as token objects
(``CKA_TOKEN``) that are sensitive and never extractable (``CKA_SENSITIVE`` true,
``CKA_EXTRACTABLE`` false), and sign with ``CKM_EDDSA`` (pure Ed25519, the signatures
``cryptography`` makes and verifies). They are found by ``CKA_LABEL``:

- ``tenure-ledger:<origin>`` — the ledger key of a checkpoint origin;
- ``tenure-token:<account>:<kid>`` — an offline-token key (``kid`` is its JWK
  thumbprint, known only once the key exists: the pair is generated under a
  ``…:new-<random>`` label, then relabelled).

python-pkcs11 sessions are not thread-safe, and a login holds for every session of a
process: each process keeps one logged-in session per token, shared by every store
and thread of the process and serialized by a lock. Creation across processes is
serialized by the database (ledger keys are made inside the writer's transaction,
token keys inside a write transaction); two keys under one label are refused.

``python-pkcs11`` is an optional dependency (``pip install tenure[hsm]``), imported
only when a PKCS#11 store is opened.
"""

from __future__ import annotations

import hmac
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.crypto import jws
from tenure.errors import ConfigurationError
from tenure.ledger.note import Ed25519Signer, NoteSigner

if TYPE_CHECKING:
    import pkcs11

ED25519_PARAMS = bytes.fromhex("06032b6570")
"""``CKA_EC_PARAMS`` of Ed25519: the DER OID 1.3.101.112 (RFC 8410)."""
LEDGER_PREFIX = "tenure-ledger:"
OFFLINE_KEY_PREFIX = "tenure-token:"


def _pkcs11() -> Any:
    """The ``pkcs11`` package, or a ``ConfigurationError`` saying how to install it."""
    try:
        import pkcs11
    except ImportError:
        raise ConfigurationError(
            "TENURE_KEY_STORE=pkcs11 needs python-pkcs11: pip install 'tenure[hsm]'"
        ) from None
    return pkcs11


def _raw_public(point: bytes) -> Ed25519PublicKey:
    """The key of a ``CKA_EC_POINT``: a DER OCTET STRING (``04 20`` + 32 bytes, as
    SoftHSM2 gives it) or, on some tokens, the 32 raw bytes."""
    raw = point[2:] if len(point) == 34 and point[:2] == b"\x04\x20" else point
    if len(raw) != 32:
        raise ConfigurationError(f"the token returned an Ed25519 point of {len(point)} bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


class TokenKey:
    """An Ed25519 private key held on a token: it signs there, and only its public key
    is ever read (an ``Ed25519Signer``, like ``Ed25519PrivateKey``)."""

    def __init__(self, session: Pkcs11Session, label: str, private: Any, public: Any) -> None:
        self.label = label
        self._session = session
        self._private = private
        self._public_object = public
        self._public = _raw_public(bytes(session.read(public, "EC_POINT")))

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature of ``data``, made on the token (``CKM_EDDSA``)."""
        return self._session.sign(self._private, data)

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def attribute(self, name: str) -> Any:
        """A ``CKA_<name>`` attribute of the private key, as the token reports it
        (reading ``VALUE`` fails: the key is sensitive)."""
        return self._session.read(self._private, name)


@dataclass(frozen=True)
class _Opened:
    session: Pkcs11Session
    pin_digest: bytes
    pid: int


_OPENED: dict[tuple[str, str], _Opened] = {}
_OPENED_LOCK = threading.Lock()


class Pkcs11Session:
    """One logged-in read/write session on one token; every call holds its lock."""

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        p11 = _pkcs11()
        self._p11 = p11
        self.token_label = token_label
        self._lock = threading.RLock()
        where = f"PKCS#11 token {token_label!r} ({module})"
        try:
            token = p11.lib(module).get_token(token_label=token_label)
            self._session: pkcs11.Session = token.open(user_pin=pin, rw=True)
        except p11.exceptions.NoSuchToken:
            raise ConfigurationError(f"{where} not found (TENURE_PKCS11_TOKEN_LABEL)") from None
        except (p11.exceptions.PinIncorrect, p11.exceptions.PinInvalid, p11.exceptions.PinLenRange):
            raise ConfigurationError(f"{where} refused the PIN (TENURE_PKCS11_PIN)") from None
        except p11.exceptions.PinLocked:
            raise ConfigurationError(f"{where}: the user PIN is locked") from None
        except (p11.exceptions.PKCS11Error, RuntimeError, OSError) as exc:
            raise ConfigurationError(f"{where} cannot be opened: {exc!r}") from None

    def read(self, obj: Any, attribute: str) -> Any:
        with self._lock:
            return obj[getattr(self._p11.Attribute, attribute)]

    def sign(self, private: Any, data: bytes) -> bytes:
        with self._lock:
            return bytes(private.sign(data, mechanism=self._p11.Mechanism.EDDSA))

    def find(self, label: str) -> TokenKey | None:
        """The key pair labelled ``label``, or None; ``ConfigurationError`` if the
        token holds more than one, or a private key without its public key."""
        p11 = self._p11
        with self._lock:
            found = {
                kind: list(
                    self._session.get_objects(
                        {p11.Attribute.CLASS: kind, p11.Attribute.LABEL: label}
                    )
                )
                for kind in (p11.ObjectClass.PRIVATE_KEY, p11.ObjectClass.PUBLIC_KEY)
            }
        private, public = found[p11.ObjectClass.PRIVATE_KEY], found[p11.ObjectClass.PUBLIC_KEY]
        if not private:
            return None
        if len(private) > 1 or len(public) != 1:
            raise ConfigurationError(
                f"PKCS#11 token {self.token_label!r} holds {len(private)} private and "
                f"{len(public)} public keys labelled {label!r}; expected one pair"
            )
        return TokenKey(self, label, private[0], public[0])

    def generate(self, label: str) -> TokenKey:
        """A new Ed25519 key pair generated on the token: a non-extractable,
        sensitive private key and its public key, both stored on the token."""
        p11 = self._p11
        a = p11.Attribute
        private_template = {
            a.TOKEN: True,
            a.PRIVATE: True,
            a.SENSITIVE: True,
            a.EXTRACTABLE: False,
            a.SIGN: True,
        }
        with self._lock:
            public, private = self._session.generate_keypair(
                p11.KeyType.EC_EDWARDS,
                mechanism=p11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                store=True,
                label=label,
                public_template={a.EC_PARAMS: ED25519_PARAMS, a.TOKEN: True, a.VERIFY: True},
                private_template=private_template,
            )
        return TokenKey(self, label, private, public)

    def relabel(self, key: TokenKey, label: str) -> TokenKey:
        """``key`` under a new ``CKA_LABEL`` (both halves of the pair)."""
        with self._lock:
            for obj in (key._private, key._public_object):
                obj[self._p11.Attribute.LABEL] = label
        return TokenKey(self, label, key._private, key._public_object)


def open_session(module: str, token_label: str, pin: str) -> Pkcs11Session:
    """This process's logged-in session on ``token_label``, opened on first use.

    A PKCS#11 login holds for the whole process, so stores share one session per
    token; a later caller must still present the same PIN."""
    digest = hmac.new(b"tenure-pkcs11-pin", pin.encode(), "sha256").digest()
    key = (module, token_label)
    with _OPENED_LOCK:
        opened = _OPENED.get(key)
        if opened is not None and opened.pid == os.getpid():
            if not hmac.compare_digest(opened.pin_digest, digest):
                where = f"PKCS#11 token {token_label!r} ({module})"
                raise ConfigurationError(f"{where} refused the PIN (TENURE_PKCS11_PIN)")
            return opened.session
        if opened is not None:  # a forked child: PKCS#11 must be initialized again
            _pkcs11().lib(module).reinitialize()
        session = Pkcs11Session(module, token_label, pin)
        _OPENED[key] = _Opened(session, digest, os.getpid())
        return session


def reset(module: str) -> None:
    """Forget this process's sessions on ``module`` and initialize it again (so a
    module such as SoftHSM2 rereads its configuration; for tests)."""
    with _OPENED_LOCK:
        for key in [k for k in _OPENED if k[0] == module]:
            del _OPENED[key]
        p11 = _pkcs11()
        p11.lib(module).reinitialize()


class Pkcs11KeyStore:
    """Ledger keys (a ``LedgerKeyStore``) and token keys (a ``TokenKeyStore``) on a
    PKCS#11 token, created there on first use."""

    def __init__(self, session: Pkcs11Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._ledger: dict[str, NoteSigner] = {}
        self._tokens: dict[tuple[str, str], TokenKey] = {}

    @classmethod
    def open(cls, module: str, token_label: str, pin: str | None) -> Pkcs11KeyStore:
        """Log in to the token; ``ConfigurationError`` (one line) if it cannot be."""
        if not token_label:
            raise ConfigurationError("TENURE_KEY_STORE=pkcs11 needs TENURE_PKCS11_TOKEN_LABEL")
        if pin is None:
            raise ConfigurationError("TENURE_KEY_STORE=pkcs11 needs TENURE_PKCS11_PIN")
        return cls(open_session(module, token_label, pin))

    # ------------------------------------------------------------ ledger keys

    def has_ledger_key(self, origin: str) -> bool:
        """Whether the token holds the key of ``origin`` (without creating it)."""
        return origin in self._ledger or self.session.find(LEDGER_PREFIX + origin) is not None

    def ledger_signer(self, origin: str) -> NoteSigner:
        """The signer whose key name is ``origin``; its key is generated on the token
        on first use."""
        with self._lock:
            signer = self._ledger.get(origin)
            if signer is None:
                label = LEDGER_PREFIX + origin
                key = self.session.find(label) or self.session.generate(label)
                signer = self._ledger[origin] = NoteSigner(origin, key)
            return signer

    # ------------------------------------------------------------ token keys

    def create(self, account: str) -> tuple[str, Ed25519Signer]:
        """A new token key of ``account``, generated on the token, and its kid."""
        pending = self.session.generate(f"{OFFLINE_KEY_PREFIX}{account}:new-{os.urandom(8).hex()}")
        kid = jws.jwk_thumbprint(pending.public_key())
        key = self.session.relabel(pending, f"{OFFLINE_KEY_PREFIX}{account}:{kid}")
        self._tokens[account, kid] = key
        return kid, key

    def load(self, account: str, kid: str) -> Ed25519Signer:
        """The token key ``kid`` of ``account``; ``ConfigurationError`` if the token
        does not hold it."""
        key = self._tokens.get((account, kid))
        if key is None:
            key = self.session.find(f"{OFFLINE_KEY_PREFIX}{account}:{kid}")
            if key is None:
                raise ConfigurationError(
                    f"token signing key {kid} of {account} is not on PKCS#11 token "
                    f"{self.session.token_label!r}"
                )
            self._tokens[account, kid] = key
        return key
