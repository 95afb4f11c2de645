"""A ``tenure migrate`` killed with SIGKILL in the middle of its copy leaves no row of
the account in the target (the copy is one transaction that never committed), and a
second ``tenure migrate`` into the same target then succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from support.cli import TENURE, cli_env, seed_args, tenure
from support.shop import ACCOUNT
from tenure.store import tables as t
from tenure.store.engine import create_engine, read_transaction


def _rows_of_account(url: str) -> int:
    engine = create_engine(url)
    try:
        with read_transaction(engine) as conn:
            total = 0
            for table in t.metadata.tables.values():
                owner = table.c.id if table.name == "accounts" else table.c.account
                query = sa.select(sa.func.count()).select_from(table).where(owner == ACCOUNT)
                total += int(conn.scalar(query) or 0)
            return total
    finally:
        engine.dispose()


def test_a_migration_killed_midway_leaves_no_row_and_can_run_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert tenure(*seed_args(data_dir, 3000, 7)).code == 0
    source = f"sqlite:///{(data_dir / 'tenure.db').as_posix()}"
    path = tmp_path / "target.db"
    target = f"sqlite:///{path.as_posix()}"
    copying = path.with_name(path.name + "-writer.lock")  # made by its write transaction
    proc = subprocess.Popen(
        [str(TENURE), "migrate", "--from", source, "--to", target],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not copying.exists():
            assert proc.poll() is None, "the migration ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.2)
        assert proc.poll() is None, "the migration ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _rows_of_account(target) == 0

    again = tenure("migrate", "--from", source, "--to", target)
    assert again.code == 0, again
    assert _rows_of_account(target) > 3000
