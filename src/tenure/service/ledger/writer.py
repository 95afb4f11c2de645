"""The queue and batching of the ledger writer (``Ledger``): one thread takes what
callers submitted, gathers a batch, runs it in one transaction and retries a failed
batch in halves (``tenure.service.batches``); see the package doc.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from opentelemetry.context import Context as TraceContext

from tenure.domain.timefmt import format_time
from tenure.errors import StorageUnavailable, TenureError, UnstorableValue
from tenure.observability import metrics, tracing
from tenure.service import audit
from tenure.service.audit import AuditEntry
from tenure.service.batches import contain_failures
from tenure.service.ledger.checkpoints import Checkpointer, CheckpointPolicy, Signers
from tenure.service.ledger.kinds import Batch, kind_of
from tenure.service.ledger.requests import AuditRequest, Outcome, Request, SignRequest
from tenure.service.ledger.session import Appender, PersonalSealing
from tenure.service.sidecar import Sidecar
from tenure.service.state_guard import StateGuard
from tenure.store.failures import is_unavailable, is_unstorable
from tenure.store.unit import Store, Transaction
from tenure.store.writing import WriterLink

_log = logging.getLogger("tenure.ledger")

LINGER = 0.002
"""At most this long (seconds) a batch waits for more submissions under concurrency."""
GAP = 0.0003
"""A batch stops waiting after this long without a new submission."""


def append_audit(tx: Transaction, entries: Sequence[AuditEntry], stamp: str) -> None:
    """Chain ``entries`` into their accounts' audit logs in ``tx``."""
    audit.append(tx.audit, entries, stamp)


@dataclass
class _Item:
    request: Request
    future: Future[Outcome] = field(default_factory=Future)
    outcome: Outcome | None = None
    error: BaseException | None = None
    trace: TraceContext | None = None
    """The submitter's trace context: the batch's span continues it."""

    def audit_entries(self) -> tuple[AuditEntry, ...]:
        error = self.error if isinstance(self.error, TenureError) else None
        return kind_of(self.request).audit_entries(self.request, self.outcome, error)


class Ledger:
    """Appends commands' events to the ledger of each account; see the package doc."""

    def __init__(
        self,
        store: Store,
        link: WriterLink,
        signers: Signers,
        license_key_hash: Callable[[str, str], str],
        origin_prefix: str,
        sidecar: Sidecar | None = None,
        policy: CheckpointPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        max_batch: int = 512,
        personal: PersonalSealing | None = None,
        guard: StateGuard | None = None,
    ) -> None:
        self.store = store
        """The store the writer appends to (for transactions beside the writer's)."""
        self._link = link
        self._origin_prefix = origin_prefix.rstrip("/")
        self._checkpoints = Checkpointer(policy or CheckpointPolicy(), signers)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._appender = Appender(
            self.origin_of, sidecar, self._clock, random_bytes, license_key_hash, personal, guard
        )
        self._max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._last_batch = 0
        self._closed = False

    @property
    def policy(self) -> CheckpointPolicy:
        return self._checkpoints.policy

    # ------------------------------------------------------------------ public

    def start(self) -> Ledger:
        self._link.start()
        self._thread = threading.Thread(target=self._run_writer, name="tenure-ledger", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Finish queued work, sign pending checkpoints (per policy) and stop."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._link.stop()
        # A submission that raced with close() landed behind the stop marker.
        while not self._queue.empty():
            late = self._queue.get_nowait()
            if late is not None:
                late.future.set_exception(RuntimeError("ledger writer stopped"))

    def __enter__(self) -> Ledger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, request: Request) -> Future[Outcome]:
        """Queue a request; the future resolves once its batch has committed.

        The future's outcome, or any error but ``StorageUnavailable``, has been
        audited in the batch's transaction; ``StorageUnavailable`` means nothing of
        the request was written.
        """
        if self._thread is None or self._closed:
            raise RuntimeError("ledger writer is not running")
        item = _Item(request, trace=tracing.capture())
        self._queue.put(item)
        return item.future

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive and takes requests."""
        return self._thread is not None and self._thread.is_alive() and not self._closed

    def execute(self, request: Request) -> Outcome:
        """Submit and wait; raises the command's error if it failed."""
        return self.submit(request).result()

    def origin_of(self, account: str) -> str:
        return f"{self._origin_prefix}/{account}"

    # ------------------------------------------------------------------ writer

    def _run_writer(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._checkpoints.idle_wait(self._appender.cache))
            except queue.Empty:
                self._sign_due(force=False)
                continue
            batch = self._gather(first)
            items = [item for item in batch if item is not None]
            if items:
                self._commit(items)
            if None in batch:
                if self.policy.sign_on_close:
                    self._sign_due(force=True)
                self._link.reset()
                return

    def _gather(self, first: _Item | None) -> list[_Item | None]:
        """``first`` and what else is queued; under concurrency, a little more.

        With many callers, those answered by one commit resubmit while the next
        batch is already being gathered, and batches settle at half the callers.
        When the last batch had several items, wait up to ``LINGER`` for stragglers
        (stopping at the first quiet ``GAP``) so that more of them share one fsync.
        """
        batch = [first]
        deadline = time.monotonic() + LINGER
        # Decisions' audit entries come already gathered by the event loop: a batch
        # that starts with them does not wait for more.
        linger = self._last_batch > 1 and not (
            first is not None and isinstance(first.request, AuditRequest)
        )
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            wait = min(GAP, deadline - time.monotonic())
            if not linger or wait <= 0 or batch[-1] is None:
                break
            try:
                batch.append(self._queue.get(timeout=wait))
            except queue.Empty:
                break
        self._last_batch = len(batch)
        return batch

    def _sign_due(self, force: bool) -> None:
        now = time.monotonic()
        cache = self._appender.cache
        items = [
            _Item(SignRequest(account)) for account in self._checkpoints.due(cache, force, now)
        ]
        if not items:
            return
        self._commit(items)
        for item in items:
            if item.error is not None:
                account = cast(SignRequest, item.request).account
                # Nobody waits on a scheduled signature: report it here, once. The
                # account's cache was dropped, so the next append retries from storage.
                _log.error("signing a checkpoint of %s failed: %s", account, item.error)
                cached = cache.get(account)
                if cached is not None:  # not dropped (the database was unreachable):
                    cached.signed_at = now  # try again after an interval, not at once

    def _commit(self, items: list[_Item]) -> None:
        started = time.perf_counter()
        with tracing.batch_span("ledger.append", [item.trace for item in items]):
            contain_failures(items, self._attempt, self._give_up)
            for item in items:
                if item.error is not None:
                    item.future.set_exception(item.error)
                else:
                    assert item.outcome is not None
                    item.future.set_result(item.outcome)
        events = sum(len(item.outcome.events) for item in items if item.outcome is not None)
        metrics.observe_append(time.perf_counter() - started, events)

    def _attempt(self, items: list[_Item]) -> BaseException | None:
        """Run ``items`` in one transaction; the error if it did not commit."""
        reused = self._link.connected
        failure, committing = self._transact(items)
        if failure is not None and reused and not committing and is_unavailable(failure):
            # The connection kept from an earlier batch was dead (the database
            # restarted): nothing reached a commit, so one try on a new connection.
            failure, _ = self._transact(items)
        if failure is not None and len(items) > 1 and not is_unavailable(failure):
            _log.warning(
                "a write batch of %d requests failed (%r): retrying its halves", len(items), failure
            )
        return failure

    def _transact(self, items: list[_Item]) -> tuple[BaseException | None, bool]:
        """Handle ``items`` and commit them with their audit entries. Returns the error
        that undid it (or None) and whether it came from the commit itself."""
        batch: Batch | None = None
        committing = False
        for item in items:
            item.outcome, item.error = None, None
        try:
            # The span covers the whole write transaction, through its commit (fsync).
            synced = not all(
                isinstance(item.request, AuditRequest) and not item.request.synced for item in items
            )
            with (
                tracing.span("store.commit"),
                self._link.batch(_locked(items), synced=synced) as tx,
            ):
                self._appender.forget_if_written_elsewhere(tx)
                batch = Batch(tx, self._appender)
                self._run_batch(batch, items)
                # PostgreSQL: other processes' writers drop their rows of these accounts.
                changed = _changed_accounts(batch, items)
                tx.announce(changed)
                committing = True
        except BaseException as exc:  # the batch did not commit: nothing it did stands
            self._forget(batch)
            return exc, committing
        self._link.moved(changed)  # before any request of the batch is answered
        try:
            self._appender.remember(batch.accounts)
        except OSError as exc:  # committed: answer the requests, but say it loudly
            _log.error("the sidecar could not be written after a commit: %s", exc)
        return None, committing

    def _run_batch(self, batch: Batch, items: list[_Item]) -> None:
        """Handle each item, flush and sign each account, append the audit entries."""
        entries: list[AuditEntry] = []
        for item in items:
            try:
                item.outcome = kind_of(item.request).handle(batch, item.request)
            except TenureError as exc:
                item.outcome, item.error = None, exc
            entries.extend(item.audit_entries())
        for account, state in batch.accounts.items():
            stamp = format_time(self._clock())
            self._appender.flush(account, state, stamp)
            asked = [
                item
                for item in items
                if isinstance(item.request, SignRequest) and item.request.account == account
            ]
            self._checkpoints.sign_if_due(
                account, state, stamp, asked=any(item.error is None for item in asked)
            )
            for item in asked:
                item.outcome = Outcome({"account": account, "size": state.frontier.size})
        if entries:
            append_audit(batch.tx, entries, format_time(self._clock()))

    def _forget(self, batch: Batch | None) -> None:
        """After a failed transaction: a new connection, and state read afresh."""
        self._link.reset()
        self._appender.forget(batch.accounts if batch is not None else {})

    def _give_up(self, items: list[_Item], failure: BaseException) -> None:
        """Answer ``items`` that cannot commit. A lone request whose value the database
        refused fails with ``UnstorableValue``, audited as denied in a transaction of
        its own; otherwise each fails with ``StorageUnavailable`` (nothing written)."""
        _log.error("a write of %d requests failed: %r", len(items), failure)
        refused = UnstorableValue(f"a value of the request cannot be stored: {failure}")
        if len(items) == 1 and is_unstorable(failure) and self._audit_alone(items[0], refused):
            items[0].outcome, items[0].error = None, refused
            return
        unavailable = StorageUnavailable(f"the write was not committed: {failure}")
        unavailable.__cause__ = failure
        for item in items:
            item.outcome, item.error = None, unavailable

    def _audit_alone(self, item: _Item, error: UnstorableValue) -> bool:
        """Commit the audit entry of ``item`` denied with ``error``; whether it did."""
        item.outcome, item.error = None, error
        entries = item.audit_entries() if kind_of(item.request).audits_itself else ()
        if not entries:
            return False
        try:
            with self._link.batch({entry.account for entry in entries}) as tx:
                append_audit(tx, entries, format_time(self._clock()))
        except Exception as exc:
            _log.error("the audit entry of a refused write failed too: %r", exc)
            self._forget(None)
            return False
        return True


def _locked(items: list[_Item]) -> set[str]:
    """Every account whose ledger or audit head the batch of ``items`` may move."""
    accounts: set[str] = set()
    for item in items:
        accounts.update(kind_of(item.request).locks(item.request))
    return accounts


def _changed_accounts(batch: Batch, items: list[_Item]) -> set[str]:
    """The accounts whose ledger, projection or service rows the batch changed (audit
    entries alone are not announced: no writer caches them)."""
    changed = {a for a, state in batch.accounts.items() if state.rows or state.checkpoint}
    changed.update(
        item.request.account
        for item in items
        if kind_of(item.request).announced and item.error is None
    )
    return changed
