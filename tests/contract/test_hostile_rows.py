"""``tenure ledger verify`` and ``tenure audit verify`` treat stored rows as hostile.

SQLite stores any type in any column, so a row edited by hand (or by an attacker) can
hold TEXT where the schema says BLOB, or a string where it says INTEGER. Each case
below rewrites one column of one row with ``sqlite3`` in its own copy of a seeded
store; the verifier must exit 1 naming the tampered seq (or entry), never crash with
a ``TypeError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from support.cli import CliResult, seed_args, tenure, tenure_many
from support.sqlite import raw_sqlite, tampered_copy

EVENTS = 40
SEED = 8

Tamper = Callable[[sqlite3.Connection], None]


def _last_leaf_index(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT max(idx) FROM ledger_nodes WHERE level = 0").fetchone()[0])


def leaf_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_events SET leaf = CAST(leaf AS TEXT) WHERE seq = 7")


def leaf_as_integer(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_events SET leaf = 42 WHERE seq = 7")


def seq_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_events SET seq = 'seven' WHERE seq = 7")


def last_seq_as_text(db: sqlite3.Connection) -> None:
    db.execute(f"UPDATE ledger_events SET seq = 'last' WHERE seq = {EVENTS - 1}")


def leaf_hash_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_nodes SET hash = hex(hash) WHERE level = 0 AND idx = 9")


def last_node_index_as_text(db: sqlite3.Connection) -> None:
    last = _last_leaf_index(db)
    db.execute(f"UPDATE ledger_nodes SET idx = 'last' WHERE level = 0 AND idx = {last}")


def head_size_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_heads SET size = 'forty'")


def checkpoint_root_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_checkpoints SET root = hex(root)")


def checkpoint_note_as_blob(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_checkpoints SET note = CAST(note AS BLOB)")


def checkpoint_size_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_checkpoints SET size = 'ten'")


def verifier_key_as_blob(db: sqlite3.Connection) -> None:
    db.execute("UPDATE ledger_keys SET verifier = CAST(verifier AS BLOB)")


LEDGER_CASES: dict[str, tuple[Tamper, int | None]] = {
    # case: (tamper, the seq verify must name; None where no single event is at fault)
    "leaf stored as text": (leaf_as_text, 7),
    "leaf stored as an integer": (leaf_as_integer, 7),
    "seq stored as text": (seq_as_text, 7),
    "last seq stored as text": (last_seq_as_text, EVENTS - 1),
    "leaf hash stored as text": (leaf_hash_as_text, 9),
    "last leaf hash index stored as text": (last_node_index_as_text, EVENTS - 1),
    "head size stored as text": (head_size_as_text, None),
    "checkpoint root stored as text": (checkpoint_root_as_text, None),
    "checkpoint note stored as a blob": (checkpoint_note_as_blob, None),
    "checkpoint size stored as text": (checkpoint_size_as_text, None),
    "verifier key stored as a blob": (verifier_key_as_blob, None),
}


def audit_entry_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_log SET entry = CAST(entry AS TEXT) WHERE seq = 3")


def audit_hash_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_log SET hash = hex(hash) WHERE seq = 3")


def audit_seq_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_log SET seq = 'three' WHERE seq = 3")


def audit_head_as_text(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_heads SET size = 'many', hash = hex(hash)")


AUDIT_CASES: dict[str, tuple[Tamper, int | None]] = {
    "audit entry stored as text": (audit_entry_as_text, 3),
    "audit hash stored as text": (audit_hash_as_text, 3),
    "audit seq stored as text": (audit_seq_as_text, 3),
    "audit head stored as text": (audit_head_as_text, None),
}


def _copies(base: Path, pristine: Path, cases: dict[str, tuple[Tamper, int | None]]) -> list[Path]:
    return [
        tampered_copy(pristine, base / name.replace(" ", "-"), tamper)
        for name, (tamper, _) in cases.items()
    ]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliResult]:
    """Seed once, tamper with one copy per case, verify every copy."""
    base = tmp_path_factory.mktemp("hostile")
    pristine = base / "pristine"
    seeded = tenure(*seed_args(pristine, EVENTS, SEED))
    assert seeded.code == 0, seeded
    ledger = _copies(base, pristine, LEDGER_CASES)
    audit = _copies(base, pristine, AUDIT_CASES)
    calls = [["ledger", "verify", "--data-dir", d, "--output", "json"] for d in ledger]
    calls += [["audit", "verify", "--data-dir", d, "--output", "json"] for d in audit]
    names = [*LEDGER_CASES, *AUDIT_CASES]
    return dict(zip(names, tenure_many(calls), strict=True))


@pytest.mark.parametrize("case", [*LEDGER_CASES, *AUDIT_CASES])
def test_a_row_of_the_wrong_type_is_reported_as_tampered(
    verdicts: dict[str, CliResult], case: str
) -> None:
    result = verdicts[case]
    assert "Traceback" not in result.stderr, result
    assert result.code == 1, result
    report = result.json()
    assert report["ok"] is False
    assert report["error"]
    expected = {**LEDGER_CASES, **AUDIT_CASES}[case][1]
    if expected is not None:
        assert report["seq"] == expected, report


def test_the_text_leaf_is_named_in_the_text_report(tmp_path: Path) -> None:
    """The issue's reproduction as an operator sees it: ``TAMPERED`` and the seq."""
    seeded = tenure(*seed_args(tmp_path / "store", 12, SEED))
    assert seeded.code == 0, seeded
    db = raw_sqlite(tmp_path / "store")
    try:
        db.execute("UPDATE ledger_events SET leaf = CAST(leaf AS TEXT) WHERE seq = 5")
    finally:
        db.close()
    result = tenure("ledger", "verify", "--data-dir", tmp_path / "store")
    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    assert "TAMPERED (first bad seq 5)" in result.stdout + result.stderr, result
