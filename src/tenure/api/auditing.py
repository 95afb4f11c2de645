"""Auditing on the HTTP side: every decision and every mutation request, allowed or
denied, gets an audit entry before its answer leaves (fail closed).

Three paths, one rule — no answer without a committed entry:

- A request that reaches the ledger writer (a ``Submission`` or an ``Operation``) is
  audited by the writer in the transaction that commits its events; the route marks
  the request as audited (``mark_audited``).
- Decisions (``/v1/check``) are chained by ``AuditBatcher``: entries gathered on the
  event loop go to the writer together, and each check waits for the commit that
  holds its entry, so many decisions share one fsync.
- Everything else under ``/v1`` that is not a read — refused by role, by validation,
  not found, a catalog dry run — is audited by ``AuditMiddleware`` from the status
  and problem code, before the response starts.

If an audit write fails, the request fails with 503 ``storage_unavailable``.
Requests without valid credentials have no principal and no account: they are not
audited here (the access log has them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio.from_thread
import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenure.domain.timefmt import format_time
from tenure.errors import StorageUnavailable, TenureError
from tenure.service.apikeys import Principal
from tenure.service.audit import AuditEntry
from tenure.service.ledger import AuditRequest, Ledger, Outcome, append_audit

_log = logging.getLogger("tenure.audit")

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def set_principal(request: Request, principal: Principal) -> None:
    """Remember who is asking, for the audit entry of a refusal."""
    request.state.principal = principal


def mark_audited(request: Request) -> None:
    """The writer (or the batcher) has audited this request: the middleware skips it."""
    request.state.audited = True


def note_problem(request: Request, code: str, field: str | None) -> None:
    """Remember the problem code the request is answered with (for its audit entry)."""
    request.state.problem = (code, field)


def route_action(request: Request) -> str:
    """The action an audit entry names for this request: its route's name."""
    route = request.scope.get("route")
    action: str = getattr(route, "name", None) or request.url.path
    return action


@contextmanager
def _audited_by_writer(request: Request) -> Iterator[None]:
    """The writer audits every request it answers, refusals included, except when its
    transaction failed (``StorageUnavailable``): mark the request accordingly."""
    try:
        yield
    except StorageUnavailable:
        raise
    except TenureError:
        mark_audited(request)
        raise
    mark_audited(request)


def execute_audited(request: Request, item: Any) -> Outcome:
    """Run ``item`` in the ledger writer, which audits it in its transaction (for code
    in the thread pool: the use cases)."""
    ledger: Ledger = request.app.state.ledger
    with _audited_by_writer(request):
        return ledger.execute(item)


def writer_of(request: Request) -> Callable[[Any], Outcome]:
    """Submits to the ledger writer from the thread pool, which audits the request
    (``execute_audited``): the ``Submit`` the use cases take."""
    return partial(execute_audited, request)


def recorder_of(request: Request) -> Callable[[Sequence[AuditEntry]], None]:
    """Chains audit entries through the ``AuditBatcher`` from the thread pool,
    returning once they are durable, and marks the request audited: the ``Record``
    the token use cases take."""
    batcher: AuditBatcher = request.app.state.audit

    def record(entries: Sequence[AuditEntry]) -> None:
        anyio.from_thread.run(batcher.record, entries)
        mark_audited(request)

    return record


class AuditBatcher:
    """Chains decisions' audit entries in batches; ``record`` returns once durable.

    Entries recorded during one turn of the event loop go to the writer as one
    ``AuditRequest``; the writer commits whatever is queued in one transaction.
    With ``max_batch`` 1 each entry is written in a transaction of its own instead
    (no batching: the slow path, kept for comparison in the benchmarks). With
    ``synced`` False (``TENURE_DECISION_SYNC=os``) the commits of these entries do
    not wait for the disk (``AuditRequest.synced``).
    """

    def __init__(self, ledger: Ledger, max_batch: int = 1000, synced: bool = True) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._synced = synced
        self._pending: list[tuple[Sequence[AuditEntry], asyncio.Future[None]]] = []
        self._pending_entries = 0
        self._scheduled = False

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Chain ``entries``; raises ``StorageUnavailable`` if they were not committed."""
        if self._max_batch == 1:
            await run_in_threadpool(self._write_each, entries)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((entries, done))
        self._pending_entries += len(entries)
        if self._pending_entries >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await done

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending, self._pending_entries = self._pending, [], 0
        if not batch:
            return
        entries = tuple(e for entries, _ in batch for e in entries)
        request = AuditRequest(entries, self._synced)
        loop = asyncio.get_running_loop()
        try:
            future = self._ledger.submit(request)
        except RuntimeError as exc:  # the writer has stopped
            _settle(batch, exc)
            return

        def _done(finished: Future[Outcome]) -> None:
            loop.call_soon_threadsafe(_settle, batch, finished.exception())

        future.add_done_callback(_done)

    def _write_each(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            try:
                with self._ledger.store.write() as tx:
                    append_audit(tx, [entry], format_time(datetime.now(UTC)))
            except Exception as exc:
                raise StorageUnavailable(f"the audit entry was not committed: {exc}") from exc


def _settle(
    batch: list[tuple[Sequence[AuditEntry], asyncio.Future[None]]], error: BaseException | None
) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        elif isinstance(error, StorageUnavailable):
            done.set_exception(error)
        else:
            failed = StorageUnavailable(f"the audit entries were not committed: {error}")
            done.set_exception(failed)


def _refusal_entry(scope: Scope, status: int) -> AuditEntry | None:
    state = scope.get("state") or {}
    principal = state.get("principal")
    if principal is None:
        return None
    route = scope.get("route")
    action = getattr(route, "name", None) or f"{scope['method']} {scope['path']}"
    params = scope.get("path_params") or {}
    target = next(iter(params.values()), None) if params else None
    code, field = state.get("problem") or (("ok" if status < 400 else f"http_{status}"), None)
    detail: dict[str, Any] = {"status": status}
    if field:
        detail["field"] = field
    return AuditEntry(
        principal.account,
        principal.id,
        principal.role,
        getattr(principal, "auth", "api_key"),
        action,
        "allowed" if status < 400 else "denied",
        code,
        target=str(target)[:80] if target is not None else None,
        detail=detail,
    )


_UNAVAILABLE = orjson.dumps(
    {
        "type": "https://tenure.dev/problems/storage_unavailable",
        "title": "storage unavailable",
        "status": 503,
        "detail": "the request could not be audited, so it was not answered; retry later",
    }
)


class AuditMiddleware:
    """Audits the ``/v1`` requests that are not reads and that nothing else audited."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _READS
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        swallowed = False

        async def send_after_audit(message: Message) -> None:
            nonlocal swallowed
            if swallowed:
                return
            if message["type"] == "http.response.start" and not state.get("audited"):
                entry = _refusal_entry(scope, message["status"])
                if entry is not None:
                    try:
                        await _batcher(scope).record([entry])
                    except StorageUnavailable as exc:
                        _log.error("audit write failed; answering 503: %s", exc)
                        swallowed = True
                        await _send_unavailable(send)
                        return
            await send(message)

        await self.app(scope, receive, send_after_audit)


def _batcher(scope: Scope) -> AuditBatcher:
    batcher: AuditBatcher = scope["app"].state.audit
    return batcher


async def _send_unavailable(send: Callable[[Message], Awaitable[None]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(_UNAVAILABLE)).encode()),
                (b"retry-after", str(StorageUnavailable.retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAVAILABLE})
