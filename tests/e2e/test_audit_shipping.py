"""The audit chain survives the disaster: a real ``tenure serve`` ships its audit
entries with its ledger to a ``file://`` site; it is SIGKILLed and its database
deleted; ``tenure restore`` brings the chain back up to the shipping point, proven
against the signed audit head, and the restored service continues it, so ``tenure
audit verify`` passes across the restore, and a second restore from the same site
proves the whole chain, old and new. A site whose audit segment was edited or cut
short is refused, and ``--without-audit`` restores the ledger without it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog, issue_license
from support.cli import subprocess_env, tenure_executable
from support.server import STOP_TIMEOUT, Server, seed_data_dir, start_server
from tenure.durability.shipping import site_end
from tenure.durability.sites import Site, open_site

ACCOUNT = "default"
ENV = {"TENURE_SHIP_INTERVAL_SECONDS": "0.2"}


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The ``tenure`` CLI on storage directly (no server, no TENURE_* from outside)."""
    return subprocess.run(
        [tenure_executable(), *(str(a) for a in args)],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_json(*args: str | Path) -> Any:
    done = cli(*args, "--output", "json")
    assert done.returncode == 0, f"tenure {args}: {done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def wait_for(what: str, check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def audit_rows(database: Path) -> list[tuple[int, bytes, bytes]]:
    """``(seq, entry, hash)`` of the account's audit chain, read from the file."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            "SELECT seq, entry, hash FROM audit_log WHERE account = ? ORDER BY seq", (ACCOUNT,)
        ).fetchall()
    return [(int(seq), bytes(entry), bytes(digest)) for seq, entry, digest in rows]


def site_audit_size(site: Site) -> int:
    """The size of the site's largest audit head (not verified: for waiting only)."""
    prefix = f"{ACCOUNT}/audit/head-"
    return max(
        (
            int(p.removeprefix(prefix))
            for p in site.list(f"{ACCOUNT}/audit/")
            if p.startswith(prefix)
        ),
        default=0,
    )


def audit_segments(site_dir: Path) -> list[Path]:
    return sorted((site_dir / ACCOUNT / "audit").glob("*.seg"))


def checks(owner: httpx.Client, serial: str, count: int) -> None:
    """``count`` entitlement checks: each one is an audit entry and no ledger event."""
    for n in range(count):
        entitlement = "seats" if n % 2 == 0 else "feature:no-such-feature"
        answer = owner.post("/v1/check", json={"license": serial, "entitlement": entitlement})
        assert answer.status_code == 200, answer.text


def busy_and_shipped(server: Server, site: Site) -> int:
    """Licenses and checks on ``server``; returns the audit size once the site holds
    it and every ledger event."""
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        serial = issue_license(owner)["serial"]
        checks(owner, serial, 5)
        issue_license(owner)
        checks(owner, serial, 2)
        size: int = owner.get("/v1/audit/head").json()["size"]
        events = owner.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]
    wait_for(
        f"the site to hold {size} audit entries and {events} events",
        lambda: site_audit_size(site) >= size and site_end(site, ACCOUNT) >= events,
    )
    return size


def sigkill(server: Server) -> None:
    """A crash: SIGKILL the server (one process: ``tenure serve`` with one worker)."""
    server.process.kill()
    assert server.process.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL


def delete_database(database: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def test_the_audit_chain_is_restored_and_continued_after_a_crash(tmp_path: Path) -> None:
    data_dir, logs, site_dir = tmp_path / "data", tmp_path / "logs", tmp_path / "site"
    logs.mkdir()
    seed_data_dir(data_dir)
    env = {**ENV, "TENURE_SITES": site_dir.as_uri()}
    site = open_site(site_dir.as_uri())
    database = data_dir / "tenure.db"

    server = start_server(data_dir, logs, **env)
    try:
        audited = busy_and_shipped(server, site)
    finally:
        sigkill(server)
    before = audit_rows(database)
    shipped = site_audit_size(site)
    assert audited <= shipped <= len(before)

    delete_database(database)
    restored = cli_json(
        "restore", "--site", site_dir.as_uri(), "--into", f"sqlite:///{database}",
        "--data-dir", data_dir,
    )  # fmt: skip
    assert restored["audit"] == "site"
    kept = restored["audit_entries"]
    assert audited <= kept <= shipped
    after = audit_rows(database)
    # Every entry up to the shipping point, as it was; then the restore's own entry
    # (ledger.restored), linked to the restored head.
    assert after[:kept] == before[:kept]
    assert len(after) == kept + 1
    assert json.loads(after[kept][1])["prev"] == before[kept - 1][2].hex()
    verified = cli_json("audit", "verify", "--data-dir", data_dir)
    assert verified["ok"] is True
    [chain] = verified["accounts"]
    assert chain["size"] == kept + 1
    assert chain["events"][1] == chain["ledger_size"]

    server = start_server(data_dir, logs, **env)
    try:
        with server.client(server.owner_key()) as owner:
            serial = issue_license(owner)["serial"]
            checks(owner, serial, 1)
            head = owner.get("/v1/audit/head").json()
        assert head["size"] >= kept + 3
        wait_for(
            "the site to hold the continued chain", lambda: site_audit_size(site) >= head["size"]
        )
    finally:
        stopped = server.stop()
    assert stopped in (0, -signal.SIGTERM), server.logs()  # uvicorn re-raises SIGTERM
    grown = audit_rows(database)
    assert grown[: kept + 1] == after
    assert cli_json("audit", "verify", "--data-dir", data_dir)["ok"] is True

    # The site now holds one chain across the restore: a second restore proves it all.
    again = tmp_path / "again.db"
    second = cli_json(
        "restore", "--site", site_dir.as_uri(), "--into", f"sqlite:///{again}",
        "--data-dir", data_dir,
    )  # fmt: skip
    assert second["audit"] == "site"
    assert second["audit_entries"] == len(grown)
    assert audit_rows(again)[: len(grown)] == grown
    assert cli_json("audit", "verify", "--data-dir", data_dir, "--db", f"sqlite:///{again}")["ok"]


def _forge(segment: Path, old: bytes, new: bytes) -> None:
    """Edit an entry of an audit segment and give the segment a valid checksum again:
    a forger's edit, which only the hash chain and the signed head can catch."""
    data = segment.read_bytes()
    assert old in data
    body = data[: data.rindex(b"end ")].replace(old, new, 1)
    segment.write_bytes(body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n")


def test_a_site_whose_audit_segment_was_edited_or_cut_short_is_refused(tmp_path: Path) -> None:
    data_dir, logs, site_dir = tmp_path / "data", tmp_path / "logs", tmp_path / "site"
    logs.mkdir()
    seed_data_dir(data_dir)
    site = open_site(site_dir.as_uri())
    database = data_dir / "tenure.db"
    server = start_server(data_dir, logs, **ENV, TENURE_SITES=site_dir.as_uri())
    try:
        busy_and_shipped(server, site)
        with server.client(server.owner_key()) as owner:
            size = owner.get("/v1/audit/head").json()["size"]
            checks(owner, issue_license(owner)["serial"], 1)  # a second audit segment
            wait_for("a second audit segment", lambda: site_audit_size(site) > size)
    finally:
        stopped = server.stop()
    assert stopped in (0, -signal.SIGTERM), server.logs()
    delete_database(database)
    into = f"sqlite:///{database}"
    restore = ("restore", "--site", site_dir.as_uri(), "--into", into, "--data-dir", data_dir)

    *_, last = audit_segments(site_dir)
    kept_aside = last.read_bytes()
    last.unlink()
    cut_short = cli(*restore)
    assert cut_short.returncode == 1, cut_short.stdout
    assert "truncated or altered" in cut_short.stderr
    assert "--without-audit" in cut_short.stderr
    last.write_bytes(kept_aside)

    checked = next(s for s in audit_segments(site_dir) if b'"action":"check"' in s.read_bytes())
    _forge(checked, b'"action":"check"', b'"action":"chuck"')
    forged = cli(*restore)
    assert forged.returncode == 1, forged.stdout
    assert "audit" in forged.stderr
    # Nothing of the refused restores was left behind: not even the file they created.
    assert not database.exists()

    without = cli_json(*restore, "--without-audit")
    assert (without["audit"], without["audit_entries"]) == ("skipped", 0)
    verified = cli_json("audit", "verify", "--data-dir", data_dir)
    assert verified["ok"] is True
    assert verified["accounts"][0]["size"] == 1  # the restore's own entry starts a new chain
