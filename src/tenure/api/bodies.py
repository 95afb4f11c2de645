"""JSON request bodies: read with a size limit, validated, errors naming the field.

Routes parse their bodies here instead of letting FastAPI do it, so that every bad
body — not JSON, not an object, too large, a missing or wrong field, a string no
backend can store — is one ``InvalidInput`` whose ``field`` is a path in the body
(``checks[3].license``), and so that the same limits hold everywhere.
``documented(model)`` puts the model's schema back into the OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from tenure.domain.events import error_path
from tenure.domain.storable import first_unstorable, spell
from tenure.errors import InvalidInput

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a body may have (orjson has no such limit
short of its own 1024): no request of the API needs more than a few levels."""
MAX_STRING_CHARS = 64 * 1024
"""Longest string (value or member name) a body may hold, whatever its model says."""
BodyT = TypeVar("BodyT", bound=BaseModel)


class PayloadTooLarge(InvalidInput):
    """A body over the route's limit: 413 (``tenure.api.problems``)."""

    code = "payload_too_large"


async def parse_body(request: Request, model: type[BodyT], limit: int = MAX_BODY_BYTES) -> BodyT:
    """The body as ``model``. An empty body is an empty object, so that a missing
    required field is named rather than the body.

    Raises ``PayloadTooLarge`` over ``limit`` bytes, and ``InvalidInput`` naming the
    field for a body that is not a JSON object, nests deeper than ``MAX_JSON_DEPTH``,
    holds a string no backend can store (a NUL character, invalid UTF-8 or a lone
    surrogate, over ``MAX_STRING_CHARS``), or does not fit ``model``."""
    too_large = PayloadTooLarge(f"the body must be at most {limit} bytes", field="body")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_large
    try:
        data = orjson.loads(raw) if bytes(raw).strip() else {}
    except orjson.JSONDecodeError as exc:
        raise _not_json(bytes(raw), exc) from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidInput(f"the body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
    _check_storable(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = spell(error_path(data, first["loc"]))
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from None


def _check_storable(data: Any) -> None:
    """``InvalidInput`` naming the first string of ``data`` no backend can store."""
    found = first_unstorable(data, MAX_STRING_CHARS)
    if found is not None:
        path, problem = found
        field = spell(path)
        raise InvalidInput(f"{field} {problem}", field=field)


def _not_json(raw: bytes, error: orjson.JSONDecodeError) -> InvalidInput:
    """Why orjson refused ``raw``, saying where: ``line L column C (char N)`` of a
    syntax error, as Python's own parser words it, or the byte that is not UTF-8. It
    refuses invalid UTF-8 and lone surrogates (``"\\ud800"``) like any other syntax
    error; then the standard parser, which keeps both (as surrogates), finds the field
    that holds one."""
    if "surrogate" in error.msg or "UTF-8" in error.msg:
        try:
            _check_storable(json.loads(raw.decode("utf-8", "surrogateescape")))
        except InvalidInput as exc:
            return exc
        except (ValueError, RecursionError):
            pass
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        where = f"line {line} column {column} (byte {exc.start})"
        return InvalidInput(f"the body is not UTF-8: invalid byte at {where}", field="body")
    return InvalidInput(f"the body is not JSON: {error}", field="body")


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed JSON value (a scalar: 0, ``{}``:
    1). Iterative, so that no nesting can exhaust the stack."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            pending.extend((child, depth + 1) for child in item)
    return deepest


def documented(model: type[BaseModel], *parameters: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a body parsed by ``parse_body``, and the operation's
    ``parameters`` that the route reads itself (headers such as ``Idempotency-Key``)."""
    schema = model.model_json_schema()
    extra: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
    }
    if parameters:
        extra["parameters"] = list(parameters)
    return extra
