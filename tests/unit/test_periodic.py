"""``Periodic``: scheduled jobs, and one process at a time running a locked one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tenure.service.periodic import Periodic

INTERVAL = 0.02


class Runs:
    def __init__(self) -> None:
        self.count = 0
        self.ran = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.ran.set()


def test_a_job_runs_repeatedly_and_survives_its_failures() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(len(calls))
        if len(calls) % 2:
            raise RuntimeError("every other run fails")

    job = Periodic("tenure-test", flaky, INTERVAL).start()
    deadline = time.monotonic() + 5
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(INTERVAL)
    job.stop()
    assert len(calls) >= 4


def test_an_interval_of_zero_never_runs() -> None:
    runs = Runs()
    job = Periodic("tenure-test", runs, 0).start()
    time.sleep(10 * INTERVAL)
    job.stop()
    assert runs.count == 0


def test_with_a_lock_one_holder_runs_and_another_takes_over_when_it_stops(
    tmp_path: Path,
) -> None:
    first, second = Runs(), Runs()
    one = Periodic("tenure-test", first, INTERVAL, lock_dir=tmp_path).start()
    assert first.ran.wait(5)
    two = Periodic("tenure-test", second, INTERVAL, lock_dir=tmp_path).start()
    time.sleep(20 * INTERVAL)
    assert second.count == 0
    one.stop()
    assert second.ran.wait(5)
    two.stop()
    assert first.count > 0
