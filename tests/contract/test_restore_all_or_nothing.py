"""``tenure restore`` on real SQLite files and a real ``file://`` site: every account
by default, ``--account`` for one, all or nothing (a failed restore leaves no file
it created and writes nothing into a database that existed), and signed row and
idempotency files that are used only when their note proves them."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from support.cli import CliResult, seed_args, tenure, tenure_json

ACCOUNTS = ["acme", "default"]
PROGRESS = re.compile(r"^[a-z0-9-]+: (proving|writing \d+ events)$")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data dir with two accounts (60 and 40 demo events) shipped to a site."""
    root = tmp_path_factory.mktemp("two-accounts")
    data, site = root / "data", root / "site"
    assert tenure(*seed_args(data, 60, 3)).code == 0
    seeded = tenure(*seed_args(data, 40, 4), "--account", "acme")
    assert seeded.code == 0, str(seeded)
    shipped = tenure("ship", "--data-dir", data, "--site", site.as_uri())
    assert shipped.code == 0, str(shipped)
    return data, site


@pytest.fixture
def site_copy(shipped: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "site"
    shutil.copytree(shipped[1], copy)
    return copy


def restore(data: Path, site: Path, into: Path, *args: str) -> CliResult:
    return tenure(
        "restore", "--site", site.as_uri(), "--into", f"sqlite:///{into}", "--data-dir", data, *args
    )


def one_line_error(done: CliResult) -> str:
    """The one line of the error, after the progress lines (``<account>: proving``)."""
    assert done.code == 1, str(done)
    lines = [line for line in done.stderr.strip().splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1, str(done)
    assert lines[0].startswith("error: "), str(done)
    return lines[0]


def event_count(database: Path) -> int:
    with sqlite3.connect(database) as db:
        count: int = db.execute("SELECT count(*) FROM ledger_events").fetchone()[0]
    return count


def test_every_account_the_site_holds_is_restored_by_default(
    shipped: tuple[Path, Path], tmp_path: Path
) -> None:
    data, site = shipped
    done = restore(data, site, tmp_path / "all.db", "--output", "json")
    assert done.code == 0, str(done)
    report = done.json()
    assert [(r["account"], r["size"]) for r in report["accounts"]] == [
        ("acme", 40),
        ("default", 60),
    ]
    assert sorted(report["rows"]) == ACCOUNTS
    assert "acme: proving" in done.stderr
    assert "default: writing 60 events" in done.stderr
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["ledger_events"]["rows"] == 100
    # Both accounts have ledger.restored records: 100 + 2 events.
    assert event_count(tmp_path / "all.db") == 102
    for account in ACCOUNTS:
        verified = tenure_json(
            "ledger",
            "verify",
            "--account",
            account,
            "--db",
            f"sqlite:///{tmp_path / 'all.db'}",
            "--data-dir",
            data,
        )
        assert verified["ok"] is True


def test_account_restores_one_account_only(shipped: tuple[Path, Path], tmp_path: Path) -> None:
    data, site = shipped
    done = restore(data, site, tmp_path / "one.db", "--account", "acme", "--output", "json")
    assert done.code == 0, str(done)
    assert [r["account"] for r in done.json()["accounts"]] == ["acme"]
    assert done.json()["size"] == 40  # one account: its report at the top, as before
    assert event_count(tmp_path / "one.db") == 41


def test_the_closing_table_names_every_table_restored_or_not(
    shipped: tuple[Path, Path], tmp_path: Path
) -> None:
    data, site = shipped
    done = restore(data, site, tmp_path / "text.db")
    assert done.code == 0, str(done)
    assert "restored 40 events of acme" in done.stdout
    assert "restored 60 events of default" in done.stdout
    table = done.stdout.split("\ntable ", 1)[1]
    assert "\nledger_events " in table
    assert "\nnot restored:\nwebhook_deliveries " in table


def test_an_empty_site_is_refused_and_leaves_no_file(
    shipped: tuple[Path, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-site"
    empty.mkdir()
    target = tmp_path / "new" / "tenure.db"
    error = one_line_error(restore(shipped[0], empty, target))
    assert "holds no ledger of any account" in error
    assert not (tmp_path / "new").exists()


def test_a_bad_checkpoint_of_one_account_restores_no_account(
    shipped: tuple[Path, Path], site_copy: Path, tmp_path: Path
) -> None:
    checkpoint = site_copy / "acme" / "checkpoint"
    checkpoint.write_text(checkpoint.read_text().replace("acme\n", "acme\n\n", 1))
    before = set(tmp_path.iterdir())
    target = tmp_path / "tenure.db"
    one_line_error(restore(shipped[0], site_copy, target))
    assert set(tmp_path.iterdir()) == before  # no database, journal or sidecar left

    # A database that existed keeps its place, and holds no event of either account.
    assert (
        restore(shipped[0], shipped[1], tmp_path / "scratch.db", "--account", "default").code == 0
    )
    existing = tmp_path / "existing.db"
    with sqlite3.connect(tmp_path / "scratch.db") as db, sqlite3.connect(existing) as copy:
        db.backup(copy)
    with sqlite3.connect(existing) as db:
        db.execute("DELETE FROM ledger_events")
        db.execute("DELETE FROM ledger_heads")
    one_line_error(restore(shipped[0], site_copy, existing))
    assert existing.exists()
    assert event_count(existing) == 0


def test_at_seq_needs_an_account_when_the_site_holds_several(
    shipped: tuple[Path, Path], tmp_path: Path
) -> None:
    error = one_line_error(restore(shipped[0], shipped[1], tmp_path / "t.db", "--at-seq", "5"))
    assert "--account" in error
    assert not (tmp_path / "t.db").exists()


def test_service_rows_not_signed_by_the_ledger_key_are_not_used(
    shipped: tuple[Path, Path], site_copy: Path, tmp_path: Path
) -> None:
    rows = site_copy / "default" / "service.json"
    planted = json.loads(rows.read_text())
    hook = {"account": "default", "id": "whk_planted", "url": "https://evil.example/"}
    planted["rows"]["webhooks"] = [hook]
    rows.write_text(json.dumps(planted))
    done = restore(shipped[0], site_copy, tmp_path / "t.db", "--account", "default", "-o", "json")
    assert done.code == 0, str(done)
    report = done.json()
    assert report["service_rows"] == "none"
    assert any("service.json" in s and "signed note" in s for s in report["skipped_snapshots"])
    assert {t["table"]: t["rows"] for t in report["tables"]}["webhooks"] == 0


def test_altered_idempotency_records_are_not_used_and_the_restore_says_so(
    shipped: tuple[Path, Path], site_copy: Path, tmp_path: Path
) -> None:
    good = restore(
        shipped[0], shipped[1], tmp_path / "good.db", "--account", "default", "-o", "json"
    )
    counts = {t["table"]: t["rows"] for t in good.json()["tables"]}
    assert counts["idempotency_keys"] > 0  # the demo asks with keys; no snapshot: all shipped
    [records] = (site_copy / "default" / "idempotency").glob("*.json")
    records.write_bytes(records.read_bytes().replace(b'"result"', b'"result" ', 1))
    done = restore(shipped[0], site_copy, tmp_path / "t.db", "--account", "default", "-o", "json")
    assert done.code == 0, str(done)
    report = done.json()
    assert any(
        s.startswith("idempotency records not restored") for s in report["skipped_snapshots"]
    )
    assert {t["table"]: t["rows"] for t in report["tables"]}["idempotency_keys"] == 0
