"""Background jobs: a function run every so often in a thread of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

from tenure.store import sql
from tenure.store.engine import read_transaction


class Periodic:
    """Runs ``job()`` every ``interval`` seconds in a thread named ``name`` (no thread
    at all for an interval of 0). A failing run is logged and the next one tries again."""

    def __init__(self, name: str, job: Callable[[], object], interval: float) -> None:
        self._name = name
        self._job = job
        self._interval = interval
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

    def _run(self) -> None:
        log = logging.getLogger(self._name.replace("-", "."))
        while not self._stop.wait(self._interval):
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
