"""Containing a failed write batch, so that one request never fails the others.

The ledger writer commits many requests in one transaction. When that transaction
fails because of one request (a value the database refuses, a change that breaks
a constraint, a bug), every other request of the batch would fail with it. Instead
the batch is retried in two halves, each in its own transaction, and each half
that fails again is halved again: the requests that can commit do, in their
original order, and only the request at fault is left, after about 2·log2(n)
extra transactions.

A batch is not split when the database itself is unavailable
(``tenure.store.failures.is_unavailable``): every part would fail the same way, so
all its requests are answered at once (503, retry later). Nor for an interrupt
(``KeyboardInterrupt``, ``SystemExit``), which is no request's fault.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from tenure.store.failures import is_unavailable

ItemT = TypeVar("ItemT")


def contain_failures(
    items: Sequence[ItemT],
    attempt: Callable[[list[ItemT]], BaseException | None],
    give_up: Callable[[list[ItemT], BaseException], None],
) -> None:
    """Commit ``items`` with ``attempt`` (which returns the error that undid its
    transaction, or None); halve a failed batch and retry each half, down to single
    items; hand what still fails (and a batch the database could not take at all) to
    ``give_up`` with its error."""
    pending = [list(items)]
    while pending:
        batch = pending.pop()
        failure = attempt(batch)
        if failure is None:
            continue
        if len(batch) > 1 and isinstance(failure, Exception) and not is_unavailable(failure):
            middle = len(batch) // 2
            pending.extend([batch[middle:], batch[:middle]])  # the first half runs first
        else:
            give_up(batch, failure)
