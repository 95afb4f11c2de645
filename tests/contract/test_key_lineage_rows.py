"""Key lineage (``api_keys.created_by``, migration 0011) is kept wherever API key rows
go: signed key rows and snapshots at the sites, restores, ``tenure migrate`` to
PostgreSQL; keys older than 0011 have none (their creator is unknown)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from support.cli import seed_args, tenure
from support.postgres import pg_url
from support.shop import ACCOUNT
from tenure.domain.lineage import line_of
from tenure.service.apikeys import create_api_key, creators
from tenure.store import tables as t
from tenure.store.engine import create_engine, read_transaction
from tenure.store.migrations import upgrade


def make_two_generations(data_dir: Path) -> dict[str, str | None]:
    """A key made on the storage (a top) and one it made; id → ``created_by``."""
    engine = create_engine(f"sqlite:///{data_dir / 'tenure.db'}")
    try:
        parent, _ = create_api_key(engine, ACCOUNT, "owner", "person")
        child, _ = create_api_key(engine, ACCOUNT, "issuer", "their CI", created_by=parent.id)
    finally:
        engine.dispose()
    return {parent.id: None, child.id: parent.id}


def lineage_at(url: str) -> dict[str, str | None]:
    engine = create_engine(url)
    try:
        with read_transaction(engine) as conn:
            made_by, _ = creators(conn, ACCOUNT)
    finally:
        engine.dispose()
    return made_by


def restore_into(data_dir: Path, site: str, target: Path) -> str:
    """``tenure restore`` into a new SQLite file; the report's ``key_rows``."""
    done = tenure(
        "restore", "--site", site, "--into", f"sqlite:///{target}",
        "--data-dir", data_dir, "--output", "json",
    )  # fmt: skip
    assert done.code == 0, str(done)
    return str(done.json()["key_rows"])


def test_key_lineage_comes_back_from_the_key_rows_and_from_snapshots(tmp_path: Path) -> None:
    data_dir, site_root = tmp_path / "live", tmp_path / "site"
    site = site_root.resolve().as_uri()
    assert tenure(*seed_args(data_dir, 40, 3)).code == 0
    made = make_two_generations(data_dir)
    assert tenure("snapshot", "create", "--data-dir", data_dir, "--site", site).code == 0
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0

    target = tmp_path / "from-key-rows.db"
    assert restore_into(data_dir, site, target) == "site"
    assert made.items() <= lineage_at(f"sqlite:///{target}").items()

    # Without usable key rows the snapshot's service rows are used: lineage too.
    rows = site_root / ACCOUNT / "keys.json"
    rows.write_bytes(rows.read_bytes().replace(b"person", b"persoN"))
    target = tmp_path / "from-snapshot.db"
    assert restore_into(data_dir, site, target) == "snapshot"
    assert made.items() <= lineage_at(f"sqlite:///{target}").items()


def test_tenure_migrate_takes_key_lineage_to_postgresql(
    tmp_path: Path,
    pg_database: str,
) -> None:
    data_dir = tmp_path / "data"
    assert tenure(*seed_args(data_dir, 20, 4)).code == 0
    made = make_two_generations(data_dir)
    sqlite_url, pg = f"sqlite:///{(data_dir / 'tenure.db').as_posix()}", pg_url(pg_database)
    started = tenure("migrate", "start", "--from", sqlite_url, "--to", pg, "--data-dir", data_dir)
    assert started.code == 0, str(started)
    assert made.items() <= lineage_at(pg).items()


def test_keys_made_before_0011_have_no_recorded_creator(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        upgrade(engine, "0010")
        with sqlite3.connect(path) as db:
            db.execute(
                "INSERT INTO api_keys (id, account, key_hash, role, name, created_at) "
                "VALUES ('key_old', ?, ?, 'admin', 'made by 0.1', '2026-01-01T00:00:00.000000Z')",
                (ACCOUNT, "0" * 64),
            )
        db.close()
        upgrade(engine)
        made, _ = create_api_key(engine, ACCOUNT, "issuer", "made by the old key", "key_old")
        with read_transaction(engine) as conn:
            made_by, _ = creators(conn, ACCOUNT)
            columns = {c["name"] for c in sa.inspect(conn).get_columns(t.api_keys.name)}
    finally:
        engine.dispose()
    assert "created_by" in columns
    assert made_by == {"key_old": None, made.id: "key_old"}
    assert line_of("key_old", made_by) == ("key_old",)
    assert line_of(made.id, made_by) == (made.id, "key_old")
