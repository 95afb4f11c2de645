"""Releases are recorded and the compatibility matrix describes each of them: every
release of RELEASES.toml, and the version in pyproject.toml (the work in progress),
has its rows in docs/compatibility.md, and those rows say what the code says. Also
``tenure db status|upgrade|downgrade`` on a real SQLite file."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

import tenure
from support.releases import release_id, releases
from tenure.domain.events import CURRENT_SCHEMA
from tenure.durability.upgrades import schema_head
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "docs" / "compatibility.md"
TENURE = Path(sys.executable).with_name("tenure")
ABSENT = "—"


def pyproject_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def table(heading: str, first_column: str) -> list[dict[str, str]]:
    """The markdown table under ``## heading`` whose first header cell is
    ``first_column``, as rows keyed by header (backticks stripped)."""
    text = MATRIX.read_text(encoding="utf-8")
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, f"docs/compatibility.md has no section '## {heading}'"
    lines = [line.strip() for line in section.group(1).splitlines()]
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_column:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(row), strict=True)))
            return rows
    raise AssertionError(f"no table starting with {first_column!r} under '## {heading}'")


def _cells(line: str) -> list[str]:
    if not line.startswith("|"):
        return []
    return [cell.strip().replace("`", "") for cell in line.strip("|").split("|")]


def row_of(rows: list[dict[str, str]], key: str, version: str) -> dict[str, str]:
    found = [row for row in rows if row[key] == version]
    assert found, f"docs/compatibility.md: no row for {version} in the {key!r} table"
    return found[0]


def described_versions() -> list[str]:
    return [str(r["version"]) for r in releases()] + [pyproject_version()]


# ------------------------------------------------------------------------ the records


def test_each_release_records_its_commit_schemas_and_api() -> None:
    for release in releases():
        assert re.fullmatch(r"[0-9a-f]{40}", release["commit"]), release
        assert re.fullmatch(r"\d{4}", release["database_schema"]), release
        assert re.fullmatch(r"v\d+", release["api"]), release
        assert release["event_schemas"], release
        assert all(isinstance(v, int) and v >= 1 for v in release["event_schemas"].values())


def test_the_work_in_progress_is_newer_than_every_release() -> None:
    current = Version(pyproject_version())
    assert all(Version(str(r["version"])) < current for r in releases()), (
        "tag the release in RELEASES.toml, then bump to the next .dev0"
    )


def test_a_final_version_is_only_the_release_commit_not_yet_recorded() -> None:
    """Between releases the version is a ``.devN``. The commit that makes a release
    carries the final version while its rows still say ``(unreleased)``: RELEASES.toml
    records that commit in the next one, which moves on to the next ``.dev0``."""
    current = Version(pyproject_version())
    if current.is_prerelease:
        return
    assert str(current) == current.base_version, "a release is X.Y.Z, or X.Y.Z.devN between"
    row = row_of(table("Releases", "Release"), "Release", str(current))
    assert row["Commit"] == "(unreleased)", "a recorded release: bump to the next .dev0"


def test_the_package_reports_the_pyproject_version() -> None:
    assert tenure.__version__ == pyproject_version()


def test_a_release_never_lowers_an_event_schema_nor_its_database_schema() -> None:
    history = [*releases(), {"event_schemas": CURRENT_SCHEMA, "database_schema": schema_head()}]
    for older, newer in itertools.pairwise(history):
        assert newer["database_schema"] >= older["database_schema"]
        for event_type, version in older["event_schemas"].items():
            assert newer["event_schemas"].get(event_type, 0) >= version, event_type


@pytest.mark.parametrize("release", releases(), ids=release_id)
def test_a_release_matches_its_commit_in_the_repository(release: dict[str, Any]) -> None:
    def show(path: str) -> str:
        done = subprocess.run(
            ["git", "show", f"{release['commit']}:{path}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"git cannot read {release['commit']}: {done.stderr.strip()}")
        return done.stdout

    pyproject = tomllib.loads(show("pyproject.toml"))
    assert pyproject["project"]["version"] == release["version"]
    listing = show("src/tenure/store/migrations/versions/")
    revisions = sorted(re.findall(r"^(\d{4})_\w+\.py$", listing, re.M))
    assert revisions[-1] == release["database_schema"]
    events = show("src/tenure/domain/events.py")
    for event_type in release["event_schemas"]:
        assert f'"{event_type}"' in events, event_type


# ------------------------------------------------------------------------ the matrix


@pytest.mark.parametrize("version", described_versions())
def test_every_version_has_its_rows_in_the_matrix(version: str) -> None:
    row_of(table("Releases", "Release"), "Release", version)
    row_of(table("Database upgrades", "Release"), "Release", version)
    row_of(table("Ledger and event schemas", "Server"), "Server", version)
    row_of(table("SDKs and the HTTP API", "SDK"), "SDK", version)
    assert version in table("Ledger and event schemas", "Event type")[0], (
        f"no column {version} in the event schema table"
    )


@pytest.mark.parametrize("release", releases(), ids=release_id)
def test_a_release_row_says_what_the_release_records(release: dict[str, Any]) -> None:
    version = str(release["version"])
    row = row_of(table("Releases", "Release"), "Release", version)
    assert len(row["Commit"]) >= 7
    assert release["commit"].startswith(row["Commit"])
    assert row["Date"] == str(release["date"])
    assert row["Database schema"] == release["database_schema"]
    assert row["API"] == release["api"]
    heads = row_of(table("Database upgrades", "Release"), "Release", version)
    assert heads["Head"] == release["database_schema"]
    assert _event_column(version) == release["event_schemas"]


def test_the_work_in_progress_row_describes_the_current_schemas() -> None:
    version = pyproject_version()
    row = row_of(table("Releases", "Release"), "Release", version)
    assert row["Database schema"] == schema_head()
    heads = row_of(table("Database upgrades", "Release"), "Release", version)
    assert heads["Head"] == schema_head()
    assert _event_column(version) == CURRENT_SCHEMA


def _event_column(version: str) -> dict[str, int]:
    rows = table("Ledger and event schemas", "Event type")
    return {row["Event type"]: int(row[version]) for row in rows if row[version] != ABSENT}


# ------------------------------------------------------------------------ tenure db


def db(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TENURE), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def newest_release_behind_the_head() -> dict[str, Any]:
    """The newest release whose database schema is older than this code's head."""
    behind = [r for r in releases() if r["database_schema"] < schema_head()]
    assert behind, "no release has a schema older than the head"
    return behind[-1]


@pytest.fixture
def behind(tmp_path: Path) -> Path:
    """A data dir whose database is at the schema of the newest release behind the head."""
    data_dir = tmp_path / "data"
    engine = create_engine(f"sqlite:///{(data_dir / 'tenure.db').as_posix()}")
    upgrade(engine, str(newest_release_behind_the_head()["database_schema"]))
    engine.dispose()
    return data_dir


def test_db_status_names_the_revision_the_head_and_what_is_pending(behind: Path) -> None:
    done = db(behind, "db", "status", "--output", "json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["current"] == newest_release_behind_the_head()["database_schema"]
    assert status["head"] == schema_head()
    assert status["release"] == tenure.__version__
    assert status["upgrade_pending"] is True


def test_db_upgrade_snapshots_then_migrates_to_the_head(behind: Path) -> None:
    done = db(behind, "db", "upgrade", "--output", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["to"] == schema_head()
    assert report["sites"] == [(behind / "pre-upgrade").resolve().as_uri()]
    after = json.loads(db(behind, "db", "status", "--output", "json").stdout)
    assert (after["current"], after["upgrade_pending"]) == (schema_head(), False)
    again = db(behind, "db", "upgrade")
    assert "nothing to upgrade" in again.stdout


def test_a_downgrade_is_refused_in_one_line_naming_the_migration(behind: Path) -> None:
    db(behind, "db", "upgrade")
    done = db(behind, "db", "downgrade", "0001")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"migration {schema_head()} (" in lines[0]
    assert "not reversible" in lines[0]
    status = json.loads(db(behind, "db", "status", "--output", "json").stdout)
    assert status["current"] == schema_head()


def test_with_upgrade_on_start_off_a_behind_database_is_refused(tmp_path: Path) -> None:
    done = db(tmp_path, "serve", "--port", "0", TENURE_UPGRADE_ON_START="false")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "tenure db upgrade" in lines[0]
