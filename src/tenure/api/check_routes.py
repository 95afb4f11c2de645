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
the reads. Batches, up to 1,000 decisions, still go to the thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Scope

from tenure.api.auditing import mark_audited
from tenure.api.auth import API_KEY_OR_LICENSE, CheckCaller, key_or_license
from tenure.api.bodies import documented, parse_body
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

router = APIRouter(prefix="/v1", tags=["check"], responses=problem_responses(400, 401, 403, 503))

Short = Annotated[str, Field(min_length=1, max_length=200)]


KNOWN_SIZE = (
    "with proof: the size of a checkpoint you verified before; the proof then carries "
    "the consistency proof from it (docs/state.md)"
)


class QuestionBody(BaseModel):
    """One question: may ``license`` (serial or key) use ``entitlement`` now?"""

    model_config = ConfigDict(extra="forbid")

    license: Short
    entitlement: Short
    fingerprint: Short | None = None

    def item(self) -> CheckItem:
        return CheckItem(self.license, self.entitlement, self.fingerprint)


class CheckBody(QuestionBody):
    """One question, and whether to prove the answer (docs/state.md, "Proofs")."""

    proof: Annotated[
        bool,
        Field(description="add the rows read and their proof under a signed state root"),
    ] = False
    known_size: Annotated[int | None, Field(ge=0, description=KNOWN_SIZE)] = None


class BatchBody(BaseModel):
    """Up to ``MAX_BATCH`` questions, answered in order."""

    model_config = ConfigDict(extra="forbid")

    checks: Annotated[list[QuestionBody], Field(max_length=MAX_BATCH)]
    proof: Annotated[
        bool,
        Field(description="add every row read and its proof under one signed state root"),
    ] = False
    known_size: Annotated[int | None, Field(ge=0, description=KNOWN_SIZE)] = None


def _known_size(body: CheckBody | BatchBody) -> int | None:
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


_check_caller = key_or_license("check")


async def _plain_post_check(request: Request) -> Response:
    """``post_check`` as a plain Starlette endpoint: what FastAPI's dependency
    machinery does for it (the parameter check, the credential) done here, in the
    same order."""
    check_parameters(request)
    return await _decide_one(request, await _check_caller(request))


class _PlainRoute(Route):
    """A Starlette route that names itself in the scope, as FastAPI's routes do: the
    audit action, the metrics' route label and the trace span read it there."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


PLAIN_ROUTES = [_PlainRoute("/v1/check", _plain_post_check, methods=["POST"], name="post_check")]
"""Routes served ahead of FastAPI's (``create_app`` puts them first). A check is the
call every protected application makes: matched first, it skips FastAPI's scan of the
included routers, its dependency resolution and its request and response wrappers
(docs/benchmarks.md, "Checks at framework speed"). The FastAPI route stays for the
OpenAPI document and is never reached."""


async def _decide_one(request: Request, caller: CheckCaller) -> Response:
    body = await parse_body(request, CheckBody)
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
    body = await parse_body(request, BatchBody)
    for index, item in enumerate(body.checks):
        caller.require_may_check(item.license, f"checks[{index}].license")
    known_size = _known_size(body)
    runtime = request.app.state.runtime
    items = [item.item() for item in body.checks]
    now = datetime.now(UTC)
    with tracing.span("check.decide", {"tenure.checks": len(items)}):
        if body.proof:
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
