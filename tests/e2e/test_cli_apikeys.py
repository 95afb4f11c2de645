"""``tenure apikey create|list|revoke`` against a real server, driven as an operator
would: the ``tenure`` executable in a subprocess with ``TENURE_URL`` and
``TENURE_API_KEY`` in its environment (or ``--url`` / ``--api-key``).

Runs its own seeded server: the session ``server`` of conftest must keep exactly the
seeded state. No test here creates an owner key, so the bootstrap key stays the
account's only owner key.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from support.remote import assert_one_line_error, ok_json, tenure
from support.server import Server, free_port, seeded_server
from tenure.service.apikeys import ROLES


@pytest.fixture(scope="module")
def key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "cli-apikeys") as running:
        yield running


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def create_json(server: Server, role: str, *, key: str | None = None) -> dict[str, Any]:
    args = ("apikey", "create", "--role", role, "--name", unique(role), "-o", "json")
    done = tenure(server, *args, key=key)
    created: dict[str, Any] = ok_json(done)
    return created


def listing(server: Server) -> dict[str, dict[str, Any]]:
    answer = ok_json(tenure(server, "apikey", "list", "-o", "json"))
    return {item["id"]: item for item in answer["apikeys"]}


def test_create_json_and_text_then_list(key_server: Server) -> None:
    name = unique("ci pipeline")
    created = ok_json(
        tenure(key_server, "apikey", "create", "--role", "issuer", "--name", name, "-o", "json")
    )
    assert set(created) == {"id", "role", "name", "created_by", "key"}
    assert created["id"].startswith("key_")
    assert created["role"] == "issuer"
    assert created["name"] == name
    assert re.fullmatch(r"tnr_[a-z2-7]{52}", created["key"])

    text = tenure(key_server, "apikey", "create", "--role", "support", "--name", "help desk")
    assert text.returncode == 0, text.stderr
    found = re.search(r"^KEY: (tnr_[a-z2-7]{52})$", text.stdout, re.MULTILINE)
    assert found, text.stdout
    headline = re.search(r"^created API key (key_\w+)$", text.stdout, re.MULTILINE)
    assert headline, text.stdout
    assert "shown once" in text.stdout
    assert "hash" in text.stdout
    assert re.search(r"^\s+role\s+support$", text.stdout, re.MULTILINE), text.stdout
    text_id = headline.group(1)

    listed = listing(key_server)
    assert listed[created["id"]] == {
        "id": created["id"],
        "role": "issuer",
        "name": name,
        "created_at": listed[created["id"]]["created_at"],
        "revoked_at": None,
        "created_by": created["created_by"],
    }
    assert listed[created["created_by"]]["name"] == "bootstrap owner"
    assert listed[text_id]["role"] == "support"
    assert listed[text_id]["name"] == "help desk"
    assert any(item["role"] == "owner" for item in listed.values())

    table = tenure(key_server, "apikey", "list")
    assert table.returncode == 0, table.stderr
    for header in ("id", "role", "name", "created", "revoked", "created by"):
        assert header in table.stdout
    assert created["id"] in table.stdout
    assert text_id in table.stdout
    assert created["key"] not in table.stdout
    assert re.search(r"\d+ key\(s\), \d+ active", table.stdout), table.stdout


def test_created_key_works_until_revoked(key_server: Server) -> None:
    # Two people's keys, made by the bootstrap key: one asks, the other approves.
    asker, approver = (create_json(key_server, "admin")["key"] for _ in range(2))
    created = create_json(key_server, "admin")
    key_id, key = created["id"], created["key"]
    with key_server.client(key) as client:
        assert client.get("/v1/apikeys").status_code == 200
    # The new key drives the CLI too, through --url and --api-key over a bogus env.
    bogus_url = f"http://127.0.0.1:{free_port()}"
    as_new = tenure(
        key_server,
        "apikey",
        "list",
        "--url",
        key_server.url,
        "--api-key",
        key,
        "-o",
        "json",
        key="tnr_not_a_real_key",
        url=bogus_url,
    )
    assert key_id in {item["id"] for item in ok_json(as_new)["apikeys"]}

    # Revoking another principal's admin key needs a second principal (two-person rule).
    asked = tenure(key_server, "apikey", "revoke", key_id, key=asker)
    assert asked.returncode == 0, asked.stderr
    found = re.search(r"approval requested: (apr_\w+)", asked.stdout)
    assert found, asked.stdout
    with key_server.client(key) as client:
        assert client.get("/v1/apikeys").status_code == 200  # not revoked yet
    approved = tenure(
        key_server, "approval", "approve", found.group(1), "--reason", "offboarding", key=approver
    )
    assert approved.returncode == 0, approved.stderr

    with key_server.client(key) as client:
        response = client.get("/v1/apikeys")
        assert response.status_code == 401
    assert_one_line_error(tenure(key_server, "apikey", "list", key=key), "401 unauthenticated")

    again = ok_json(tenure(key_server, "apikey", "revoke", key_id, "-o", "json"))  # a no-op
    assert again["id"] == key_id
    assert again["role"] == "admin"
    assert again["revoked_at"] == listing(key_server)[key_id]["revoked_at"]
    assert again["revoked_at"] is not None
    assert "key" not in again


def test_admin_may_not_manage_owner_keys(key_server: Server) -> None:
    admin = create_json(key_server, "admin")
    before = listing(key_server)
    refused = tenure(
        key_server, "apikey", "create", "--role", "owner", "--name", "sneaky", key=admin["key"]
    )
    line = assert_one_line_error(refused, "403", "forbidden")
    assert line.startswith("error: ")
    assert refused.stdout == ""
    assert listing(key_server).keys() == before.keys()

    owner_id = next(item["id"] for item in before.values() if item["role"] == "owner")
    assert_one_line_error(
        tenure(key_server, "apikey", "revoke", owner_id, key=admin["key"]), "403", "forbidden"
    )
    # An admin may manage the other roles.
    agent = create_json(key_server, "agent", key=admin["key"])
    done = tenure(key_server, "apikey", "revoke", agent["id"], "-o", "json", key=admin["key"])
    assert ok_json(done)["revoked_at"] is not None


def test_the_last_owner_key_cannot_be_revoked(key_server: Server) -> None:
    owners = [item for item in listing(key_server).values() if item["role"] == "owner"]
    assert len(owners) == 1
    refused = tenure(key_server, "apikey", "revoke", owners[0]["id"])
    assert_one_line_error(refused, "409", "conflict")


def test_revoking_an_unknown_key_is_a_one_line_error(key_server: Server) -> None:
    done = tenure(key_server, "apikey", "revoke", "key_0000000000000000")
    line = assert_one_line_error(done, "404 not_found", "key_0000000000000000")
    assert line.startswith("error: ")
    assert done.stdout == ""


@pytest.mark.parametrize("role", ["boss", "Admin", ""])
def test_a_bad_role_is_a_usage_error_before_any_request(key_server: Server, role: str) -> None:
    # Nothing listens on this port: the role is refused before anything is sent.
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = tenure(key_server, "apikey", "create", "--role", role, "--name", "x", url=nowhere)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "Usage: tenure apikey create" in done.stderr
    assert "--role" in done.stderr
    assert ", ".join(ROLES) in done.stderr
    assert "cannot reach" not in done.stderr


def test_help_texts(key_server: Server) -> None:
    group = tenure(key_server, "apikey", "--help")
    assert group.returncode == 0, group.stderr
    for command in ("create", "list", "revoke", "retire-bootstrap"):
        assert command in group.stdout
    words = " ".join(group.stdout.split())
    assert "shown once" in words
    assert "hash" in words
    assert "admin" in words
    create_help = " ".join(tenure(key_server, "apikey", "create", "--help").stdout.split())
    assert "--role" in create_help
    assert "shown only now" in create_help
