"""Accounts over real HTTP and the CLI: operator owners create them; each account's
first owner key works in that account only; other accounts stay invisible (404)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.remote import assert_one_line_error, ok_json, tenure
from support.server import Server, seeded_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "accounts") as running:
        yield running


@pytest.fixture(scope="module")
def operator(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        yield client


def test_an_operator_owner_creates_an_account_whose_owner_key_works_there_only(
    server: Server, operator: httpx.Client
) -> None:
    created = operator.post("/v1/accounts", json={"id": "acme-corp", "name": "Acme Corp"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "acme-corp"
    assert body["owner_key"].startswith("tnr_")
    with server.client(body["owner_key"]) as acme:
        # Its ledger starts with a signed empty checkpoint of its own origin.
        note = acme.get("/v1/ledger/checkpoint")
        assert note.status_code == 200, note.text
        assert note.text.splitlines()[:2] == ["tenure.localhost/ledger/acme-corp", "0"]
        # It sees only itself; the operator account does not exist for it.
        assert [a["id"] for a in acme.get("/v1/accounts").json()["accounts"]] == ["acme-corp"]
        assert acme.get("/v1/accounts/default").status_code == 404
        assert acme.get("/v1/licenses").json()["licenses"] == []
        refused = acme.post("/v1/accounts", json={"id": "sneaky", "name": "Sneaky"})
        assert refused.status_code == 403
    ids = [a["id"] for a in operator.get("/v1/accounts").json()["accounts"]]
    assert ids == ["acme-corp", "default"]
    assert operator.get("/v1/accounts/acme-corp").json()["name"] == "Acme Corp"
    # The creation is in the operator's audit log; the key is not.
    entries = operator.get("/v1/audit", params={"action": "create_account"}).json()["entries"]
    assert [(e["target"], e["outcome"]) for e in entries] == [("acme-corp", "allowed")]
    assert body["owner_key"] not in str(entries)


def test_taken_and_malformed_ids_are_refused_naming_the_field(operator: httpx.Client) -> None:
    operator.post("/v1/accounts", json={"id": "dup-co", "name": "Dup"})
    again = operator.post("/v1/accounts", json={"id": "dup-co", "name": "Dup"})
    assert again.status_code == 409
    assert again.json()["field"] == "id"
    for bad in ("A", "UPPER", "with space", "-dash-first", "x" * 64):
        response = operator.post("/v1/accounts", json={"id": bad, "name": "n"})
        assert response.status_code == 400, bad
        assert response.json()["field"] == "id"


def test_only_owners_manage_accounts(server: Server, operator: httpx.Client) -> None:
    admin_key = operator.post("/v1/apikeys", json={"role": "admin", "name": "a"}).json()["key"]
    with server.client(admin_key) as admin:
        assert admin.get("/v1/accounts").status_code == 403
        assert admin.post("/v1/accounts", json={"id": "nope-co", "name": "n"}).status_code == 403


def test_cli_creates_lists_and_shows_accounts(server: Server) -> None:
    created = ok_json(
        tenure(server, "account", "create", "cli-co", "--name", "CLI Co", "-o", "json")
    )
    assert created["owner_key"].startswith("tnr_")
    text = tenure(server, "account", "create", "cli-co-2", "--name", "CLI Co 2")
    assert text.returncode == 0, text.stderr
    assert "OWNER KEY: tnr_" in text.stdout
    listed = ok_json(tenure(server, "account", "list", "-o", "json"))
    assert {"cli-co", "cli-co-2", "default"} <= {a["id"] for a in listed["accounts"]}
    mine = ok_json(
        tenure(server, "account", "show", "cli-co", "-o", "json", key=created["owner_key"])
    )
    assert mine["name"] == "CLI Co"
    hidden = tenure(server, "account", "show", "default", key=created["owner_key"])
    assert_one_line_error(hidden, "404")
