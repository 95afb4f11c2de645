"""``tenure.workers.Worker``, the one background worker: it runs its job every
interval, now when woken, a last time on stop, only in the process holding its lock,
and goes on after a failed run."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tenure.crypto.files import ProcessLock
from tenure.workers import Worker

WAIT = 10.0


class Job:
    """Counts its runs; ``ran`` is set at each; fails while ``failures`` is positive."""

    def __init__(self, failures: int = 0) -> None:
        self.runs = 0
        self.failures = failures
        self.ran = threading.Event()

    def __call__(self) -> None:
        self.runs += 1
        self.ran.set()
        if self.failures > 0:
            self.failures -= 1
            raise OSError("the job failed")


def test_a_worker_runs_its_job_every_interval() -> None:
    job = Job()
    worker = Worker("test-every", job, 0.01).start()
    try:
        for _ in range(3):
            assert job.ran.wait(WAIT)
            job.ran.clear()
    finally:
        worker.stop()
    assert not worker.running


def test_a_woken_worker_runs_now_not_after_its_interval() -> None:
    job = Job()
    worker = Worker("test-wake", job, 3600).start()
    try:
        assert not job.ran.wait(0.05)
        worker.wake()
        assert job.ran.wait(WAIT)
    finally:
        worker.stop()


def test_stop_runs_the_final_job_once_the_thread_has_ended() -> None:
    final = Job()
    worker = Worker("test-final", Job(), 3600, final=final).start()
    worker.stop()
    assert final.runs == 1
    worker.stop()
    assert final.runs == 1


def test_an_interval_of_zero_starts_no_thread() -> None:
    worker = Worker("test-zero", Job(), 0).start()
    assert not worker.running


def test_a_failed_run_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    job = Job(failures=1)
    worker = Worker("test-fails", job, 0.01, retry=(OSError,)).start()
    try:
        with caplog.at_level(logging.ERROR, logger="test.fails"):
            while job.runs < 2:
                assert job.ran.wait(WAIT)
                job.ran.clear()
    finally:
        worker.stop()
    assert "test-fails failed: the job failed" in caplog.text


def test_only_the_process_holding_the_lock_runs_the_job(tmp_path: Path) -> None:
    holder = ProcessLock(tmp_path / "job.lock")
    assert holder.acquire()
    job = Job()
    worker = Worker("test-lock", job, 0.01, lock=ProcessLock(tmp_path / "job.lock")).start()
    try:
        assert not job.ran.wait(0.2)
        holder.release()  # the holder exits: this worker takes over
        assert job.ran.wait(WAIT)
    finally:
        worker.stop()
