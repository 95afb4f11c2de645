"""``POST /v1/check`` and ``/v1/check/batch`` against a real server on a seeded store.

The session ``server`` of conftest must keep exactly the seeded events (the ledger
tests count them), so this module runs its own server, seeded the same way. The
licenses are found read-only in the seeded SQLite file; their keys are derived the
way the demo seed derives them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from support.server import SEED, Server, seeded_server
from tenure.crypto.keystore import hash_license_key
from tenure.domain.decisions import effective_entitlements
from tenure.ledger.checkpoint import open_checkpoint
from tenure.ledger.note import NoteVerifier
from tenure.service.apikeys import create_api_key
from tenure.service.demo import demo_license_keys
from tenure.store.engine import create_engine
from tenure.store.unit import SqlStore

ACCOUNT = "default"
PROBLEM = "application/problem+json"
ANSWER_KEYS = {"allowed", "reason", "value", "status", "expires_at", "checkpoint"}
UNKNOWN_SERIAL = "TNR-AAAAA-AAAAA-AAAAA-AAAAA"
UNKNOWN_KEY = "TNRK-AAAAAAAA-AAAAAAAA-AAAAAAAA-AAAAAAAA"
NOT_GRANTED = "feature:teleportation"


@dataclass(frozen=True)
class License:
    serial: str
    key: str
    status: str
    granted: str
    """A ``feature:`` entitlement this license's plan version (with overrides) grants."""


@pytest.fixture(scope="module")
def check_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "check") as running:
        yield running


@pytest.fixture(scope="module")
def owner(check_server: Server) -> Iterator[httpx.Client]:
    with check_server.client(check_server.owner_key()) as client:
        yield client


def _seeded_licenses(server: Server) -> dict[str, list[License]]:
    """Every seeded license by stored status, latest expiry first (read-only SQL)."""
    uri = f"file:{server.data_dir / 'tenure.db'}?mode=ro"
    keys = demo_license_keys(SEED)
    found: dict[str, list[License]] = {}
    with sqlite3.connect(uri, uri=True) as db:
        plans = {
            (plan, version): {"entitlements": orjson.loads(grants)}
            for plan, version, grants in db.execute(
                "SELECT plan, version, entitlements FROM proj_plan_versions WHERE account = ?",
                (ACCOUNT,),
            )
        }
        rows = db.execute(
            "SELECT serial, status, plan, plan_version, key_hash, overrides FROM proj_licenses "
            "WHERE account = ? ORDER BY expires_at DESC, serial",
            (ACCOUNT,),
        ).fetchall()
    for serial, status, plan, version, key_hash, overrides in rows:
        key = keys.key(ACCOUNT, serial)
        assert hash_license_key(key) == key_hash  # the demo's key derivation holds
        grants = effective_entitlements(
            plans[plan, version], {"overrides": orjson.loads(overrides)}
        )
        feature = min(k for k, v in grants.items() if k.startswith("feature:") and v)
        found.setdefault(status, []).append(License(serial, key, status, feature))
    return found


@pytest.fixture(scope="module")
def licenses(check_server: Server) -> dict[str, list[License]]:
    found = _seeded_licenses(check_server)
    assert {"active", "suspended", "revoked"} <= set(found), set(found)
    return found


@pytest.fixture(scope="module")
def active(licenses: dict[str, list[License]]) -> License:
    """The active license expiring last, so that it is valid at the real clock."""
    return licenses["active"][0]


def ledger_size(api: httpx.Client) -> int:
    size: int = api.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]
    return size


def post_check(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


def license_client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"License {key}"})


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
    return body


# --------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------


def test_an_entitled_feature_is_allowed_against_the_latest_signed_checkpoint(
    owner: httpx.Client, active: License
) -> None:
    before = ledger_size(owner)
    answer = post_check(owner, license=active.serial, entitlement=active.granted)
    assert set(answer) == ANSWER_KEYS | {"serial"}
    assert (answer["allowed"], answer["reason"], answer["value"]) == (True, "ok", True)
    assert answer["status"] == "active"
    assert answer["serial"] == active.serial
    assert answer["expires_at"].endswith("Z")

    note = owner.get("/v1/ledger/checkpoint").text
    verifiers = [NoteVerifier.from_key_string(k) for k in owner.get("/v1/ledger/key").text.split()]
    checkpoint = open_checkpoint(note, verifiers)
    assert answer["checkpoint"] == {"size": checkpoint.size, "root": checkpoint.root_b64}
    assert checkpoint.size == before
    assert ledger_size(owner) == before  # a check appends nothing to the ledger


def test_a_check_by_key_answers_the_same_without_revealing_the_serial(
    owner: httpx.Client, active: License
) -> None:
    by_serial = post_check(owner, license=active.serial, entitlement=active.granted)
    by_key = post_check(owner, license=active.key, entitlement=active.granted)
    assert "serial" not in by_key
    assert by_key == {k: v for k, v in by_serial.items() if k != "serial"}


def test_a_fingerprint_is_accepted(owner: httpx.Client, active: License) -> None:
    answer = post_check(
        owner, license=active.serial, entitlement=active.granted, fingerprint="sha256:abc"
    )
    assert answer["reason"] == "ok"


def test_seats_answer_the_numeric_value(owner: httpx.Client, active: License) -> None:
    answer = post_check(owner, license=active.serial, entitlement="seats")
    assert answer["allowed"] is True
    assert isinstance(answer["value"], int)
    assert answer["value"] > 0


def test_an_entitlement_the_plan_does_not_grant_is_not_entitled(
    owner: httpx.Client, active: License
) -> None:
    answer = post_check(owner, license=active.serial, entitlement=NOT_GRANTED)
    assert (answer["allowed"], answer["reason"], answer["value"]) == (False, "not_entitled", None)
    assert answer["status"] == "active"


@pytest.mark.parametrize("unknown", [UNKNOWN_SERIAL, UNKNOWN_KEY, "not-a-license"])
def test_an_unknown_license_is_a_200_no_with_reason_unknown_license(
    owner: httpx.Client, unknown: str
) -> None:
    answer = post_check(owner, license=unknown, entitlement="feature:export-pdf")
    assert set(answer) == ANSWER_KEYS  # no serial, nothing about any license
    assert answer["allowed"] is False
    assert answer["reason"] == "unknown_license"
    assert (answer["value"], answer["status"], answer["expires_at"]) == (None, "unknown", None)
    assert answer["checkpoint"]["size"] == ledger_size(owner)


def test_a_revoked_license_is_denied_with_reason_revoked(
    owner: httpx.Client, licenses: dict[str, list[License]]
) -> None:
    revoked = licenses["revoked"][0]
    for name in (revoked.serial, revoked.key):
        answer = post_check(owner, license=name, entitlement=revoked.granted)
        assert (answer["allowed"], answer["reason"]) == (False, "revoked")
        assert (answer["status"], answer["value"]) == ("revoked", None)


def test_a_suspended_license_is_denied_with_reason_suspended_and_keeps_its_value(
    owner: httpx.Client, licenses: dict[str, list[License]]
) -> None:
    suspended = licenses["suspended"][0]
    answer = post_check(owner, license=suspended.serial, entitlement=suspended.granted)
    assert (answer["allowed"], answer["reason"]) == (False, "suspended")
    assert (answer["status"], answer["value"]) == ("suspended", True)
    assert answer["serial"] == suspended.serial


# --------------------------------------------------------------------------------------
# Batch
# --------------------------------------------------------------------------------------


def test_a_batch_answers_each_check_in_order(
    owner: httpx.Client, licenses: dict[str, list[License]], active: License
) -> None:
    asked = [
        (active.serial, active.granted, "ok"),
        (licenses["revoked"][0].key, "seats", "revoked"),
        (UNKNOWN_KEY, "seats", "unknown_license"),
        (active.key, NOT_GRANTED, "not_entitled"),
        (licenses["suspended"][0].serial, "seats", "suspended"),
        (active.key, active.granted, "ok"),
    ]
    checks = [{"license": name, "entitlement": what} for name, what, _ in asked]
    response = owner.post("/v1/check/batch", json={"checks": checks})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["reason"] for r in results] == [reason for _, _, reason in asked]
    assert ["serial" in r for r in results] == [True, False, False, False, True, False]
    assert len({orjson.dumps(r["checkpoint"]) for r in results}) == 1  # one snapshot
    single = post_check(owner, license=active.serial, entitlement=active.granted)
    assert results[0] == single


def test_an_empty_batch_answers_no_results(owner: httpx.Client) -> None:
    response = owner.post("/v1/check/batch", json={"checks": []})
    assert response.status_code == 200, response.text
    assert response.json() == {"results": []}


def test_a_full_batch_of_1000_is_answered(owner: httpx.Client, active: License) -> None:
    checks = [{"license": active.serial, "entitlement": "seats"}] * 1000
    response = owner.post("/v1/check/batch", json={"checks": checks})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 1000


# --------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------


def test_without_credentials_it_is_a_401(check_server: Server, active: License) -> None:
    body = {"license": active.serial, "entitlement": "seats"}
    with check_server.client() as anonymous:
        assert_problem(anonymous.post("/v1/check", json=body), 401)
        assert_problem(anonymous.post("/v1/check/batch", json={"checks": [body]}), 401)
    with check_server.client("tnr_" + "a" * 52) as wrong:
        assert_problem(wrong.post("/v1/check", json=body), 401)
    with license_client(check_server, UNKNOWN_KEY) as unknown:
        assert_problem(unknown.post("/v1/check", json=body), 401)
    with check_server.client() as anonymous:
        for header in ("License", "Basic dXNlcjpwYXNz", "Bearer"):
            response = anonymous.post("/v1/check", json=body, headers={"Authorization": header})
            assert_problem(response, 401)


def test_any_role_of_the_account_may_check(check_server: Server, active: License) -> None:
    engine = create_engine(f"sqlite:///{check_server.data_dir / 'tenure.db'}")
    try:
        _, agent_key = create_api_key(SqlStore(engine), ACCOUNT, "agent", "e2e agent")
        _, auditor_key = create_api_key(SqlStore(engine), ACCOUNT, "auditor", "e2e auditor")
    finally:
        engine.dispose()
    for key in (agent_key, auditor_key):
        with check_server.client(key) as client:
            assert post_check(client, license=active.key, entitlement="seats")["allowed"]


def test_a_license_key_may_check_its_own_license_by_key_or_serial(
    check_server: Server, active: License
) -> None:
    with license_client(check_server, active.key) as app:
        by_key = post_check(app, license=active.key, entitlement=active.granted)
        by_serial = post_check(app, license=active.serial, entitlement=NOT_GRANTED)
        batch = app.post(
            "/v1/check/batch",
            json={"checks": [{"license": active.key, "entitlement": "seats"}] * 2},
        )
    assert (by_key["reason"], "serial" in by_key) == ("ok", False)
    assert (by_serial["reason"], by_serial["serial"]) == ("not_entitled", active.serial)
    assert batch.status_code == 200, batch.text
    assert [r["reason"] for r in batch.json()["results"]] == ["ok", "ok"]


def test_a_revoked_license_key_still_learns_that_it_is_revoked(
    check_server: Server, licenses: dict[str, list[License]]
) -> None:
    revoked = licenses["revoked"][0]
    with license_client(check_server, revoked.key) as app:
        assert post_check(app, license=revoked.key, entitlement="seats")["reason"] == "revoked"


def test_a_license_key_may_not_check_another_license(
    check_server: Server, licenses: dict[str, list[License]], active: License
) -> None:
    other = licenses["active"][1]
    with license_client(check_server, active.key) as app:
        for name in (other.serial, other.key, UNKNOWN_SERIAL, UNKNOWN_KEY):
            body = {"license": name, "entitlement": "seats"}
            problem = assert_problem(app.post("/v1/check", json=body), 403, "license")
            assert problem["type"].endswith("/forbidden")
            assert other.serial not in problem["detail"]
        mixed = [
            {"license": active.key, "entitlement": "seats"},
            {"license": other.serial, "entitlement": "seats"},
        ]
        response = app.post("/v1/check/batch", json={"checks": mixed})
        assert_problem(response, 403, "checks[1].license")


# --------------------------------------------------------------------------------------
# Bad input: 400 naming the field, never a 500
# --------------------------------------------------------------------------------------

GOOD = {"license": UNKNOWN_SERIAL, "entitlement": "seats"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"entitlement": "seats"}, "license"),
        ({"license": UNKNOWN_SERIAL}, "entitlement"),
        ({**GOOD, "extra": 1}, "extra"),
        ({**GOOD, "entitlement": "feature:Export PDF"}, "entitlement"),
        ({**GOOD, "entitlement": "color"}, "entitlement"),
        ({**GOOD, "entitlement": "feature:x\n"}, "entitlement"),
        ({**GOOD, "license": ""}, "license"),
        ({**GOOD, "license": "x" * 201}, "license"),
        ({**GOOD, "license": 12345}, "license"),
        ({**GOOD, "fingerprint": "f" * 201}, "fingerprint"),
        ({**GOOD, "fingerprint": ["a"]}, "fingerprint"),
        ([GOOD], "body"),
        ("seats", "body"),
        (None, "body"),
    ],
)
def test_a_malformed_check_is_a_400_naming_the_field(
    owner: httpx.Client, body: Any, field: str
) -> None:
    problem = assert_problem(owner.post("/v1/check", content=orjson.dumps(body)), 400, field)
    assert problem["type"].endswith("/invalid_input")


@pytest.mark.parametrize(
    "content", [b"{", b"license=x&entitlement=seats", b"\xff\xfe", b'{"license": "a",}']
)
def test_a_body_that_is_not_json_is_a_400(owner: httpx.Client, content: bytes) -> None:
    for path in ("/v1/check", "/v1/check/batch"):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        assert_problem(owner.post(path, content=content, headers=headers), 400, "body")


def test_an_empty_body_is_a_400_naming_the_first_missing_field(owner: httpx.Client) -> None:
    assert_problem(owner.post("/v1/check", content=b""), 400, "license")
    assert_problem(owner.post("/v1/check/batch", content=b""), 400, "checks")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "checks"),
        ({"checks": GOOD}, "checks"),
        ({"checks": [GOOD] * 1001}, "checks"),
        ({"checks": [GOOD], "more": True}, "more"),
        ({"checks": [GOOD, {"license": UNKNOWN_SERIAL}]}, "checks[1].entitlement"),
        ({"checks": [GOOD, {**GOOD, "x": 1}]}, "checks[1].x"),
        ({"checks": [GOOD, GOOD, {**GOOD, "entitlement": "nope"}]}, "checks[2].entitlement"),
    ],
)
def test_a_malformed_batch_is_a_400_naming_the_field(
    owner: httpx.Client, body: Any, field: str
) -> None:
    assert_problem(owner.post("/v1/check/batch", json=body), 400, field)


def test_an_oversized_body_is_a_413(owner: httpx.Client) -> None:
    body = {"checks": [GOOD] * 1000, "padding": "x" * (1024 * 1024)}
    problem = assert_problem(owner.post("/v1/check/batch", json=body), 413)
    assert problem["type"].endswith("/payload_too_large")


def test_the_openapi_document_describes_both_bodies(owner: httpx.Client) -> None:
    paths = owner.get("/openapi.json").json()["paths"]
    single = paths["/v1/check"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(single["required"]) == {"license", "entitlement"}
    batch = paths["/v1/check/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["checks"]["maxItems"] == 1000
