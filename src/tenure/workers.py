"""The one background worker: a job run every so often in a thread of its own.

Every loop of the service is a ``Worker`` with its differences as parameters: how
often (``interval``), which process runs it when several share a data directory
(``lock``: an ``flock`` the caller builds, ``tenure.crypto.files.ProcessLock``), a
last run when it stops (``final``: flush what is pending), a run on demand
(``wake``), threads for the work a run hands out (``pool``: the webhook worker's
deliveries), and which errors a run may raise and the next run retries (``retry``,
logged at ``log_level``; ``logger`` and ``what`` name them). One thread runs the
job, so runs never overlap.

Pure threading, no dependencies: every layer may build one (``tenure.store`` too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol


class Lock(Protocol):
    """A lock one process at a time holds, taken without waiting."""

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        ...

    def release(self) -> None:
        """Give the lock back (nothing if not held)."""
        ...


class Worker:
    """Runs ``job()`` every ``interval`` seconds in a daemon thread named ``name``
    (no thread at all for an interval of 0). A run that raises one of ``retry`` is
    logged as "<what> failed: <error>" (``what`` defaults to ``name``; ``logger`` to
    the one named ``name`` with dots for dashes; at ``log_level``) and the next run
    tries again; any other error ends the thread, as it would any thread.

    With ``lock``, only the process holding it runs the job: the others try to take
    it at each interval, so one of them takes over when the holder exits. With
    ``final``, ``stop`` calls it once the thread has ended (a last flush; its errors
    reach the caller of ``stop``). ``wake`` runs the job now instead of at the end
    of the interval.

    With ``pool`` (a number of threads), ``self.pool`` runs what the job hands out;
    ``stop`` then waits for the work in progress and drops the work not started
    (also when the thread never ran: the job may be called directly), so a worker
    with a pool is not started again once stopped."""

    def __init__(
        self,
        name: str,
        job: Callable[[], object],
        interval: float,
        *,
        lock: Lock | None = None,
        final: Callable[[], object] | None = None,
        retry: tuple[type[BaseException], ...] = (Exception,),
        log_level: int = logging.ERROR,
        logger: logging.Logger | None = None,
        what: str | None = None,
        pool: int = 0,
    ) -> None:
        self.name = name
        self._job = job
        self._interval = interval
        self._lock = lock
        self._holds_lock = False
        self._final = final
        self._retry = retry
        self._log_level = log_level
        self._log = logger or logging.getLogger(name.replace("-", "."))
        self._what = what or name
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(pool, thread_name_prefix=name) if pool > 0 else None

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The threads for the work a run hands out (``RuntimeError`` without ``pool``)."""
        if self._pool is None:
            raise RuntimeError(f"the worker {self.name} has no pool")
        return self._pool

    @property
    def running(self) -> bool:
        """Whether the worker's thread runs (started, with an interval, not stopped)."""
        return self._thread is not None

    def start(self) -> Worker:
        """Start the thread (unless the interval is 0 or it runs already)."""
        if self._interval > 0 and self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Run the job as soon as the thread is free, not at the end of the interval."""
        self._woken.set()

    def stop(self) -> None:
        """Stop the thread (waiting for a run in progress), run ``final`` if given,
        wait for the pool's work in progress (dropping the rest), and release the lock
        if this process held it."""
        if self._thread is not None:
            self._stopping.set()
            self._woken.set()
            self._thread.join()
            self._thread = None
            if self._final is not None:
                self._final()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._lock is not None and self._holds_lock:
            self._lock.release()
            self._holds_lock = False

    def _mine(self) -> bool:
        """Whether this process runs the job (it holds the lock, or there is none)."""
        if self._lock is not None and not self._holds_lock:
            self._holds_lock = self._lock.acquire()
        return self._lock is None or self._holds_lock

    def _run(self) -> None:
        while True:
            self._woken.wait(self._interval)
            self._woken.clear()
            if self._stopping.is_set():
                return
            if not self._mine():
                continue
            try:
                self._job()
            except self._retry as exc:  # the next run tries again; say so loudly
                self._log.log(self._log_level, "%s failed: %s", self._what, exc)
