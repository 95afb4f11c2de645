"""Key lineage and the two-person rule over real HTTP (docs/approvals.md, issue 14).

An approval counts only from another person's key: not the requester, not a key the
requester created (directly or through its keys), not a key that created the
requester, not a key made by the same key as the requester (other than the root
key), and not a key newer than the request. The key a revocation targets takes no
part in deciding it, and the keys it created cannot reject it. Each bypass that
worked before is a test here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.remote import tenure
from support.server import Server, running_server, seed_data_dir

NOT_INDEPENDENT = "approver_not_independent"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("lineage") / "data"
    seed_data_dir(data_dir, events=10)
    site = tmp_path_factory.mktemp("lineage-site")
    logs = tmp_path_factory.mktemp("lineage-logs")
    with running_server(data_dir, logs, TENURE_SITES=site.as_uri()) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    """The bootstrap owner key: the root every other key descends from."""
    with server.client(server.owner_key()) as client:
        yield client


OPEN_CLIENTS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    """Close the clients of the keys a test made (unclosed sockets fail the run)."""
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


class Key:
    """An API key made over HTTP: its id, its secret and a client that uses it."""

    def __init__(self, server: Server, made: dict[str, Any]) -> None:
        self.id: str = made["id"]
        self.key: str = made["key"]
        self.server = server
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None or self._client.is_closed:
            self._client = self.server.client(self.key)
            OPEN_CLIENTS.append(self._client)
        return self._client

    def mint(self, server: Server, role: str, name: str) -> Key:
        """A new key made with this one (``POST /v1/apikeys``)."""
        return mint(server, self.client, role, name)


def mint(server: Server, creator: httpx.Client, role: str, name: str) -> Key:
    made = creator.post("/v1/apikeys", json={"role": role, "name": name})
    assert made.status_code == 201, made.text
    return Key(server, made.json())


@pytest.fixture(scope="module")
def people(server: Server, owner: httpx.Client) -> tuple[Key, Key]:
    """Two people's admin keys, both made by the bootstrap key."""
    return mint(server, owner, "admin", "alice"), mint(server, owner, "admin", "bob")


def asked(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    approval: dict[str, Any] = response.json()["approval"]
    assert approval["status"] == "pending"
    return str(approval["approval"])


def decide(client: httpx.Client, approval: str, verdict: str = "approve") -> httpx.Response:
    return client.post(f"/v1/approvals/{approval}/{verdict}", json={"reason": "looks fine"})


def assert_not_independent(response: httpx.Response, why: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(f"/{NOT_INDEPENDENT}"), problem
    assert why in problem["detail"], problem


def status_of(client: httpx.Client, approval: str) -> str:
    shown = client.get(f"/v1/approvals/{approval}")
    assert shown.status_code == 200, shown.text
    return str(shown.json()["status"])


def refusals_of(owner: httpx.Client, key_id: str) -> list[tuple[str, str, str]]:
    page = owner.get("/v1/audit", params={"principal": key_id, "outcome": "denied"}).json()
    return [(e["action"], e["outcome"], e["code"]) for e in page["entries"]]


def signing_keys(client: httpx.Client) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = client.get("/v1/keys").json()["keys"]
    return keys


# ------------------------------------------------------------ the bypasses of issue 14


def test_a_key_minted_after_the_request_by_the_requester_cannot_approve_a_rotation(
    server: Server, owner: httpx.Client
) -> None:
    admin = mint(server, owner, "admin", "rotating admin")
    before = signing_keys(owner)
    approval = asked(admin.client.post("/v1/keys/rotate"))
    second = admin.mint(server, "admin", "my second key")
    assert_not_independent(decide(second.client, approval), "created by the requesting key")
    assert status_of(owner, approval) == "pending"
    assert signing_keys(owner) == before
    assert refusals_of(owner, second.id) == [("decide_approval", "denied", NOT_INDEPENDENT)]


def test_a_key_the_requester_minted_before_asking_cannot_approve_either(
    server: Server, owner: httpx.Client
) -> None:
    admin = mint(server, owner, "admin", "patient admin")
    second = admin.mint(server, "admin", "made in advance")
    approval = asked(admin.client.post("/v1/keys/rotate"))
    assert_not_independent(decide(second.client, approval), "created by the requesting key")
    assert status_of(owner, approval) == "pending"


def test_the_key_that_minted_the_requester_cannot_approve_its_request(
    server: Server, owner: httpx.Client
) -> None:
    admin = mint(server, owner, "admin", "minting admin")
    minted = admin.mint(server, "admin", "asks for me")
    approval = asked(minted.client.post("/v1/keys/rotate"))
    assert_not_independent(decide(admin.client, approval), "created the requesting key")


def test_two_keys_minted_by_one_key_act_for_that_key(server: Server, owner: httpx.Client) -> None:
    admin = mint(server, owner, "admin", "twin maker")
    first, second = admin.mint(server, "admin", "twin 1"), admin.mint(server, "admin", "twin 2")
    approval = asked(first.client.post("/v1/keys/rotate"))
    assert_not_independent(decide(second.client, approval), "made by the same key")


def test_a_restore_cannot_be_approved_with_restorer_keys_one_admin_minted(
    server: Server, owner: httpx.Client
) -> None:
    admin = mint(server, owner, "admin", "restore minting admin")
    asking = admin.mint(server, "restorer", "restorer 1")
    approval = asked(asking.client.post("/v1/restores", json={"reason": "lost rows"}))
    approving = admin.mint(server, "restorer", "restorer 2")
    assert_not_independent(decide(approving.client, approval), "made by the same key")
    # The bootstrap key made every key: it cannot approve its descendants' requests.
    assert_not_independent(decide(owner, approval), "created the requesting key")
    assert status_of(owner, approval) == "pending"
    assert decide(asking.client, approval, "reject").status_code == 200


def test_revoking_an_admin_key_cannot_be_approved_by_a_key_the_requester_minted(
    server: Server, owner: httpx.Client
) -> None:
    admin = mint(server, owner, "admin", "revoking admin")
    victim = mint(server, owner, "admin", "victim")
    approval = asked(admin.client.delete(f"/v1/apikeys/{victim.id}"))
    helper = admin.mint(server, "admin", "helper")
    assert_not_independent(decide(helper.client, approval), "created by the requesting key")
    assert victim.client.get("/v1/apikeys").status_code == 200  # still active


def test_the_target_of_a_key_revocation_can_neither_approve_nor_reject_it(
    server: Server, owner: httpx.Client, people: tuple[Key, Key]
) -> None:
    alice, bob = people
    stolen = mint(server, owner, "admin", "stolen")
    proxy = stolen.mint(server, "admin", "made by the thief")
    approval = asked(alice.client.delete(f"/v1/apikeys/{stolen.id}"))
    assert_not_independent(decide(stolen.client, approval, "reject"), "to be revoked")
    assert_not_independent(decide(stolen.client, approval), "to be revoked")
    assert_not_independent(decide(proxy.client, approval, "reject"), "created by the key")
    assert status_of(owner, approval) == "pending"
    done = decide(bob.client, approval)
    assert done.status_code == 200, done.text
    assert done.json()["approval"]["status"] == "executed"
    assert stolen.client.get("/v1/apikeys").status_code == 401
    codes = [code for _, _, code in refusals_of(owner, stolen.id)]
    assert codes == [NOT_INDEPENDENT, NOT_INDEPENDENT]


# ------------------------------------------------------------ what still works


def test_two_people_made_by_the_bootstrap_key_approve_each_other(
    owner: httpx.Client, people: tuple[Key, Key]
) -> None:
    alice, bob = people
    before = len(signing_keys(owner))
    approval = asked(alice.client.post("/v1/keys/rotate"))
    done = decide(bob.client, approval)
    assert done.status_code == 200, done.text
    assert done.json()["approval"]["status"] == "executed"
    assert len(signing_keys(owner)) == before + 1
    approval = asked(bob.client.post("/v1/keys/rotate"))
    assert decide(alice.client, approval, "reject").status_code == 200


def test_a_request_of_the_bootstrap_key_cannot_be_approved_by_its_descendants(
    owner: httpx.Client, people: tuple[Key, Key]
) -> None:
    alice, _ = people
    approval = asked(owner.post("/v1/keys/rotate"))
    assert_not_independent(decide(alice.client, approval), "created by the requesting key")
    assert decide(owner, approval, "reject").status_code == 200  # withdrawn


def test_a_key_newer_than_the_request_cannot_approve_it(
    server: Server, owner: httpx.Client, people: tuple[Key, Key]
) -> None:
    alice, _ = people
    approval = asked(alice.client.post("/v1/keys/rotate"))
    latecomer = mint(server, owner, "admin", "latecomer")
    assert_not_independent(decide(latecomer.client, approval), "created after the request")
    assert decide(alice.client, approval, "reject").status_code == 200


def test_the_key_listing_shows_who_created_each_key(
    server: Server, owner: httpx.Client, people: tuple[Key, Key]
) -> None:
    alice, _ = people
    made = alice.mint(server, "issuer", "billing")
    keys = {k["id"]: k for k in owner.get("/v1/apikeys").json()["apikeys"]}
    (bootstrap,) = [k for k in keys.values() if k["name"] == "bootstrap owner"]
    assert bootstrap["created_by"] is None
    assert keys[alice.id]["created_by"] == bootstrap["id"]
    assert keys[made.id]["created_by"] == alice.id


# ------------------------------------------------------------ retiring the bootstrap key


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server of its own: retiring its bootstrap key must not disturb other tests."""
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    seed_data_dir(data_dir, events=5)
    with running_server(data_dir, logs) as server:
        yield server


def test_the_bootstrap_key_is_retired_once_another_owner_key_exists(fresh: Server) -> None:
    bootstrap, data_dir = fresh.owner_key(), str(fresh.data_dir)
    early = tenure(fresh, "apikey", "retire-bootstrap", "--data-dir", data_dir)
    assert early.returncode == 1
    lines = early.stderr.strip().splitlines()
    assert len(lines) == 1, early.stderr
    assert "create at least one other owner key first" in lines[0]
    assert fresh.key_file.exists()

    with fresh.client(bootstrap) as owner:
        alice = mint(fresh, owner, "owner", "alice")
        bob = mint(fresh, owner, "owner", "bob")
    done = tenure(fresh, "apikey", "retire-bootstrap", "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    assert "retired the bootstrap owner key" in done.stdout
    assert not fresh.key_file.exists()
    with fresh.client(bootstrap) as retired:
        assert retired.get("/v1/apikeys").status_code == 401
    # Two people's keys are left, and they can approve each other.
    approval = asked(alice.client.post("/v1/keys/rotate"))
    approved = decide(bob.client, approval)
    assert approved.status_code == 200, approved.text
    again = tenure(fresh, "apikey", "retire-bootstrap", "--data-dir", data_dir, key=alice.key)
    assert again.returncode == 1
    assert "no bootstrap owner key" in again.stderr


def test_two_people_retire_the_bootstrap_key_by_approval(fresh: Server) -> None:
    with fresh.client(fresh.owner_key()) as owner:
        alice = mint(fresh, owner, "owner", "alice")
        bob = mint(fresh, owner, "owner", "bob")
        (bootstrap,) = [
            k["id"] for k in owner.get("/v1/apikeys").json()["apikeys"] if k["created_by"] is None
        ]
        approval = asked(alice.client.delete(f"/v1/apikeys/{bootstrap}"))
        assert_not_independent(decide(owner, approval, "reject"), "to be revoked")
        done = decide(bob.client, approval)
        assert done.status_code == 200, done.text
        assert done.json()["result"]["revoked_at"] is not None
        assert owner.get("/v1/apikeys").status_code == 401
    stale = tenure(fresh, "apikey", "retire-bootstrap", "--data-dir", str(fresh.data_dir))
    assert stale.returncode == 1
    assert "not a valid key of this service" in stale.stderr
