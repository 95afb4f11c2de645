"""A stolen key that the two-person rule cannot revoke is revoked on the storage
(issue 14 follow-up, item 3), on each backend, while the server runs.

The README's lockout: the bootstrap key made Alice's and Bob's owner keys and was
retired; then Bob's key is stolen. Alice asks to revoke it, and nobody may approve:
Bob's key is the target, Alice's the requester's. ``tenure apikey revoke KEY_ID
--data-dir DIR [--db URL] --reason R`` revokes it on the storage (whoever holds the
storage holds the account), records who did it in the audit log, and the running
server answers the stolen key 401 at once.
"""

from __future__ import annotations

import getpass
from typing import Any

import httpx

from support.remote import assert_one_line_error, tenure
from support.server import Server

REASON = "bob's laptop was stolen"


def make_owner(server: Server, name: str) -> dict[str, Any]:
    with server.client(server.owner_key()) as bootstrap:
        made = bootstrap.post("/v1/apikeys", json={"role": "owner", "name": name})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def on_storage(server: Server, store_url: str, key: str, *args: str) -> Any:
    """``tenure apikey revoke`` on the server's storage (``key`` only sets
    TENURE_API_KEY, which the storage path never uses)."""
    storage = ("--data-dir", str(server.data_dir), "--db", store_url)
    return tenure(server, "apikey", "revoke", *args, *storage, key=key)


def locked_out(server: Server, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    """Alice asks to revoke Bob's key; neither key left may approve it."""
    with server.client(alice["key"]) as asker:
        asked = asker.delete(f"/v1/apikeys/{bob['id']}")
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval"]["approval"]
    for who, code in ((bob, "approver_not_independent"), (alice, "self_approval")):
        with server.client(who["key"]) as approver:
            refused = approver.post(f"/v1/approvals/{approval}/approve", json={"reason": "please"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith(code), refused.text


def status_with(server: Server, key: str) -> int:
    with server.client(key) as client:
        return client.get("/v1/apikeys").status_code


def test_the_storage_operator_revokes_a_stolen_key_the_two_person_rule_cannot(
    server: Server, store_url: str
) -> None:
    alice, bob = make_owner(server, "alice"), make_owner(server, "bob")
    retired = tenure(server, "apikey", "retire-bootstrap", "--data-dir", str(server.data_dir))
    assert retired.returncode == 0, retired.stderr
    locked_out(server, alice, bob)

    done = on_storage(server, store_url, alice["key"], bob["id"], "--reason", REASON)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.strip().splitlines()
    assert bob["id"] in line
    assert "storage:" in line
    assert status_with(server, bob["key"]) == 401  # the running server, at once
    assert status_with(server, alice["key"]) == 200

    with server.client(alice["key"]) as auditor:
        page = auditor.get("/v1/audit", params={"target": bob["id"], "order": "desc"})
    assert page.status_code == 200, page.text
    entry = page.json()["entries"][0]
    assert entry["principal"] == {
        "id": f"storage:{getpass.getuser()}",
        "role": "owner",
        "auth": "storage",
    }
    assert (entry["action"], entry["outcome"], entry["rationale"]) == (
        "revoke_api_key",
        "allowed",
        REASON,
    )
    verified = tenure(
        server, "audit", "verify", "--data-dir", str(server.data_dir), "--db", store_url,
        key=alice["key"],
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_last_owner_key_is_revoked_on_the_storage_only_with_force(
    server: Server, store_url: str
) -> None:
    alice = make_owner(server, "alice")
    retired = tenure(server, "apikey", "retire-bootstrap", "--data-dir", str(server.data_dir))
    assert retired.returncode == 0, retired.stderr
    refused = on_storage(server, store_url, alice["key"], alice["id"], "--reason", "leaving")
    assert_one_line_error(refused, "last active owner key", "--force")
    assert status_with(server, alice["key"]) == 200
    with server.client(alice["key"]) as auditor:
        denied = auditor.get("/v1/audit", params={"target": alice["id"], "outcome": "denied"})
    [entry] = denied.json()["entries"]
    assert (entry["principal"]["auth"], entry["code"]) == ("storage", "conflict")
    forced = on_storage(
        server, store_url, alice["key"], alice["id"], "--reason", "leaving", "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert status_with(server, alice["key"]) == 401


def test_a_storage_revocation_needs_a_reason_and_an_existing_key(
    server: Server, store_url: str
) -> None:
    alice = make_owner(server, "alice")
    no_reason = on_storage(server, store_url, alice["key"], alice["id"])
    assert_one_line_error(no_reason, "--reason")
    unknown = on_storage(server, store_url, alice["key"], "key_0000000000000000", "--reason", "x")
    assert_one_line_error(unknown, "no API key key_0000000000000000")
    over_http = tenure(server, "apikey", "revoke", alice["id"], "--force", key=alice["key"])
    assert_one_line_error(over_http, "--force", "--data-dir")
    assert status_with(server, alice["key"]) == 200
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/v1/apikeys").status_code == 401
