"""JSON request bodies: read with a size limit, validated, errors naming the field.

Routes parse their bodies here instead of letting FastAPI do it, so that every bad
body — not JSON, not an object, too large, a missing or wrong field — is one
``InvalidInput`` whose ``field`` is a path in the body (``checks[3].license``), and
so that the same limits hold everywhere. ``documented(model)`` puts the model's
schema back into the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from tenure.domain.events import error_path
from tenure.errors import InvalidInput

MAX_BODY_BYTES = 1024 * 1024
BodyT = TypeVar("BodyT", bound=BaseModel)


async def parse_body(request: Request, model: type[BodyT], limit: int = MAX_BODY_BYTES) -> BodyT:
    """The body as ``model``. An empty body is an empty object, so that a missing
    required field is named rather than the body."""
    too_large = InvalidInput(f"the body must be at most {limit} bytes", field="body")
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
    except orjson.JSONDecodeError:
        raise InvalidInput("the body must be a JSON object", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _spell(error_path(data, first["loc"])) or "body"
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from None


def _spell(path: list[int | str]) -> str:
    """``["checks", 3, "license"]`` → ``checks[3].license``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name


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
