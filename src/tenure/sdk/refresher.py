"""The SDK's background thread: runs a step, sleeps as long as the step asks, repeats."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

STOP_TIMEOUT = 5.0


class Refresher:
    """A daemon thread calling ``step`` until ``stop``; ``step`` returns the seconds to
    sleep before its next call. ``step`` must not raise: the thread ends if it does."""

    def __init__(self, step: Callable[[], float], name: str) -> None:
        self._step = step
        self._name = name
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self.running:
            return
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopping,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait for it (at most ``STOP_TIMEOUT`` seconds: a
        request in flight ends with the HTTP client's timeout)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT)
        self._thread = None

    def _run(self, stopping: threading.Event) -> None:
        delay = 0.0
        while not stopping.wait(delay):
            delay = self._step()


@dataclass
class Backoff:
    """Retry delays after failures: ``first``, doubling, at most ``ceiling``."""

    first: float
    ceiling: float
    failures: int = 0

    def failed(self) -> float:
        delay = min(self.first * 2.0**self.failures, self.ceiling)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
