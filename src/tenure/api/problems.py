"""RFC 9457 problem details: the one place where error codes meet HTTP statuses.

Database errors that reach a route are mapped here too (``tenure.store.failures``):
a database that cannot be reached (stopped, restarting, out of connections) is 503
``storage_unavailable`` with ``Retry-After``, for reads and writes alike; a value it
refuses is 400 ``unstorable_value``. Any other database error stays a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tenure.api.auditing import note_problem
from tenure.api.bodies import PayloadTooLarge
from tenure.api.schemas import Problem
from tenure.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidLicenseFile,
    InvalidProof,
    NotFound,
    StateUnverified,
    StorageUnavailable,
    StoreBehindCheckpoint,
    TenureError,
    TokenRejected,
    Unauthenticated,
    UnstorableValue,
)
from tenure.store.failures import database_errors, is_unavailable, is_unstorable

_log = logging.getLogger("tenure.api")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://tenure.dev/problems/"
PROBLEM_SCHEMA_REF = f"#/components/schemas/{Problem.__name__}"
"""Where the error responses find ``Problem`` (``tenure.app.factory`` puts it there)."""

_MEANING = {
    400: "Invalid input: a malformed body, parameter or header; `field` names it",
    401: "No valid credentials",
    403: "The caller's role (or License credential) does not allow this",
    404: "Not found in the caller's account",
    409: "The current state forbids it (or the Idempotency-Key was used for another request)",
    413: "The body is too large",
    415: "Unsupported media type",
    429: "Too many requests from this client address or credential (or too many failed "
    "authentications from this address); retry after `Retry-After` seconds",
    503: "Storage unavailable: the database cannot be reached, the write or its audit entry "
    "was not committed, or the store is behind its last signed checkpoint; nothing was "
    "written, a retry (after `Retry-After` seconds) is safe",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "the scheme to authenticate with",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "seconds until the rate limit lets a request through",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
    503: {
        "Retry-After": {
            "description": "seconds to wait before a retry, when the database was unavailable",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}

_STATUS: list[tuple[type[TenureError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (StoreBehindCheckpoint, 503),
    (StateUnverified, 503),
    (StorageUnavailable, 503),
    (PayloadTooLarge, 413),
    (TokenRejected, 400),
    (InvalidLicenseFile, 400),
    (InvalidInput, 400),
    (InvalidProof, 400),
]


def status_of(error: TenureError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problems a route answers with: the one place that
    documents them (``responses=problem_responses(400, 404)``)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _MEANING[status],
            "content": {PROBLEM: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        documented[status] = response
    return documented


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if code == StorageUnavailable.code:
        headers["Retry-After"] = str(StorageUnavailable.retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _database_problem(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a database error raised in a route; re-raises (a 500) an error
    that is neither the database being unavailable nor a value it refused."""
    if is_unavailable(exc):
        _log.warning("the database is unavailable: %s", exc)
        error: TenureError = StorageUnavailable(
            "the database is unavailable; retry after Retry-After seconds"
        )
    elif is_unstorable(exc):
        error = UnstorableValue("a value of the request cannot be stored")
    else:
        raise exc
    note_problem(request, error.code, None)
    return problem(status_of(error), error.code, error.code.replace("_", " "), error.message)


def install(app: FastAPI) -> None:
    @app.exception_handler(TenureError)
    async def _tenure(request: Request, exc: TenureError) -> JSONResponse:
        extra = {"field": exc.context["field"]} if exc.context.get("field") else {}
        note_problem(request, exc.code, extra.get("field"))
        status = status_of(exc)
        return problem(status, exc.code, exc.code.replace("_", " "), exc.message, **extra)

    for database_error in database_errors():
        app.add_exception_handler(database_error, _database_problem)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        note_problem(request, "invalid_input", field)
        return problem(
            400, "invalid_input", "invalid input", f"{field}: {first['msg']}", field=field
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        note_problem(request, code, None)
        return problem(exc.status_code, code, code.replace("_", " "), str(exc.detail))
