"""The SDK against a real server: activate, go offline, expire, recover, be revoked.

The server runs as a subprocess (``tests/e2e/conftest.py``); the SDK's clock is
injected so that a day and two weeks offline pass in a moment.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from support.api import apply_example_catalog, issue_license
from support.server import Server, running_server, seed_data_dir, start_server
from tenure.crypto.jws import b64url_decode
from tenure.sdk import LicenseClient, RefreshFailed

DAY = 86_400
GRACE = 14 * DAY  # studio-pro: offline_token_ttl PT24H, grace P14D


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sdk") / "data"
    seed_data_dir(directory)
    return directory


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk-logs")


@pytest.fixture(scope="module")
def license(data_dir: Path, logs: Path) -> dict[str, Any]:
    """A studio-pro license, issued on a server that is stopped again: each test
    starts the servers it needs on the same data dir, one at a time."""
    with running_server(data_dir, logs) as server, server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        issued_license = issue_license(owner)
    return issued_license


def sdk(server: Server, license: dict[str, Any], cache: Path, clock: Clock) -> LicenseClient:
    return LicenseClient(
        server.url, license["key"], license["serial"], "e2e-machine", cache,
        clock=clock, refresh=False,
    )  # fmt: skip


def test_activate_go_offline_expire_recover_and_be_revoked(
    data_dir: Path, logs: Path, license: dict[str, Any], tmp_path: Path
) -> None:
    cache, clock = tmp_path / "cache", Clock()
    server = start_server(data_dir, logs)
    try:
        client = sdk(server, license, cache, clock)
        client.activate()
        assert client.check("feature:export-pdf").reason == "ok"
        assert client.check("seats").value == 5
        assert client.check("feature:scripting").reason == "not_entitled"
    finally:
        server.stop()

    # Offline: decisions stay local.
    assert client.check("feature:cloud-sync").reason == "ok"
    with pytest.raises(RefreshFailed) as failed:
        client.refresh_now()
    assert failed.value.problem == "unreachable"
    clock.offset = DAY + 60
    assert client.check("feature:export-pdf").reason == "offline_grace"
    assert client.check("feature:cloud-sync").reason == "token_expired"
    clock.offset = DAY + GRACE + 60
    assert client.check("feature:export-pdf").reason == "token_expired"
    client.close()

    # Back online (another port): the clock is real again, which the cache sees as a
    # rollback until a freshly verified token re-anchors it.
    clock.offset = 0
    server = start_server(data_dir, logs)
    try:
        client = sdk(server, license, cache, clock)
        assert client.check("feature:export-pdf").reason == "clock_rollback"
        client.refresh_now()
        assert client.check("feature:cloud-sync").reason == "ok"
        assert client.sync_revocations() is None

        with server.client(server.owner_key()) as owner:
            revoked = owner.post(
                f"/v1/licenses/{license['serial']}/revoke", json={"reason": "chargeback"}
            )
            assert revoked.status_code == 200, revoked.text
        assert client.sync_revocations() == "license_revoked"
        assert client.check("feature:export-pdf").reason == "revoked"
        restarted = sdk(server, license, cache, clock)
        assert restarted.check("feature:export-pdf").reason == "revoked"
        client.close()
        restarted.close()
    finally:
        server.stop()


def test_a_revoked_token_is_dropped_on_sync(
    data_dir: Path, logs: Path, license: dict[str, Any], tmp_path: Path
) -> None:
    other = dict(license)
    with running_server(data_dir, logs) as server, server.client(server.owner_key()) as owner:
        fresh = _new_license(owner)
        other.update(fresh)
        client = sdk(server, other, tmp_path / "cache", Clock())
        client.activate()
        jti = _jti(tmp_path / "cache")
        done = owner.post(
            f"/v1/licenses/{other['serial']}/tokens/{jti}/revoke", json={"reason": "leaked"}
        )
        assert done.status_code == 200, done.text
        assert client.check("seats").allowed
        assert client.sync_revocations() == "token"
        assert client.check("seats").reason == "revoked"
        client.close()


def _new_license(owner: httpx.Client) -> dict[str, Any]:
    customer = owner.post("/v1/customers", json={"name": "T", "email": "t@t.example"}).json()["id"]
    issued = owner.post(
        "/v1/licenses",
        json={"product": "studio", "plan": "studio-pro", "customer": customer,
              "order_ref": uuid.uuid4().hex},
    )  # fmt: skip
    assert issued.status_code == 201, issued.text
    result: dict[str, Any] = issued.json()
    return result


def _jti(cache: Path) -> str:

    claims = orjson.loads(b64url_decode((cache / "token.jws").read_text().split(".")[1]))
    jti: str = claims["jti"]
    return jti
