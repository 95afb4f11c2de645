"""The SDK decides locally from a verified cached token (docs/offline.md, "The Python SDK").

Tokens are minted with the real ``jws.sign``; the clock is injected; no network.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import timeit
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tenure.domain import activations
from tenure.sdk import Decision, fingerprint_hash
from tenure.sdk.cache import STATE_FILE, TOKEN_FILE
from tenure.sdk.decisions import PERSIST_EVERY

from .test_sdk_support import GRACE, NOW, TTL, Clock, client, token, write_cache

SERVER_MODULES = ("fastapi", "sqlalchemy", "pydantic", "starlette", "alembic", "typer")


def test_importing_the_sdk_loads_none_of_the_server_dependencies() -> None:
    probe = (
        "import sys, tenure.sdk; "
        f"print([m for m in {SERVER_MODULES!r} if m in sys.modules or "
        "any(k.startswith(m + '.') for k in sys.modules)]); "
        "print(sorted(k for k in sys.modules if k.startswith('tenure')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded, tenure_modules = done.stdout.splitlines()
    assert loaded == "[]"
    packages = ("tenure.crypto.", "tenure.ledger.", "tenure.sdk.")
    # The pure decision the SDK re-runs over proven rows (tenure.sdk.proofs), and what it
    # needs: standard library only, so no server dependency comes with it.
    modules = {"tenure", "tenure.crypto", "tenure.ledger", "tenure.sdk", "tenure.errors"}
    modules |= {"tenure.canonical", "tenure.domain", "tenure.domain.decisions"}
    modules |= {"tenure.domain.state", "tenure.domain.timefmt"}
    for name in eval(tenure_modules):  # noqa: S307 - our own subprocess's repr of a list
        assert name.startswith(packages) or name in modules, name


@given(st.text(max_size=40), st.text(min_size=1, max_size=80))
def test_fingerprint_hash_equals_the_servers(serial: str, fingerprint: str) -> None:
    try:
        expected = activations.fingerprint_hash(serial, fingerprint)
    except Exception:  # lone surrogates: both refuse
        return
    assert fingerprint_hash(serial, fingerprint) == expected


def test_fingerprint_hash_is_the_documented_formula() -> None:
    jcs = b'["tenure.fingerprint.v1","LIC-1","m\\u0001\xc3\xa9"]'
    assert fingerprint_hash("LIC-1", "m\x01é") == hashlib.sha256(jcs).hexdigest()


def test_valid_token_allows_its_entitlements_with_their_values(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    sdk = client(tmp_path, Clock(NOW + 10))
    assert sdk.check("feature:export-pdf") == Decision(True, "ok", True, "token")
    assert sdk.check("seats") == Decision(True, "ok", 5, "token")
    assert sdk.check("feature:cloud-sync").allowed


def test_missing_or_false_entitlement_is_not_entitled(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    sdk = client(tmp_path, Clock(NOW + 10))
    assert sdk.check("feature:color-grading") == Decision(False, "not_entitled", None, "token")
    assert sdk.check("feature:scripting") == Decision(False, "not_entitled", False, "token")


def test_after_exp_only_core_entitlements_stay_in_offline_grace(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    clock = Clock(NOW + 10)
    sdk = client(tmp_path, clock)
    assert sdk.check("feature:cloud-sync").allowed
    clock.now = NOW + TTL
    assert sdk.check("feature:export-pdf") == Decision(True, "offline_grace", True, "token")
    assert sdk.check("feature:cloud-sync") == Decision(False, "token_expired", True, "token")
    clock.now = NOW + TTL + GRACE - 1
    assert sdk.check("feature:export-pdf").reason == "offline_grace"


def test_after_exp_plus_grace_everything_is_token_expired(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    clock = Clock(NOW + TTL + GRACE)
    sdk = client(tmp_path, clock)
    assert sdk.check("feature:export-pdf") == Decision(False, "token_expired", True, "token")


def test_expired_cached_token_still_loads_and_decides_grace(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    sdk = client(tmp_path, Clock(NOW + TTL + 3600))
    assert sdk.check("feature:export-pdf").reason == "offline_grace"


def test_clock_more_than_five_minutes_behind_last_seen_is_clock_rollback(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    clock = Clock(NOW + 3600)
    sdk = client(tmp_path, clock)
    assert sdk.check("seats").allowed
    clock.now = NOW + 3600 - 200
    assert sdk.check("seats").allowed  # within the tolerance
    clock.now = NOW + 3600 - 306
    assert sdk.check("seats") == Decision(False, "clock_rollback", None, "clock")
    clock.now = NOW + 3600
    assert sdk.check("seats").allowed


def test_last_seen_is_persisted_so_a_restart_still_detects_rollback(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    clock = Clock(NOW + 20_000)
    sdk = client(tmp_path, clock)
    for step in range(20):
        clock.now = NOW + 20_000 + step
        sdk.check("seats")
    sdk.close()
    # Checks inside the hot window do not move last_seen: it lags by < PERSIST_EVERY.
    persisted = orjson.loads((tmp_path / STATE_FILE).read_bytes())["last_seen"]
    assert NOW + 20_019 - PERSIST_EVERY <= persisted <= NOW + 20_019
    again = client(tmp_path, Clock(NOW + 1000))
    assert again.check("seats").reason == "clock_rollback"


def test_clock_far_before_the_tokens_iat_is_clock_rollback(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    assert client(tmp_path, Clock(NOW - 3600)).check("seats").reason == "clock_rollback"


def test_tampered_cached_token_is_not_activated(tmp_path: Path) -> None:
    minted = token()
    head, body, signature = minted.split(".")
    forged = orjson.loads(_unb64(body))
    forged["ent"]["feature:color-grading"] = True
    write_cache(tmp_path, f"{head}.{_b64(orjson.dumps(forged))}.{signature}")
    decision = client(tmp_path, Clock(NOW + 10)).check("feature:export-pdf")
    assert decision == Decision(False, "not_activated", None, "none")


def test_truncated_or_garbage_cache_files_are_not_activated(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    (tmp_path / TOKEN_FILE).write_bytes(b"\xff\xfe not a token")
    assert client(tmp_path, Clock(NOW)).check("seats").reason == "not_activated"
    write_cache(tmp_path, token())
    (tmp_path / "jwks.json").write_text('{"keys": [}')
    assert client(tmp_path, Clock(NOW)).check("seats").reason == "not_activated"


def test_token_for_another_device_is_refused(tmp_path: Path) -> None:
    write_cache(tmp_path, token(fph=fingerprint_hash("LIC-7Q2M4K", "another machine")))
    assert client(tmp_path, Clock(NOW + 10)).check("seats").reason == "not_activated"


def test_token_for_another_license_or_account_is_refused(tmp_path: Path) -> None:
    write_cache(tmp_path, token(sub="LIC-OTHER1"))
    assert client(tmp_path, Clock(NOW + 10)).check("seats").reason == "not_activated"
    write_cache(tmp_path, token(iss="https://ledger.example/someone-else"))
    assert client(tmp_path, Clock(NOW + 10)).check("seats").reason == "not_activated"


def test_empty_cache_is_not_activated(tmp_path: Path) -> None:
    assert client(tmp_path / "none", Clock()).check("seats").reason == "not_activated"


def test_a_persisted_revocation_survives_a_restart(tmp_path: Path) -> None:
    write_cache(tmp_path, token(), revoked="license_revoked")
    assert client(tmp_path, Clock(NOW + 10)).check("seats") == Decision(
        False, "revoked", None, "revocation"
    )


def test_hot_path_does_a_million_checks_per_second(tmp_path: Path) -> None:
    write_cache(tmp_path, token())
    sdk = client(tmp_path, Clock(NOW + 10))
    sdk.check("seats")
    check = sdk.check
    runs = 200_000
    seconds = min(timeit.repeat(lambda: check("feature:export-pdf"), number=runs, repeat=5))
    assert runs / seconds >= 1_000_000, f"{runs / seconds:,.0f} checks/s"


def _b64(raw: bytes) -> str:
    from tenure.crypto.jws import b64url_encode

    return b64url_encode(raw)


def _unb64(segment: str) -> bytes:
    from tenure.crypto.jws import b64url_decode

    return b64url_decode(segment)
