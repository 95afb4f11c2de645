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
from pathlib import Path

from tenure.crypto.files import ProcessLock
from tenure.durability import migration
from tenure.errors import TenureError
from tenure.store.databases import DatabaseError, OpenStore, open_store
from tenure.store.unit import Store
from tenure.workers import Worker

_log = logging.getLogger("tenure.mirror")

LOCK_FILE = "mirror.lock"


class MirrorBusy(migration.MigrationRefused):
    """Another process (a running ``tenure serve``) mirrors this data dir."""


def mirror_lock(data_dir: Path) -> ProcessLock:
    """The data dir's mirror lock: one process mirrors at a time."""
    return ProcessLock(data_dir / LOCK_FILE)


class Mirror:
    """Mirrors ``source`` (the store in use) to the database at ``target_url``."""

    def __init__(
        self, source: Store, target_url: str, data_dir: Path, interval: float = 0.2
    ) -> None:
        self._source = source
        self._target_url = target_url
        self._lock = mirror_lock(data_dir)
        self._target: OpenStore | None = None
        # A last pass once stopped, so that a clean shutdown leaves nothing behind.
        self._worker = Worker(
            "tenure-mirror", self._pass, interval, final=self._pass, retry=(), logger=_log
        )
        self.passes = 0
        self.error: str | None = None

    def start(self) -> bool:
        """Mirror in a thread of its own; False if another process holds the lock."""
        if not self._lock.acquire():
            return False
        self._target = open_store(self._target_url)
        self._worker.start()
        return True

    def stop(self) -> None:
        """Stop after a last pass, so that a clean shutdown leaves nothing behind."""
        if not self._worker.running:
            return
        self._worker.stop()
        if self._target is not None:
            self._target.close()
        self._lock.release()

    def sync_once(self) -> list[migration.Sides]:
        """One pass over every account; raises what ``sync_account`` raises."""
        assert self._target is not None
        return [
            migration.sync_account(self._source, self._target, account)
            for account in migration.source_accounts(self._source)
        ]

    def _pass(self) -> None:
        try:
            self.sync_once()
            self.passes += 1
            if self.error is not None:
                _log.warning("mirror to %s recovered", self._target_url)
            self.error = None
        except (TenureError, DatabaseError) as exc:
            # A mirror that stops silently would let a cutover lose writes: the
            # error is logged once per change and the cutover's own sync and
            # proof refuse until it is resolved.
            message = str(exc)
            if message != self.error:
                _log.error("mirror to %s failed: %s", self._target_url, message)
            self.error = message
