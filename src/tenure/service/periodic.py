"""Background jobs of the service: ``tenure.workers.Worker`` with a lock per data
directory, and jobs over every account."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from tenure.crypto.files import ProcessLock
from tenure.store import sql
from tenure.store.engine import read_transaction
from tenure.workers import Worker


class Periodic(Worker):
    """Runs ``job()`` every ``interval`` seconds in a thread named ``name`` (no thread
    at all for an interval of 0). A failing run is logged and the next one tries again.

    With ``lock_dir``, only one process of those sharing that directory (the workers
    of ``tenure serve --workers N``) runs the job: the one holding the ``flock`` on
    ``<lock_dir>/<name>.lock``. The others try to take it at each interval, so one of
    them takes over when the holder exits. (A ``tenure.workers.Worker`` with that
    lock.)"""

    def __init__(
        self, name: str, job: Callable[[], object], interval: float, lock_dir: Path | None = None
    ) -> None:
        lock = ProcessLock(lock_dir / f"{name}.lock") if lock_dir is not None else None
        super().__init__(name, job, interval, lock=lock)


def for_every_account(engine: sa.Engine, job: Callable[[str], object]) -> Callable[[], None]:
    """A job that runs ``job(account)`` for each account of the store, in turn."""

    def run() -> None:
        with read_transaction(engine) as conn:
            accounts = sql.accounts(conn)
        for account in accounts:
            job(account)

    return run
