"""A store's SQLite database reached directly with ``sqlite3`` (not through Tenure)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path


def db_path(data_dir: Path) -> Path:
    return data_dir / "tenure.db"


def raw_sqlite(data_dir: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to a store (not through Tenure); close it yourself."""
    return sqlite3.connect(db_path(data_dir), isolation_level=None)


def tampered_copy(pristine: Path, copy: Path, tamper: Callable[[sqlite3.Connection], None]) -> Path:
    """A copy of the store in ``pristine`` at ``copy``, changed by ``tamper`` (one
    transaction of plain ``sqlite3``, not through Tenure)."""
    shutil.copytree(pristine, copy)
    db = raw_sqlite(copy)
    try:
        db.execute("BEGIN")
        tamper(db)
        db.execute("COMMIT")
    finally:
        db.close()
    return copy


def backup_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database with the online backup API."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def replace_database(data_dir: Path, copy: Path) -> None:
    """Put an older copy of the database back under the store's name (no WAL left over)."""
    target = db_path(data_dir)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    backup_sqlite(copy, target)


def cut_history(data_dir: Path, events: int) -> int:
    """Delete the newest ``events`` events of a one-account store, their nodes and
    checkpoints, and the sidecar, as someone with the database would to rewrite
    history; return the new size. (``tenure state rebuild`` then rebuilds the rows.)"""
    db = raw_sqlite(data_dir)
    try:
        (size,) = db.execute("SELECT size FROM ledger_heads").fetchone()
        cut = int(size) - events
        db.execute("DELETE FROM ledger_checkpoints WHERE size > ?", (cut,))
        db.execute("DELETE FROM ledger_events WHERE seq >= ?", (cut,))
        db.execute("DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > ?", (cut,))
        db.execute("UPDATE ledger_heads SET size = ?", (cut,))
    finally:
        db.close()
    for sidecar in (data_dir / "tenure.db.checkpoints").glob("*"):
        sidecar.unlink()
    return cut
