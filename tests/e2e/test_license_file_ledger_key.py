"""``tenure license-file verify`` trusts the ledger key, as ``tenure token verify``
does (issue 14 follow-up, item 2): ``--ledger-key KEY [--keyset FILE]`` takes the
signing keys from a key set note signed by that key, and a file counts only when it
was signed by a key the note vouches for, inside that key's life."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.api import issue_license
from support.remote import assert_one_line_error, ok_json, tenure
from support.server import Server
from tenure.crypto import jws, license_file
from tenure.crypto.keyset import open_keyset
from tenure.crypto.keystore import TokenKeys, load_master_key
from tenure.ledger.note import NoteSigner, NoteVerifier

DEVICE = "vault-7"
OFFLINE = "http://127.0.0.1:9"
DAY = 86_400


def issue_file(server: Server, serial: str, path: Path, *flags: str) -> Path:
    done = tenure(
        server, "license-file", "issue", serial, "--fingerprint", DEVICE, "-o", str(path), *flags
    )
    assert done.returncode == 0, done.stderr
    return path


def save_note(owner: httpx.Client, path: Path) -> Path:
    """The key set note, saved when the file was issued: what the machine keeps."""
    answer = owner.get("/v1/keyset")
    assert answer.status_code == 200, answer.text
    path.write_text(answer.text)
    return path


def verify(server: Server, file: Path, *trust: str, **changes: str) -> Any:
    return tenure(
        server, "license-file", "verify", str(file), *trust, "--fingerprint", DEVICE, **changes
    )


def reissued(file: Path, key: Ed25519PrivateKey, kid: str, **changes: Any) -> str:
    """The claims of the (plain) license file ``file``, changed, signed by ``key``."""
    body = license_file.dearmor(file.read_text())
    claims = {**orjson.loads(jws.b64url_decode(body.split(".")[1])), **changes}
    return license_file.issue(claims, key, kid)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_a_license_file_verifies_offline_with_the_ledger_key_and_its_saved_note(
    own_server: Server,
    catalog_owner: httpx.Client,
    pinned_ledger_key: str,
    tmp_path: Path,
    encrypt: bool,
) -> None:
    license = issue_license(catalog_owner)
    flags = ("--encrypt",) if encrypt else ()
    file = issue_file(own_server, license["serial"], tmp_path / "studio.lic", *flags)
    note = save_note(catalog_owner, tmp_path / "keyset.note")
    with_key = ("--license-key", license["key"]) if encrypt else ()
    trust = ("--ledger-key", pinned_ledger_key, "--keyset", str(note), *with_key)
    good = ok_json(verify(own_server, file, *trust, "-o", "json", url=OFFLINE))
    assert (good["serial"], good["product"]) == (license["serial"], "studio")
    fetched = verify(
        own_server, file, "--ledger-key", pinned_ledger_key, *with_key
    )  # note from the service
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.startswith("valid license file ")


def test_a_license_file_signed_by_a_key_the_note_does_not_vouch_for_is_untrusted(
    own_server: Server, catalog_owner: httpx.Client, pinned_ledger_key: str, tmp_path: Path
) -> None:
    file = issue_file(own_server, issue_license(catalog_owner)["serial"], tmp_path / "studio.lic")
    note = save_note(catalog_owner, tmp_path / "keyset.note")
    trust = ("--ledger-key", pinned_ledger_key, "--keyset", str(note))
    attacker = Ed25519PrivateKey.generate()
    forged = tmp_path / "forged.lic"
    forged.write_text(reissued(file, attacker, jws.jwk_thumbprint(attacker.public_key())))
    assert_one_line_error(verify(own_server, forged, *trust), "rejected: untrusted_key")

    # The account's own key, stolen: a file it "signed" before it existed.
    vouched = open_keyset(note.read_text(), [NoteVerifier.from_key_string(pinned_ledger_key)])
    current = next(key for key in vouched.keys if key.valid_until is None)
    stolen = TokenKeys(own_server.data_dir / "keys", load_master_key(own_server.data_dir))
    before = current.valid_from - DAY
    backdated = tmp_path / "backdated.lic"
    signed = reissued(
        file, stolen.load("default", current.kid), current.kid, iat=before, nbf=before
    )
    backdated.write_text(signed)
    assert_one_line_error(verify(own_server, backdated, *trust), "rejected: untrusted_key")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(httpx.get(f"{own_server.url}/.well-known/jwks.json").text)
    assert verify(own_server, backdated, "--jwks", str(jwks)).returncode == 0  # JWKS: no life


def test_a_note_the_ledger_key_did_not_sign_is_refused(
    own_server: Server, catalog_owner: httpx.Client, tmp_path: Path
) -> None:
    file = issue_file(own_server, issue_license(catalog_owner)["serial"], tmp_path / "studio.lic")
    note = save_note(catalog_owner, tmp_path / "keyset.note")
    origin = note.read_text().split("\n", 1)[0]
    other = NoteSigner(origin, Ed25519PrivateKey.generate()).verifier.key_string()
    refused = verify(own_server, file, "--ledger-key", other, "--keyset", str(note))
    assert_one_line_error(refused, "rejected: untrusted_keyset")


def test_license_file_verify_takes_exactly_one_source_of_keys(
    own_server: Server, catalog_owner: httpx.Client, pinned_ledger_key: str, tmp_path: Path
) -> None:
    file = issue_file(own_server, issue_license(catalog_owner)["serial"], tmp_path / "studio.lic")
    note = str(save_note(catalog_owner, tmp_path / "keyset.note"))
    both = verify(own_server, file, "--jwks", note, "--ledger-key", pinned_ledger_key)
    assert_one_line_error(both, "--jwks", "--ledger-key")
    assert_one_line_error(verify(own_server, file), "--jwks", "--ledger-key")
    keyset_alone = verify(own_server, file, "--jwks", note, "--keyset", note)
    assert_one_line_error(keyset_alone, "--keyset needs --ledger-key")
