"""An old key set note cannot widen trust (issue 14 follow-up, item 1), over real HTTP.

The attack: save the key set note while token key K1 signs, let K1 be rotated out
(stolen, say), then, offline, write the old note into the SDK's cache together with
a token K1 signs now, expiring far in the future. The old note listed K1 as current,
with no end, so ``LicenseClient(ledger_key=...)`` believed it. A note now carries its
signing time and the account's longest token lifetime: a key still signing is vouched
for only until ``time + token-lifetime``, so the forged token is ``untrusted_key``,
while tokens the service mints always lie inside the fresh note the SDK fetches with
each of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from support.api import issue_license, rotate_token_keys
from support.server import Server
from tenure.crypto import jws
from tenure.crypto.keyset import open_keyset
from tenure.crypto.keystore import TokenKeys, load_master_key
from tenure.ledger.note import NoteVerifier
from tenure.sdk import TOKEN_TYP, LicenseClient
from tenure.sdk.cache import KEYSET_FILE, TOKEN_FILE

DEVICE = "windowed-pc"
OFFLINE = "http://127.0.0.1:9"
DAY = 86_400
LONGEST_TTL = 7 * DAY
"""The longest offline_token_ttl of examples/catalog.yaml (P7D)."""


@pytest.fixture
def sdk(own_server: Server, closing: Callable[[Any], Any]) -> Callable[..., LicenseClient]:
    def make(license: dict[str, Any], cache: Path, ledger_key: str, url: str) -> LicenseClient:
        client: LicenseClient = closing(LicenseClient(
            url, license["key"], license["serial"], DEVICE, cache,
            refresh=False, ledger_key=ledger_key,
        ))  # fmt: skip
        return client

    return make


def _token_parts(text: str) -> tuple[str, dict[str, Any]]:
    head, body, _ = text.split(".")
    kid: str = orjson.loads(jws.b64url_decode(head))["kid"]
    return kid, orjson.loads(jws.b64url_decode(body))


def test_the_note_states_when_it_was_signed_and_the_longest_token_lifetime(
    catalog_owner: httpx.Client, pinned_ledger_key: str
) -> None:
    before = int(time.time())
    answer = catalog_owner.get("/v1/keyset")
    assert answer.status_code == 200, answer.text
    vouched = open_keyset(answer.text, [NoteVerifier.from_key_string(pinned_ledger_key)])
    assert before - 1 <= vouched.time <= int(time.time()) + 1
    assert vouched.token_lifetime == LONGEST_TTL
    lines = answer.text.splitlines()
    assert lines[1:5] == [
        "tenure-keyset v2",
        "account default",
        f"time {vouched.time}",
        f"token-lifetime {LONGEST_TTL}",
    ]


def test_an_old_note_does_not_vouch_for_a_rotated_key_signing_now(
    own_server: Server,
    catalog_owner: httpx.Client,
    pinned_ledger_key: str,
    sdk: Callable[..., LicenseClient],
    tmp_path: Path,
) -> None:
    license, cache = issue_license(catalog_owner), tmp_path / "cache"
    sdk(license, cache, pinned_ledger_key, own_server.url).activate()
    old_note = (cache / KEYSET_FILE).read_text()
    old_kid, real = _token_parts((cache / TOKEN_FILE).read_text())
    assert rotate_token_keys(catalog_owner) != old_kid

    # The rotated-out key, stolen: it signs a token now that lives for a year.
    stolen = TokenKeys(own_server.data_dir / "keys", load_master_key(own_server.data_dir))
    now = int(time.time())
    forged = {
        **real, "iat": now, "nbf": now, "exp": now + 365 * DAY,
        "ent": {**real["ent"], "seats": 9999},
    }  # fmt: skip
    (cache / TOKEN_FILE).write_text(
        jws.sign(forged, stolen.load("default", old_kid), old_kid, TOKEN_TYP)
    )
    (cache / KEYSET_FILE).write_text(old_note)
    offline = sdk(license, cache, pinned_ledger_key, OFFLINE)
    decision = offline.check("seats")
    assert (decision.allowed, decision.reason) == (False, "untrusted_key")


def test_tokens_the_service_mints_lie_in_the_window_of_the_note_fetched_with_them(
    own_server: Server,
    catalog_owner: httpx.Client,
    pinned_ledger_key: str,
    sdk: Callable[..., LicenseClient],
    tmp_path: Path,
) -> None:
    license, cache = issue_license(catalog_owner), tmp_path / "cache"
    client = sdk(license, cache, pinned_ledger_key, own_server.url)
    client.activate()
    rotate_token_keys(catalog_owner)
    client.refresh_now()
    assert client.sync_revocations() is None
    verifier = NoteVerifier.from_key_string(pinned_ledger_key)
    note = open_keyset((cache / KEYSET_FILE).read_text(), [verifier])
    kid, claims = _token_parts((cache / TOKEN_FILE).read_text())
    key = note.key(kid)
    assert key is not None
    assert key.valid_until is None  # the key that signs now
    assert claims["exp"] <= note.time + note.token_lifetime
    assert sdk(license, cache, pinned_ledger_key, OFFLINE).check("seats").value == 5
