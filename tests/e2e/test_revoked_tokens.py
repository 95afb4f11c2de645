"""A revoked token stays revoked (issue 14, items 1 and 6), over real HTTP.

``POST /v1/tokens/refresh`` never turns a revoked token into a fresh one, whoever asks
(License credential, API key, agent key); the SDK pulls the revocation list before it
refreshes, so a token revoked while it was offline is dropped when the connection
returns; and the signed revocation list names its reader (``aud`` the account, ``sub``
the license), so a list fetched for one license is refused by the SDK of another.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from support.api import CATALOG, apply_example_catalog, issue_license
from support.node import node_verify
from support.server import REQUEST_TIMEOUT, Server, seeded_server
from tenure.crypto import jws
from tenure.sdk import LicenseClient, RefreshFailed, SyncFailed

PROBLEM = "application/problem+json"
REVOCATIONS_TYP = "tenure-revocations+jwt"
ISSUER = "tenure.localhost/ledger/default"
SHORT_PLAN = """
  - code: studio-short
    product: studio
    entitlements: {"feature:export-pdf": true, "seats": 2}
    core: ["feature:export-pdf"]
    duration: P365D
    grace: P1D
    offline_token_ttl: PT6M
    activation: floating
"""
REFRESH_DUE = 4 * 60 + 10
"""Two thirds of studio-short's six minutes, and a little: the SDK's refresh is due,
while a revocation list the service signs now (valid five minutes, with a minute of
leeway) still verifies on the SDK's clock."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "revoked-tokens") as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        catalog = CATALOG.read_text() + SHORT_PLAN
        applied = client.post(
            "/v1/catalog", content=catalog, headers={"Content-Type": "application/yaml"}
        )
        assert applied.status_code == 200, applied.text
        yield client


@pytest.fixture(scope="module")
def agent_key(owner: httpx.Client) -> str:
    made = owner.post("/v1/apikeys", json={"role": "agent", "name": "plant agent"})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def as_license(server: Server, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"License {key}"}, timeout=REQUEST_TIMEOUT
    )


def activated_token(server: Server, owner: httpx.Client, device: str = "dev-1") -> dict[str, Any]:
    """Activate ``device`` on a new studio-pro license and mint its token."""
    license = issue_license(owner)
    serial = license["serial"]
    with as_license(server, license["key"]) as app:
        done = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": device})
        assert done.status_code == 201, done.text
        minted = app.post("/v1/tokens", json={"license": serial, "fingerprint": device})
    assert minted.status_code == 201, minted.text
    return {**minted.json(), "license": license, "activation": done.json()["id"]}


def refresh_as(server: Server, credential: str, token: str) -> httpx.Response:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": credential}, timeout=REQUEST_TIMEOUT
    ) as client:
        return client.post("/v1/tokens/refresh", json={"token": token})


def assert_conflict(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + code), body
    return body


def credentials(server: Server, minted: dict[str, Any], agent_key: str) -> dict[str, str]:
    return {
        "license": f"License {minted['license']['key']}",
        "api key": f"Bearer {server.owner_key()}",
        "agent": f"Bearer {agent_key}",
    }


# ---------------------------------------------------------------- the service


@pytest.mark.parametrize("who", ["license", "api key", "agent"])
def test_revoked_token_is_not_refreshed(
    server: Server, owner: httpx.Client, agent_key: str, who: str
) -> None:
    minted = activated_token(server, owner)
    serial = minted["license"]["serial"]
    revoked = owner.post(
        f"/v1/licenses/{serial}/tokens/{minted['jti']}/revoke", json={"reason": "leaked"}
    )
    assert revoked.status_code == 200, revoked.text
    size = owner.get("/v1/ledger/events", params={"limit": 1}).json()["size"]
    credential = credentials(server, minted, agent_key)[who]
    for _ in range(2):  # again and again: never a fresh token
        body = assert_conflict(refresh_as(server, credential, minted["token"]), "token_revoked")
        assert minted["jti"] in body["detail"]
    # Refused before anything is written: no lease renewal for a revoked token; the
    # refusals are in the audit log.
    assert owner.get("/v1/ledger/events", params={"limit": 1}).json()["size"] == size
    denied = owner.get(
        "/v1/audit", params={"action": "refresh_token", "outcome": "denied", "newest": "true"}
    ).json()["entries"]
    assert [entry["code"] for entry in denied[:2]] == ["token_revoked"] * 2


@pytest.mark.parametrize("change", ["revoke", "suspend"])
@pytest.mark.parametrize("who", ["license", "api key", "agent"])
def test_a_token_of_a_revoked_or_suspended_license_is_not_refreshed(
    server: Server, owner: httpx.Client, agent_key: str, change: str, who: str
) -> None:
    minted = activated_token(server, owner)
    serial = minted["license"]["serial"]
    done = owner.post(f"/v1/licenses/{serial}/{change}", json={"reason": "chargeback"})
    assert done.status_code == 200, done.text
    credential = credentials(server, minted, agent_key)[who]
    refused = refresh_as(server, credential, minted["token"])
    status = "revoked" if change == "revoke" else "suspended"
    assert status in assert_conflict(refused, "license_inactive")["detail"]


@pytest.mark.parametrize("who", ["license", "api key", "agent"])
def test_a_token_of_a_deactivated_activation_is_not_refreshed(
    server: Server, owner: httpx.Client, agent_key: str, who: str
) -> None:
    minted = activated_token(server, owner)
    gone = owner.delete(f"/v1/activations/{minted['activation']}")
    assert gone.status_code == 200, gone.text
    credential = credentials(server, minted, agent_key)[who]
    refused = refresh_as(server, credential, minted["token"])
    assert "deactivated" in assert_conflict(refused, "token_revoked")["detail"]


def test_a_token_that_is_not_revoked_is_still_refreshed(
    server: Server, owner: httpx.Client, agent_key: str
) -> None:
    minted = activated_token(server, owner)
    for credential in credentials(server, minted, agent_key).values():
        refreshed = refresh_as(server, credential, minted["token"])
        assert refreshed.status_code == 201, refreshed.text
        assert refreshed.json()["jti"] != minted["jti"]


# ---------------------------------------------------------------- the SDK


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


Closing = Callable[[Any], Any]
"""The ``closing`` fixture: closes what it is given after the test."""


@dataclass
class Activated:
    """An SDK client activated on a new studio-short license, and its cache."""

    server: Server
    license: dict[str, Any]
    cache: Path
    clock: Clock
    client: LicenseClient

    def jti(self) -> str:
        claims = orjson.loads(jws.b64url_decode(self.token_text().split(".")[1]))
        jti: str = claims["jti"]
        return jti

    def token_text(self) -> str:
        return (self.cache / "token.jws").read_text()

    def another(self, closing: Closing, http: httpx.Client | None = None) -> LicenseClient:
        """A second client on the same license and cache (a restart)."""
        return sdk(self.server, self.license, self.cache, self.clock, closing, http)


def sdk(
    server: Server,
    license: dict[str, Any],
    cache: Path,
    clock: Clock,
    closing: Closing,
    http: httpx.Client | None = None,
) -> LicenseClient:
    client: LicenseClient = closing(LicenseClient(
        server.url, license["key"], license["serial"], "sdk-dev-1", cache,
        clock=clock, refresh=False, http=http,
    ))  # fmt: skip
    return client


def activated(
    server: Server, owner: httpx.Client, cache: Path, closing: Closing, revoke: bool
) -> Activated:
    """Activate an SDK client; with ``revoke``, the vendor then revokes its token
    while the application goes on offline (it cannot know yet)."""
    license, clock = issue_license(owner, "studio-short"), Clock()
    client = sdk(server, license, cache, clock, closing)
    client.activate()
    done = Activated(server, license, cache, clock, client)
    if revoke:
        revoked = owner.post(
            f"/v1/licenses/{license['serial']}/tokens/{done.jti()}/revoke",
            json={"reason": "stolen"},
        )
        assert revoked.status_code == 200, revoked.text
        assert client.check("feature:export-pdf").allowed
    return done


def test_sdk_drops_a_token_revoked_while_offline_instead_of_refreshing_it(
    server: Server, owner: httpx.Client, tmp_path: Path, closing: Closing
) -> None:
    sdk_ = activated(server, owner, tmp_path / "cache", closing, revoke=True)
    # When the connection returns, the refresh that is due drops the token.
    sdk_.clock.offset = REFRESH_DUE
    with pytest.raises(RefreshFailed) as failed:
        sdk_.client.refresh_now()
    assert failed.value.problem == "revoked"
    assert sdk_.client.check("feature:export-pdf").reason == "revoked"
    assert not (sdk_.cache / "token.jws").exists()
    # A restart stays revoked and a second refresh does not bring a token back.
    again = sdk_.another(closing)
    assert again.check("feature:export-pdf").reason == "revoked"
    with pytest.raises(RefreshFailed):
        again.refresh_now()
    assert again.check("feature:export-pdf").reason == "revoked"


def test_the_background_refresh_drops_a_revoked_token_and_never_allows_a_new_one(
    server: Server, owner: httpx.Client, tmp_path: Path, closing: Closing
) -> None:
    sdk_ = activated(server, owner, tmp_path / "cache", closing, revoke=True)
    jti, client = sdk_.jti(), sdk_.client
    sdk_.clock.offset = REFRESH_DUE
    seen: set[str] = set()
    client.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (sdk_.cache / "token.jws").exists():
            seen.add(sdk_.jti())
        if client.check("feature:export-pdf").reason == "revoked":
            break
        time.sleep(0.02)
    client.stop()
    refreshed = seen - {jti}
    assert not refreshed, f"{len(refreshed)} refreshed tokens reached the cache"
    assert client.check("feature:export-pdf").reason == "revoked"


def test_sdk_refuses_to_refresh_when_it_cannot_pull_the_revocation_list(
    server: Server, owner: httpx.Client, tmp_path: Path, closing: Closing
) -> None:
    sdk_ = activated(server, owner, tmp_path / "cache", closing, revoke=False)
    token = sdk_.token_text()
    http = closing(httpx.Client(transport=answering("/v1/revocations", None)))
    with pytest.raises(RefreshFailed) as failed:
        sdk_.another(closing, http).refresh_now()
    assert failed.value.problem == "unreachable"
    assert sdk_.token_text() == token  # kept, not exchanged


def answering(path: str, text: str | None) -> httpx.MockTransport:
    """The real server, except that ``path`` answers ``text`` (unreachable: None)."""

    def send(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            if text is None:
                raise httpx.ConnectError("blocked", request=request)
            return httpx.Response(200, text=text, headers={"content-type": "application/jose"})
        with httpx.Client(timeout=REQUEST_TIMEOUT) as real:
            return real.send(request)

    return httpx.MockTransport(send)


# ---------------------------------------------------------------- the list names its reader


def revocations(server: Server, credential: str, since: int = 0) -> str:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": credential}, timeout=REQUEST_TIMEOUT
    ) as client:
        answer = client.get("/v1/revocations", params={"since": since})
    assert answer.status_code == 200, answer.text
    return answer.text


def jwks_of(server: Server) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(
        f"{server.url}/.well-known/jwks.json", params={"account": "default"}
    ).json()
    return document


def test_the_revocation_list_names_its_account_and_license(
    server: Server, owner: httpx.Client
) -> None:
    minted = activated_token(server, owner)
    license = minted["license"]
    keys = jws.keys_from_jwks(jwks_of(server))
    mine = jws.verify(
        revocations(server, f"License {license['key']}"),
        keys,
        typ=REVOCATIONS_TYP,
        now=time.time(),
        issuer=ISSUER,
        audience="default",
        subject=license["serial"],
    )
    assert (mine["aud"], mine["sub"]) == ("default", license["serial"])
    # An API key reads the whole account's list: addressed to the account, no license.
    whole = jws.verify(
        revocations(server, f"Bearer {server.owner_key()}"),
        keys,
        typ=REVOCATIONS_TYP,
        now=time.time(),
        audience="default",
    )
    assert "sub" not in whole


def test_a_list_fetched_for_another_license_is_refused_by_the_sdk(
    server: Server, owner: httpx.Client, tmp_path: Path, closing: Closing
) -> None:
    first = issue_license(owner)
    victim = activated(server, owner, tmp_path / "victim", closing, revoke=False)
    since = int(orjson.loads((victim.cache / "state.json").read_bytes())["until"])
    # A list the first license's holder fetched (it says nothing of the victim's
    # license) is replayed to the victim's SDK in place of its own.
    foreign = revocations(server, f"License {first['key']}", since)
    http = closing(httpx.Client(transport=answering("/v1/revocations", foreign)))
    with pytest.raises(SyncFailed) as failed:
        victim.another(closing, http).sync_revocations()
    assert failed.value.problem == "token_rejected"
    assert failed.value.context["reason"] == "wrong_subject"
    # Its own list is accepted.
    assert victim.client.sync_revocations() is None


def test_joserfc_verifies_the_revocation_list_and_its_audience(
    server: Server, owner: httpx.Client
) -> None:
    license = activated_token(server, owner)["license"]
    text = revocations(server, f"License {license['key']}")
    with pytest.warns(Warning, match="EdDSA"):  # deprecated in favour of RFC 9864 names
        decoded = jwt.decode(text, KeySet.import_key_set(jwks_of(server)), algorithms=["EdDSA"])
    assert decoded.header["typ"] == REVOCATIONS_TYP
    registry = jwt.JWTClaimsRegistry(
        aud={"essential": True, "value": "default"},
        sub={"essential": True, "value": license["serial"]},
    )
    registry.validate(decoded.claims)
    wrong = jwt.JWTClaimsRegistry(aud={"essential": True, "value": "another-account"})
    with pytest.raises(Exception, match="aud"):
        wrong.validate(decoded.claims)


def test_nodes_jose_verifies_the_revocation_list_and_its_audience(
    server: Server, owner: httpx.Client, tmp_path: Path
) -> None:
    license = activated_token(server, owner)["license"]
    text = revocations(server, f"License {license['key']}")
    jwks = jwks_of(server)
    done = node_verify(jwks, text, ISSUER, "default", REVOCATIONS_TYP, tmp_path)
    assert done.returncode == 0, done.stderr
    verified = json.loads(done.stdout)
    assert verified["header"]["typ"] == REVOCATIONS_TYP
    assert verified["claims"]["sub"] == license["serial"]
    refused = node_verify(jwks, text, ISSUER, "another-account", REVOCATIONS_TYP, tmp_path)
    assert refused.returncode == 1
    assert "aud" in refused.stderr.lower()
