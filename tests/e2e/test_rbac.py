"""Role-based access control over real HTTP (SPEC "Governance and security").

Its own seeded server. One key per role is created through ``POST /v1/apikeys`` with
the bootstrap owner key; then every route under ``/v1`` of the OpenAPI document is
called with every role and the outcome compared with ``tenure.service.policy.POLICY``:
allowed means past the role check (anything but 401 and 403; a 404 or 400 on a dummy
object still counts), denied means 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from support.server import Server, running_server, seed_data_dir
from tenure.service.apikeys import ROLES, create_api_key
from tenure.service.policy import POLICY, allowed
from tenure.store.engine import create_engine

PROBLEM = "application/problem+json"
ACCOUNT = "default"
OTHER_ACCOUNT = "other"
DUMMY = {
    "system": "keymaster",
    "legacy_id": "KM-0",
    "customer": "cus_nope",
    "serial": "NOPE-0000-0000",
    "key_id": "key_nope",
    "account_id": "nope",
    "activation": "act_" + "a" * 26,
    "jti": "tok_" + "a" * 26,
    "approval": "apr_" + "a" * 26,
    "plan": "no-such-plan",
    "deployment": "plant-nope",
    "webhook": "whk_" + "a" * 26,
    "delivery": "dlv_" + "a" * 26,
}


@dataclass(frozen=True)
class Account2:
    """A key of a second account, created on the database before the server starts."""

    id: str
    key: str


@dataclass
class Seeded:
    server: Server
    other: Account2


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir = tmp_path_factory.mktemp("rbac") / "data"
    seed_data_dir(data_dir)
    engine = create_engine(f"sqlite:///{data_dir / 'tenure.db'}")
    try:
        principal, key = create_api_key(engine, OTHER_ACCOUNT, "owner", "second account owner")
    finally:
        engine.dispose()
    with running_server(data_dir, tmp_path_factory.mktemp("rbac-logs")) as running:
        yield Seeded(running, Account2(principal.id, key))


@pytest.fixture(scope="module")
def server(seeded: Seeded) -> Server:
    return seeded.server


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        yield client


def new_key(client: httpx.Client, role: str, name: str | None = None) -> dict[str, Any]:
    response = client.post("/v1/apikeys", json={"role": role, "name": name or f"rbac {role}"})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert set(created) == {"id", "role", "name", "created_by", "key"}
    assert created["role"] == role
    assert created["key"].startswith("tnr_")
    return created


@pytest.fixture
def role_keys(owner: httpx.Client) -> dict[str, str]:
    """A fresh key per role, created through the API by the bootstrap owner."""
    return {role: new_key(owner, role)["key"] for role in ROLES}


def assert_problem(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    return response.json()


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Call:
    """One route: the action it performs and a request that reaches its role check."""

    action: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: Callable[[str], str] = lambda template: template.format(**DUMMY)


YAML = {"Content-Type": "application/yaml"}
ROUTES: dict[tuple[str, str], Call] = {
    ("GET", "/v1/ledger/checkpoint"): Call("ledger.read"),
    ("POST", "/v1/ledger/checkpoint"): Call("ledger.sign"),
    ("GET", "/v1/ledger/key"): Call("ledger.read"),
    ("GET", "/v1/ledger/events"): Call("ledger.read", params={"start": 0, "limit": 1}),
    ("GET", "/v1/ledger/proof/inclusion"): Call("ledger.read", params={"seq": 0, "size": 1}),
    ("GET", "/v1/ledger/proof/consistency"): Call("ledger.read", params={"from": 1, "to": 2}),
    ("POST", "/v1/catalog"): Call(
        "catalog.apply", params={"dry_run": "true"}, content=b"- not a catalog", headers=YAML
    ),
    ("POST", "/v1/check"): Call("check", json={"license": "NOPE", "entitlement": "seats"}),
    ("POST", "/v1/check/batch"): Call(
        "check", json={"checks": [{"license": "NOPE", "entitlement": "seats"}]}
    ),
    ("POST", "/v1/customers"): Call("customer.write", json={"name": "", "email": "bad"}),
    ("GET", "/v1/customers/{customer}"): Call("customer.read"),
    ("POST", "/v1/customers/{customer}/erase"): Call("customer.erase", json={"reason": "x"}),
    ("GET", "/v1/products"): Call("product.read"),
    ("GET", "/v1/licenses"): Call("license.read", params={"limit": 1}),
    ("POST", "/v1/licenses"): Call("license.issue", json={}),
    ("GET", "/v1/licenses/{serial}"): Call("license.read"),
    ("GET", "/v1/licenses/{serial}/history"): Call("license.read"),
    ("POST", "/v1/licenses/{serial}/renew"): Call("license.change", json={}),
    ("POST", "/v1/licenses/{serial}/suspend"): Call("license.suspend", json={"reason": "x"}),
    ("POST", "/v1/licenses/{serial}/reinstate"): Call("license.reinstate", json={}),
    ("POST", "/v1/licenses/{serial}/revoke"): Call("license.change", json={"reason": "x"}),
    ("POST", "/v1/licenses/{serial}/change-plan"): Call("license.change", json={"plan": "p"}),
    ("POST", "/v1/licenses/{serial}/override"): Call(
        "license.change", json={"entitlement": "seats", "value": None, "reason": "x"}
    ),
    ("POST", "/v1/licenses/{serial}/transfer"): Call(
        "license.change", json={"customer": "cus_nope", "reason": "x"}
    ),
    ("POST", "/v1/apikeys"): Call("apikey.manage", json={"role": "agent", "name": "matrix"}),
    ("GET", "/v1/apikeys"): Call("apikey.manage"),
    ("GET", "/v1/audit"): Call("audit.read", params={"limit": 1}),
    ("GET", "/v1/audit/head"): Call("audit.read"),
    ("POST", "/v1/licenses/{serial}/activations"): Call(
        "activation.manage", json={"fingerprint": "rbac-device"}
    ),
    ("GET", "/v1/licenses/{serial}/activations"): Call("license.read"),
    ("POST", "/v1/activations/{activation}/heartbeat"): Call("activation.manage"),
    ("DELETE", "/v1/activations/{activation}"): Call("activation.manage"),
    ("POST", "/v1/tokens"): Call(
        "token.mint", json={"license": "TNR-AAAAA-AAAAA-AAAAA-AAAAA", "fingerprint": "x"}
    ),
    ("POST", "/v1/tokens/refresh"): Call("token.mint", json={"token": "not.a.token"}),
    ("GET", "/v1/revocations"): Call("license.read"),
    ("GET", "/v1/keyset"): Call("ledger.read"),
    ("POST", "/v1/licenses/{serial}/tokens/{jti}/revoke"): Call(
        "license.change", json={"reason": "x"}
    ),
    ("POST", "/v1/licenses/{serial}/license-file"): Call(
        "license.issue", json={"fingerprint": "x"}
    ),
    ("GET", "/v1/keys"): Call("keys.manage"),
    ("GET", "/v1/durability"): Call("durability.read"),
    ("GET", "/v1/drills/latest"): Call("durability.read"),
    ("POST", "/v1/restores"): Call("ledger.restore", json={}),
    ("GET", "/v1/licenses/by-legacy-id/{system}/{legacy_id}"): Call("license.read"),
    ("POST", "/v1/keys/rotate"): Call("keys.manage"),
    ("POST", "/v1/accounts"): Call("account.manage", json={"id": "x", "name": "too short"}),
    ("GET", "/v1/accounts"): Call("account.manage"),
    ("GET", "/v1/accounts/{account_id}"): Call("account.manage"),
    ("DELETE", "/v1/apikeys/{key_id}"): Call("apikey.manage"),
    ("GET", "/v1/approvals"): Call("approval.read"),
    ("GET", "/v1/approvals/{approval}"): Call("approval.read"),
    ("POST", "/v1/approvals/{approval}/approve"): Call("approval.decide", json={"reason": "x"}),
    ("POST", "/v1/approvals/{approval}/reject"): Call("approval.decide", json={"reason": "x"}),
    ("POST", "/v1/plans/{plan}/retire"): Call("catalog.apply", json={"reason": "x"}),
    ("POST", "/v1/deployments/{deployment}/reports"): Call("deployment.report", json={}),
    ("GET", "/v1/deployments"): Call("deployment.read"),
    ("GET", "/v1/deployments/{deployment}"): Call("deployment.read"),
    ("GET", "/v1/drift"): Call("drift.read"),
    ("POST", "/v1/drift/reconcile"): Call("drift.reconcile"),
    ("POST", "/v1/webhooks"): Call("webhook.manage", json={"url": "ftp://nope"}),
    ("GET", "/v1/webhooks"): Call("webhook.read"),
    ("GET", "/v1/webhooks/{webhook}"): Call("webhook.read"),
    ("PATCH", "/v1/webhooks/{webhook}"): Call("webhook.manage", json={"enabled": False}),
    ("DELETE", "/v1/webhooks/{webhook}"): Call("webhook.manage"),
    ("GET", "/v1/webhooks/{webhook}/deliveries"): Call("webhook.read"),
    ("POST", "/v1/webhooks/{webhook}/deliveries/{delivery}/retry"): Call("webhook.manage"),
    ("GET", "/v1/notices"): Call("notice.read"),
    ("GET", "/v1/alerts"): Call("alert.read"),
    ("GET", "/v1/ops/slo"): Call("ops.read"),
}


def test_the_matrix_covers_every_v1_route_and_every_action(owner: httpx.Client) -> None:
    document = owner.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }
    assert sorted(routes - set(ROUTES)) == [], "routes missing from the RBAC matrix"
    assert sorted(set(ROUTES) - routes) == [], "matrix rows for routes that do not exist"
    assert {call.action for call in ROUTES.values()} == set(POLICY)


def test_every_route_times_every_role_agrees_with_the_policy(
    server: Server, role_keys: dict[str, str]
) -> None:
    unexpected_allows: list[str] = []
    unexpected_denials: list[str] = []
    for role, key in role_keys.items():
        with server.client(key) as client:
            for (method, template), call in ROUTES.items():
                response = client.request(
                    method,
                    call.path(template),
                    params=call.params,
                    json=call.json,
                    content=call.content,
                    headers=call.headers,
                )
                where = f"{role} {method} {template} → {response.status_code} {response.text}"
                assert response.status_code != 401, where
                assert response.status_code < 500, where
                denied = response.status_code == 403
                if allowed(role, call.action) and denied:
                    unexpected_denials.append(where)
                elif not allowed(role, call.action) and not denied:
                    unexpected_allows.append(where)
    assert unexpected_allows == []
    assert unexpected_denials == []


def test_without_a_key_or_with_a_bad_key_every_route_is_a_401(server: Server) -> None:
    for key in (None, "tnr_" + "a" * 52):
        with server.client(key) as client:
            for (method, template), call in ROUTES.items():
                response = client.request(
                    method, call.path(template), params=call.params, json=call.json
                )
                assert response.status_code == 401, f"{method} {template}: {response.text}"


# ---------------------------------------------------------------- key management


def test_keys_are_listed_without_keys_or_hashes(owner: httpx.Client) -> None:
    created = new_key(owner, "auditor", "listed")
    response = owner.get("/v1/apikeys")
    assert response.status_code == 200
    listed = {item["id"]: item for item in response.json()["apikeys"]}
    assert listed[created["id"]] == {
        "id": created["id"],
        "role": "auditor",
        "name": "listed",
        "created_at": listed[created["id"]]["created_at"],
        "revoked_at": None,
        "created_by": created["created_by"],
    }
    assert created["key"] not in response.text
    fields = {"id", "role", "name", "created_at", "revoked_at", "created_by"}
    assert all(set(item) == fields for item in listed.values())


def test_a_revoked_key_gets_401(server: Server, owner: httpx.Client) -> None:
    created = new_key(owner, "issuer")
    with server.client(created["key"]) as issuer:
        assert issuer.get("/v1/products").status_code == 200
        revoked = owner.delete(f"/v1/apikeys/{created['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None
        assert_problem(issuer.get("/v1/products"), 401)
    again = owner.delete(f"/v1/apikeys/{created['id']}")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_an_admin_may_manage_keys_but_not_owner_keys(
    server: Server, owner: httpx.Client, role_keys: dict[str, str]
) -> None:
    owner_key, witness = new_key(owner, "owner"), new_key(owner, "owner", "witness")
    with server.client(role_keys["admin"]) as admin:
        assert_problem(admin.post("/v1/apikeys", json={"role": "owner", "name": "x"}), 403)
        assert_problem(admin.delete(f"/v1/apikeys/{owner_key['id']}"), 403)
        made = new_key(admin, "admin", "made by an admin")
        # Revoking another admin key needs a second principal (two-person rule).
        asked = admin.delete(f"/v1/apikeys/{made['id']}")
        assert asked.status_code == 202, asked.text
        approval = asked.json()["approval"]["approval"]
        assert_problem(admin.post(f"/v1/approvals/{approval}/approve", json={"reason": "x"}), 403)
    with server.client(role_keys["owner"]) as other_owner:
        done = other_owner.post(f"/v1/approvals/{approval}/approve", json={"reason": "agreed"})
        assert done.json()["result"]["revoked_at"] is not None, done.text
        revoked = revoke_with_approval(other_owner, witness["key"], owner_key)
    assert revoked["revoked_at"] is not None


def revoke_with_approval(asker: httpx.Client, approver: str, key: dict[str, Any]) -> dict[str, Any]:
    """Revoke another owner ``key``: ``asker`` asks, the key ``approver`` of another
    person approves (the key to be revoked takes no part)."""
    asked = asker.delete(f"/v1/apikeys/{key['id']}")
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval"]["approval"]
    headers = {"Authorization": f"Bearer {approver}"}
    with httpx.Client(base_url=asker.base_url, headers=headers) as other:
        done = other.post(f"/v1/approvals/{approval}/approve", json={"reason": "rotation"})
    assert done.status_code == 200, done.text
    result: dict[str, Any] = done.json()["result"]
    return result


def test_bad_key_bodies_are_400(owner: httpx.Client) -> None:
    for body in (
        {"role": "root", "name": "x"},
        {"role": "agent"},
        {"role": "agent", "name": ""},
        {"role": "agent", "name": "x", "key": "tnr_mine"},
    ):
        assert_problem(owner.post("/v1/apikeys", json=body), 400)


def test_keys_of_another_account_are_404_and_invisible(seeded: Seeded, owner: httpx.Client) -> None:
    other = seeded.other
    assert_problem(owner.delete(f"/v1/apikeys/{other.id}"), 404)
    assert other.id not in {item["id"] for item in owner.get("/v1/apikeys").json()["apikeys"]}
    mine = new_key(owner, "agent")
    with seeded.server.client(other.key) as stranger:
        assert [item["id"] for item in stranger.get("/v1/apikeys").json()["apikeys"]] == [other.id]
        assert_problem(stranger.delete(f"/v1/apikeys/{mine['id']}"), 404)
        serial = owner.get("/v1/licenses", params={"limit": 1}).json()["licenses"][0]["serial"]
        assert_problem(stranger.get(f"/v1/licenses/{serial}"), 404)
    with seeded.server.client(mine["key"]) as agent:
        assert agent.get("/v1/ledger/key").status_code == 200


def test_the_last_active_owner_key_cannot_be_revoked(server: Server, owner: httpx.Client) -> None:
    """Two people's owner keys revoke every other owner key but the bootstrap key,
    then their own; the bootstrap key, left alone, cannot revoke itself."""
    first, second = new_key(owner, "owner", "first"), new_key(owner, "owner", "second")
    keys = owner.get("/v1/apikeys").json()["apikeys"]
    owners = [k["id"] for k in keys if k["role"] == "owner" and k["revoked_at"] is None]
    (bootstrap,) = [k["id"] for k in keys if k["name"] == "bootstrap owner"]
    assert bootstrap in owners
    with server.client(first["key"]) as asker:
        for key_id in owners:
            if key_id not in (bootstrap, first["id"], second["id"]):
                revoke_with_approval(asker, second["key"], {"id": key_id})
    for person in (first, second):
        with server.client(person["key"]) as own:
            assert own.delete(f"/v1/apikeys/{person['id']}").status_code == 200
    last = assert_problem(owner.delete(f"/v1/apikeys/{bootstrap}"), 409)
    assert "create at least one other owner key first" in last["detail"]
    assert owner.get("/v1/apikeys").status_code == 200
