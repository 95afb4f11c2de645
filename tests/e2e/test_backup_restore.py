"""The disaster, end to end: a real ``tenure serve`` ships its ledger to two
``file://`` sites (and snapshots automatically); the database file is deleted; an
operator restores it from the second site with ``tenure restore``; the restarted
service has every license, the ledger verifies, and the state digest is the one
recorded before the disaster. The old owner API key still works (the snapshot
carries the service tables) and the restored store accepts new writes."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from support.api import apply_example_catalog, issue_license, ledger_size, wait_for
from support.cli import tenure, tenure_json
from support.server import seed_data_dir, start_server
from tenure.durability import snapshots
from tenure.durability.shipping import site_end
from tenure.durability.sites import Site, open_site

ACCOUNT = "default"


def test_the_database_is_lost_and_restored_from_the_second_site(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    site_a, site_b = tmp_path / "site-a", tmp_path / "site-b"
    url_a, url_b = site_a.as_uri(), site_b.as_uri()
    seed_data_dir(data_dir)
    env = {
        "TENURE_SITES": f"{url_a},{url_b}",
        "TENURE_SHIP_INTERVAL_SECONDS": "0.2",
        "TENURE_SNAPSHOT_EVERY_EVENTS": "400",
    }
    sites: list[Site] = [open_site(url_a), open_site(url_b)]

    server = start_server(data_dir, logs, **env)
    try:
        owner_key = server.owner_key()
        with server.client(owner_key) as owner:
            # The shipper's first pass snapshots the seeded ledger (500 ≥ 400 events).
            wait_for(
                "a snapshot at both sites", lambda: all(snapshots.listed(s, ACCOUNT) for s in sites)
            )
            apply_example_catalog(owner)
            serials = [issue_license(owner)["serial"] for _ in range(4)]
            size = ledger_size(owner)
            assert size > 500
            wait_for(
                f"both sites to hold {size} events",
                lambda: all(site_end(s, ACCOUNT) >= size for s in sites),
            )
            status = owner.get("/v1/durability")
            assert status.status_code == 200, status.text
    finally:
        stopped = server.stop()
    assert stopped in (0, -signal.SIGTERM), server.logs()  # uvicorn re-raises SIGTERM

    # The clean stop shipped the rest (the writer signs a last checkpoint on close).
    before = tenure_json("state", "digest", "--data-dir", data_dir)
    assert before["size"] == size
    assert all(site_end(s, ACCOUNT) == size for s in sites)

    # The disaster.
    database = data_dir / "tenure.db"
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    assert not database.exists()

    restored = tenure_json(
        "restore", "--site", url_b, "--into", f"sqlite:///{database}", "--data-dir", data_dir
    )
    assert (restored["size"], restored["digest"]) == (size, before["digest"])
    assert restored["signed_size"] == size
    assert restored["snapshot"] is not None
    assert 500 <= restored["snapshot"] <= size
    assert restored["skipped_snapshots"] == []

    # The same state, and one event more: the ledger.restored record of this restore.
    verified = tenure_json("ledger", "verify", "--data-dir", data_dir)
    assert verified["ok"] is True
    assert verified["size"] == size + 1
    assert tenure_json("state", "digest", "--data-dir", data_dir) == {**before, "size": size + 1}

    server = start_server(data_dir, logs, **env)
    try:
        # The owner key of before the disaster still works: no new bootstrap key.
        assert server.owner_key() == owner_key
        with server.client(owner_key) as owner:
            assert ledger_size(owner) == size + 1
            for serial in serials:
                found = owner.get(f"/v1/licenses/{serial}")
                assert found.status_code == 200, found.text
                assert found.json()["serial"] == serial
            # The restored store takes new writes, and they are shipped again.
            issue_license(owner)
            grown = ledger_size(owner)
            assert grown > size
            wait_for(
                "the sites to catch up", lambda: all(site_end(s, ACCOUNT) >= grown for s in sites)
            )
    finally:
        stopped = server.stop()
    assert stopped in (0, -signal.SIGTERM), server.logs()  # uvicorn re-raises SIGTERM
    assert tenure_json("ledger", "verify", "--data-dir", data_dir)["ok"] is True


def test_a_restorer_repairs_lost_events_of_the_live_service_over_the_api(
    tmp_path: Path,
) -> None:
    """Event rows vanish under a running service; ``ledger verify`` names the loss;
    a restorer key (and only that role) restores the live store from its configured
    site over the API, and the service goes on appending."""
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    url = (tmp_path / "site").as_uri()
    seed_data_dir(data_dir, events=200)
    server = start_server(data_dir, logs, TENURE_SITES=url, TENURE_SHIP_INTERVAL_SECONDS="0.2")
    try:
        owner_key = server.owner_key()
        with server.client(owner_key) as owner:
            made = owner.post("/v1/apikeys", json={"role": "restorer", "name": "dr"})
            assert made.status_code == 201, made.text
            # A second person's owner key approves (not the bootstrap key: it made the
            # restorer's key, and a key acts for the keys it made).
            person = owner.post("/v1/apikeys", json={"role": "owner", "name": "on call"})
            assert person.status_code == 201, person.text
            size = ledger_size(owner)
            wait_for("the site", lambda: site_end(open_site(url), ACCOUNT) >= size)

            db = sqlite3.connect(data_dir / "tenure.db")
            try:
                with db:
                    db.execute(
                        "DELETE FROM ledger_events WHERE account = ? AND seq IN (7, 77)", (ACCOUNT,)
                    )
            finally:
                db.close()
            assert tenure("ledger", "verify", "--data-dir", data_dir).code != 0

            body = {"reason": "event rows 7 and 77 lost"}
            assert owner.post("/v1/restores", json=body).status_code == 403
            with server.client(made.json()["key"]) as restorer:
                other = restorer.post("/v1/restores", json={**body, "site": "file:///etc"})
                assert other.status_code == 400, other.text
                assert restorer.post("/v1/restores", json={}).status_code == 400
                asked = restorer.post("/v1/restores", json=body)
                assert asked.status_code == 202, asked.text
                approval = asked.json()["approval"]["approval"]
                # The two-person rule: the requester may not approve; another person may.
                mine = restorer.post(f"/v1/approvals/{approval}/approve", json=body)
                assert mine.status_code == 403, mine.text
            with server.client(person.json()["key"]) as second:
                done = second.post(f"/v1/approvals/{approval}/approve", json={"reason": "agreed"})
            assert done.status_code == 200, done.text
            assert done.json()["approval"]["status"] == "executed", done.text
            report = done.json()["result"]
            # The request and the approval are events too: the store held two more.
            grown = size + 2
            assert (report["replaced"], report["size"], report["event"]) == (grown,) * 3
            assert tenure_json("ledger", "verify", "--data-dir", data_dir)["ok"] is True
            audit = owner.get("/v1/audit", params={"limit": 10, "order": "desc"}).json()
            restores = [(e["action"], e["outcome"], e["code"]) for e in audit["entries"][:7]]
            assert restores == [
                ("record_approval_execution", "allowed", "ok"),
                ("decide_approval", "allowed", "ok"),
                ("decide_approval", "denied", "self_approval"),
                ("request_approval", "allowed", "ok"),
                ("restore_live", "denied", "invalid_input"),
                ("restore_live", "denied", "invalid_input"),
                ("restore_live", "denied", "forbidden"),
            ]
            apply_example_catalog(owner)
            issue_license(owner)
            assert ledger_size(owner) > size + 1
    finally:
        stopped = server.stop()
    assert stopped in (0, -signal.SIGTERM), server.logs()
    assert tenure_json("ledger", "verify", "--data-dir", data_dir)["ok"] is True
