"""The catalog API (SPEC "HTTP API essentials"): ``POST /v1/catalog`` → the diff.
The use cases are ``tenure.service.handlers.catalog``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api import problems
from tenure.api.approval_routes import gated_route
from tenure.api.auditing import note_problem, writer_of
from tenure.api.auth import require
from tenure.api.bodies import parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import NEEDS_APPROVAL, answers
from tenure.domain.catalog import CatalogDiff, CatalogDiffJson
from tenure.errors import InvalidInput
from tenure.service.apikeys import Principal
from tenure.service.catalog import MAX_CATALOG_BYTES
from tenure.service.handlers import catalog as cases
from tenure.service.views import ApprovalPending

router = APIRouter(prefix="/v1", tags=["catalog"], responses=problem_responses(401, 403))

MEDIA_TYPES = frozenset(
    {
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml",
        "text/plain",
        "application/json",
    }
)
DRAIN_LIMIT = 8 * MAX_CATALOG_BYTES
"""An oversized body is read (and dropped) up to this size before the 413 is sent:
a client still writing when the server closes the connection would see a reset
instead of the answer. Beyond it the connection is simply closed."""


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    """The body, or ``_TooLarge`` once it exceeds ``MAX_CATALOG_BYTES``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_LIMIT:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_LIMIT:
            raise _TooLarge
        if size <= MAX_CATALOG_BYTES:
            chunks.append(chunk)
    if size > MAX_CATALOG_BYTES:
        raise _TooLarge
    return b"".join(chunks)


def _unsupported_media_type(request: Request) -> JSONResponse | None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media_type or media_type in MEDIA_TYPES:
        return None
    note_problem(request, "unsupported_media_type", "content-type")
    return problems.problem(
        415,
        "unsupported_media_type",
        "unsupported media type",
        f"send the catalog as application/yaml (or text/plain), not {media_type}",
        field="content-type",
    )


def _apply(
    request: Request, caller: Principal, body: bytes, dry_run: bool
) -> CatalogDiff | ApprovalPending:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the catalog must be UTF-8 text", field="catalog") from None
    runtime = request.app.state.runtime
    submit = writer_of(request)
    return cases.apply_catalog(submit, runtime.store, runtime.settings, caller, text, dry_run)


@router.post(
    "/catalog",
    name="apply_catalog",
    summary="Diff and apply the catalog",
    response_model=None,
    responses={
        **answers(CatalogDiffJson, "The diff (applied unless dry_run)"),
        **NEEDS_APPROVAL,
        **problem_responses(400, 409, 413, 415, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": {"type": "string"}}
                for media_type in ("application/yaml", "text/plain")
            },
        }
    },
)
async def post_catalog(
    request: Request,
    caller: Annotated[Principal, Depends(require("catalog.apply"))],
    dry_run: bool = False,
) -> Any:
    """Diff the catalog YAML in the body against the account's products and plans and,
    unless ``dry_run``, append one event per change (owner or admin).

    Answers ``{"products": [...], "plans": [...], "changes": n}``; 400 naming the
    field at fault, 409 for what the state forbids (dropping a feature), 413 for a
    body over 1 MiB, 415 for a body that is not YAML or plain text. A new version of
    a plan with licenses that takes entitlements away needs a second principal's
    approval: 202 ``{"approval": {...}}`` (docs/approvals.md).
    """
    unsupported = _unsupported_media_type(request)
    if unsupported is not None:
        return unsupported
    try:
        body = await _read_body(request)
    except _TooLarge:
        note_problem(request, "payload_too_large", "body")
        return problems.problem(
            413,
            "payload_too_large",
            "payload too large",
            f"the catalog must be at most {MAX_CATALOG_BYTES} bytes",
        )
    # Parsing up to 1 MiB of YAML and waiting for the ledger both block: not on the loop.
    diff = await run_in_threadpool(_apply, request, caller, body, dry_run)
    if isinstance(diff, ApprovalPending):
        return JSONResponse(diff.to_json(), status_code=202)
    return JSONResponse(diff.to_json())


class RetireIn(BaseModel):
    """Why the plan is retired (recorded with the request)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


@router.post("/plans/{plan}/retire", **gated_route(400, 404, 503, body=RetireIn))
async def retire_plan(
    request: Request,
    caller: Annotated[Principal, Depends(require("catalog.apply"))],
    plan: str,
) -> JSONResponse:
    """Ask to retire ``plan`` (``{"reason"}``) → 202 ``{"approval": {...}}``: once a
    second principal approves, ``plan.retired`` is appended and the plan issues no
    new licenses (its licenses keep working). 404 for an unknown plan."""
    body = await parse_body(request, RetireIn)
    runtime = request.app.state.runtime
    pending = await run_in_threadpool(
        cases.retire_plan, writer_of(request), runtime.store, runtime.settings, caller, plan,
        body.reason,
    )  # fmt: skip
    return JSONResponse(pending.to_json(), status_code=202)
