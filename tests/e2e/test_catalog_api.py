"""``POST /v1/catalog`` against a real server on a seeded demo store.

The session ``server`` of conftest must keep exactly the seeded events (the ledger
tests count them), so this module runs its own server, seeded the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import approve_with, client_with, people
from support.server import Server, seeded_server
from tenure.service.apikeys import create_api_key, key_id_of
from tenure.store.engine import create_engine

EXAMPLE = (Path(__file__).parents[2] / "examples" / "catalog.yaml").read_bytes()
YAML = {"Content-Type": "application/yaml"}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def catalog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "catalog") as running:
        yield running


@pytest.fixture(scope="module")
def owner(catalog_server: Server) -> Iterator[httpx.Client]:
    with catalog_server.client(catalog_server.owner_key()) as client:
        yield client


def ledger_size(api: httpx.Client) -> int:
    size: int = api.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]
    return size


def post_catalog(api: httpx.Client, body: bytes, **params: str) -> httpx.Response:
    return api.post("/v1/catalog", content=body, headers=YAML, params=params)


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
    return body


def test_example_catalog_dry_run_then_apply_then_reapply(owner: httpx.Client) -> None:
    before = ledger_size(owner)

    dry = post_catalog(owner, EXAMPLE, dry_run="true")
    assert dry.status_code == 200, dry.text
    assert ledger_size(owner) == before  # a dry run appends nothing

    # The example takes entitlements from plans the seed licensed: a request, which a
    # second person approves (the two-person rule); then it is applied, once.
    first, second = people(owner)
    with client_with(owner, first) as person:
        asked = post_catalog(person, EXAMPLE)
    assert asked.status_code == 202, asked.text
    assert ledger_size(owner) == before + 1  # approval.requested only
    approved = approve_with(owner, second, asked.json()["approval"]["approval"])
    diff = dry.json()
    assert set(diff) == {"products", "plans", "changes"}
    # approval.requested, approval.approved, the catalog's events, approval.executed
    assert ledger_size(owner) == before + diff["changes"] + 3, approved

    products = {p["code"]: p for p in diff["products"]}
    assert [p["code"] for p in diff["products"]] == ["render-farm", "studio"]
    assert products["studio"]["action"] == "unchanged"  # the demo defined it the same way
    assert products["render-farm"]["action"] == "update"
    assert products["render-farm"]["added_features"] == ["spot-instances"]

    plans = {p["code"]: p for p in diff["plans"]}
    assert [p["code"] for p in diff["plans"]] == sorted(plans)
    for new in ("studio-lifetime", "farm-burst"):
        assert (plans[new]["action"], plans[new]["version"]) == ("create", 1)
    for plan in plans.values():
        lowered = any(
            c["to"] is None or (c["from"] is not None and c["to"] < c["from"])
            for c in plan["entitlements"]
        )
        assert plan["takes_away"] is lowered
    assert any(plan["takes_away"] for plan in plans.values())  # the demo raised seats since
    changed = sum(
        1 for item in [*diff["products"], *diff["plans"]] if item["action"] != "unchanged"
    )
    assert diff["changes"] == changed

    events = owner.get("/v1/ledger/events", params={"start": before, "limit": 100}).json()
    types = [e["event"]["type"] for e in events["events"]]
    assert types == [
        "approval.requested",
        "approval.approved",
        "product.defined",
        *["plan.published"] * (diff["changes"] - 1),
        "approval.executed",
    ]
    actors = [e["event"]["actor"]["id"] for e in events["events"]]
    assert actors[0] == key_id_of(first)  # the request; the rest is the approver's doing
    assert set(actors[1:]) == {key_id_of(second)}

    again = post_catalog(owner, EXAMPLE)
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == 0
    assert {p["action"] for p in again.json()["plans"]} == {"unchanged"}
    assert ledger_size(owner) == before + diff["changes"] + 3


def test_text_plain_is_accepted_for_a_dry_run(owner: httpx.Client) -> None:
    response = owner.post(
        "/v1/catalog",
        content=EXAMPLE,
        headers={"Content-Type": "text/plain"},
        params={"dry_run": "true"},
    )
    assert response.status_code == 200, response.text


def test_bad_yaml_is_a_400_naming_the_field(owner: httpx.Client) -> None:
    before = ledger_size(owner)
    floats = EXAMPLE.replace(b'"seats": 5,', b'"seats": 5.5,')
    assert_problem(post_catalog(owner, floats), 400, "plans[1].entitlements.seats")
    body = assert_problem(post_catalog(owner, b"products: [\n"), 400, "catalog")
    assert body["type"].endswith("/invalid_input")
    assert_problem(post_catalog(owner, b"\xff\xfe"), 400, "catalog")
    unknown = b"plans: [{code: x, product: nope, entitlements: {seats: 1}, duration: null}]"
    assert_problem(post_catalog(owner, unknown), 400, "plans[0].product")
    assert ledger_size(owner) == before


def test_dropping_a_feature_is_a_409_naming_the_product(owner: httpx.Client) -> None:
    before = ledger_size(owner)
    dropped = EXAMPLE.replace(b", color-grading]", b"]").replace(
        b', "feature:color-grading": true', b""
    )
    body = assert_problem(post_catalog(owner, dropped), 409, "products[0].features")
    assert "color-grading" in body["detail"]
    assert ledger_size(owner) == before


def test_a_body_over_one_mebibyte_is_a_413(owner: httpx.Client) -> None:
    big = EXAMPLE + b"#" * (3 * 1024 * 1024 // 2)
    body = assert_problem(post_catalog(owner, big), 413)
    assert body["type"].endswith("/payload_too_large")


def test_a_body_that_is_not_yaml_is_a_415(owner: httpx.Client) -> None:
    response = owner.post("/v1/catalog", content=b"products=1", headers={"Content-Type": "x/y"})
    assert_problem(response, 415, "content-type")


def test_without_a_key_it_is_a_401(catalog_server: Server) -> None:
    with catalog_server.client() as anonymous:
        assert_problem(post_catalog(anonymous, EXAMPLE), 401)


def test_roles_other_than_owner_and_admin_are_forbidden(catalog_server: Server) -> None:
    engine = create_engine(f"sqlite:///{catalog_server.data_dir / 'tenure.db'}")
    try:
        _, support_key = create_api_key(engine, "default", "support", "e2e support")
        _, admin_key = create_api_key(engine, "default", "admin", "e2e admin")
    finally:
        engine.dispose()
    with catalog_server.client(support_key) as support:
        assert_problem(post_catalog(support, EXAMPLE, dry_run="true"), 403)
    with catalog_server.client(admin_key) as admin:
        assert post_catalog(admin, EXAMPLE, dry_run="true").status_code == 200
