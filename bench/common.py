"""Shared pieces: results next to their limits, machine info, temp stores, raw SQLite."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy

from tenure.store.databases import postgres_url


@dataclass
class Result:
    """One benchmark figure printed next to the limit measured in the same run."""

    name: str
    figure: float
    unit: str
    limit: float
    limit_label: str
    limit_unit: str
    goal: str
    met: bool | None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.figure / self.limit if self.limit else float("nan")

    def line(self) -> str:
        verdict = "" if self.met is None else ("  MET" if self.met else "  MISSED")
        return (
            f"{self.name}: {self.figure:,.0f} {self.unit} | {self.limit_label}: "
            f"{self.limit:,.0f} {self.limit_unit} | ratio {self.ratio:.2f} ({self.goal}){verdict}"
        )

    def show(self) -> None:
        """Print ``line()`` and the notes under it."""
        print(self.line())
        for note in self.notes:
            print(f"    {note}")


@dataclass
class Options:
    quick: bool
    verify_sizes: list[int]
    only: str | None
    tmp_root: Path | None
    profile: bool
    state_rows: int | None = None
    """Projection rows of the ``--only state`` store (default 1,000,000; --quick: 20,000)."""


def machine_info() -> list[str]:
    fs = _filesystem(Path(tempfile.gettempdir()))
    return [
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores",
        f"python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"sqlite: {sqlite3.sqlite_version}; SQLAlchemy {sqlalchemy.__version__}",
        f"temp dir: {tempfile.gettempdir()} ({fs})",
    ]


def _filesystem(path: Path) -> str:
    """The filesystem type holding ``path`` (from /proc/mounts; 'unknown' elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


@contextmanager
def temp_dir(prefix: str, root: Path | None = None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"tenure-bench-{prefix}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# ---------------------------------------------------------------- raw sqlite3 limit


def raw_connection(path: Path) -> sqlite3.Connection:
    """A plain ``sqlite3`` connection with the pragmas Tenure's engine sets."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def pg_url(admin: str, database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the PostgreSQL server that the libpq
    conninfo ``admin`` names (its user, password, host and port)."""
    return postgres_url(admin, database)
