"""The ledger writer: one thread that appends events with group commit.

Callers ``submit`` commands from any thread (or ``await`` them from the API). The
writer takes everything queued, runs each command against the projection, builds
and validates its events, applies them, and commits the whole batch — events,
Merkle nodes, head, projection rows, idempotency records and any checkpoint — in
one ``BEGIN IMMEDIATE`` transaction: concurrent writers share one fsync. A command
that fails is answered with its error and leaves nothing in the batch.

The same transaction writes the audit entries (``tenure.service.audit``) of
everything the batch answered: each submission's entry (allowed, or denied with the
error's code), each ``Operation``'s, and the decisions queued as ``AuditRequest``.
Nothing is answered that was not both done and audited (fail closed).

If the transaction fails, one request must not fail the others
(``tenure.service.batches``): the batch is retried in halves until only the request
at fault is left. It fails with ``UnstorableValue`` (audited as denied) when the
database refused one of its values, else with ``StorageUnavailable`` (nothing of it
written). When the database itself is unavailable the batch is not split: every
request fails with ``StorageUnavailable``, after one retry on a new connection if
the connection kept from an earlier batch had died (a database restart).

Checkpoints are signed every ``every_events`` events, after ``interval`` seconds
with unsigned events, on demand, and when the ledger closes. A store found behind
(or inconsistent with) the last signed checkpoint in the sidecar refuses to append
and to sign: either would fork the log.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import sqlalchemy as sa
from opentelemetry.context import Context as TraceContext

from tenure.canonical import canonical_json
from tenure.domain.commands import Command, Context, Draft
from tenure.domain.events import CURRENT_SCHEMA, Actor, Event, event_from_json
from tenure.domain.projector import apply
from tenure.domain.state import Change
from tenure.domain.timefmt import format_time, parse_time
from tenure.errors import (
    IdempotencyKeyReused,
    LedgerTampered,
    StorageUnavailable,
    StoreBehindCheckpoint,
    TenureError,
    UnstorableValue,
)
from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint
from tenure.ledger.merkle import Frontier, leaf_hash, tree_hash
from tenure.ledger.note import NoteSigner
from tenure.observability import metrics, tracing
from tenure.service import audit
from tenure.service.audit import AuditEntry
from tenure.service.batches import contain_failures
from tenure.service.sidecar import Sidecar
from tenure.service.units import BatchView, CommandView
from tenure.store import notify, raw, sql
from tenure.store.engine import (
    WalCheckpointer,
    disable_autocheckpoint,
    lock_accounts,
    transaction_on,
)
from tenure.store.failures import is_unavailable, is_unstorable
from tenure.store.unit import SqlTransaction, Transaction

_log = logging.getLogger("tenure.ledger")

LINGER = 0.002
"""At most this long (seconds) a batch waits for more submissions under concurrency."""
GAP = 0.0003
"""A batch stops waiting after this long without a new submission."""

ROW_CACHE_LIMIT = 200_000
"""Projection rows the writer keeps in memory per account between batches."""


@dataclass(frozen=True)
class Submission:
    """A command as a principal asked for it."""

    account: str
    command: Command
    actor: Actor
    reason: str | None = None
    idempotency_key: str | None = None
    at: datetime | None = None
    """Event time for deterministic workloads (demo, tests); None means the clock."""

    def request_hash(self) -> str:
        content = {"request": self.command.request(), "reason": self.reason, "actor": self.actor.id}
        return hashlib.sha256(canonical_json(content)).hexdigest()

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry:
        """The audit entry of this submission, answered with ``outcome`` or ``error``."""
        events = outcome.events if outcome else ()
        target = events[0].subject if events else getattr(self.command, "serial", None)
        field_at_fault = error.context.get("field") if error is not None else None
        detail = {"field": field_at_fault} if field_at_fault else None
        return AuditEntry(
            self.account,
            self.actor.id,
            self.actor.role,
            self.actor.auth,
            self.command.name,
            "denied" if error is not None else "allowed",
            error.code
            if error is not None
            else ("replayed" if outcome and outcome.replayed else "ok"),
            target=target,
            rationale=self.reason,
            events=(events[0].seq, len(events)) if events else None,
            detail=detail,
        )


@dataclass(frozen=True)
class Outcome:
    """What a submission did: its result and the events it appended."""

    result: dict[str, Any]
    events: tuple[Event, ...] = ()
    replayed: bool = False


@dataclass(frozen=True)
class CheckpointPolicy:
    every_events: int = 1000
    interval: float = 1.0
    sign_on_close: bool = True


@dataclass(frozen=True)
class SignRequest:
    """Ask the writer to sign a checkpoint of ``account`` now."""

    account: str


@dataclass(frozen=True)
class AuditRequest:
    """Audit entries to chain (decisions, refused requests); nothing else is written."""

    entries: tuple[AuditEntry, ...]

    @property
    def account(self) -> str:
        return self.entries[0].account if self.entries else ""


class Operation(Protocol):
    """A change outside the ledger's events (API keys, accounts, webhooks, ...), made
    in the writer's transaction and audited in it: a frozen dataclass per operation.

    ``run`` gets the batch's transaction and runs inside a savepoint: if it raises a
    ``TenureError`` its writes are undone and the request is answered with that error
    and audited as denied with its code; its result (a JSON object) is the answer.
    ``audit_entry`` gives the entry for either outcome; it belongs to ``account``'s
    audit chain (the writer locks that account)."""

    @property
    def account(self) -> str: ...

    def run(self, tx: Transaction) -> Any: ...

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry: ...


Request = Submission | SignRequest | AuditRequest | Operation
"""What the writer takes: each kind has its handler (``Ledger._handlers``)."""


class PersonalSealing(Protocol):
    """What the writer needs of ``tenure.service.personal.PersonalData``."""

    def seal(
        self, account: str, event_id: str, type_name: str, data: dict[str, Any]
    ) -> dict[str, Any]: ...

    def opener(self, account: str) -> Callable[[dict[str, Any]], dict[str, str | None] | None]: ...


class Signers(Protocol):
    """Where the writer gets a signer for an origin (a key store)."""

    def ledger_signer(self, origin: str) -> NoteSigner:
        """The signer whose key name is ``origin``."""
        ...


@dataclass
class _Item:
    request: Request
    future: Future[Outcome] = field(default_factory=Future)
    outcome: Outcome | None = None
    error: BaseException | None = None
    trace: TraceContext | None = None
    """The submitter's trace context: the batch's span continues it."""


@dataclass
class _Account:
    """One account's part of a batch."""

    conn: sa.Connection
    origin: str
    head_size: int
    frontier: Frontier
    view: BatchView
    last_time: datetime | None
    signed_size: int
    rows: list[sql.EventRow] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    idempotency: dict[str, sql.IdempotencyRecord] = field(default_factory=dict)
    checkpoint: str | None = None


@dataclass
class _Cache:
    """What the writer remembers about an account between batches."""

    frontier: Frontier
    last_time: datetime | None
    signed_size: int
    signed_at: float
    sidecar_checked: bool = True
    rows: dict[tuple[str, tuple[str | int, ...]], dict[str, Any] | None] = field(
        default_factory=dict
    )


class Sealer(Protocol):
    """Encrypts the personal fields of a draft's data under its event id."""

    def __call__(
        self, account: str, event_id: str, type_name: str, data: dict[str, Any]
    ) -> dict[str, Any]: ...


class Staging(Protocol):
    """A state view that collects the changes of the events being appended."""

    def get(self, table: str, key: tuple[str | int, ...]) -> dict[str, Any] | None: ...

    def stage(self, changes: list[Change]) -> None: ...


def append_drafts(
    view: Staging,
    frontier: Frontier,
    sub: Submission,
    drafts: list[Draft],
    stamp: str,
    random_bytes: Callable[[int], bytes],
    seal: Sealer | None = None,
) -> tuple[list[Event], list[sql.EventRow], list[tuple[int, int, bytes]]]:
    """Turn a command's drafts into events: envelope, validation, projection, leaf.

    ``seal`` encrypts a draft's personal fields once its event id is drawn (the id
    is their associated data; ``tenure.service.personal``).

    Each event is checked (``event_from_json``), applied to ``view`` (which may
    refuse it with ``Conflict``), encoded canonically and appended to ``frontier``.
    Returns the events, their rows for ``ledger_events`` and the new Merkle nodes.
    """
    events: list[Event] = []
    rows: list[sql.EventRow] = []
    nodes: list[tuple[int, int, bytes]] = []
    for draft in drafts:
        event_id = "evt_" + random_bytes(16).hex()
        data = seal(sub.account, event_id, draft.type, draft.data) if seal else draft.data
        envelope = {
            "id": event_id,
            "account": sub.account,
            "seq": frontier.size,
            "type": draft.type,
            "schema": CURRENT_SCHEMA[draft.type],
            "time": stamp,
            "actor": sub.actor.to_json(),
            "reason": sub.reason,
            "idempotency_key": sub.idempotency_key,
            "data": data,
        }
        event = event_from_json(envelope)
        view.stage(apply(view, event))
        leaf = canonical_json(envelope)
        nodes.extend(frontier.append(leaf_hash(leaf)))
        rows.append(
            sql.EventRow(
                event.seq, event.id, event.type, event.subject, stamp, sub.idempotency_key, leaf
            )
        )
        events.append(event)
    return events, rows, nodes


class Ledger:
    """Appends commands' events to the ledger of each account; see the module doc."""

    def __init__(
        self,
        engine: sa.Engine,
        signers: Signers,
        license_key_hash: Callable[[str, str], str],
        origin_prefix: str,
        sidecar: Sidecar | None = None,
        policy: CheckpointPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        max_batch: int = 512,
        personal: PersonalSealing | None = None,
    ) -> None:
        self.engine = engine
        self._personal = personal
        self._signers = signers
        self._license_key_hash = license_key_hash
        self._origin_prefix = origin_prefix.rstrip("/")
        self._sidecar = sidecar
        self.policy = policy or CheckpointPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._random = random_bytes
        self._max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._cache: dict[str, _Cache] = {}
        self._thread: threading.Thread | None = None
        self._conn: sa.Connection | None = None
        self._last_batch = 0
        self._write_marker: int | None = None
        self._listener: notify.WriteListener | None = None
        self._closed = False
        self._wal = WalCheckpointer(engine)
        self._handlers: dict[type, Callable[[sa.Connection, dict[str, _Account], Any], Outcome]]
        self._handlers = {
            AuditRequest: self._handle_audit,
            SignRequest: self._handle_sign,
            Submission: self._handle_submission,
        }
        """Request kind → its handler; any other kind is an ``Operation``."""

    # ------------------------------------------------------------------ public

    def start(self) -> Ledger:
        # PostgreSQL: learn when other processes write, to keep rows between batches.
        self._listener = notify.start_listener(self.engine)
        self._thread = threading.Thread(target=self._run_writer, name="tenure-ledger", daemon=True)
        self._thread.start()
        self._wal.start()
        return self

    def close(self) -> None:
        """Finish queued work, sign pending checkpoints (per policy) and stop."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._wal.stop()
        if self._listener is not None:
            notify.stop_listener(self.engine, self._listener)
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
                first = self._queue.get(timeout=self._idle_wait())
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
                self._drop_connection()
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

    def _forget_if_written_elsewhere(self, conn: sa.Connection) -> None:
        # Another connection (a CLI rebuild, a second process) may have changed rows
        # this writer keeps in memory without moving any ledger head: forget the rows.
        # (A moved head is noticed in _open, which then reloads everything: on
        # PostgreSQL the marker comes from NOTIFY, which may arrive after the commit
        # it announces, so the head check under the account lock is the guard.)
        marker = sql.external_write_marker(conn)
        if marker != self._write_marker:
            for cached in self._cache.values():
                cached.rows.clear()
                cached.sidecar_checked = False
            self._write_marker = marker

    def _connection(self) -> sa.Connection:
        # The writer keeps one connection for its lifetime: a pool checkout and
        # return per batch would cost as much as SQLite's commit.
        if self._conn is None:
            self._conn = self.engine.connect()
            disable_autocheckpoint(self._conn)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _idle_wait(self) -> float | None:
        pending = [c.signed_at for c in self._cache.values() if c.frontier.size > c.signed_size]
        if not pending:
            return None
        return max(0.01, min(pending) + self.policy.interval - time.monotonic())

    def _sign_due(self, force: bool) -> None:
        now = time.monotonic()
        due = [
            SignRequest(account)
            for account, c in self._cache.items()
            if c.frontier.size > c.signed_size
            and (force or now - c.signed_at >= self.policy.interval)
        ]
        if due:
            items = [_Item(request) for request in due]
            self._commit(items)
            for item in items:
                if item.error is not None:
                    # Nobody waits on a scheduled signature: report it here, once. The
                    # account's cache was dropped, so the next append retries from storage.
                    _log.error(
                        "signing a checkpoint of %s failed: %s", item.request.account, item.error
                    )
                    cached = self._cache.get(item.request.account)
                    if cached is not None:  # not dropped (the database was unreachable):
                        cached.signed_at = now  # try again after an interval, not at once

    def _commit(self, items: list[_Item]) -> None:
        started = time.perf_counter()
        with tracing.batch_span("ledger.append", [item.trace for item in items]):
            self._commit_batch(items)
        events = sum(len(item.outcome.events) for item in items if item.outcome is not None)
        metrics.observe_append(time.perf_counter() - started, events)

    def _commit_batch(self, items: list[_Item]) -> None:
        contain_failures(items, self._attempt, self._give_up)
        for item in items:
            if item.error is not None:
                item.future.set_exception(item.error)
            else:
                assert item.outcome is not None
                item.future.set_result(item.outcome)

    def _attempt(self, items: list[_Item]) -> BaseException | None:
        """Run ``items`` in one transaction; the error if it did not commit."""
        reused = self._conn is not None
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
        accounts: dict[str, _Account] = {}
        committing = False
        for item in items:
            item.outcome, item.error = None, None
        try:
            # The span covers the whole write transaction, through its commit (fsync).
            with tracing.span("store.commit"), transaction_on(self._connection()) as conn:
                # PostgreSQL: other processes may append to these accounts too.
                lock_accounts(conn, _accounts_of(items))
                self._forget_if_written_elsewhere(conn)
                entries: list[AuditEntry] = []
                for item in items:
                    self._handle(conn, accounts, item)
                    entries.extend(self._audit_entries(item))
                for account, state in accounts.items():
                    self._flush(conn, account, state, items)
                if entries:
                    audit.append(SqlTransaction(conn).audit, entries, format_time(self._clock()))
                # PostgreSQL: other processes' writers drop their rows of these accounts.
                sender = self._listener.sender if self._listener else notify.ANYONE
                notify.announce(conn, sender, _changed_accounts(accounts, items))
                committing = True
        except BaseException as exc:  # the batch did not commit: nothing it did stands
            self._forget(accounts)
            return exc, committing
        try:
            self._remember(accounts)
        except OSError as exc:  # committed: answer the requests, but say it loudly
            _log.error("the sidecar could not be written after a commit: %s", exc)
        return None, committing

    def _forget(self, accounts: dict[str, _Account]) -> None:
        """After a failed transaction: a new connection, and state read afresh."""
        self._drop_connection()
        self._write_marker = None
        for account in accounts:
            self._cache.pop(account, None)

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
        entries = () if type(item.request) in _AUDITED else self._audit_entries(item)
        if not entries:
            return False
        try:
            with transaction_on(self._connection()) as conn:
                lock_accounts(conn, {entry.account for entry in entries})
                audit.append(SqlTransaction(conn).audit, entries, format_time(self._clock()))
        except Exception as exc:
            _log.error("the audit entry of a refused write failed too: %r", exc)
            self._forget({})
            return False
        return True

    def _handle(self, conn: sa.Connection, accounts: dict[str, _Account], item: _Item) -> None:
        request = item.request
        handle = self._handlers.get(type(request), self._handle_operation)
        try:
            item.outcome = handle(conn, accounts, request)
        except TenureError as exc:
            item.outcome, item.error = None, exc

    def _handle_audit(
        self, conn: sa.Connection, accounts: dict[str, _Account], request: AuditRequest
    ) -> Outcome:
        return Outcome({"audited": len(request.entries)})

    def _handle_sign(
        self, conn: sa.Connection, accounts: dict[str, _Account], request: SignRequest
    ) -> Outcome:
        self._state(conn, accounts, request.account)
        return Outcome({"account": request.account})

    def _handle_submission(
        self, conn: sa.Connection, accounts: dict[str, _Account], request: Submission
    ) -> Outcome:
        return self._run(self._state(conn, accounts, request.account), request)

    def _handle_operation(
        self, conn: sa.Connection, accounts: dict[str, _Account], request: Operation
    ) -> Outcome:
        return Outcome(_in_savepoint(conn, lambda c: request.run(SqlTransaction(c))))

    def _state(self, conn: sa.Connection, accounts: dict[str, _Account], account: str) -> _Account:
        """The batch's state of ``account``, opened on first use in the batch."""
        state = accounts.get(account)
        if state is None:
            state = accounts[account] = self._open(conn, account)
        return state

    @staticmethod
    def _audit_entries(item: _Item) -> tuple[AuditEntry, ...]:
        request = item.request
        audited = _AUDITED.get(type(request))
        if audited is not None:
            return audited(request)
        error = item.error if isinstance(item.error, TenureError) else None
        own = cast(Submission | Operation, request)  # every other kind audits itself
        return (own.audit_entry(item.outcome, error),)

    def _open(self, conn: sa.Connection, account: str) -> _Account:
        head = sql.read_head(conn, account) or sql.create_head(
            conn, account, self.origin_of(account)
        )
        cached = self._cache.get(account)
        if cached is None or cached.frontier.size != head.size:
            frontier = sql.read_frontier(conn, account, head.size)
            last = sql.last_event_time(conn, account, head.size)
            stored = sql.read_checkpoint(conn, account)
            cached = self._cache[account] = _Cache(
                frontier,
                parse_time(last) if last else None,
                stored.size if stored else -1,
                time.monotonic(),
                sidecar_checked=False,
            )
        if len(cached.rows) > ROW_CACHE_LIMIT:
            cached.rows.clear()
        if not cached.sidecar_checked:
            self._check_sidecar(conn, account, head.origin, cached.frontier)
            cached.sidecar_checked = True
        return _Account(
            conn,
            head.origin,
            head.size,
            cached.frontier.copy(),
            BatchView(conn, account, cached.rows),
            cached.last_time,
            cached.signed_size,
        )

    def _check_sidecar(
        self, conn: sa.Connection, account: str, origin: str, frontier: Frontier
    ) -> None:
        signed = self._sidecar.read(account) if self._sidecar else None
        if signed is None or signed.origin != origin:
            return  # none, or the final checkpoint of an epoch this one follows
        if signed.size > frontier.size:
            raise StoreBehindCheckpoint(
                f"the store holds {frontier.size} events of {account} but checkpoint "
                f"{signed.size} was signed: recover the missing events from a site "
                "(tenure restore) before appending"
            )
        root = (
            frontier.root()
            if signed.size == frontier.size
            else tree_hash(signed.size, sql.NodeReader(conn, account))
        )
        if root != signed.root:
            raise StoreBehindCheckpoint(
                f"the store's tree of size {signed.size} disagrees with the signed checkpoint "
                f"of {account}: this store is not the one that signed it"
            )

    def _run(self, state: _Account, sub: Submission) -> Outcome:
        key = sub.idempotency_key
        request_hash = sub.request_hash() if key else ""
        if key:
            record = state.idempotency.get(key) or sql.read_idempotency(
                state.conn, sub.account, key
            )
            if record is not None:
                if record.request_hash != request_hash:
                    raise IdempotencyKeyReused(
                        f"idempotency key {key!r} was used for a different request"
                    )
                return Outcome(record.result, replayed=True)
        now = sub.at or self._clock()
        if state.last_time is not None and now < state.last_time:
            now = state.last_time  # event times never run backwards within a ledger
        ctx = Context(
            sub.account,
            now,
            lambda: self._random(20),
            lambda serial: self._license_key_hash(sub.account, serial),
            **({"open_sealed": self._personal.opener(sub.account)} if self._personal else {}),
        )
        view = CommandView(state.view)
        decision = sub.command.decide(view, ctx)
        frontier = state.frontier.copy()
        seal = self._personal.seal if self._personal else None
        events, rows, nodes = append_drafts(
            view, frontier, sub, decision.drafts, format_time(now), self._random, seal
        )
        view.commit()
        state.frontier = frontier
        state.rows.extend(rows)
        state.nodes.extend(nodes)
        state.last_time = now if events else state.last_time
        if key:
            first = events[0].seq if events else None
            state.idempotency[key] = sql.IdempotencyRecord(
                request_hash, first, len(events), decision.result
            )
        return Outcome(decision.result, tuple(events))

    def _flush(
        self, conn: sa.Connection, account: str, state: _Account, items: list[_Item]
    ) -> None:
        sql.insert_events(conn, account, state.rows)
        sql.insert_nodes(conn, account, state.nodes)
        if state.frontier.size != state.head_size:
            sql.set_head_size(conn, account, state.head_size, state.frontier.size)
        state.view.flush()
        stamp = format_time(self._clock())
        sql.insert_idempotency(
            conn, account, [(key, rec, stamp) for key, rec in state.idempotency.items()]
        )
        asked = any(
            isinstance(i.request, SignRequest) and i.request.account == account and i.error is None
            for i in items
        )
        unsigned = state.frontier.size - state.signed_size
        # signed_size is -1 before the first checkpoint: count events, not sizes.
        since_signed = state.frontier.size - max(state.signed_size, 0)
        if (asked and unsigned > 0) or since_signed >= self.policy.every_events:
            state.checkpoint = self._sign(conn, account, state, stamp)
        for item in items:
            if isinstance(item.request, SignRequest) and item.request.account == account:
                size = state.frontier.size
                item.outcome = Outcome({"account": account, "size": size})

    def _sign(self, conn: sa.Connection, account: str, state: _Account, stamp: str) -> str | None:
        """Sign the batch's tree; None if another process already signed that size.

        ``state.frontier`` is the head read under the account's lock (``_open``), so
        the checkpoint is of the current tree; the stored checkpoints are read under
        that lock too, since the cached ``signed_size`` does not see other processes.
        """
        stored = sql.read_checkpoint(conn, account)
        if stored is not None and stored.size >= state.frontier.size:
            if stored.size > state.frontier.size or stored.root != state.frontier.root():
                raise LedgerTampered(
                    f"checkpoint {stored.size} of {account} does not match the tree of "
                    f"size {state.frontier.size} being signed",
                    seq=min(stored.size, state.frontier.size),
                )
            state.signed_size = stored.size
            return None
        checkpoint = Checkpoint(state.origin, state.frontier.size, state.frontier.root())
        signer = self._signers.ledger_signer(state.origin)
        note = sign_checkpoint(checkpoint, [signer])
        verifier = signer.verifier
        sql.record_verifier_key(conn, account, verifier.key_id.hex(), verifier.key_string(), stamp)
        sql.insert_checkpoint(
            conn, account, sql.StoredCheckpoint(checkpoint.size, checkpoint.root, note, stamp)
        )
        state.signed_size = checkpoint.size
        return note

    def _remember(self, accounts: dict[str, _Account]) -> None:
        for account, state in accounts.items():
            cached = self._cache[account]
            cached.frontier = state.frontier
            cached.last_time = state.last_time
            cached.signed_size = state.signed_size
            if state.checkpoint is not None:
                cached.signed_at = time.monotonic()
                if self._sidecar is not None:
                    # Written only after the commit: a sidecar ahead of the store
                    # would make the store refuse to sign.
                    self._sidecar.write(account, state.checkpoint)


def _accounts_of(items: list[_Item]) -> set[str]:
    """Every account whose ledger or audit head the batch of ``items`` may move."""
    accounts: set[str] = set()
    for item in items:
        request = item.request
        if isinstance(request, AuditRequest):
            accounts.update(entry.account for entry in request.entries)
        else:
            accounts.add(request.account)
    return accounts


def _changed_accounts(accounts: dict[str, _Account], items: list[_Item]) -> set[str]:
    """The accounts whose ledger, projection or service rows the batch changed (audit
    entries alone are not announced: no writer caches them)."""
    changed = {a for a, state in accounts.items() if state.rows or state.checkpoint}
    changed.update(
        item.request.account
        for item in items
        if type(item.request) not in _LEDGER_KINDS and item.error is None
    )
    return changed


_AUDITED: dict[type, Callable[[Any], tuple[AuditEntry, ...]]] = {
    AuditRequest: lambda request: request.entries,
    SignRequest: lambda request: (),
}
"""The request kinds whose audit entries are not their own ``audit_entry``: the
decisions an ``AuditRequest`` carries, and none for a ``SignRequest``."""
_LEDGER_KINDS = frozenset({Submission, SignRequest, AuditRequest})
"""The request kinds that are not ``Operation``s."""


def _in_savepoint(conn: sa.Connection, apply: Callable[[sa.Connection], Any]) -> Any:
    """``apply(conn)``; if it raises a ``TenureError``, undo its writes and re-raise."""
    raw.execute(conn, "SAVEPOINT tenure_write", {}).close()
    try:
        result = apply(conn)
    except TenureError:
        raw.execute(conn, "ROLLBACK TO SAVEPOINT tenure_write", {}).close()
        raise
    finally:
        raw.execute(conn, "RELEASE SAVEPOINT tenure_write", {}).close()
    return result
