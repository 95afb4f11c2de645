"""``tenure ledger verify`` finds tampering done directly in the SQLite file (not through
Tenure), exits 1 and names the first bad seq; an untouched store verifies with exit 0.

One demo store is seeded; each case tampers with its own copy, and the verifier runs
on every copy as a separate ``tenure`` process.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from support.cli import CliResult, seed_args, tenure, tenure_many
from support.sqlite import tampered_copy

EVENTS = 300
SEED = 5

Tamper = Callable[[sqlite3.Connection], None]


def _leaf(db: sqlite3.Connection, seq: int) -> bytes:
    row = db.execute("SELECT leaf FROM ledger_events WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0])


def _set_leaf(db: sqlite3.Connection, seq: int, leaf: bytes) -> None:
    db.execute("UPDATE ledger_events SET leaf = ? WHERE seq = ?", (leaf, seq))


def _altered(leaf: bytes) -> bytes:
    """The same leaf with one character changed inside its ``data`` object."""
    at = leaf.index(b'"data":{') + len(b'"data":{')
    end = leaf.index(b"}", at)
    for i in range(end - 1, at, -1):  # the last letter inside data
        c = leaf[i : i + 1]
        if c.isalpha():
            swapped = b"B" if c == b"A" else b"A"
            return leaf[:i] + (swapped.lower() if c.islower() else swapped) + leaf[i + 1 :]
    raise AssertionError("no letter inside data")


def modify_leaf_137(db: sqlite3.Connection) -> None:
    _set_leaf(db, 137, _altered(_leaf(db, 137)))


def delete_event_50(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM ledger_events WHERE seq = 50")


def swap_leaves_60_61(db: sqlite3.Connection) -> None:
    a, b = _leaf(db, 60), _leaf(db, 61)
    _set_leaf(db, 60, b)
    _set_leaf(db, 61, a)


def truncate_at_250(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM ledger_events WHERE seq >= 250")
    # every stored subtree hash that covers a leaf >= 250
    db.execute("DELETE FROM ledger_nodes WHERE ((idx + 1) << level) > 250")
    db.execute("UPDATE ledger_heads SET size = 250")


def rewrite_leaf_137_and_its_hash(db: sqlite3.Connection) -> None:
    leaf = _altered(_leaf(db, 137))
    _set_leaf(db, 137, leaf)
    digest = hashlib.sha256(b"\x00" + leaf).digest()
    db.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 0 AND idx = 137", (digest,))


def truncate_and_drop_checkpoints(db: sqlite3.Connection) -> None:
    truncate_at_250(db)
    db.execute("DELETE FROM ledger_checkpoints")


def untouched(db: sqlite3.Connection) -> None:
    pass


CASES: dict[str, Tamper] = {
    "untouched": untouched,
    "modified leaf": modify_leaf_137,
    "deleted event": delete_event_50,
    "reordered leaves": swap_leaves_60_61,
    "truncated": truncate_at_250,
    "leaf and leaf hash rewritten": rewrite_leaf_137_and_its_hash,
    "truncated, checkpoints dropped, sidecar kept": truncate_and_drop_checkpoints,
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliResult]:
    """Seed once, tamper with one copy per case, verify all copies."""
    base = tmp_path_factory.mktemp("tamper")
    pristine = base / "pristine"
    seeded = tenure(*seed_args(pristine, EVENTS, SEED))
    assert seeded.code == 0, seeded
    dirs = {}
    for name, tamper in CASES.items():
        copy = base / name.replace(" ", "-").replace(",", "")
        dirs[name] = tampered_copy(pristine, copy, tamper)
    calls = [["ledger", "verify", "--data-dir", d, "--output", "json"] for d in dirs.values()]
    return dict(zip(dirs, tenure_many(calls), strict=True))


def _tampered(verdicts: dict[str, CliResult], case: str) -> dict[str, object]:
    result = verdicts[case]
    assert result.code == 1, result
    report = result.json()
    assert report["ok"] is False
    assert report["error"]
    assert "Traceback" not in result.stderr
    return dict(report)


def test_untouched_store_verifies(verdicts: dict[str, CliResult]) -> None:
    result = verdicts["untouched"]
    assert result.code == 0, result
    report = result.json()
    assert report["ok"] is True
    assert report["size"] == EVENTS
    assert report["checkpoints"] >= 1


def test_modified_leaf_is_reported_at_its_seq(verdicts: dict[str, CliResult]) -> None:
    assert _tampered(verdicts, "modified leaf")["seq"] == 137


def test_deleted_event_is_reported_as_missing(verdicts: dict[str, CliResult]) -> None:
    report = _tampered(verdicts, "deleted event")
    assert report["seq"] == 50
    assert "missing" in str(report["error"])


def test_reordered_leaves_are_reported_at_the_first_moved_seq(
    verdicts: dict[str, CliResult],
) -> None:
    assert _tampered(verdicts, "reordered leaves")["seq"] == 60


def test_truncation_is_reported_at_the_new_end(verdicts: dict[str, CliResult]) -> None:
    assert _tampered(verdicts, "truncated")["seq"] == 250


def test_consistently_rewritten_leaf_is_caught_by_the_tree_above_it(
    verdicts: dict[str, CliResult],
) -> None:
    # The leaf and its level-0 hash agree, so the first stored hash that disagrees is
    # the level-1 node over leaves 136 and 137: verify names the start of that range.
    seq = _tampered(verdicts, "leaf and leaf hash rewritten")["seq"]
    assert isinstance(seq, int)
    assert seq == 136


def test_truncation_is_caught_by_the_sidecar_when_checkpoints_are_dropped(
    verdicts: dict[str, CliResult],
) -> None:
    report = _tampered(verdicts, "truncated, checkpoints dropped, sidecar kept")
    assert report["seq"] == 250
    assert "sidecar" in str(report["error"])


def test_verify_output_is_json_only(verdicts: dict[str, CliResult]) -> None:
    for result in verdicts.values():
        assert isinstance(json.loads(result.stdout), dict)
        assert result.stdout.count("\n") == 1


def test_cases_really_changed_their_copy(tmp_path: Path) -> None:
    leaf = b'{"data":{"serial":"TNR-QPKVN-KBGEG-VHCEZ-JXL7O"},"seq":137}'
    assert _altered(leaf) != leaf
    assert len(_altered(leaf)) == len(leaf)
    assert _altered(leaf).replace(b"JXL7A", b"JXL7O") == leaf
