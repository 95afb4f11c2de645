"""The audit log over real HTTP: decisions and mutation requests, allowed or denied,
are chained before their answers leave; an auditor pages them; a failing audit write
fails the request (fail closed); ``tenure audit verify`` finds tampering."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog
from support.remote import tenure
from support.server import Server, seeded_server

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.yaml"
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class World:
    server: Server
    serial: str
    key: str
    auditor: str
    issuer: str
    customer_name: str
    email: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        seeded_server(tmp_path_factory, "audit") as server,
        server.client(server.owner_key()) as owner,
    ):
        apply_example_catalog(owner)
        name, email = "Ada Auditee", "ada.auditee@example.test"
        customer = owner.post("/v1/customers", json={"name": name, "email": email})
        assert customer.status_code == 201, customer.text
        issued = owner.post(
            "/v1/licenses",
            json={
                "product": "studio",
                "plan": "studio-pro",
                "customer": customer.json()["id"],
                "order_ref": "audit-1",
            },
        )
        assert issued.status_code == 201, issued.text
        keys = {
            role: owner.post("/v1/apikeys", json={"role": role, "name": f"audit {role}"}).json()[
                "key"
            ]
            for role in ("auditor", "issuer")
        }
        yield World(
            server,
            issued.json()["serial"],
            issued.json()["key"],
            keys["auditor"],
            keys["issuer"],
            name,
            email,
        )


def db(world: World) -> sqlite3.Connection:
    return sqlite3.connect(world.server.data_dir / "tenure.db", isolation_level=None, timeout=30)


def stored_entries(world: World) -> list[bytes]:
    """Entry bytes as stored, read behind the service's back."""
    conn = db(world)
    try:
        return [bytes(r[0]) for r in conn.execute("SELECT entry FROM audit_log ORDER BY seq")]
    finally:
        conn.close()


def audit_page(world: World, key: str | None = None, **params: Any) -> dict[str, Any]:
    with world.server.client(key or world.auditor) as client:
        response = client.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def last_entry(world: World, **params: Any) -> dict[str, Any]:
    entries = audit_page(world, order="desc", limit=1, **params)["entries"]
    assert entries, params
    found: dict[str, Any] = entries[0]
    return found


def ledger_size(world: World) -> int:
    with world.server.client(world.auditor) as client:
        size: int = client.get("/v1/ledger/events", params={"limit": 1}).json()["size"]
    return size


# ---------------------------------------------------------------- decisions


def test_a_decision_is_durable_before_its_answer_arrives(world: World) -> None:
    before = len(stored_entries(world))
    with httpx.Client(
        base_url=world.server.url, headers={"Authorization": f"License {world.key}"}
    ) as app:
        answer = app.post(
            "/v1/check",
            json={"license": world.key, "entitlement": "feature:export-pdf", "fingerprint": "m1"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed"] is True
    # Read through another connection right away: the entry is already committed.
    stored = stored_entries(world)
    assert len(stored) == before + 1
    entry = last_entry(world, action="check")
    assert entry["principal"] == {
        "id": f"license:{world.serial}",
        "role": "license",
        "auth": "license",
    }
    assert (entry["target"], entry["outcome"], entry["code"]) == (world.serial, "allowed", "ok")
    assert entry["detail"]["entitlement"] == "feature:export-pdf"
    assert entry["detail"]["fingerprint"].startswith("sha256:")


def test_every_decision_of_a_batch_is_audited_with_its_reason(world: World) -> None:
    checks = [
        {"license": world.serial, "entitlement": "feature:export-pdf"},
        {"license": world.serial, "entitlement": "feature:nope"},
        {"license": "tnr_lic_not_a_real_key", "entitlement": "seats"},
    ]
    with world.server.client(world.issuer) as client:
        response = client.post("/v1/check/batch", json={"checks": checks})
    assert response.status_code == 200, response.text
    entries = audit_page(world, action="check", order="desc", limit=3)["entries"][::-1]
    assert [(e["outcome"], e["code"]) for e in entries] == [
        ("allowed", "ok"),
        ("denied", "not_entitled"),
        ("denied", "unknown_license"),
    ]
    assert entries[2]["target"].startswith("sha256:")  # an unknown key only by a hash


def test_no_license_key_or_personal_data_is_stored_in_clear(world: World) -> None:
    blob = b"\n".join(stored_entries(world))
    for secret in (world.key, world.customer_name, world.email, "tnr_lic_not_a_real_key"):
        assert secret.encode() not in blob, secret
    assert world.serial.encode() in blob  # serials are not personal data


# ---------------------------------------------------------------- mutation requests


def test_mutations_are_audited_allowed_or_denied(world: World) -> None:
    size = ledger_size(world)
    with world.server.client(world.auditor) as auditor:
        refused = auditor.post(f"/v1/licenses/{world.serial}/suspend", json={"reason": "x"})
    assert refused.status_code == 403
    entry = last_entry(world, action="suspend_license")
    assert (entry["outcome"], entry["code"], entry["target"]) == (
        "denied",
        "forbidden",
        world.serial,
    )
    assert entry["principal"]["role"] == "auditor"

    with world.server.client(world.issuer) as issuer:
        invalid = issuer.post(f"/v1/licenses/{world.serial}/suspend", json={})
        assert invalid.status_code == 400
        entry = last_entry(world, action="suspend_license")
        assert (entry["code"], entry["detail"]["field"]) == ("invalid_input", "reason")

        done = issuer.post(f"/v1/licenses/{world.serial}/suspend", json={"reason": "unpaid"})
        assert done.status_code == 200, done.text
        entry = last_entry(world, action="suspend_license")
        assert (entry["outcome"], entry["code"], entry["rationale"]) == ("allowed", "ok", "unpaid")
        assert entry["events"] == [size, 1]

        undone = issuer.post(f"/v1/licenses/{world.serial}/reinstate", json={"reason": "paid"})
        assert undone.status_code == 200, undone.text
    assert ledger_size(world) == size + 2


def test_only_auditors_and_owners_read_the_audit_log(world: World) -> None:
    with world.server.client(world.issuer) as issuer:
        assert issuer.get("/v1/audit").status_code == 403
    created = audit_page(world, key=world.server.owner_key(), action="create_api_key")
    # The two admin keys are the people's keys that asked for and approved the
    # example catalog (two-person rule).
    roles = [e["detail"]["role"] for e in created["entries"]]
    assert roles[:4] == ["admin", "admin", "auditor", "issuer"]
    assert all(e["target"].startswith("key_") for e in created["entries"])
    page = audit_page(world, target=world.serial, limit=2)
    assert len(page["entries"]) == 2
    assert all(e["target"] == world.serial for e in page["entries"])
    following = audit_page(world, target=world.serial, limit=2, cursor=page["next_cursor"])
    assert following["entries"][0]["seq"] > page["entries"][-1]["seq"]
    with world.server.client(world.auditor) as auditor:
        head = auditor.get("/v1/audit/head").json()
    assert head["size"] == len(stored_entries(world))


# ---------------------------------------------------------------- fail closed


def test_a_failing_audit_write_fails_the_request(world: World) -> None:
    size = ledger_size(world)
    conn = db(world)
    try:
        conn.execute(
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit disk full'); END"
        )
        with world.server.client(world.issuer) as issuer:
            check = issuer.post("/v1/check", json={"license": world.serial, "entitlement": "seats"})
            suspend = issuer.post(f"/v1/licenses/{world.serial}/suspend", json={"reason": "r"})
            forbidden = issuer.post("/v1/apikeys", json={"role": "agent", "name": "x"})
        for response in (check, suspend, forbidden):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["type"].endswith("/storage_unavailable")
    finally:
        conn.execute("DROP TRIGGER IF EXISTS audit_full")
        conn.close()
    assert ledger_size(world) == size  # the suspension did not happen
    with world.server.client(world.issuer) as issuer:
        license_now = issuer.get(f"/v1/licenses/{world.serial}").json()
        again = issuer.post("/v1/check", json={"license": world.serial, "entitlement": "seats"})
    assert license_now["status"] == "active"
    assert again.status_code == 200


# ---------------------------------------------------------------- the CLI


def audit_cli(world: World, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    return tenure(world.server, "audit", *args, key=key or world.auditor)


def test_cli_lists_the_audit_log(world: World) -> None:
    listed = audit_cli(world, "list", "--target", world.serial, "--newest", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    assert "suspend_license" in listed.stdout or "reinstate_license" in listed.stdout
    refused = audit_cli(world, "list", key=world.issuer)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error: 403 forbidden")


def test_cli_verify_passes_then_names_the_entry_that_was_altered(world: World) -> None:
    data_dir = str(world.server.data_dir)
    ok = audit_cli(world, "verify", "--data-dir", data_dir)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: default:")
    conn = db(world)
    try:
        seq, original = conn.execute(
            "SELECT seq, entry FROM audit_log WHERE action = 'check' ORDER BY seq LIMIT 1"
        ).fetchone()
        forged = bytes(original).replace(b'"outcome":"allowed"', b'"outcome":"denied"')
        assert forged != bytes(original)
        conn.execute("UPDATE audit_log SET entry = ? WHERE seq = ?", (forged, seq))
        bad = audit_cli(world, "verify", "--data-dir", data_dir)
    finally:
        conn.execute("UPDATE audit_log SET entry = ? WHERE seq = ?", (original, seq))
        conn.close()
    assert bad.returncode == 1
    assert f"TAMPERED (first bad entry {seq})" in bad.stdout
