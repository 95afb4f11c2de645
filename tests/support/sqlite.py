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
