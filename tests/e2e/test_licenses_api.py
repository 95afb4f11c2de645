"""The licensing API against a real server on a seeded demo store.

The session ``server`` of conftest must keep exactly the seeded events (the ledger
tests count them), so this module runs its own server, seeded the same way. Each
test makes its own customers and licenses (fresh order references), so tests do not
depend on each other's order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from support.server import Server, seeded_server
from tenure.service.apikeys import create_api_key
from tenure.store.engine import create_engine

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def licensing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "licensing") as running:
        yield running


@pytest.fixture(scope="module")
def owner(licensing_server: Server) -> Iterator[httpx.Client]:
    with licensing_server.client(licensing_server.owner_key()) as client:
        yield client


@pytest.fixture(scope="module")
def role_keys(licensing_server: Server) -> dict[str, str]:
    engine = create_engine(f"sqlite:///{licensing_server.data_dir / 'tenure.db'}")
    try:
        return {
            role: create_api_key(engine, "default", role, f"e2e {role}")[1]
            for role in ("issuer", "support", "auditor")
        }
    finally:
        engine.dispose()


def ledger_size(api: httpx.Client) -> int:
    size: int = api.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]
    return size


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    if field is not None:
        assert body.get("field") == field, body
    return body


def new_customer(api: httpx.Client, name: str = "Acme GmbH") -> str:
    response = api.post("/v1/customers", json={"name": name, "email": "it@acme.example"})
    assert response.status_code == 201, response.text
    customer: str = response.json()["id"]
    return customer


def issue(
    api: httpx.Client, customer: str, plan: str = "studio-basic", order_ref: str | None = None
) -> httpx.Response:
    body = {
        "product": "studio",
        "plan": plan,
        "customer": customer,
        "order_ref": order_ref or f"ord-{uuid.uuid4().hex}",
    }
    return api.post("/v1/licenses", json=body)


def new_license(api: httpx.Client, customer: str | None = None) -> dict[str, Any]:
    response = issue(api, customer or new_customer(api))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def act(api: httpx.Client, serial: str, action: str, **body: Any) -> httpx.Response:
    return api.post(f"/v1/licenses/{serial}/{action}", json=body)


# ---------------------------------------------------------------- customers and products


def test_create_customer_answers_201_with_id_and_can_be_read_back(owner: httpx.Client) -> None:
    body = {"name": "Globex", "email": "ops@globex.example", "external_id": f"crm-{uuid.uuid4()}"}
    created = owner.post("/v1/customers", json=body)
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["id"].startswith("cus_")
    assert customer["name"] == "Globex"
    assert owner.get(f"/v1/customers/{customer['id']}").json() == customer
    again = owner.post("/v1/customers", json=body)  # same external id: the same customer
    assert again.status_code == 200
    assert again.json()["id"] == customer["id"]


def test_unknown_customer_is_a_404_problem(owner: httpx.Client) -> None:
    assert_problem(owner.get("/v1/customers/cus_nobody"), 404)


def test_products_list_the_demo_catalog_with_latest_plan_versions(owner: httpx.Client) -> None:
    response = owner.get("/v1/products")
    assert response.status_code == 200
    products = {p["code"]: p for p in response.json()["products"]}
    assert {"studio", "render-farm", "docs-cloud"} <= set(products)
    plans = {p["code"]: p for p in products["studio"]["plans"]}
    assert {"studio-basic", "studio-pro"} <= set(plans)
    assert plans["studio-basic"]["version"] >= 1
    assert isinstance(plans["studio-basic"]["entitlements"]["seats"], int)
    assert plans["studio-basic"]["activation"] in ("floating", "node-locked")


# ---------------------------------------------------------------- issuing and reading


def test_issue_answers_201_with_key_and_reissue_answers_200_with_same_serial_and_key(
    owner: httpx.Client,
) -> None:
    customer = new_customer(owner)
    first = issue(owner, customer, order_ref="order-1001")
    assert first.status_code == 201, first.text
    license_ = first.json()
    assert license_["serial"].startswith("TNR-")
    assert license_["key"]
    assert license_["status"] == "active"
    assert license_["plan_version"] >= 1
    assert license_["expires_at"] is not None
    assert "key_hash" not in license_

    size = ledger_size(owner)
    second = issue(owner, customer, order_ref="order-1001")
    assert second.status_code == 200, second.text
    assert second.json()["serial"] == license_["serial"]
    assert second.json()["key"] == license_["key"]
    assert ledger_size(owner) == size


def test_show_returns_the_license_without_key_or_key_hash(owner: httpx.Client) -> None:
    issued = new_license(owner)
    shown = owner.get(f"/v1/licenses/{issued['serial']}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["serial"] == issued["serial"]
    assert body["customer"] == issued["customer"]
    assert body["status"] == "active"
    assert "key" not in body
    assert "key_hash" not in body


def test_unknown_serial_is_a_404_problem_everywhere(owner: httpx.Client) -> None:
    serial = "TNR-AAAAA-AAAAA-AAAAA-AAAAA"
    assert_problem(owner.get(f"/v1/licenses/{serial}"), 404)
    assert_problem(owner.get(f"/v1/licenses/{serial}/history"), 404)
    assert_problem(act(owner, serial, "suspend", reason="fraud"), 404)
    assert_problem(act(owner, serial, "renew"), 404)


def test_issue_for_unknown_customer_or_plan_is_a_404(owner: httpx.Client) -> None:
    missing = "cus_" + "a" * 26
    assert_problem(issue(owner, missing), 404, field="customer")
    assert_problem(issue(owner, new_customer(owner), plan="no-such-plan"), 404)


def test_list_filters_by_customer_status_and_product(owner: httpx.Client) -> None:
    customer = new_customer(owner)
    serials = sorted(new_license(owner, customer)["serial"] for _ in range(3))
    assert act(owner, serials[0], "suspend", reason="unpaid").status_code == 200

    mine = owner.get("/v1/licenses", params={"customer": customer}).json()
    assert [lic["serial"] for lic in mine["licenses"]] == serials
    assert mine["next_cursor"] is None

    suspended = owner.get("/v1/licenses", params={"customer": customer, "status": "suspended"})
    assert [lic["serial"] for lic in suspended.json()["licenses"]] == serials[:1]
    active = owner.get("/v1/licenses", params={"customer": customer, "status": "active"})
    assert [lic["serial"] for lic in active.json()["licenses"]] == serials[1:]
    other = owner.get("/v1/licenses", params={"customer": customer, "product": "docs-cloud"})
    assert other.json()["licenses"] == []
    assert_problem(owner.get("/v1/licenses", params={"status": "sleeping"}), 400, field="status")
    assert_problem(owner.get("/v1/licenses", params={"limit": 0}), 400, field="limit")
    assert_problem(owner.get("/v1/licenses", params={"limit": 201}), 400, field="limit")
    assert_problem(owner.get("/v1/licenses", params={"cursor": "%%%"}), 400, field="cursor")


def _walk(api: httpx.Client, limit: int, **filters: str) -> list[str]:
    serials: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {**filters, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = api.get("/v1/licenses", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["licenses"]) <= limit
        serials.extend(lic["serial"] for lic in body["licenses"])
        cursor = body["next_cursor"]
        if cursor is None:
            return serials


def test_cursor_pagination_walks_every_license_once_in_serial_order(owner: httpx.Client) -> None:
    customer = new_customer(owner)
    issued = sorted(new_license(owner, customer)["serial"] for _ in range(7))
    assert _walk(owner, 3, customer=customer) == issued
    assert _walk(owner, 7, customer=customer) == issued

    everything = _walk(owner, 200)
    assert len(everything) == len(set(everything))
    assert everything == sorted(everything)
    assert _walk(owner, 13) == everything  # other page sizes: no gaps, no duplicates
    assert set(issued) <= set(everything)


# ---------------------------------------------------------------- lifecycle


def test_lifecycle_suspend_reinstate_override_change_plan_transfer_renew_revoke(
    owner: httpx.Client,
) -> None:
    issued = new_license(owner)
    serial = issued["serial"]

    assert_problem(act(owner, serial, "suspend"), 400, field="reason")
    assert_problem(act(owner, serial, "suspend", reason="   "), 400, field="reason")
    suspended = act(owner, serial, "suspend", reason="chargeback")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert_problem(act(owner, serial, "suspend", reason="again"), 409)

    reinstated = act(owner, serial, "reinstate")
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["status"] == "active"

    assert_problem(act(owner, serial, "override", entitlement="seats", value=3), 400, "reason")
    overridden = act(owner, serial, "override", entitlement="seats", value=3, reason="deal")
    assert overridden.status_code == 200, overridden.text
    assert overridden.json()["overrides"] == {"seats": 3}

    changed = act(owner, serial, "change-plan", plan="studio-pro")
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"] == "studio-pro"

    other = new_customer(owner, "Initech")
    transferred = act(owner, serial, "transfer", customer=other, reason="acquisition")
    assert transferred.status_code == 200, transferred.text
    assert transferred.json()["customer"] == other

    renewed = act(owner, serial, "renew", duration="P30D")
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["expires_at"] > issued["expires_at"]

    assert_problem(act(owner, serial, "revoke"), 400, field="reason")
    revoked = act(owner, serial, "revoke", reason="fraud")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert_problem(act(owner, serial, "suspend", reason="after revoke"), 409)
    assert_problem(act(owner, serial, "reinstate"), 409)

    history = owner.get(f"/v1/licenses/{serial}/history")
    assert history.status_code == 200
    events = history.json()["events"]
    assert [e["event"]["type"] for e in events] == [
        "license.issued",
        "license.suspended",
        "license.reinstated",
        "license.entitlement_overridden",
        "license.plan_changed",
        "license.transferred",
        "license.renewed",
        "license.revoked",
    ]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert all(e["event"]["seq"] == e["seq"] for e in events)
    assert all(e["event"]["data"]["serial"] == serial for e in events)
    assert events[1]["event"]["reason"] == "chargeback"
    assert events[1]["event"]["actor"]["auth"] == "api_key"


def test_transfer_to_unknown_customer_is_a_404(owner: httpx.Client) -> None:
    serial = new_license(owner)["serial"]
    assert_problem(act(owner, serial, "transfer", customer="cus_" + "b" * 26), 404, "customer")


# ---------------------------------------------------------------- idempotency


def test_idempotent_retry_returns_the_same_response_and_appends_nothing(
    owner: httpx.Client,
) -> None:
    customer = new_customer(owner)
    body = {"product": "studio", "plan": "studio-basic", "customer": customer, "order_ref": "x-1"}
    headers = {"Idempotency-Key": f"issue-{uuid.uuid4()}"}
    first = owner.post("/v1/licenses", json=body, headers=headers)
    assert first.status_code == 201, first.text
    size = ledger_size(owner)
    retry = owner.post("/v1/licenses", json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert ledger_size(owner) == size

    serial = first.json()["serial"]
    key = {"Idempotency-Key": f"suspend-{uuid.uuid4()}"}
    done = owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "late"}, headers=key)
    assert done.status_code == 200, done.text
    size = ledger_size(owner)
    again = owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "late"}, headers=key)
    assert again.status_code == 200  # not a 409 "already suspended": the retry is replayed
    assert again.json() == done.json()
    assert ledger_size(owner) == size

    changed = owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "other"}, headers=key)
    assert_problem(changed, 409)
    assert changed.json()["type"].endswith("idempotency_key_reused")
    assert ledger_size(owner) == size


def test_idempotency_key_longer_than_255_is_a_400(owner: httpx.Client) -> None:
    serial = new_license(owner)["serial"]
    response = owner.post(
        f"/v1/licenses/{serial}/renew", json={}, headers={"Idempotency-Key": "k" * 256}
    )
    assert_problem(response, 400, field="Idempotency-Key")


def test_fifty_concurrent_identical_requests_append_exactly_one_event(
    licensing_server: Server, owner: httpx.Client
) -> None:
    serial = new_license(owner)["serial"]
    headers = {"Idempotency-Key": f"override-{uuid.uuid4()}"}
    body = {"entitlement": "seats", "value": 4, "reason": "pilot"}
    size = ledger_size(owner)

    def send(_: int) -> httpx.Response:
        with licensing_server.client(licensing_server.owner_key()) as client:
            return client.post(f"/v1/licenses/{serial}/override", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(send, range(50)))
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    assert all(r.json()["overrides"] == {"seats": 4} for r in responses)
    assert ledger_size(owner) == size + 1
    history = owner.get(f"/v1/licenses/{serial}/history").json()["events"]
    assert [e["event"]["type"] for e in history].count("license.entitlement_overridden") == 1
    # Each of the fifty is audited: one did it, forty-nine were answered from its record.
    audited = owner.get(
        "/v1/audit", params={"target": serial, "action": "override_entitlement", "limit": 100}
    ).json()["entries"]
    assert sorted(e["code"] for e in audited) == ["ok"] + ["replayed"] * 49
    assert [e["events"] for e in audited if e["code"] == "ok"] == [[size, 1]]


# ---------------------------------------------------------------- bad input and roles


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("override", {"entitlement": "seats", "value": 2.5, "reason": "r"}, "value"),
        ("override", {"entitlement": "seats", "value": 2.0, "reason": "r"}, "value"),
        ("override", {"entitlement": "seats", "value": -1, "reason": "r"}, "value"),
        ("override", {"entitlement": "seats", "value": True, "reason": "r"}, "value"),
        ("override", {"entitlement": "seats", "reason": "r"}, "value"),
        ("override", {"entitlement": "bogus", "value": 1, "reason": "r"}, "entitlement"),
        ("renew", {"duration": "P30D", "colour": "red"}, "colour"),
        ("renew", {"duration": 30}, "duration"),
        ("renew", {"duration": "thirty days"}, "duration"),
        ("change-plan", {}, "plan"),
        ("transfer", {"customer": "someone"}, "customer"),
        ("suspend", {"reason": "x" * 501}, "reason"),
    ],
)
def test_bad_license_action_bodies_are_400_with_the_field(
    owner: httpx.Client, action: str, body: dict[str, Any], field: str
) -> None:
    serial = new_license(owner)["serial"]
    size = ledger_size(owner)
    assert_problem(act(owner, serial, action, **body), 400, field=field)
    assert ledger_size(owner) == size


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"product": "studio"', "body"),
        (b'{"product": "studio", "plan": "studio-basic", "order_ref": "o"}', "customer"),
        (b'{"product": 5, "plan": "studio-basic", "customer": "c", "order_ref": "o"}', "product"),
    ],
)
def test_bad_issue_bodies_are_400_with_the_field(
    owner: httpx.Client, content: bytes, field: str
) -> None:
    response = owner.post(
        "/v1/licenses", content=content, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, field=field)


def test_issue_with_an_extra_field_or_float_version_is_a_400(owner: httpx.Client) -> None:
    customer = new_customer(owner)
    base = {"product": "studio", "plan": "studio-basic", "customer": customer, "order_ref": "o-9"}
    assert_problem(owner.post("/v1/licenses", json={**base, "seats": 3}), 400, field="seats")
    floaty = {**base, "plan_version": 1.0}
    assert_problem(owner.post("/v1/licenses", json=floaty), 400, field="plan_version")
    bad = {"name": "X", "email": "not-an-email"}
    assert_problem(owner.post("/v1/customers", json=bad), 400, field="email")
    assert_problem(owner.post("/v1/customers", json={"email": "a@b.c"}), 400, field="name")


def test_roles_issuer_writes_support_suspends_auditor_reads(
    licensing_server: Server, owner: httpx.Client, role_keys: dict[str, str]
) -> None:
    customer = new_customer(owner)
    with licensing_server.client(role_keys["issuer"]) as issuer:
        serial = new_license(issuer, customer)["serial"]
    with licensing_server.client(role_keys["support"]) as support:
        assert_problem(issue(support, customer), 403)
        assert_problem(support.post("/v1/customers", json={"name": "N", "email": "a@b.c"}), 403)
        assert act(support, serial, "suspend", reason="abuse").status_code == 200
        assert act(support, serial, "reinstate").status_code == 200
        assert_problem(act(support, serial, "revoke", reason="no"), 403)
    with licensing_server.client(role_keys["auditor"]) as auditor:
        assert auditor.get(f"/v1/licenses/{serial}").status_code == 200
        assert auditor.get("/v1/licenses", params={"customer": customer}).status_code == 200
        assert auditor.get(f"/v1/licenses/{serial}/history").status_code == 200
        assert auditor.get("/v1/products").status_code == 200
        assert_problem(act(auditor, serial, "suspend", reason="no"), 403)
    with licensing_server.client() as anonymous:
        assert_problem(anonymous.get(f"/v1/licenses/{serial}"), 401)


def test_openapi_documents_the_licensing_routes_and_their_bodies(owner: httpx.Client) -> None:
    document = owner.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    for path in ("/v1/customers", "/v1/licenses", "/v1/licenses/{serial}/override"):
        assert "requestBody" in paths[path]["post"], path
    assert "get" in paths["/v1/licenses/{serial}/history"]
