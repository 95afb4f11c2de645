"""The dual-write mirror: a thread that copies newly committed events and changed
service rows from the database in use to the other one, every ``interval`` seconds.

In the ``dual-write`` phase it copies source → target; after ``cutover``, target →
source, so that a rollback loses no write. Each pass is ``migration.sync_account``
per account: the events the other side lacks (refused if its tree is not a prefix),
applied to its stored projection, and its Merkle root checked against ours after
the write. With several server processes only the one holding the mirror lock (an
``flock`` in the data dir) mirrors; ``tenure migrate cutover`` and ``rollback``
take the same lock, so they refuse to run beside a mirroring server.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import sqlalchemy as sa

from tenure.crypto.files import ProcessLock
from tenure.durability import migration
from tenure.errors import TenureError
from tenure.store.engine import create_engine

_log = logging.getLogger("tenure.mirror")

LOCK_FILE = "mirror.lock"


class MirrorBusy(migration.MigrationRefused):
    """Another process (a running ``tenure serve``) mirrors this data dir."""


def mirror_lock(data_dir: Path) -> ProcessLock:
    """The data dir's mirror lock: one process mirrors at a time."""
    return ProcessLock(data_dir / LOCK_FILE)


class Mirror:
    """Mirrors ``source`` (the engine in use) to the database at ``target_url``."""

    def __init__(
        self, source: sa.Engine, target_url: str, data_dir: Path, interval: float = 0.2
    ) -> None:
        self._source = source
        self._target_url = target_url
        self._lock = mirror_lock(data_dir)
        self._interval = interval
        self._target: sa.Engine | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.error: str | None = None

    def start(self) -> bool:
        """Mirror in a thread of its own; False if another process holds the lock."""
        if not self._lock.acquire():
            return False
        self._target = create_engine(self._target_url)
        # phase b: durability (a tenure.workers.Worker replaces this hand-rolled thread)
        self._thread = threading.Thread(target=self._run, name="tenure-mirror", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop after a last pass, so that a clean shutdown leaves nothing behind."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._target is not None:
            self._target.dispose()
        self._lock.release()

    def sync_once(self) -> list[migration.Sides]:
        """One pass over every account; raises what ``sync_account`` raises."""
        assert self._target is not None
        return [
            migration.sync_account(self._source, self._target, account)
            for account in migration.source_accounts(self._source)
        ]

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._interval)
            try:
                self.sync_once()
                self.passes += 1
                if self.error is not None:
                    _log.warning("mirror to %s recovered", self._target_url)
                self.error = None
            except (TenureError, sa.exc.SQLAlchemyError) as exc:
                # A mirror that stops silently would let a cutover lose writes: the
                # error is logged once per change and the cutover's own sync and
                # proof refuse until it is resolved.
                message = str(exc)
                if message != self.error:
                    _log.error("mirror to %s failed: %s", self._target_url, message)
                self.error = message
            if stopping:
                return
