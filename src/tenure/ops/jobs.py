"""The scheduled jobs over every account (notices, alerts, reconciliation, drills):
each a ``tenure.workers.Worker`` whose run takes the accounts in turn, and which one
process of those sharing a data directory runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tenure.crypto.files import ProcessLock
from tenure.store.unit import Store
from tenure.workers import Worker


def every_account(store: Store, job: Callable[[str], object]) -> Callable[[], None]:
    """A job that runs ``job(account)`` for each account of the store, in turn."""

    def run() -> None:
        with store.read() as tx:
            accounts = tx.ledger.accounts()
        for account in accounts:
            job(account)

    return run


def account_job(
    name: str,
    store: Store,
    job: Callable[[str], object],
    interval: float,
    lock_dir: Path | None = None,
) -> Worker:
    """A worker named ``name`` running ``job(account)`` for every account every
    ``interval`` seconds (never for 0; not started). With ``lock_dir``, only the
    process holding the ``flock`` on ``<lock_dir>/<name>.lock`` runs it (the workers
    of ``tenure serve --workers N`` share one data directory); the others take over
    when it exits. A failed run is logged and the next one tries again."""
    lock = ProcessLock(lock_dir / f"{name}.lock") if lock_dir is not None else None
    return Worker(name, every_account(store, job), interval, lock=lock)
