"""Background jobs: a function run every so often in a thread of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from tenure.crypto.files import ProcessLock
from tenure.store import sql
from tenure.store.engine import read_transaction


class Periodic:
    """Runs ``job()`` every ``interval`` seconds in a thread named ``name`` (no thread
    at all for an interval of 0). A failing run is logged and the next one tries again.

    With ``lock_dir``, only one process of those sharing that directory (the workers
    of ``tenure serve --workers N``) runs the job: the one holding the ``flock`` on
    ``<lock_dir>/<name>.lock``. The others try to take it at each interval, so one of
    them takes over when the holder exits."""

    def __init__(
        self, name: str, job: Callable[[], object], interval: float, lock_dir: Path | None = None
    ) -> None:
        self._name = name
        self._job = job
        self._interval = interval
        self._lock = ProcessLock(lock_dir / f"{name}.lock") if lock_dir is not None else None
        self._holds_lock = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Periodic:
        if self._interval > 0:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._lock is not None and self._holds_lock:
            self._lock.release()
            self._holds_lock = False

    def _mine(self) -> bool:
        """Whether this process runs the job (it holds the lock, or there is none)."""
        if self._lock is not None and not self._holds_lock:
            self._holds_lock = self._lock.acquire()
        return self._lock is None or self._holds_lock

    def _run(self) -> None:
        log = logging.getLogger(self._name.replace("-", "."))
        while not self._stop.wait(self._interval):
            if not self._mine():
                continue
            try:
                self._job()
            except Exception as exc:  # the next run tries again; say so loudly
                log.error("%s failed: %s", self._name, exc)


def for_every_account(engine: sa.Engine, job: Callable[[str], object]) -> Callable[[], None]:
    """A job that runs ``job(account)`` for each account of the store, in turn."""

    def run() -> None:
        with read_transaction(engine) as conn:
            accounts = sql.accounts(conn)
        for account in accounts:
            job(account)

    return run
