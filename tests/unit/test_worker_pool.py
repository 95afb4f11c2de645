"""``tenure.workers.Worker`` with a pool (the webhook worker's deliveries), and the
account jobs of ``tenure.ops.jobs`` built on it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tenure.ops.jobs import account_job
from tenure.store.memory import MemoryStore
from tenure.workers import Worker

WAIT = 10.0


def test_stop_waits_for_the_pools_work_in_progress_and_drops_the_rest() -> None:
    worker = Worker("test-pool", lambda: None, 3600, pool=1)
    started, submitted = threading.Event(), threading.Event()
    done: list[str] = []

    def in_progress() -> None:
        started.set()
        assert submitted.wait(WAIT)
        # Finish only once stop has dropped the queued work (or give up).
        deadline = time.monotonic() + WAIT
        while not queued.cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        done.append("in progress")

    # The job may hand work out without the thread: called directly, as here.
    worker.pool.submit(in_progress)
    queued = worker.pool.submit(done.append, "queued")
    submitted.set()
    assert started.wait(WAIT)
    worker.stop()
    assert done == ["in progress"]
    assert queued.cancelled()


def test_a_worker_without_a_pool_says_so() -> None:
    with pytest.raises(RuntimeError, match="no pool"):
        Worker("test-nopool", lambda: None, 1).pool.submit(print)


def test_an_account_job_runs_for_every_account_of_the_store_in_turn(tmp_path: Path) -> None:
    store = MemoryStore()
    with store.write() as tx:
        for account in ("beta", "alpha"):
            tx.ledger.create_head(account, f"test/ledger/{account}")
    seen: list[str] = []
    ran = threading.Event()

    def job(account: str) -> None:
        seen.append(account)
        if len(seen) == 2:
            ran.set()

    worker = account_job("test-accounts", store, job, 0.01, tmp_path).start()
    try:
        assert ran.wait(WAIT)
    finally:
        worker.stop()
    assert seen[:2] == ["alpha", "beta"]
    assert (tmp_path / "test-accounts.lock").exists()
