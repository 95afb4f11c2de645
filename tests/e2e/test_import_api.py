"""Imported licenses over real HTTP: ``GET /v1/licenses/by-legacy-id/{system}/{id}``
and ``POST /v1/check`` with a legacy key, against a server on a store that
``tenure import`` filled."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog
from support.cli import subprocess_env, tenure_executable
from support.server import Server, running_server
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.service.licensing import serial_by_legacy_id

ACCOUNT = "default"
SYSTEM = "keymaster"
ROWS: list[dict[str, Any]] = [
    {
        "legacy_id": "KM-1001",
        "legacy_key": "AAAA-1111-old-key",
        "customer_id": "acme",
        "customer_name": "Acme",
        "product": "studio",
        "plan": "studio-pro",
        "expires_at": "2099-01-01",
        "overrides": {"seats": 20},
    },
    {
        "legacy_id": "KM/1002",
        "legacy_key": "BBBB-2222-old-key",
        "customer_email": "ops@globex.example",
        "product": "studio",
        "plan": "studio-basic",
        "status": "suspended",
    },
    {
        "legacy_id": "KM-1003",
        "legacy_key": "CCCC-3333-old-key",
        "customer_id": "acme",
        "product": "studio",
        "plan": "studio-lifetime",
        "status": "revoked",
    },
]


@dataclass(frozen=True)
class Imported:
    server: Server
    serials: dict[str, str]
    keys: dict[str, str]
    """The new Tenure key of each legacy id."""


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    data_dir = tmp_path_factory.mktemp("import") / "data"
    logs = tmp_path_factory.mktemp("import-logs")
    with running_server(data_dir, logs) as first, first.client(first.owner_key()) as owner:
        apply_example_catalog(owner)
    file = data_dir.parent / "legacy.json"
    file.write_text(json.dumps(ROWS), encoding="utf-8")
    done = subprocess.run(
        [
            *(tenure_executable(), "import", str(file), "--system", SYSTEM),
            *("--data-dir", str(data_dir), "--output", "json"),
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["imported"] == len(ROWS)
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        serials = {
            row["legacy_id"]: serial_by_legacy_id(runtime.store, ACCOUNT, SYSTEM, row["legacy_id"])
            for row in ROWS
        }
        keys = {i: runtime.license_keys.key(ACCOUNT, s) for i, s in serials.items()}
    finally:
        runtime.close()
    with running_server(data_dir, logs) as server:
        yield Imported(server, serials, keys)


@pytest.fixture(scope="module")
def owner(imported: Imported) -> Iterator[httpx.Client]:
    with imported.server.client(imported.server.owner_key()) as client:
        yield client


def test_license_is_found_by_its_legacy_id(imported: Imported, owner: httpx.Client) -> None:
    for row in ROWS:
        legacy_id = row["legacy_id"]
        found = owner.get(f"/v1/licenses/by-legacy-id/{SYSTEM}/{legacy_id}")
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["serial"] == imported.serials[legacy_id]
        assert body == owner.get(f"/v1/licenses/{body['serial']}").json()
    assert owner.get(f"/v1/licenses/by-legacy-id/{SYSTEM}/KM-1001").json()["overrides"] == {
        "seats": 20
    }


def test_unknown_legacy_id_is_404(owner: httpx.Client) -> None:
    missing = owner.get(f"/v1/licenses/by-legacy-id/{SYSTEM}/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    other = owner.get("/v1/licenses/by-legacy-id/othersystem/KM-1001")
    assert other.status_code == 404


def test_legacy_id_lookup_needs_credentials(imported: Imported) -> None:
    with imported.server.client() as anonymous:
        assert anonymous.get(f"/v1/licenses/by-legacy-id/{SYSTEM}/KM-1001").status_code == 401


@pytest.mark.parametrize("entitlement", ["seats", "feature:export-pdf", "feature:scripting"])
def test_check_with_the_legacy_key_answers_as_with_the_new_key(
    imported: Imported, owner: httpx.Client, entitlement: str
) -> None:
    for row in ROWS:
        new = owner.post(
            "/v1/check",
            json={"license": imported.keys[row["legacy_id"]], "entitlement": entitlement},
        )
        legacy = owner.post(
            "/v1/check", json={"license": row["legacy_key"], "entitlement": entitlement}
        )
        assert new.status_code == legacy.status_code == 200, legacy.text
        assert legacy.json() == new.json()
        assert "serial" not in legacy.json()
    reasons = {
        row["legacy_id"]: owner.post(
            "/v1/check", json={"license": row["legacy_key"], "entitlement": "seats"}
        ).json()["reason"]
        for row in ROWS
    }
    assert reasons == {"KM-1001": "ok", "KM/1002": "suspended", "KM-1003": "revoked"}


def test_an_application_authenticates_with_its_legacy_key(imported: Imported) -> None:
    row = ROWS[0]
    headers = {"Authorization": f"License {row['legacy_key']}"}
    with httpx.Client(base_url=imported.server.url, headers=headers) as app:
        answer = app.post(
            "/v1/check", json={"license": row["legacy_key"], "entitlement": "feature:export-pdf"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["allowed"] is True
        other = app.post(
            "/v1/check", json={"license": ROWS[1]["legacy_key"], "entitlement": "seats"}
        )
        assert other.status_code == 403


def test_unknown_legacy_key_is_an_unknown_license(owner: httpx.Client) -> None:
    answer = owner.post("/v1/check", json={"license": "ZZZZ-not-a-key", "entitlement": "seats"})
    assert answer.status_code == 200
    assert answer.json()["reason"] == "unknown_license"


def test_openapi_documents_the_legacy_id_route(owner: httpx.Client) -> None:
    paths = owner.get("/openapi.json").json()["paths"]
    route = paths["/v1/licenses/by-legacy-id/{system}/{legacy_id}"]["get"]
    assert {"200", "401", "403", "404"} <= set(route["responses"])
