"""The two-person rule over real HTTP (docs/approvals.md): gated routes answer 202
with an approval request; a second principal with a sufficient role approves or
rejects; approved actions run exactly once; requests expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog, issue_license
from support.server import Server, running_server, seed_data_dir, start_server

REVOKE_THRESHOLD = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("approvals") / "data"
    seed_data_dir(data_dir, events=50)
    logs = tmp_path_factory.mktemp("approvals-logs")
    with running_server(
        data_dir, logs, TENURE_APPROVAL_REVOKE_THRESHOLD=str(REVOKE_THRESHOLD)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


def key_of(owner: httpx.Client, role: str) -> str:
    made = owner.post("/v1/apikeys", json={"role": role, "name": f"approvals {role}"})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


@pytest.fixture(scope="module")
def admins(server: Server, owner: httpx.Client) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with server.client(key_of(owner, "admin")) as a, server.client(key_of(owner, "admin")) as b:
        yield a, b


def asked(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    approval: dict[str, Any] = response.json()["approval"]
    assert approval["status"] == "pending"
    return str(approval["approval"])


def decide(client: httpx.Client, approval: str, verdict: str, reason: str) -> httpx.Response:
    return client.post(f"/v1/approvals/{approval}/{verdict}", json={"reason": reason})


def test_the_requester_cannot_approve_their_own_request(
    admins: tuple[httpx.Client, httpx.Client],
) -> None:
    first, _ = admins
    approval = asked(first.post("/v1/keys/rotate"))
    refused = decide(first, approval, "approve", "me myself")
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/self_approval")
    assert "different principal" in problem["detail"]
    assert first.get(f"/v1/approvals/{approval}").json()["status"] == "pending"


def test_a_role_that_may_not_perform_the_action_may_not_approve_it(
    server: Server, owner: httpx.Client, admins: tuple[httpx.Client, httpx.Client]
) -> None:
    first, _ = admins
    approval = asked(first.post("/v1/keys/rotate"))
    with server.client(key_of(owner, "issuer")) as issuer:
        refused = decide(issuer, approval, "approve", "not mine to decide")
    assert refused.status_code == 403, refused.text
    assert "admin, owner" in refused.json()["detail"]
    with server.client(key_of(owner, "support")) as support:
        assert decide(support, approval, "approve", "no").status_code == 403
    assert first.get(f"/v1/approvals/{approval}").json()["status"] == "pending"


def test_rejection_records_who_and_why_and_never_executes(
    admins: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = admins
    keys_before = first.get("/v1/keys").json()["keys"]
    approval = asked(first.post("/v1/keys/rotate"))
    rejected = decide(second, approval, "reject", "not this quarter")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval"]["status"] == "rejected"
    assert decide(second, approval, "approve", "changed my mind").status_code == 409
    assert first.get("/v1/keys").json()["keys"] == keys_before
    shown = first.get(f"/v1/approvals/{approval}").json()
    steps = [(h["type"], h["reason"]) for h in shown["history"]]
    assert steps == [("approval.requested", None), ("approval.rejected", "not this quarter")]
    listed = first.get("/v1/approvals", params={"status": "rejected"}).json()["approvals"]
    assert approval in {a["approval"] for a in listed}


def test_concurrent_approvals_execute_the_action_exactly_once(
    server: Server, owner: httpx.Client, admins: tuple[httpx.Client, httpx.Client]
) -> None:
    first, second = admins
    with server.client(key_of(owner, "admin")) as third:
        approval = asked(third.post("/v1/keys/rotate"))
    before = len(owner.get("/v1/keys").json()["keys"])
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def approve(client: httpx.Client, reason: str) -> None:
        barrier.wait()
        answers.append(decide(client, approval, "approve", reason))

    threads = [
        threading.Thread(target=approve, args=(client, reason))
        for client, reason in ((first, "ok by first"), (second, "ok by second"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200, 409], [response.text for response in answers]
    assert len(owner.get("/v1/keys").json()["keys"]) == before + 1
    shown = owner.get(f"/v1/approvals/{approval}").json()
    assert shown["status"] == "executed"
    types = [h["type"] for h in shown["history"]]
    assert types == ["approval.requested", "approval.approved", "approval.executed"]
    assert all(h["actor"]["id"] for h in shown["history"])


def test_a_revocation_crossing_the_threshold_needs_approval(
    owner: httpx.Client, admins: tuple[httpx.Client, httpx.Client]
) -> None:
    first, second = admins
    serials = [issue_license(owner)["serial"] for _ in range(REVOKE_THRESHOLD + 1)]
    body = {"reason": "chargeback"}
    results = [first.post(f"/v1/licenses/{serial}/revoke", json=body) for serial in serials]
    assert results[-1].status_code == 202, results[-1].text
    approval = results[-1].json()["approval"]["approval"]
    assert first.get(f"/v1/licenses/{serials[-1]}").json()["status"] == "active"
    done = decide(second, approval, "approve", "confirmed fraud")
    assert done.status_code == 200, done.text
    assert done.json()["approval"]["status"] == "executed"
    assert first.get(f"/v1/licenses/{serials[-1]}").json()["status"] == "revoked"
    history = owner.get(f"/v1/licenses/{serials[-1]}/history").json()
    events = [e["event"] for e in history["events"]]
    revoked = [e for e in events if e["type"] == "license.revoked"]
    assert [e["reason"] for e in revoked] == ["confirmed fraud"]


def test_retiring_a_plan_needs_approval(
    owner: httpx.Client, admins: tuple[httpx.Client, httpx.Client]
) -> None:
    first, second = admins
    assert first.post("/v1/plans/nope/retire", json={"reason": "x"}).status_code == 404
    approval = asked(first.post("/v1/plans/studio-basic/retire", json={"reason": "sunset"}))
    issue_license(owner, plan="studio-basic")  # still issuing until approved
    assert decide(second, approval, "approve", "sunset agreed").status_code == 200
    customer = owner.post("/v1/customers", json={"name": "Late", "email": "l@x.example"})
    late = owner.post(
        "/v1/licenses",
        json={
            "product": "studio",
            "plan": "studio-basic",
            "customer": customer.json()["id"],
            "order_ref": "late",
        },
    )
    assert late.status_code == 409, late.text


def test_an_expired_request_cannot_be_approved(tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    seed_data_dir(data_dir, events=10)
    server = start_server(data_dir, logs, TENURE_APPROVAL_TTL_HOURS="0.0003")  # ~1 s
    try:
        with (
            server.client(server.owner_key()) as owner,
            server.client(key_of(owner, "admin")) as first,
            server.client(key_of(owner, "admin")) as admin,
        ):
            approval = asked(first.post("/v1/keys/rotate"))
            time.sleep(1.5)
            assert owner.get(f"/v1/approvals/{approval}").json()["status"] == "expired"
            late = decide(admin, approval, "approve", "too late")
            assert late.status_code == 409, late.text
            assert late.json()["type"].endswith("/approval_expired")
            again = decide(admin, approval, "approve", "still late")
            assert again.status_code == 409, again.text
            shown = owner.get(f"/v1/approvals/{approval}").json()
            assert [h["type"] for h in shown["history"]][-1] == "approval.expired"
            expired = owner.get("/v1/approvals", params={"status": "expired"}).json()
            assert [a["approval"] for a in expired["approvals"]] == [approval]
    finally:
        server.stop()
