"""Issue 18's done-when test: one ``tenure restore`` brings back everything a site
holds. A real ``tenure serve`` with two accounts (licenses, checks, a webhook, a
deployment report, a pending approval, idempotent requests) ships to a ``file://``
site; the server is killed with SIGKILL and its database deleted; ONE restore,
with no ``--account``, brings back both accounts with the state roots they had,
each account's owner key works, and the webhook, the deployment and the
idempotency records are there: a retried request answers as the first time and
appends nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx

from support.api import (
    apply_example_catalog,
    client_with,
    issue_license,
    ledger_size,
    people,
    wait_for,
)
from support.cli import tenure_json
from support.server import Server, free_port, seed_data_dir, start_server
from tenure.config import Settings
from tenure.durability.shipping import site_end
from tenure.durability.sites import Site, open_site
from tenure.ops.webhooks import SecretBox

ACME = "acme-co"
ACCOUNTS = ["acme-co", "default"]


def shipped_rows(
    site: Site, account: str, table: str, file: str = "service.json"
) -> list[dict[str, Any]]:
    """The rows of ``table`` in the account's ``file`` at the site."""
    body = site.get(f"{account}/{file}")
    rows: list[dict[str, Any]] = json.loads(body)["rows"][table] if body else []
    return rows


def idempotent(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Send ``body`` with a fresh Idempotency-Key; the key and the answer."""
    key = f"retry-{uuid.uuid4()}"
    answer = client.post(path, json=body, headers={"Idempotency-Key": key})
    assert answer.status_code in (200, 201), answer.text
    return {"path": path, "body": body, "key": key, "answer": answer.json()}


def fill_default(owner: httpx.Client) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Licenses, a check, a webhook, a deployment report, a pending approval and
    idempotent requests in the default account; the idempotent requests and the
    webhook (with its secret, shown once)."""
    apply_example_catalog(owner)
    serial = issue_license(owner)["serial"]
    checked = owner.post("/v1/check", json={"license": serial, "entitlement": "feature:export-pdf"})
    assert checked.status_code == 200, checked.text
    hook = owner.post(
        "/v1/webhooks",
        json={"url": f"http://127.0.0.1:{free_port()}/hook", "events": ["*"], "description": "x"},
    )
    assert hook.status_code == 201, hook.text
    agent_key = owner.post("/v1/apikeys", json={"role": "agent", "name": "plant agent"})
    assert agent_key.status_code == 201, agent_key.text
    report = {"product": "studio", "product_version": "2.1.0", "sdk_version": "0.2.0"}
    with client_with(owner, agent_key.json()["key"]) as agent:
        posted = agent.post("/v1/deployments/plant-a/reports", json={**report, "activations": []})
    assert posted.status_code in (200, 201, 202), posted.text
    first, _ = people(owner)
    with client_with(owner, first) as person:
        asked = person.post("/v1/keys/rotate")
    assert asked.status_code == 202, asked.text
    customer = {"name": "Retry Co", "email": "ops@retry.example"}
    made = idempotent(owner, "/v1/customers", customer)
    suspend = idempotent(owner, f"/v1/licenses/{serial}/suspend", {"reason": "unpaid"})
    gone = owner.post("/v1/customers", json={"name": "Gone Ltd", "email": "x@gone.example"})
    assert gone.status_code == 201, gone.text
    erased = owner.post(f"/v1/customers/{gone.json()['id']}/erase", json={"reason": "asked"})
    assert erased.status_code == 200, erased.text
    return [made, suspend], {**hook.json(), "erased_customer": gone.json()["id"]}


def test_one_restore_brings_back_every_account_and_service_row(tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    url = (tmp_path / "site").as_uri()
    site = open_site(url)
    seed_data_dir(data_dir, events=50)
    env = {
        "TENURE_SITES": url,
        "TENURE_SHIP_INTERVAL_SECONDS": "0.2",
        "TENURE_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    server = start_server(data_dir, logs, **env)
    try:
        owner_key = server.owner_key()
        with server.client(owner_key) as owner:
            created = owner.post("/v1/accounts", json={"id": ACME, "name": "Acme"})
            assert created.status_code == 201, created.text
            acme_key = created.json()["owner_key"]
            default_retries, hook = fill_default(owner)
            retries = {"default": default_retries}
            with server.client(acme_key) as acme:
                apply_example_catalog(acme)
                issue_license(acme)
                retries[ACME] = [idempotent(acme, "/v1/customers", {"name": "A", "email": "a@a.x"})]
            sizes = {"default": ledger_size(owner)}
            with server.client(acme_key) as acme:
                sizes[ACME] = ledger_size(acme)
        wait_for_the_site(site, sizes, retries["default"][0]["answer"]["id"])
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)

    before = {
        a: tenure_json("state", "root", "--account", a, "--data-dir", data_dir) for a in ACCOUNTS
    }
    database = data_dir / "tenure.db"
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)

    restored = tenure_json(
        "restore", "--site", url, "--into", f"sqlite:///{database}", "--data-dir", data_dir
    )

    assert [r["account"] for r in restored["accounts"]] == ACCOUNTS
    assert {r["account"]: r["size"] for r in restored["accounts"]} == sizes
    # No snapshot was due: the idempotency records and service rows came from what
    # was shipped continuously.
    assert [r["snapshot"] for r in restored["accounts"]] == [None, None]
    assert [(r["key_rows"], r["service_rows"]) for r in restored["accounts"]] == [
        ("site", "site"),
        ("site", "site"),
    ]
    rows = {t["table"]: t for t in restored["tables"]}
    assert all(rows[t]["restored"] for t in ("webhooks", "deployments", "idempotency_keys"))
    assert (rows["webhooks"]["rows"], rows["deployments"]["rows"]) == (1, 1)
    assert (rows["accounts"]["rows"], rows["webhook_cursors"]["rows"]) == (2, 1)
    assert rows["proj_approvals"]["rows"] >= 1
    assert rows["idempotency_keys"]["rows"] >= 3
    assert not rows["webhook_deliveries"]["restored"]
    for account in ACCOUNTS:
        after = tenure_json("state", "root", "--account", account, "--data-dir", data_dir)
        assert (after["root"], after["rows"]) == (before[account]["root"], before[account]["rows"])
    assert tenure_json("ledger", "verify", "--data-dir", data_dir)["ok"] is True
    # The webhook's secret came back sealed as stored, and opens with the key store.
    with sqlite3.connect(database) as db:
        [(sealed,)] = db.execute("SELECT secret FROM webhooks WHERE id = ?", (hook["id"],))
    box = SecretBox.from_settings(Settings(data_dir=data_dir))
    assert box.open("default", hook["id"], sealed) == hook["secret"]

    # The data keys came back from datakeys.json, less the erased customer's: the
    # customers read as before (crypto-shredding holds).
    shipped = {
        row["customer"] for row in shipped_rows(site, "default", "data_keys", "datakeys.json")
    }
    assert hook["erased_customer"] not in shipped
    server = start_server(data_dir, logs, **env)
    try:
        assert server.owner_key() == owner_key  # no new bootstrap key
        with server.client(owner_key) as owner:
            kept = owner.get(f"/v1/customers/{retries['default'][0]['answer']['id']}").json()
            assert (kept["name"], kept["email"], kept["erased"]) == (
                "Retry Co",
                "ops@retry.example",
                False,
            )
            gone = owner.get(f"/v1/customers/{hook['erased_customer']}").json()
            assert (gone["name"], gone["email"], gone["erased"]) == (None, None, True)
        check_the_restored_service(server, {"default": owner_key, ACME: acme_key}, retries)
    finally:
        stopped = server.stop()
    assert stopped in (0, -signal.SIGTERM), server.logs()


def wait_for_the_site(site: Site, sizes: dict[str, int], customer: str) -> None:
    """Until the site holds every event and the shipped service rows show the
    webhook, the deployment report and the data key of ``customer`` (the one read
    back after the restore: the data keys file is shipped apart from the events, and
    one shipped before that customer existed would not hold its key)."""
    wait_for(
        "every event at the site",
        lambda: all(site_end(site, account) >= size for account, size in sizes.items()),
    )
    wait_for(
        "the webhook, the deployment and the data keys at the site",
        lambda: (
            shipped_rows(site, "default", "webhooks")
            and shipped_rows(site, "default", "deployments")
            and any(
                row["customer"] == customer
                for row in shipped_rows(site, "default", "data_keys", "datakeys.json")
            )
        ),
    )


def check_the_restored_service(
    server: Server, keys: dict[str, str], retries: dict[str, list[dict[str, Any]]]
) -> None:
    for account, key in keys.items():
        with server.client(key) as client:
            licenses = client.get("/v1/licenses")
            assert licenses.status_code == 200, f"{account}: {licenses.text}"
            assert licenses.json()["licenses"]
            size = ledger_size(client)
            for retry in retries[account]:
                again = client.post(
                    retry["path"], json=retry["body"], headers={"Idempotency-Key": retry["key"]}
                )
                assert again.status_code in (200, 201), again.text
                assert again.json() == retry["answer"]
            assert ledger_size(client) == size  # the retries appended nothing
    with server.client(keys["default"]) as owner:
        assert [w["url"] for w in owner.get("/v1/webhooks").json()["webhooks"]]
        deployments = owner.get("/v1/deployments").json()["deployments"]
        assert [d["id"] for d in deployments] == ["plant-a"]
        pending = owner.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
        assert [a["action"] for a in pending] == ["keys.rotate"]
