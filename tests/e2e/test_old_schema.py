"""A database at an older release's schema, as that release left it: a store of the
golden workload (``tests/fixtures/golden-<version>/``) of each release behind the head,
made by the release itself, built from its commit (``support.releases``).

Every command that opens the store refuses it in one line naming both revisions and
writes nothing; ``tenure db status``, ``db upgrade`` and ``--help`` work on it;
``tenure serve`` upgrades it on start, logging the upgrade and leaving the same
pre-upgrade snapshot as ``tenure db upgrade``, or, with upgrading on start off,
refuses in the same line. A schema newer than this release's is refused in one line
too. Real processes throughout.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cli import CliResult, subprocess_env, tenure
from support.postgres import pg_url
from support.releases import OldRelease, build_release, golden_store, release_id, releases
from support.server import start_server
from support.sqlite import raw_sqlite
from tenure.durability.upgrades import PRE_UPGRADE_DIR, schema_head, status_of
from tenure.store.databases import schema_revision
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade

# Commands that open the store: read, repair, sign, append, ship.
COMMANDS = [
    ("ledger", "verify"),
    ("state", "digest"),
    ("audit", "verify"),
    ("state", "rebuild"),
    ("ledger", "checkpoint", "--sign"),
    ("demo", "seed", "--events", "5"),
    ("ship", "--site", "file:///nonexistent/tenure-site"),
]


@dataclass(frozen=True)
class Golden:
    release: OldRelease
    data_dir: Path
    made: dict[str, Any]
    """``size``, ``digest`` and ``root_b64`` as the release reported them."""


@pytest.fixture(
    scope="session",
    params=[r for r in releases() if r["database_schema"] < schema_head()],
    ids=release_id,
)
def golden(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Golden:
    """A store of the golden workload of each release behind the head, made by that
    release (once a session); tests work on copies (``copy_of``)."""
    base = tmp_path_factory.mktemp(f"golden-{request.param['version']}")
    release = build_release(request.param, base / "release")
    made = golden_store(release, base / "data")
    return Golden(release, base / "data", made)


def copy_of(golden: Golden, where: Path) -> Path:
    shutil.copytree(golden.data_dir, where)
    return where


def files(data_dir: Path) -> dict[str, str]:
    """Every file under ``data_dir`` (relative path → SHA-256 of its bytes)."""
    return {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file()
    }


def schema_of(data_dir: Path) -> str:
    """The Alembic revision stored in the database, read with plain sqlite3."""
    with closing(raw_sqlite(data_dir)) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


def one_line(result: CliResult | subprocess.CompletedProcess[str]) -> str:
    """The only line ``result`` wrote to stderr (fails if it wrote more or none)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    return lines[0]


def behind_line(golden: Golden) -> str:
    schema = golden.release.database_schema
    return f"error: database schema {schema} is behind {schema_head()}: run tenure db upgrade"


def serve(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``tenure serve`` on ``data_dir`` that is expected to refuse to start."""
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir), *args]
    return subprocess.run(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=subprocess_env(**env),
    )


def schema_log(stderr: str) -> list[dict[str, Any]]:
    """The service's JSON log lines about the schema."""
    lines = (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
    return [line for line in lines if line["logger"] == "tenure.schema"]


def test_every_command_on_an_older_schema_says_so_in_one_line_and_writes_nothing(
    golden: Golden, tmp_path: Path
) -> None:
    data_dir = copy_of(golden, tmp_path / "data")
    before = files(data_dir)
    for command in COMMANDS:
        refused = tenure(*command, "--data-dir", data_dir)
        assert refused.code == 1, refused
        assert one_line(refused) == behind_line(golden), refused
        assert refused.stdout == "", refused
        assert files(data_dir) == before, command
    assert schema_of(data_dir) == golden.release.database_schema


def test_db_status_help_and_db_upgrade_work_on_an_older_schema(
    golden: Golden, tmp_path: Path
) -> None:
    data_dir = copy_of(golden, tmp_path / "data")
    status = tenure("db", "status", "--data-dir", data_dir, "--output", "json")
    assert status.code == 0, status
    assert (status.json()["current"], status.json()["head"]) == (
        golden.release.database_schema,
        schema_head(),
    )
    helped = tenure("ledger", "verify", "--help")
    assert helped.code == 0, helped
    assert "--data-dir" in helped.stdout, helped

    upgraded = tenure("db", "upgrade", "--data-dir", data_dir, "--output", "json")
    assert upgraded.code == 0, upgraded
    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--output", "json")
    assert verified.code == 0, verified
    assert verified.json()["root"] == golden.made["root_b64"]
    digest = tenure("state", "digest", "--data-dir", data_dir, "--output", "json")
    assert digest.json()["digest"] == golden.made["digest"], digest


def test_serve_upgrades_on_start_logging_it_after_the_same_snapshot_as_db_upgrade(
    golden: Golden, tmp_path: Path
) -> None:
    schema, head = golden.release.database_schema, schema_head()
    by_hand = copy_of(golden, tmp_path / "by-hand")
    upgraded = tenure("db", "upgrade", "--data-dir", by_hand, "--output", "json").json()

    data_dir = copy_of(golden, tmp_path / "data")
    logs = tmp_path / "logs"
    logs.mkdir()
    server = start_server(data_dir, logs)
    try:
        ready = httpx.get(f"{server.url}/readyz").json()
    finally:
        server.stop()
    assert ready["schema"] == head
    site = (data_dir / PRE_UPGRADE_DIR).resolve().as_uri()
    logged = schema_log(server.stderr())
    upgrade = [line for line in logged if line["level"] == "warning"]
    assert len(upgrade) == 1, logged
    assert (upgrade[0]["schema_from"], upgrade[0]["schema_to"]) == (schema, head)
    pending = ", ".join(status_of(schema).pending)
    assert upgrade[0]["message"] == (
        f"upgraded database schema {schema} -> {head} on start (applied {pending}); "
        f"the state from before is in the pre-upgrade snapshot at {site}"
    )
    snapshots = [line for line in logged if "size" in line]
    assert [(s["account"], s["size"], s["path"]) for s in snapshots] == [
        (s["account"], s["size"], s["path"]) for s in upgraded["snapshots"]
    ]
    for snapshot in snapshots:
        assert snapshot["size"] == golden.made["size"]
        assert (data_dir / PRE_UPGRADE_DIR / snapshot["path"]).is_file()
        assert (by_hand / PRE_UPGRADE_DIR / snapshot["path"]).is_file()

    into = f"sqlite:///{(tmp_path / 'restored' / 'tenure.db').as_posix()}"
    (tmp_path / "restored").mkdir()
    restored = tenure(
        "restore", "--site", site, "--into", into, "--data-dir", data_dir, "--output", "json"
    )
    assert restored.code == 0, restored
    assert (restored.json()["size"], restored.json()["digest"]) == (
        golden.made["size"],
        golden.made["digest"],
    )

    old = copy_of(golden, tmp_path / "old")
    before = files(old)
    into_old = f"sqlite:///{(old / 'tenure.db').as_posix()}"
    refused = tenure("restore", "--site", site, "--into", into_old, "--data-dir", data_dir)
    assert (refused.code, one_line(refused)) == (1, behind_line(golden)), refused
    assert files(old) == before


def test_serve_not_upgrading_on_start_refuses_in_the_same_line(
    golden: Golden, tmp_path: Path
) -> None:
    data_dir = copy_of(golden, tmp_path / "data")
    before = files(data_dir)
    refused = serve(data_dir, TENURE_UPGRADE_ON_START="false")
    assert refused.returncode == 1, refused
    assert one_line(refused) == behind_line(golden)
    assert files(data_dir) == before


def test_a_schema_newer_than_this_release_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seeded = tenure("demo", "seed", "--events", "20", "--data-dir", data_dir)
    assert seeded.code == 0, seeded
    with closing(raw_sqlite(data_dir)) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    before = files(data_dir)
    ahead = (
        f"error: database schema 9999 is ahead of {schema_head()}, the newest this release "
        f"(tenure {tenure('version').stdout.strip()}) knows: run the newer release that "
        "upgraded it"
    )
    for command in [*COMMANDS[:3], ("db", "status"), ("db", "upgrade")]:
        refused = tenure(*command, "--data-dir", data_dir)
        assert (refused.code, one_line(refused)) == (1, ahead), refused
    for env in ({}, {"TENURE_UPGRADE_ON_START": "false"}):
        started = serve(data_dir, **env)
        assert (started.returncode, one_line(started)) == (1, ahead), started
    assert files(data_dir) == before


def test_on_postgresql_an_older_schema_is_refused_in_the_same_line(
    pg_database: str, tmp_path: Path
) -> None:
    behind = [r for r in releases() if r["database_schema"] < schema_head()][-1]
    url = pg_url(pg_database)
    engine = create_engine(url)
    try:
        upgrade(engine, behind["database_schema"])
    finally:
        engine.dispose()
    line = (
        f"error: database schema {behind['database_schema']} is behind {schema_head()}: "
        "run tenure db upgrade"
    )
    for command in COMMANDS[:2] + COMMANDS[-2:]:
        refused = tenure(*command, "--data-dir", tmp_path / "data", "--db", url)
        assert (refused.code, one_line(refused)) == (1, line), refused
    started = serve(tmp_path / "data", "--db", url, TENURE_UPGRADE_ON_START="false")
    assert (started.returncode, one_line(started)) == (1, line), started
    assert schema_revision(url) == behind["database_schema"]
