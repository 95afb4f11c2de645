"""Signing keys on a PKCS#11 token (SoftHSM2): generated there, never extractable,
and what they sign verifies with the published keys like file-store signatures do.

Each test initializes a fresh token in its own temporary directory (``SOFTHSM2_CONF``
points at a temporary ``softhsm2.conf``). Under ``make test`` and on CI a missing
SoftHSM2 or python-pkcs11 is a failure; elsewhere the module skips (``required``).
``make test`` installs them: ``apt-get install -y softhsm2`` and the ``dev`` extra.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.cli import tenure
from support.required import missing_tool
from support.shop import ACCOUNT, Shop
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.crypto import jws, pkcs11
from tenure.crypto.pkcs11 import Pkcs11KeyStore
from tenure.errors import ConfigurationError
from tenure.ledger.checkpoint import open_checkpoint
from tenure.ledger.note import NoteSigner, NoteVerifier, sign_note
from tenure.sdk.trust import TrustAnchor
from tenure.store import ledger_records
from tenure.store.engine import read_transaction

from .test_tokens import NOW, licensed_device

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
INSTALL = "apt-get install -y softhsm2 && pip install python-pkcs11"
LABEL = "tenure-test"
PIN = "31415926"
SO_PIN = "27182818"
ORIGIN = "tenure.localhost/ledger/default"


@dataclass(frozen=True)
class Token:
    label: str
    pin: str

    def settings(self, data_dir: Path, pin: str | None = None) -> Settings:
        return Settings(
            data_dir=data_dir,
            key_store="pkcs11",
            pkcs11_module=MODULE,
            pkcs11_token_label=self.label,
            pkcs11_pin=pin or self.pin,
        )


def _missing() -> str | None:
    util = shutil.which("softhsm2-util")
    if util is None or not MODULE.exists():
        return f"SoftHSM2 (softhsm2-util, {MODULE}) is not installed"
    if importlib.util.find_spec("pkcs11") is None:
        return "python-pkcs11 is not installed"
    return None


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Token:
    """A freshly initialized SoftHSM2 token of this test only."""
    missing = _missing()
    if missing is not None:
        missing_tool(f"{missing}; install with: {INSTALL}")
    tokens = tmp_path / "softhsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    init = ["softhsm2-util", "--init-token", "--free", "--label", LABEL]
    subprocess.run(
        [*init, "--so-pin", SO_PIN, "--pin", PIN],
        check=True,
        capture_output=True,
        timeout=30,
    )
    pkcs11.reset(str(MODULE))  # SoftHSM2 reads SOFTHSM2_CONF when initialized
    return Token(LABEL, PIN)


@pytest.fixture
def store(token: Token) -> Pkcs11KeyStore:
    return Pkcs11KeyStore.open(str(MODULE), token.label, token.pin)


def test_keys_are_generated_on_the_token_and_never_leave_it(store: Pkcs11KeyStore) -> None:
    from pkcs11.exceptions import AttributeSensitive

    assert not store.has_ledger_key(ORIGIN)
    signer = store.ledger_signer(ORIGIN)
    assert store.has_ledger_key(ORIGIN)
    key = store.session.find("tenure-ledger:" + ORIGIN)
    assert key is not None
    assert key.attribute("TOKEN") is True
    assert key.attribute("SENSITIVE") is True
    assert key.attribute("EXTRACTABLE") is False
    assert key.attribute("NEVER_EXTRACTABLE") is True
    assert key.attribute("ALWAYS_SENSITIVE") is True
    assert key.attribute("LOCAL") is True  # generated on the token, not imported
    with pytest.raises(AttributeSensitive):
        key.attribute("VALUE")
    assert signer.verifier.public_key == key.public_key().public_bytes_raw()

    kid, token_key = store.create(ACCOUNT)
    assert kid == jws.jwk_thumbprint(token_key.public_key())
    held = store.session.find(f"tenure-token:{ACCOUNT}:{kid}")
    assert held is not None
    assert held.attribute("EXTRACTABLE") is False
    with pytest.raises(AttributeSensitive):
        held.attribute("VALUE")
    with pytest.raises(ConfigurationError, match="not on PKCS#11 token"):
        store.load(ACCOUNT, "no-such-kid")


def test_keys_are_found_again_by_label_after_a_restart(token: Token) -> None:
    first = pkcs11.Pkcs11KeyStore.open(str(MODULE), token.label, token.pin)
    ledger_key = first.ledger_signer(ORIGIN).verifier.key_string()
    kid, key = first.create(ACCOUNT)
    pkcs11.reset(str(MODULE))  # as a new process would
    again = pkcs11.Pkcs11KeyStore.open(str(MODULE), token.label, token.pin)
    assert again.has_ledger_key(ORIGIN)
    assert again.ledger_signer(ORIGIN).verifier.key_string() == ledger_key
    assert again.load(ACCOUNT, kid).public_key() == key.public_key()


def test_token_signatures_are_plain_ed25519_and_threads_may_share_a_key(
    store: Pkcs11KeyStore,
) -> None:
    _, key = store.create(ACCOUNT)
    public = key.public_key()
    message = b"tenure\n"
    assert key.sign(message) == key.sign(message)  # Ed25519 is deterministic
    public.verify(key.sign(message), message)
    failures: list[BaseException] = []

    def sign_many(n: int) -> None:
        try:
            for i in range(50):
                data = f"{n}:{i}".encode()
                public.verify(key.sign(data), data)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=sign_many, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_note_signed_on_the_token_verifies_like_one_signed_in_process(
    store: Pkcs11KeyStore,
) -> None:
    text = f"{ORIGIN}\n1\n{base64.b64encode(bytes(32)).decode()}\n"
    on_token = store.ledger_signer(ORIGIN)
    in_process = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    for signer in (on_token, in_process):
        note = sign_note(text, [signer])
        assert note == sign_note(text, [signer])  # deterministic, on the token too
        verifier = NoteVerifier.from_key_string(signer.verifier.key_string())
        assert open_checkpoint(note, [verifier]).size == 1
        assert len(note) == len(sign_note(text, [in_process]))


def test_a_runtime_on_the_token_appends_and_signs_checkpoints(token: Token, data_dir: Path) -> None:
    runtime = Runtime.open(token.settings(data_dir))
    try:
        with runtime.ledger() as ledger:
            shop = Shop(ledger)
            shop.catalog()
            for n in range(5):
                shop.license(shop.customer(f"c{n}"), f"order-{n}")
        with read_transaction(runtime.store.engine) as conn:
            checkpoints = ledger_records.all_checkpoints(conn, ACCOUNT)
            head = ledger_records.read_head(conn, ACCOUNT)
        assert head is not None
        assert checkpoints
        verifier = runtime.keystore.ledger_signer(head.origin).verifier
        latest = runtime.sidecar.read(ACCOUNT) if runtime.sidecar else None
        assert latest is not None
        assert latest.size == head.size
        assert not list((data_dir / "keys").glob("ledger-*.key"))  # nothing on disk
        assert isinstance(runtime.keystore, Pkcs11KeyStore)
        on_token = runtime.keystore.session.find("tenure-ledger:" + head.origin)
        assert on_token is not None
        assert verifier.public_key == on_token.public_key().public_bytes_raw()
    finally:
        runtime.close()
    result = tenure("ledger", "verify", "--data-dir", data_dir, "--key", verifier.key_string())
    assert result.code == 0, result
    assert f"{head.size} events" in result.stdout
    assert f"{len(checkpoints)} checkpoints verified" in result.stdout


def test_offline_tokens_minted_with_a_token_key_verify_against_the_jwks(
    token: Token, data_dir: Path
) -> None:
    runtime = Runtime.open(token.settings(data_dir))
    try:
        serial, fph = licensed_device(runtime)
        minted = runtime.tokens().mint(ACCOUNT, serial, fph, NOW)
        document = jws.jwks(runtime.keyring().published(ACCOUNT, NOW))
        keys = jws.keys_from_jwks(json.dumps(document))
        claims = jws.verify(minted.token, keys, typ="tenure-offline+jwt", now=NOW.timestamp())
        assert claims["jti"] == minted.claims["jti"]
        assert isinstance(runtime.token_keys, Pkcs11KeyStore)
        (kid,) = keys
        held = runtime.token_keys.session.find(f"tenure-token:{ACCOUNT}:{kid}")
        assert held is not None
        assert held.public_key() == keys[kid]
        assert not list((data_dir / "keys").glob("token-*.key"))
    finally:
        runtime.close()


def test_the_key_set_is_signed_on_the_token_and_vouches_for_the_token_key(
    token: Token, data_dir: Path
) -> None:
    runtime = Runtime.open(token.settings(data_dir))
    try:
        serial, fph = licensed_device(runtime)  # the writer signs: the ledger key exists
        minted = runtime.tokens().mint(ACCOUNT, serial, fph, NOW)
        note = runtime.tokens().signed_keyset(ACCOUNT, runtime.keystore, NOW)
        ledger_key = runtime.keystore.ledger_signer(ORIGIN).verifier.key_string()
    finally:
        runtime.close()
    assert note is not None
    trusted = TrustAnchor(ledger_key).trust(note.encode(), ACCOUNT)
    claims = trusted.verify(minted.token, typ="tenure-offline+jwt", now=NOW.timestamp())
    assert claims["jti"] == minted.claims["jti"]


def test_a_wrong_pin_is_one_configuration_error_at_start(token: Token, data_dir: Path) -> None:
    with pytest.raises(ConfigurationError) as wrong:
        Runtime.open(token.settings(data_dir, pin="00000000"))
    message = str(wrong.value.message)
    assert "\n" not in message
    assert "refused the PIN (TENURE_PKCS11_PIN)" in message
    Runtime.open(token.settings(data_dir)).close()  # the right PIN still opens it
    with pytest.raises(ConfigurationError, match="refused the PIN"):
        Runtime.open(token.settings(data_dir, pin="00000000"))  # even once logged in


def test_a_missing_token_is_one_configuration_error(token: Token, data_dir: Path) -> None:
    settings = token.settings(data_dir).model_copy(update={"pkcs11_token_label": "absent"})
    with pytest.raises(ConfigurationError, match=r"'absent' .* not found"):
        Runtime.open(settings)


def test_a_data_dir_with_file_store_keys_is_not_switched_to_the_token(
    token: Token, data_dir: Path
) -> None:
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        runtime.keystore.ledger_signer(ORIGIN)  # a file-store key now exists
    finally:
        runtime.close()
    with pytest.raises(ConfigurationError, match="holds file-store signing keys"):
        Runtime.open(token.settings(data_dir))
