"""Deployment reports and drift over real HTTP (docs/drift.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog, issue_license
from support.remote import tenure
from support.server import REQUEST_TIMEOUT, Server, seed_data_dir, start_server
from tenure.sdk import DeploymentReporting, LicenseClient, fingerprint_hash

PROBLEM_JSON = "application/problem+json"
DEVICE = {"license": "TNR-AAAAA-BBBBB-CCCCC-DDDDD", "fingerprint_hash": "0" * 64}


def _key(owner: httpx.Client, role: str) -> str:
    made = owner.post("/v1/apikeys", json={"role": role, "name": f"drift {role}"})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _client(server: Server, key: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT)


def _activate(owner: httpx.Client, serial: str, fingerprint: str) -> dict[str, Any]:
    done = owner.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": fingerprint})
    assert done.status_code in (200, 201), done.text
    body: dict[str, Any] = done.json()
    return body


def _report(entries: list[dict[str, Any]], version: str = "2.1.0") -> dict[str, Any]:
    return {
        "product": "studio",
        "product_version": version,
        "sdk_version": "0.2.0",
        "activations": entries,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A seeded server with corrections on and a one-minute staleness threshold."""
    data_dir = tmp_path_factory.mktemp("drift") / "data"
    seed_data_dir(data_dir, events=50)
    running = start_server(
        data_dir,
        tmp_path_factory.mktemp("drift-logs"),
        TENURE_RECONCILE_CORRECT="true",
        TENURE_RECONCILE_INTERVAL_MINUTES="0",
    )
    try:
        with running.client(running.owner_key()) as owner:
            apply_example_catalog(owner)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        yield client


@pytest.fixture(scope="module")
def agent(server: Server, owner: httpx.Client) -> Iterator[httpx.Client]:
    with _client(server, _key(owner, "agent")) as client:
        yield client


def test_an_agent_report_of_an_unknown_device_shows_as_drift(
    server: Server, owner: httpx.Client, agent: httpx.Client
) -> None:
    serial = issue_license(owner)["serial"]
    known = _activate(owner, serial, "known-machine")
    stranger = fingerprint_hash(serial, "stranger-machine")
    entries = [
        {"license": serial, "activation": known["id"], "entitlements": ["feature:export-pdf"]},
        {"license": serial, "fingerprint_hash": stranger},
    ]
    posted = agent.post("/v1/deployments/plant-a/reports", json=_report(entries))
    assert posted.status_code == 201, posted.text
    assert posted.json()["activation_count"] == 2
    shown = agent.get("/v1/deployments/plant-a")
    assert shown.status_code == 403  # the agent writes reports, it does not read them
    stored = owner.get("/v1/deployments/plant-a").json()
    assert stored["activations"][1]["fingerprint_hash"] == stranger
    assert "plant-a" in [d["id"] for d in owner.get("/v1/deployments").json()["deployments"]]

    summary = owner.post("/v1/drift/reconcile")
    assert summary.status_code == 200, summary.text
    assert summary.json()["by_kind"]["unknown_device"] >= 1
    listing = owner.get("/v1/drift", params={"kind": "unknown_device"}).json()
    subjects = {f["subject"] for f in listing["findings"] if f["deployment"] == "plant-a"}
    assert len(subjects) == 1
    assert known["id"] not in subjects
    assert listing["last_pass"]["reports"] >= 1


def test_an_issuer_may_not_report_and_auditors_and_support_may_read_drift(
    server: Server, owner: httpx.Client
) -> None:
    with _client(server, _key(owner, "issuer")) as issuer:
        refused = issuer.post("/v1/deployments/plant-b/reports", json=_report([]))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    for role in ("auditor", "support"):
        with _client(server, _key(owner, role)) as reader:
            assert reader.get("/v1/drift").status_code == 200
            assert reader.post("/v1/drift/reconcile").status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"product": "studio", "product_version": "1", "sdk_version": "1", "extra": 1},
        _report([{"license": "TNR-AAAAA-BBBBB-CCCCC-DDDDD"}]),
        _report([{"license": "nope", "fingerprint_hash": "0" * 64}]),
        _report([{**DEVICE, "tokens": [{"jti": "tok_x", "exp": 1}]}]),
        _report([{**DEVICE, "entitlements": ["export-pdf"]}]),
        _report([{**DEVICE, "tokens": [{"jti": "tok_" + "a" * 26, "exp": "1"}]}]),
        {**_report([]), "product_version": 3},
        {**_report([]), "reported_at": "yesterday"},
    ],
)
def test_bad_report_bodies_are_400_problems(agent: httpx.Client, body: dict[str, Any]) -> None:
    answer = agent.post("/v1/deployments/plant-c/reports", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)


def test_bad_deployment_ids_kinds_and_garbage_are_400(
    agent: httpx.Client, owner: httpx.Client
) -> None:
    assert agent.post("/v1/deployments/bad%20id/reports", json=_report([])).status_code == 400
    garbage = agent.post(
        "/v1/deployments/x/reports", content=b"\xff{", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400
    assert owner.get("/v1/drift", params={"kind": "nonsense"}).status_code == 400
    assert owner.get("/v1/deployments/never-reported").status_code == 404


def test_tenure_reconcile_prints_the_counts_and_drift_list_the_findings(server: Server) -> None:
    done = tenure(server, "reconcile")
    assert done.returncode == 0, done.stderr
    for kind in ("unknown_device", "over_seat", "version_skew", "total"):
        assert kind in done.stdout
    as_json = json.loads(tenure(server, "reconcile", "--output", "json").stdout)
    assert set(as_json["by_kind"]) >= {"stale_report", "expired_token"}
    listed = tenure(server, "drift", "list", "--kind", "unknown_device", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert all(f["kind"] == "unknown_device" for f in json.loads(listed.stdout)["findings"])


def _history_reasons(owner: httpx.Client, serial: str, kind: str) -> list[str]:
    events = [e["event"] for e in owner.get(f"/v1/licenses/{serial}/history").json()["events"]]
    return [e["reason"] or "" for e in events if e["type"] == kind]


def test_an_expired_token_in_use_is_revoked_with_the_reconcilers_reason(
    owner: httpx.Client, agent: httpx.Client
) -> None:
    serial = issue_license(owner)["serial"]
    device = _activate(owner, serial, "old-token-machine")
    jti = "tok_" + "a" * 26
    entry = {"license": serial, "activation": device["id"], "tokens": [{"jti": jti, "exp": 1000}]}
    assert agent.post("/v1/deployments/plant-d/reports", json=_report([entry])).status_code == 201
    first = owner.post("/v1/drift/reconcile").json()
    assert first["corrections"] >= 1
    again = owner.post("/v1/drift/reconcile").json()
    assert again["corrections"] == 0  # idempotent: the same correction is not appended twice
    reasons = _history_reasons(owner, serial, "token.revoked")
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith("reconciler:"), reasons
    listing = owner.get("/v1/drift", params={"kind": "revoked_token"}).json()
    assert jti in {f["subject"] for f in listing["findings"]}


def test_corrections_are_off_by_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_data_dir(data_dir, events=50)
    running = start_server(data_dir, tmp_path, TENURE_RECONCILE_INTERVAL_MINUTES="0")
    try:
        with running.client(running.owner_key()) as owner:
            apply_example_catalog(owner)
            serial = issue_license(owner)["serial"]
            device = _activate(owner, serial, "machine")
            jti = "tok_" + "b" * 26
            entry = {
                "license": serial, "activation": device["id"],
                "tokens": [{"jti": jti, "exp": 1000}],
            }  # fmt: skip
            posted = owner.post("/v1/deployments/plant-e/reports", json=_report([entry]))
            assert posted.status_code == 201, posted.text
            summary = owner.post("/v1/drift/reconcile").json()
            assert summary["corrections"] == 0
            assert summary["by_kind"]["expired_token"] == 1
            assert _history_reasons(owner, serial, "token.revoked") == []
    finally:
        running.stop()


def test_the_sdk_reports_its_device_on_refresh(
    server: Server, owner: httpx.Client, tmp_path: Path
) -> None:
    issued = issue_license(owner)
    reporting = DeploymentReporting("sdk-site", _key(owner, "agent"), "studio", "2.1.0")
    client = LicenseClient(
        server.url, issued["key"], issued["serial"], "sdk-machine", tmp_path / "cache",
        refresh=False, reporting=reporting,
    )  # fmt: skip
    try:
        client.activate()
        client.refresh_now()
        assert client.last_report_error is None
    finally:
        client.close()
    stored = owner.get("/v1/deployments/sdk-site").json()
    (entry,) = stored["activations"]
    assert entry["license"] == issued["serial"]
    assert entry["fingerprint_hash"] == fingerprint_hash(issued["serial"], "sdk-machine")
    assert "feature:export-pdf" in entry["entitlements"]
    assert entry["tokens"][0]["exp"] > time.time()


def test_a_failed_report_never_breaks_the_refresh(
    server: Server, owner: httpx.Client, tmp_path: Path
) -> None:
    issued = issue_license(owner)
    reporting = DeploymentReporting("sdk-site-2", "tnr_not_a_key", "studio", "2.1.0")
    client = LicenseClient(
        server.url, issued["key"], issued["serial"], "sdk-machine-2", tmp_path / "cache",
        refresh=False, reporting=reporting,
    )  # fmt: skip
    try:
        client.activate()
        client.refresh_now()
        assert client.check("feature:export-pdf").allowed
        assert client.last_report_error is not None
        assert "401" in client.last_report_error
    finally:
        client.close()
