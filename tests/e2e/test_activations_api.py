"""Activations over real HTTP: seats hold under concurrency, re-activation is
idempotent, License credentials act on their own license only, every change is a
ledger event."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog, issue_license
from support.server import Server, seeded_server
from tenure.domain.activations import fingerprint_hash


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "activations") as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


def new_license(owner: httpx.Client, plan: str = "studio-pro", seats: int | None = None) -> Any:
    license = issue_license(owner, plan)
    if seats is not None:
        override = owner.post(
            f"/v1/licenses/{license['serial']}/override",
            json={"entitlement": "seats", "value": seats, "reason": "test seats"},
        )
        assert override.status_code == 200, override.text
    return license


def as_app(server: Server, license_key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"License {license_key}"}, timeout=30
    )


def ledger_size(owner: httpx.Client) -> int:
    size: int = owner.get("/v1/ledger/events", params={"limit": 1}).json()["size"]
    return size


def test_a_hundred_parallel_activations_for_ten_seats_grant_exactly_ten(
    server: Server, owner: httpx.Client
) -> None:
    license = new_license(owner, seats=10)
    serial, key = license["serial"], license["key"]

    def activate(n: int) -> httpx.Response:
        with as_app(server, key) as app:
            return app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": f"m-{n}"})

    with ThreadPoolExecutor(max_workers=100) as pool:
        responses = list(pool.map(activate, range(100)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [409] * 90, statuses
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {p["type"].rsplit("/", 1)[1] for p in refused} == {"seat_limit"}
    listed = owner.get(f"/v1/licenses/{serial}/activations").json()["activations"]
    assert len([a for a in listed if a["status"] == "active"]) == 10


def test_activating_the_same_device_again_finds_the_same_activation(
    server: Server, owner: httpx.Client
) -> None:
    license = new_license(owner, plan="studio-basic")  # node-locked, one seat
    serial = license["serial"]
    size = ledger_size(owner)
    with as_app(server, license["key"]) as app:
        first = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "laptop-1"})
        again = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "laptop-1"})
        other = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "laptop-2"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert first.json() == again.json()
    body = first.json()
    assert body["mode"] == "node-locked"
    assert body["lease_expires_at"] is None
    assert body["fingerprint_hash"] == fingerprint_hash(serial, "laptop-1")
    assert "laptop-1" not in first.text  # only the hash leaves the device
    assert ledger_size(owner) == size + 1
    history = owner.get(f"/v1/licenses/{serial}/history").json()["events"]
    assert [e["event"]["type"] for e in history][-1] == "activation.created"


def test_deactivating_frees_the_seat_and_is_idempotent(server: Server, owner: httpx.Client) -> None:
    license = new_license(owner, plan="studio-basic")
    serial = license["serial"]
    with as_app(server, license["key"]) as app:
        first = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "old-pc"})
        activation = first.json()["id"]
        gone = app.delete(f"/v1/activations/{activation}")
        gone_again = app.delete(f"/v1/activations/{activation}")
        replacement = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "new-pc"})
    assert gone.status_code == 200
    assert gone.json()["status"] == "deactivated"
    assert gone_again.json() == gone.json()
    assert replacement.status_code == 201


def test_a_floating_heartbeat_renews_the_lease(server: Server, owner: httpx.Client) -> None:
    license = new_license(owner)  # studio-pro: floating
    serial = license["serial"]
    with as_app(server, license["key"]) as app:
        created = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "f1"})
        assert created.status_code == 201, created.text
        body = created.json()
        beat = app.post(f"/v1/activations/{body['id']}/heartbeat")
    assert body["mode"] == "floating"
    assert body["lease_expires_at"] is not None
    assert beat.status_code == 200
    # Less than half the lease has passed: the heartbeat answers, no event needed.
    assert beat.json()["lease_expires_at"] == body["lease_expires_at"]


def test_an_inactive_license_takes_no_seat(server: Server, owner: httpx.Client) -> None:
    license = new_license(owner)
    serial = license["serial"]
    suspended = owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "unpaid"})
    assert suspended.status_code == 200
    with as_app(server, license["key"]) as app:
        refused = app.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "x"})
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/license_inactive")


def test_a_license_credential_acts_on_its_own_license_only(
    server: Server, owner: httpx.Client
) -> None:
    mine, theirs = new_license(owner), new_license(owner)
    with as_app(server, theirs["key"]) as other_app:
        theirs_activation = other_app.post(
            f"/v1/licenses/{theirs['serial']}/activations", json={"fingerprint": "t"}
        ).json()["id"]
    with as_app(server, mine["key"]) as app:
        foreign = app.post(
            f"/v1/licenses/{theirs['serial']}/activations", json={"fingerprint": "x"}
        )
        hidden = app.delete(f"/v1/activations/{theirs_activation}")
        listing = app.get(f"/v1/licenses/{theirs['serial']}/activations")
    assert foreign.status_code == 403
    assert hidden.status_code == 404
    assert listing.status_code == 403


@pytest.mark.parametrize(
    "body", [{}, {"fingerprint": ""}, {"fingerprint": "x" * 257}, {"fingerprint": 5}, []]
)
def test_a_bad_fingerprint_is_a_400_naming_the_field(
    server: Server, owner: httpx.Client, body: Any
) -> None:
    license = new_license(owner)
    response = owner.post(f"/v1/licenses/{license['serial']}/activations", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] in ("fingerprint", "body")
