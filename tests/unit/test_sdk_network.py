"""The SDK's calls to the service, fed with documents signed by the real ``jws.sign``
through ``httpx.MockTransport`` (recorded answers, not a model of the server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenure.crypto import jws
from tenure.sdk import REVOCATIONS_TYP, ActivationFailed, RefreshFailed, SyncFailed
from tenure.sdk.cache import STATE_FILE, TOKEN_FILE

from .test_sdk_support import (
    ACCOUNT,
    ACT,
    JTI,
    JWKS,
    KEY,
    KID,
    NOW,
    SERIAL,
    TTL,
    URL,
    Clock,
    client,
    token,
)


def revocation_list(
    since: int = 0, until: int = 40, key: Ed25519PrivateKey = KEY, **entries: Any
) -> str:
    claims = {"iss": f"https://ledger.example/{ACCOUNT}", "aud": ACCOUNT, "sub": SERIAL}
    claims |= {"iat": NOW, "exp": NOW + 300}
    claims |= {"since": since, "until": until, "licenses": [], "activations": [], "tokens": []}
    claims |= entries
    return jws.sign(claims, key, jws.jwk_thumbprint(key.public_key()), REVOCATIONS_TYP)


def minted(text: str) -> dict[str, Any]:
    return {"token": text, "expires_at": "…", "account": ACCOUNT, "jwks_url": "…"}


def problem(status: int, code: str) -> httpx.Response:
    body = {"type": f"https://tenure.dev/problems/{code}", "title": code, "status": status}
    return httpx.Response(status, json=body | {"detail": code})


class Recorded:
    """Answers each path with the next recorded document for it (the last one again
    once they are used up); records the requests."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Callable[[], httpx.Response]]] = {}
        self.last: dict[str, Callable[[], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, path: str, *answers: httpx.Response | dict[str, Any] | str | Exception) -> None:
        self.answers.setdefault(path, []).extend(_answer(a) for a in answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        queue = self.answers.get(path, [])
        if queue:
            self.last[path] = queue.pop(0)
        if path not in self.last:
            raise httpx.ConnectError("nothing recorded", request=request)
        return self.last[path]()

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def _answer(
    answer: httpx.Response | dict[str, Any] | str | Exception,
) -> Callable[[], httpx.Response]:
    def respond() -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, str):
            return httpx.Response(200, text=answer, headers={"content-type": "application/jose"})
        return httpx.Response(201, json=answer)

    return respond


def activatable(first: str | None = None, baseline: str | None = None) -> Recorded:
    recorded = Recorded()
    recorded.on("/v1/revocations", baseline or revocation_list())
    recorded.on("/v1/licenses/LIC-7Q2M4K/activations", {"id": ACT, "status": "active"})
    recorded.on("/v1/tokens", minted(first or token()))
    recorded.on("/.well-known/jwks.json", httpx.Response(200, content=JWKS))
    return recorded


def test_activate_caches_a_verified_token_that_a_restart_uses_offline(tmp_path: Path) -> None:
    recorded = activatable()
    sdk = client(tmp_path, Clock(NOW + 5), http=recorded.http())
    assert sdk.check("seats").reason == "not_activated"
    sdk.activate()
    assert sdk.check("seats").allowed
    first = recorded.requests[1]
    assert first.headers["Authorization"] == "License TNRK-AAAAAAAA-BBBBBBBB-CCCCCCCC-DDDDDDDD"
    assert orjson.loads(first.content) == {"fingerprint": "machine-1234"}
    assert recorded.requests[3].url.params["account"] == ACCOUNT
    offline = Recorded()
    again = client(tmp_path, Clock(NOW + 50), http=offline.http())
    assert again.check("feature:export-pdf").reason == "ok"
    assert offline.requests == []
    assert orjson.loads((tmp_path / STATE_FILE).read_bytes())["until"] == 40


def test_activation_refused_carries_the_servers_problem_code(tmp_path: Path) -> None:
    recorded = Recorded()
    recorded.on("/v1/revocations", revocation_list())
    recorded.on("/v1/licenses/LIC-7Q2M4K/activations", problem(409, "seat_limit"))
    with pytest.raises(ActivationFailed) as failed:
        client(tmp_path, Clock(NOW), http=recorded.http()).activate()
    assert (failed.value.problem, failed.value.status) == ("seat_limit", 409)


def test_activation_without_network_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ActivationFailed) as failed:
        client(tmp_path, Clock(NOW), http=Recorded().http()).activate()
    assert (failed.value.problem, failed.value.status) == ("unreachable", None)


def test_activation_refuses_a_token_for_another_device(tmp_path: Path) -> None:
    recorded = activatable(first=token(fph="0" * 64))
    sdk = client(tmp_path, Clock(NOW), http=recorded.http())
    with pytest.raises(ActivationFailed) as failed:
        sdk.activate()
    assert failed.value.problem == "token_rejected"
    assert failed.value.context["reason"] == "wrong_fingerprint"
    assert sdk.check("seats").reason == "not_activated"
    assert not (tmp_path / TOKEN_FILE).exists()


def test_old_deactivation_of_this_device_in_the_baseline_list_is_ignored(tmp_path: Path) -> None:
    old = revocation_list(activations=[{"activation": ACT, "serial": "LIC-7Q2M4K", "seq": 3}])
    sdk = client(tmp_path, Clock(NOW), http=activatable(baseline=old).http())
    sdk.activate()
    assert sdk.check("seats").allowed


@pytest.mark.parametrize(
    ("entries", "what"),
    [
        (
            {"licenses": [{"serial": "LIC-7Q2M4K", "status": "revoked", "seq": 41}]},
            "license_revoked",
        ),
        (
            {"licenses": [{"serial": "LIC-7Q2M4K", "status": "suspended", "seq": 41}]},
            "license_suspended",
        ),
        ({"activations": [{"activation": ACT, "serial": "LIC-7Q2M4K", "seq": 41}]}, "activation"),
        ({"tokens": [{"jti": JTI, "serial": "LIC-7Q2M4K", "seq": 41}]}, "token"),
    ],
)
def test_a_revocation_naming_this_token_denies_at_once_and_persists(
    tmp_path: Path, entries: dict[str, Any], what: str
) -> None:
    recorded = activatable()
    sdk = client(tmp_path, Clock(NOW + 5), http=recorded.http())
    sdk.activate()
    recorded.on("/v1/revocations", revocation_list(since=40, until=45, **entries))
    assert sdk.sync_revocations() == what
    assert sdk.check("seats").reason == "revoked"
    assert recorded.requests[-1].url.params["since"] == "40"
    assert client(tmp_path, Clock(NOW + 6)).check("seats").reason == "revoked"
    assert not (tmp_path / TOKEN_FILE).exists()


def test_reinstated_after_suspension_and_other_licenses_do_not_revoke(tmp_path: Path) -> None:
    recorded = activatable()
    sdk = client(tmp_path, Clock(NOW + 5), http=recorded.http())
    sdk.activate()
    licenses = [
        {"serial": "LIC-7Q2M4K", "status": "suspended", "seq": 41},
        {"serial": "LIC-7Q2M4K", "status": "active", "seq": 42},
        {"serial": "LIC-OTHER1", "status": "revoked", "seq": 43},
    ]
    recorded.on("/v1/revocations", revocation_list(since=40, until=45, licenses=licenses))
    assert sdk.sync_revocations() is None
    assert sdk.check("seats").allowed


def test_a_revocation_list_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    recorded = activatable()
    sdk = client(tmp_path, Clock(NOW + 5), http=recorded.http())
    sdk.activate()
    other = Ed25519PrivateKey.generate()
    forged = revocation_list(since=40, key=other, tokens=[{"jti": JTI, "serial": "x", "seq": 41}])
    recorded.on("/v1/revocations", forged)
    with pytest.raises(SyncFailed) as failed:
        sdk.sync_revocations()
    assert failed.value.context["reason"] == "unknown_kid"
    assert sdk.check("seats").allowed


def test_refresh_without_network_keeps_the_current_token(tmp_path: Path) -> None:
    recorded = activatable()
    clock = Clock(NOW + 5)
    sdk = client(tmp_path, clock, http=recorded.http())
    sdk.activate()
    recorded.on("/v1/revocations", httpx.ConnectError("offline"))
    recorded.on("/v1/tokens/refresh", httpx.ConnectError("offline"))
    clock.now = NOW + TTL - 100
    with pytest.raises(RefreshFailed) as failed:
        sdk.refresh_now()
    assert failed.value.problem == "unreachable"
    assert sdk.check("feature:cloud-sync").allowed


def test_refresh_replaces_the_token_and_pulls_revocations(tmp_path: Path) -> None:
    recorded = activatable()
    clock = Clock(NOW + 5)
    sdk = client(tmp_path, clock, http=recorded.http())
    sdk.activate()
    later = NOW + TTL + 3600
    next_token = token(jti="tok_" + "c" * 26, iat=later, nbf=later, exp=later + TTL)
    recorded.on("/v1/tokens/refresh", minted(next_token))
    recorded.on("/v1/revocations", revocation_list(since=40, until=50, iat=later, exp=later + 300))
    clock.now = later + 1
    assert sdk.check("feature:cloud-sync").reason == "token_expired"
    sdk.refresh_now()
    assert sdk.check("feature:cloud-sync").reason == "ok"
    assert (tmp_path / TOKEN_FILE).read_text() == next_token
    refresh = next(r for r in recorded.requests if r.url.path == "/v1/tokens/refresh")
    assert orjson.loads(refresh.content)["token"] != next_token


def test_background_thread_refreshes_after_two_thirds_and_retries(tmp_path: Path) -> None:
    recorded = activatable()
    clock = Clock(NOW + 5)
    sdk = client(tmp_path, clock, http=recorded.http(), retry_after=0.01)
    sdk.activate()
    later = NOW + TTL * 2 // 3 + 10
    next_token = token(jti="tok_" + "d" * 26, iat=later, nbf=later, exp=later + TTL)
    recorded.on("/v1/tokens/refresh", httpx.ConnectError("down"), httpx.ConnectError("down"))
    recorded.on("/v1/tokens/refresh", minted(next_token))
    recorded.on(
        "/v1/revocations",
        revocation_list(since=40, until=50, iat=later, exp=later + 300),
        revocation_list(since=50, until=50, iat=later, exp=later + 300),
    )
    clock.now = later
    with sdk:
        sdk.start()
        deadline = time.monotonic() + 5
        while (tmp_path / TOKEN_FILE).read_text() != next_token and time.monotonic() < deadline:
            time.sleep(0.01)
    attempts = [r for r in recorded.requests if r.url.path == "/v1/tokens/refresh"]
    assert len(attempts) >= 3
    assert (tmp_path / TOKEN_FILE).read_text() == next_token
    assert sdk.check("seats").allowed


def test_refresh_of_a_device_whose_lease_ended_activates_it_again(tmp_path: Path) -> None:
    recorded = activatable()
    sdk = client(tmp_path, Clock(NOW + 5), http=recorded.http())
    sdk.activate()
    recorded.on("/v1/tokens/refresh", problem(409, "not_activated"))
    recorded.on("/v1/tokens", minted(token(jti="tok_" + "e" * 26)))
    recorded.on("/v1/revocations", revocation_list(since=40, until=41))
    sdk.refresh_now()
    paths = [r.url.path for r in recorded.requests[-5:]]
    assert paths == [
        "/v1/revocations",
        "/v1/tokens/refresh",
        "/v1/licenses/LIC-7Q2M4K/activations",
        "/v1/tokens",
        "/.well-known/jwks.json",
    ]
    assert sdk.check("seats").allowed


def test_the_url_is_where_requests_go(tmp_path: Path) -> None:
    recorded = activatable()
    client(tmp_path, Clock(NOW + 5), http=recorded.http()).activate()
    assert all(str(r.url).startswith(URL) for r in recorded.requests)
    assert KID in JWKS.decode()
