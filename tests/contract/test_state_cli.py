"""``tenure state digest`` and ``tenure state rebuild`` on real stores, and the CLI's
error contract: one line on stderr, non-zero exit, never a traceback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from support.cli import CliResult, seed_args, tenure, tenure_many
from support.leaves import import_leaves, read_leaves
from support.shop import ACCOUNT, Runtimes
from support.sqlite import raw_sqlite
from tenure.service.replay import digest_of, rebuild
from tenure.service.verify import verify_ledger

EVENTS = 200
SEED = 11


class Seeded:
    def __init__(self, first: Path, second: Path, digest: str, second_digest: str) -> None:
        self.first = first
        self.second = second
        self.digest = digest
        self.second_digest = second_digest

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.first, target)
        return target


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Two data dirs seeded with the same seed, each by its own ``tenure`` process."""
    base = tmp_path_factory.mktemp("state")
    first, second = base / "first", base / "second"
    a, b = tenure_many([seed_args(first, EVENTS, SEED), seed_args(second, EVENTS, SEED)])
    assert a.code == 0, a
    assert b.code == 0, b
    assert a.json()["size"] == EVENTS
    return Seeded(first, second, a.json()["digest"], b.json()["digest"])


def _digest_in(data_dir: Path, runtimes: Runtimes) -> str:
    return digest_of(runtimes.open(data_dir).store, ACCOUNT).digest


def _one_line_error(result: CliResult) -> str:
    assert result.code != 0, result
    assert "Traceback" not in result.stderr, result
    line = result.stderr.strip()
    assert line, result
    assert "\n" not in line, result
    assert line.startswith("error:"), result
    return line


def test_digest_prints_digest_and_size_of_each_seeded_store(seeded: Seeded) -> None:
    """Two stores of the same seed hold the same events, except the ciphertexts of
    customers' personal data (random keys and nonces, docs/personal-data.md): each
    store's digest is the one its seed reported."""
    text, as_json = tenure_many(
        [
            ["state", "digest", "--data-dir", seeded.first],
            ["state", "digest", "--data-dir", seeded.second, "--output", "json"],
        ]
    )
    assert text.code == 0, text
    assert re.fullmatch(r"[0-9a-f]{64}  size=200  account=default\n", text.stdout), text
    assert text.stdout.split()[0] == seeded.digest
    assert as_json.code == 0, as_json
    expected = {"account": ACCOUNT, "size": EVENTS, "digest": seeded.second_digest}
    assert as_json.json() == expected


def test_rebuild_keeps_the_digest(seeded: Seeded, tmp_path: Path, runtimes: Runtimes) -> None:
    store = seeded.copy(tmp_path / "store")
    result = tenure("state", "rebuild", "--data-dir", store, "--output", "json")
    assert result.code == 0, result
    assert result.json() == {
        "account": ACCOUNT,
        "size": EVENTS,
        "before": seeded.digest,
        "after": seeded.digest,
    }
    assert _digest_in(store, runtimes) == seeded.digest


CORRUPTIONS = {
    "revoked license shown active": (
        "UPDATE proj_licenses SET status = 'active' WHERE serial = "
        "(SELECT min(serial) FROM proj_licenses WHERE status = 'revoked')"
    ),
    "customers deleted": "DELETE FROM proj_customers",
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_rebuild_refuses_a_changed_digest_unless_told_to_repair(
    seeded: Seeded, tmp_path: Path, runtimes: Runtimes, corruption: str
) -> None:
    store = seeded.copy(tmp_path / "store")
    db = raw_sqlite(store)
    try:
        changed = db.execute(CORRUPTIONS[corruption]).rowcount
    finally:
        db.close()
    assert changed >= 1, "the seeded store has a row to corrupt"
    damaged = _digest_in(store, runtimes)
    assert damaged != seeded.digest

    refused = tenure("state", "rebuild", "--data-dir", store)
    line = _one_line_error(refused)
    assert "digest" in line
    assert "--accept-change" in line
    assert _digest_in(store, runtimes) == damaged, "a refused rebuild changes nothing"

    repaired = tenure("state", "rebuild", "--data-dir", store, "--accept-change", "-o", "json")
    assert repaired.code == 0, repaired
    assert repaired.json()["before"] == damaged
    assert repaired.json()["after"] == seeded.digest
    assert _digest_in(store, runtimes) == seeded.digest


def test_replaying_the_exported_events_into_another_database_gives_the_same_digest(
    seeded: Seeded, tmp_path: Path, runtimes: Runtimes
) -> None:
    exported = tenure("ledger", "export", "--data-dir", seeded.first)
    assert exported.code == 0, exported
    leaves = read_leaves(exported.stdout)
    assert len(leaves) == EVENTS

    fresh = runtimes.open(tmp_path / "replayed")
    root = import_leaves(fresh.store.engine, leaves)
    report = rebuild(fresh.store, ACCOUNT, accept_change=True)  # from an empty projection

    assert report.after == seeded.digest
    assert digest_of(fresh.store, ACCOUNT).digest == seeded.digest
    assert verify_ledger(fresh.store, ACCOUNT).root == root
    original = runtimes.open(seeded.first)
    assert verify_ledger(original.store, ACCOUNT).root == root


def test_cli_errors_are_one_line_without_traceback(seeded: Seeded, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent-dir-xyz"
    populated = seeded.copy(tmp_path / "populated")
    results = tenure_many(
        [
            ["state", "digest", "--data-dir", missing],
            ["state", "rebuild", "--data-dir", missing],
            ["demo", "seed", "--events", "5", "--data-dir", populated],
        ]
    )
    lines = [_one_line_error(result) for result in results]
    assert str(missing) in lines[0]
    assert str(missing) in lines[1]
    assert "already has" in lines[2]
    assert not missing.exists(), "a mistyped data dir must not get a new store"
    assert all(result.stdout == "" for result in results)
