"""Entitlement checks (SPEC "Decisions and the audit log"): ``POST /v1/check`` and
``POST /v1/check/batch``.

The answer's shape is a contract that SDKs in other languages read. Callers
authenticate with ``Authorization: Bearer <api key>`` (any role; they may check any
license of their account) or ``Authorization: License <license key>`` (an
application: it may check only that one license).

A single check runs on the event loop, not in the thread pool: its reads (the
credential, the license, its plan version, the latest checkpoint) take tens of
microseconds and never wait for a writer (SQLite WAL), while a hop to a worker
thread and back, and the GIL hand-offs that come with forty of them, cost more than
the reads. Its rows come from the process's read model when they were kept
(``tenure.service.read_model``). Batches, up to 1,000 decisions, are decided on the
loop when every row they need is kept, else in the thread pool on one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tenure.api.auditing import mark_audited
from tenure.api.auth import (
    API_KEY_OR_LICENSE,
    CheckCaller,
    cached_check_caller,
    check_caller,
    key_or_license,
)
from tenure.api.bodies import documented
from tenure.api.check_bodies import (
    KNOWN_SIZE,
    BatchBody,
    CheckBody,
    Question,
    QuestionBody,
    Questions,
    batch_body,
    check_body,
)
from tenure.api.parameters import check_parameters
from tenure.api.problems import problem_responses
from tenure.api.schemas import answers
from tenure.errors import InvalidInput
from tenure.observability import metrics, tracing
from tenure.ops import counters
from tenure.service import checks
from tenure.service.audit import AuditEntry, short_hash
from tenure.service.checks import MAX_BATCH, CheckAnswer, CheckItem, CheckResults, Decided
from tenure.service.ledger import SignRequest
from tenure.service.read_model import CheckReadModel

router = APIRouter(prefix="/v1", tags=["check"], responses=problem_responses(400, 401, 403, 503))


def _known_size(body: CheckBody | BatchBody | Question | Questions) -> int | None:
    if body.known_size is not None and not body.proof:
        raise InvalidInput('known_size needs "proof": true', field="known_size")
    return body.known_size


Checker = Annotated[CheckCaller, Depends(key_or_license("check"))]


_BATCH_SCHEMA = {
    **API_KEY_OR_LICENSE,
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["checks"],
                    "properties": {
                        "checks": {
                            "type": "array",
                            "maxItems": MAX_BATCH,
                            "items": QuestionBody.model_json_schema(),
                        },
                        "proof": {"type": "boolean", "default": False},
                        "known_size": {
                            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                            "description": KNOWN_SIZE,
                        },
                    },
                }
            }
        },
    },
}


@router.post(
    "/check",
    response_model=None,
    responses=answers(CheckAnswer, "The decision"),
    openapi_extra={**documented(CheckBody), **API_KEY_OR_LICENSE},
)
async def post_check(request: Request, caller: Checker) -> Response:
    """Decide ``{"license", "entitlement", "fingerprint"?}`` now.

    Answers 200 ``{"allowed", "reason", "value", "status", "expires_at",
    "checkpoint": {"size", "root"}}`` plus ``"serial"`` when the license was named by
    its serial; an unknown license is ``allowed: false`` with reason
    ``unknown_license``. 400 naming the field for a malformed body or entitlement key,
    401 without credentials, 403 when a License credential asks about another license.
    """
    return await _decide_one(request, caller)


async def _plain_post_check(request: Request) -> Response:
    """``post_check`` as a plain Starlette endpoint: what FastAPI's dependency
    machinery does for it (the parameter check, the credential) done here, in the
    same order; the credential and the rows from the read model when it is on."""
    check_parameters(request)
    model: CheckReadModel = request.app.state.read_model
    if not model.enabled:
        return await _decide_one(request, check_caller(request, "check"))
    caller, generation = cached_check_caller(request, "check", model)
    return await _decide_one(request, caller, Cached(model, generation))


@dataclass(frozen=True, slots=True)
class Cached:
    """The read model a check decides in, and the read generation of the caller's
    account it read first (``tenure.service.read_model``)."""

    model: CheckReadModel
    generation: int


PLAIN_CHECK = Route("/v1/check", _plain_post_check, methods=["POST"], name="post_check")
"""``POST /v1/check`` as the app dispatches it (``direct_check``); the FastAPI route
above stays for the OpenAPI document and for requests the dispatcher leaves to the
router."""


def direct_check(
    middleware: Sequence[Middleware], exception_handlers: Mapping[Any, Callable[..., Any]]
) -> ASGIApp:
    """``POST /v1/check`` through the app's own middleware (``middleware``, outermost
    first) and exception handlers, as Starlette would stack them, but without the
    router's scan of every route, FastAPI's wrappers and its dependency machinery: a
    check is the call every protected application makes (docs/benchmarks.md, "Checks
    at framework speed"). The scope names the route, as the router would: the audit
    action, the metrics' route label and the trace span read it there."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = PLAIN_CHECK
        scope["endpoint"] = _plain_post_check
        scope["path_params"] = {}
        response = await _plain_post_check(Request(scope, receive, send))
        await response(scope, receive, send)

    error_handler = None
    handlers = {}
    for key, handler in exception_handlers.items():
        if key in (500, Exception):
            error_handler = handler
        else:
            handlers[key] = handler
    stack = [
        Middleware(ServerErrorMiddleware, handler=error_handler),
        *middleware,
        Middleware(ExceptionMiddleware, handlers=handlers),
    ]
    app: ASGIApp = endpoint
    for cls, args, kwargs in reversed(stack):
        app = cls(app, *args, **kwargs)
    return app


async def _decide_one(
    request: Request, caller: CheckCaller, cached: Cached | None = None
) -> Response:
    body = await check_body(request)
    caller.require_may_check(body.license, "license")
    known_size = _known_size(body)
    runtime = request.app.state.runtime
    item = body.item()
    with tracing.span("check.decide"):
        if body.proof:
            ledger = request.app.state.ledger
            decided = await run_in_threadpool(
                checks.check_with_proof,
                runtime.store,
                caller.account,
                item,
                datetime.now(UTC),
                runtime.state_guard,
                lambda: ledger.execute(SignRequest(caller.account)),
                known_size,
            )
        elif cached is not None:
            decided = cached.model.check(
                caller.account, item, datetime.now(UTC), runtime.state_guard, cached.generation
            )
        else:
            decided = checks.check(
                runtime.store, caller.account, item, datetime.now(UTC), runtime.state_guard
            )
    _observe(caller.account, [decided])
    await _audit(request, caller, [item], [decided])
    return _json(decided.answer)


@router.post(
    "/check/batch",
    response_model=None,
    responses=answers(CheckResults, "The decisions, in the order asked"),
    openapi_extra=_BATCH_SCHEMA,
)
async def post_check_batch(request: Request, caller: Checker) -> Response:
    """Decide up to 1000 ``{"checks": [...]}`` against one snapshot of the state.

    Answers ``{"results": [...]}`` in the order asked, each as ``POST /v1/check``
    answers; with ``"proof": true`` also ``"proof"``: every row the decisions read,
    proven under one signed state root. One bad item fails the whole batch with 400
    naming ``checks[i].field``.
    """
    body = await batch_body(request)
    asked: Sequence[QuestionBody | Question] = body.checks
    for index, question in enumerate(asked):
        caller.require_may_check(question.license, f"checks[{index}].license")
    known_size = _known_size(body)
    runtime = request.app.state.runtime
    items = [question.item() for question in asked]
    now = datetime.now(UTC)
    model: CheckReadModel = request.app.state.read_model
    kept = generation = None
    if model.enabled and not body.proof:
        # The generation before any row is read (the credential's read came first).
        generation = runtime.store.generation(caller.account)
        kept = model.check_many(caller.account, items, now, runtime.state_guard, generation)
    with tracing.span("check.decide", {"tenure.checks": len(items)}):
        if kept is not None:
            decided = kept
        elif body.proof:
            ledger = request.app.state.ledger
            decided, proof = await run_in_threadpool(
                checks.check_many_with_proof,
                runtime.store,
                caller.account,
                items,
                now,
                runtime.state_guard,
                lambda: ledger.execute(SignRequest(caller.account)),
                known_size,
            )
        else:
            decided = await run_in_threadpool(
                checks.check_many, runtime.store, caller.account, items, now, runtime.state_guard
            )
            if generation is not None:
                model.keep_many(caller.account, items, decided, generation)
    _observe(caller.account, decided)
    await _audit(request, caller, items, decided)
    results = CheckResults(results=[d.answer for d in decided])
    if body.proof:
        results["proof"] = proof
    return _json(results)


def _observe(account: str, decided: list[Decided]) -> None:
    """Count the decisions (Prometheus) and the denied ones (per-minute counters)."""
    metrics.observe_decisions(d.answer for d in decided)
    denied = sum(1 for d in decided if not d.answer["allowed"])
    if denied:
        counters.count(account, counters.CHECK_DENIED, denied)


def _json(answer: CheckAnswer | CheckResults) -> Response:
    # The answers hold only JSON types: skip FastAPI's jsonable_encoder pass.
    return Response(orjson.dumps(answer), media_type="application/json")


def _entry(caller: CheckCaller, item: CheckItem, decided: Decided) -> AuditEntry:
    who = caller.principal
    detail = {"entitlement": item.entitlement}
    if item.fingerprint is not None:
        detail["fingerprint"] = short_hash(item.fingerprint)
    answer = decided.answer
    return AuditEntry(
        who.account,
        who.id,
        who.role,
        who.auth,
        "check",
        "allowed" if answer["allowed"] else "denied",
        answer["reason"],
        # An unknown license appears by a hash: it may be a mistyped key.
        target=decided.serial or short_hash(item.license),
        detail=detail,
    )


async def _audit(
    request: Request, caller: CheckCaller, items: list[CheckItem], decided: list[Decided]
) -> None:
    """Chain the decisions' entries; the answers leave only once they are durable."""
    entries = [_entry(caller, item, d) for item, d in zip(items, decided, strict=True)]
    await request.app.state.audit.record(entries)
    mark_audited(request)
