"""The SDK's trust anchor is the account's ledger key (issue 14, item 3), over real HTTP.

The attack: the SDK's cache is writable by whoever runs the application, so an own
Ed25519 key written into the cached key set and a self-signed token with
``seats: 9999`` were allowed offline. With ``LicenseClient(..., ledger_key=...)`` a
token counts only when its key is vouched for by a key set note that the ledger key
signed (``GET /v1/keyset``): forged caches are denied with ``untrusted_key``, token
key rotation keeps working without a new pin, and a key set signed by another ledger
key is refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.api import apply_example_catalog, issue_license, ledger_key_of, rotate_token_keys
from support.cli import subprocess_env
from support.remote import assert_one_line_error, tenure
from support.server import Server, seeded_server
from tenure.crypto import jws
from tenure.crypto.keyset import HEADER, KeySet, open_keyset
from tenure.errors import InvalidInput
from tenure.ledger.note import NoteSigner, NoteVerifier, parse_note, sign_note
from tenure.sdk import TOKEN_TYP, ActivationFailed, LicenseClient, fingerprint_hash
from tenure.sdk.cache import JWKS_FILE, KEYSET_FILE, STATE_FILE, TOKEN_FILE

DEVICE = "anchored-pc"
ORIGIN = "tenure.localhost/ledger/default"
OFFLINE = "http://127.0.0.1:9"
"""A URL nothing answers at: the application has no network."""

Client = Callable[..., LicenseClient]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "trust-anchor") as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


@pytest.fixture(scope="module")
def ledger_key(owner: httpx.Client) -> str:
    """The verifier key an application ships: ``GET /v1/ledger/key``."""
    return ledger_key_of(owner)


@pytest.fixture
def sdk(server: Server, closing: Callable[[Any], Any]) -> Client:
    """``sdk(license, cache, ledger_key, url=server)``: a client, closed after the test."""

    def make(
        license: dict[str, Any], cache: Path, ledger_key: str | None, url: str = server.url
    ) -> LicenseClient:
        client: LicenseClient = closing(LicenseClient(
            url, license["key"], license["serial"], DEVICE, cache,
            refresh=False, ledger_key=ledger_key,
        ))  # fmt: skip
        return client

    return make


def vouched_in(cache: Path, ledger_key: str) -> KeySet:
    """The cached key set note, verified with ``ledger_key``."""
    note = (cache / KEYSET_FILE).read_text()
    return open_keyset(note, [NoteVerifier.from_key_string(ledger_key)])


def forge(cache: Path, serial: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    """The attack: an own key as a JWKS and a token it signed, with ``seats: 9999``
    and this device's ``fph``, written over the cache. Returns the kid and its JWKS."""
    state = orjson.loads((cache / STATE_FILE).read_bytes())
    key = Ed25519PrivateKey.generate()
    kid = jws.jwk_thumbprint(key.public_key())
    now = int(time.time())
    claims = {
        "iss": f"{ORIGIN.rsplit('/', 1)[0]}/{state['account']}", "sub": serial,
        "aud": "studio", "iat": now, "nbf": now, "exp": now + 86_400,
        "jti": "tok_" + "f" * 26, "act": "act_" + "f" * 26,
        "fph": fingerprint_hash(serial, DEVICE),
        "ent": {"feature:export-pdf": True, "seats": 9999}, "core": [], "grace": 0,
        "lic": {"status": "active", "expires_at": None}, "ckpt": None, **changes,
    }  # fmt: skip
    (cache / TOKEN_FILE).write_text(jws.sign(claims, key, kid, TOKEN_TYP))
    document = jws.jwks({kid: key.public_key()})
    (cache / JWKS_FILE).write_bytes(orjson.dumps(document))
    return kid, document


def test_without_a_ledger_key_a_cache_written_before_start_is_trusted_on_first_use(
    owner: httpx.Client, sdk: Client, tmp_path: Path
) -> None:
    """The reproduction, kept as the reason to ship ``ledger_key``: trust on first
    use believes the key set of a cache written before the client starts."""
    license, cache = issue_license(owner), tmp_path / "cache"
    sdk(license, cache, None).activate()
    forge(cache, license["serial"])
    decision = sdk(license, cache, None).check("seats")
    assert (decision.allowed, decision.value) == (True, 9999)


def test_without_a_ledger_key_the_first_key_set_seen_is_pinned(
    owner: httpx.Client, sdk: Client, tmp_path: Path
) -> None:
    """A running client never takes keys from its cache again: new keys come only
    from the service at its URL."""
    license, cache = issue_license(owner), tmp_path / "cache"
    client = sdk(license, cache, None)
    client.activate()
    kid, _ = forge(cache, license["serial"])
    assert client.check("seats").value == 5
    assert client.sync_revocations() is None
    client.refresh_now()
    assert client.check("seats").value == 5
    assert kid not in jws.keys_from_jwks((cache / JWKS_FILE).read_bytes())
    assert sdk(license, cache, None).check("seats").value == 5


def test_a_forged_cache_is_refused_with_untrusted_key(
    owner: httpx.Client, sdk: Client, ledger_key: str, tmp_path: Path
) -> None:
    license, cache = issue_license(owner), tmp_path / "cache"
    sdk(license, cache, ledger_key).activate()
    note = (cache / KEYSET_FILE).read_text()
    kid, document = forge(cache, license["serial"])
    assert sdk(license, cache, ledger_key).check("seats").reason == "untrusted_key"
    # Nor does the attacker's key help once written into the key set note itself:
    text, _ = parse_note(note)
    widened = text + f"key {kid} {document['keys'][0]['x']} 0 -\n"
    own_ledger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    for forged_note in (
        note.replace(text, widened),  # the real signature over a widened text
        sign_note(widened, [own_ledger]),  # signed by another key of the same name
    ):
        (cache / KEYSET_FILE).write_text(forged_note)
        restarted = sdk(license, cache, ledger_key)
        assert restarted.check("seats").reason == "untrusted_key"
        assert restarted.check("feature:export-pdf").allowed is False
    (cache / KEYSET_FILE).unlink()
    assert sdk(license, cache, ledger_key).check("seats").reason == "untrusted_key"


def test_the_legitimate_flow_works_offline_from_the_cached_note(
    owner: httpx.Client, sdk: Client, ledger_key: str, tmp_path: Path
) -> None:
    license, cache = issue_license(owner), tmp_path / "cache"
    client = sdk(license, cache, ledger_key)
    client.activate()
    assert client.check("feature:cloud-sync").reason == "ok"
    assert client.sync_revocations() is None
    client.refresh_now()
    # The cache keeps the note itself, which verifies with the pinned key ...
    vouched = vouched_in(cache, ledger_key)
    assert (vouched.origin, vouched.account) == (ORIGIN, "default")
    assert not (cache / JWKS_FILE).exists()
    # ... and a restart with no service at all decides from it.
    offline = sdk(license, cache, ledger_key, url=OFFLINE)
    assert offline.check("seats").value == 5
    assert offline.check("feature:cloud-sync").reason == "ok"


def test_the_keyset_endpoint_serves_the_jwks_keys_signed_by_the_ledger_key(
    server: Server, owner: httpx.Client, ledger_key: str
) -> None:
    license = issue_license(owner)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"License {license['key']}"}
    ) as app:
        answer = app.get("/v1/keyset")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text.splitlines()[1] == HEADER
    vouched = open_keyset(answer.text, [NoteVerifier.from_key_string(ledger_key)])
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json", params={"account": "default"}).json()
    assert {k["kid"]: k["x"] for k in jwks["keys"]} == {k.kid: k.x for k in vouched.keys}
    assert httpx.get(f"{server.url}/v1/keyset").status_code == 401


def test_token_key_rotation_keeps_the_sdk_working_without_a_new_pin(
    owner: httpx.Client, sdk: Client, ledger_key: str, tmp_path: Path
) -> None:
    license, cache = issue_license(owner), tmp_path / "cache"
    client = sdk(license, cache, ledger_key)
    client.activate()
    old_kid = _kid(cache)
    new_kid = rotate_token_keys(owner)
    assert new_kid != old_kid
    # The cached note does not know the new key; the service's current one does.
    client.refresh_now()
    assert _kid(cache) == new_kid
    assert client.check("seats").value == 5
    assert client.sync_revocations() is None  # lists are signed by the new key too
    assert sdk(license, cache, ledger_key, url=OFFLINE).check("seats").value == 5
    lives = {key.kid: key.valid_until for key in vouched_in(cache, ledger_key).keys}
    assert lives[new_kid] is None  # it signs
    assert lives[old_kid] is not None  # retired: vouched for until its tokens' end


def test_a_keyset_signed_by_another_ledger_key_is_refused(
    owner: httpx.Client, sdk: Client, tmp_path: Path
) -> None:
    license, cache = issue_license(owner), tmp_path / "cache"
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier.key_string()
    client = sdk(license, cache, other)
    with pytest.raises(ActivationFailed) as failed:
        client.activate()
    assert failed.value.problem == "token_rejected"
    assert failed.value.context["reason"] == "untrusted_keyset"
    assert client.check("seats").reason == "not_activated"
    assert not (cache / TOKEN_FILE).exists()


def test_a_malformed_ledger_key_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        LicenseClient(
            OFFLINE, "TNRK-x", "TNR-x", DEVICE, tmp_path, refresh=False,
            ledger_key="not a verifier key",
        )  # fmt: skip
    assert refused.value.field == "ledger_key"


def _kid(cache: Path) -> str:
    header = orjson.loads(jws.b64url_decode((cache / TOKEN_FILE).read_text().split(".")[0]))
    kid: str = header["kid"]
    return kid


# ---------------------------------------------------------------- the example and the CLI

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gate_feature.py"


def test_the_example_gates_a_feature_with_the_ledger_key(
    server: Server, owner: httpx.Client, ledger_key: str, tmp_path: Path
) -> None:
    license = issue_license(owner)

    def run(url: str) -> subprocess.CompletedProcess[str]:
        env = subprocess_env(HOME=str(tmp_path), TENURE_LEDGER_KEY=ledger_key)
        return subprocess.run(
            [sys.executable, str(EXAMPLE), url, license["key"], license["serial"]],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    online = run(server.url)
    assert (online.returncode, online.stdout) == (0, "export-pdf: allowed\n"), online.stderr
    assert (tmp_path / ".cache" / "myapp" / KEYSET_FILE).exists()
    offline = run(OFFLINE)  # a later start decides from the cache alone
    assert (offline.returncode, offline.stdout) == (0, "export-pdf: allowed\n"), offline.stderr


def test_tenure_ledger_key_prints_what_get_ledger_key_answers(
    server: Server, owner: httpx.Client
) -> None:
    done = tenure(server, "ledger", "key", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout == owner.get("/v1/ledger/key").text
    as_json = tenure(server, "ledger", "key", "--data-dir", str(server.data_dir), "-o", "json")
    assert orjson.loads(as_json.stdout) == {"keys": done.stdout.splitlines()}
    empty = tenure(server, "ledger", "key", "--data-dir", str(server.data_dir), "--account", "nope")
    assert_one_line_error(empty, "no ledger key")


def test_cli_token_verify_trusts_the_keys_the_ledger_key_vouches_for(
    server: Server, owner: httpx.Client, sdk: Client, ledger_key: str, tmp_path: Path
) -> None:
    license, cache = issue_license(owner), tmp_path / "cache"
    sdk(license, cache, ledger_key).activate()
    token = (cache / TOKEN_FILE).read_text()
    fetched = tenure(server, "token", "verify", token, "--ledger-key", ledger_key)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.startswith("valid: token ")
    saved = ["--ledger-key", ledger_key, "--keyset", str(cache / KEYSET_FILE)]
    offline = tenure(server, "token", "verify", token, *saved, url=OFFLINE)
    assert offline.returncode == 0, offline.stderr

    forge(cache, license["serial"])
    forged = tenure(server, "token", "verify", (cache / TOKEN_FILE).read_text(), *saved)
    assert_one_line_error(forged, "rejected: untrusted_key")
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier.key_string()
    foreign = tenure(server, "token", "verify", token, "--ledger-key", other)
    assert_one_line_error(foreign, "rejected: untrusted_keyset")
    both = tenure(server, "token", "verify", token, *saved, "--jwks", str(cache / "none.json"))
    assert_one_line_error(both, "--jwks", "--ledger-key")
