"""``tenure restore`` of a two-account site into each backend (SQLite and
PostgreSQL): every account comes back with the shipped idempotency records, and
a restore that fails for one account writes nothing for any, and leaves no file
or schema it created."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.cli import seed_args, tenure, tenure_json
from tenure.store.databases import schema_revision, sqlite_file


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data dir with two accounts (30 and 20 demo events) shipped to a site."""
    root = tmp_path_factory.mktemp("two-accounts")
    data, site = root / "data", root / "site"
    assert tenure(*seed_args(data, 30, 5)).code == 0
    assert tenure(*seed_args(data, 20, 6), "--account", "acme").code == 0
    assert tenure("ship", "--data-dir", data, "--site", site.as_uri()).code == 0
    return data, site


def _own(shipped: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shipped data dir for one test: a restore into PostgreSQL records
    its checkpoints in the data dir's sidecar, which the next test's target lacks."""
    data, site = shipped
    copy = tmp_path / "own-data"
    shutil.copytree(data, copy)
    return copy, site


def test_every_account_is_restored_into_each_backend(
    shipped: tuple[Path, Path], store_url: str, tmp_path: Path
) -> None:
    data, site = _own(shipped, tmp_path)
    report = tenure_json(
        "restore", "--site", site.as_uri(), "--into", store_url, "--data-dir", data
    )
    assert [(r["account"], r["size"]) for r in report["accounts"]] == [
        ("acme", 20),
        ("default", 30),
    ]
    assert report["rows"]["acme"]["idempotency_keys"] > 0
    assert report["rows"]["default"]["ledger_events"] == 30
    for account in ("acme", "default"):
        verified = tenure_json(
            "ledger", "verify", "--account", account, "--db", store_url, "--data-dir", data
        )
        assert verified["size"] == report["rows"][account]["ledger_events"] + 1  # + restored


def test_a_failure_for_one_account_writes_nothing_into_each_backend(
    shipped: tuple[Path, Path], store_url: str, tmp_path: Path
) -> None:
    data, site = _own(shipped, tmp_path)
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    segments = sorted((broken / "default" / "segments").iterdir())
    segments[0].write_bytes(segments[0].read_bytes().replace(b'"seq":3', b'"seq":4', 1))
    failed = tenure("restore", "--site", broken.as_uri(), "--into", store_url, "--data-dir", data)
    assert failed.code == 1, str(failed)
    # Nothing the restore made is left: no SQLite file, no PostgreSQL schema.
    database = sqlite_file(store_url)
    assert not database.exists() if database else schema_revision(store_url) is None
    # acme (restored first) is not in the target either: a second restore succeeds.
    again = tenure_json("restore", "--site", site.as_uri(), "--into", store_url, "--data-dir", data)
    assert [r["account"] for r in again["accounts"]] == ["acme", "default"]


def test_a_failed_restore_leaves_a_database_of_another_application_alone(
    shipped: tuple[Path, Path], store_url: str, tmp_path: Path
) -> None:
    """A database with a table named like one of Tenure's but no schema revision is
    not Tenure's: the restore fails on it, and drops nothing."""
    data, site = _own(shipped, tmp_path)
    database = sqlite_file(store_url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE accounts (theirs INTEGER)"))
            conn.execute(sa.text("INSERT INTO accounts VALUES (7)"))
        failed = tenure("restore", "--site", site.as_uri(), "--into", store_url, "--data-dir", data)
        assert failed.code == 1, str(failed)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT theirs FROM accounts")).scalar() == 7
    finally:
        engine.dispose()
