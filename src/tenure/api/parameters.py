"""Path and query parameters every backend can store, checked before any route runs.

``check_parameters`` is a dependency of the whole app (``create_app``), so it runs for
every route, before authentication and before the route's own parameters are
parsed. A parameter that holds a NUL character, is not valid UTF-8 once
percent-decoded, or is longer than ``MAX_PARAMETER_CHARS`` is a 400 ``invalid_input``
naming it: PostgreSQL would refuse it in a query (a 500) and in the audit entry of
the refusal (a failed write batch), where SQLite would store it.

The ASGI server has already decoded the path and the query string, replacing bytes
that are not UTF-8 with U+FFFD, so UTF-8 is checked on the raw bytes
(``raw_path``, ``query_string``).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from fastapi import Request

from tenure.domain.storable import text_problem
from tenure.errors import InvalidInput

MAX_PARAMETER_CHARS = 1024
"""Longest path or query parameter value. Ids, codes, cursors and filters are far
shorter; the longest legitimate one, a legacy id (``docs/import.md``), has at most
200 characters."""


def check_parameters(request: Request) -> None:
    """Refuse the request (``InvalidInput`` naming the parameter) when a path or query
    parameter cannot be stored; see the module doc. Query parameter names are
    checked too: a bad one is reported as ``query``."""
    _check_query(request.scope.get("query_string", b""))
    _check_path(request)


def _check_query(query: bytes) -> None:
    for pair in query.split(b"&"):
        if pair:
            raw_name, _, raw_value = pair.partition(b"=")
            name = _decoded(raw_name, "query")
            _decoded(raw_value, name)


def _decoded(raw: bytes, field: str) -> str:
    """A percent-encoded query component as text; ``InvalidInput`` naming ``field`` if
    it cannot be stored."""
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{field} is not valid UTF-8", field=field) from None
    _check_text(text, field)
    return text


def _check_path(request: Request) -> None:
    values = {k: v for k, v in request.path_params.items() if isinstance(v, str)}
    raw_path = request.scope.get("raw_path")
    if raw_path is not None:
        try:
            unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            # The server decoded the bad bytes to U+FFFD: the parameter holding one.
            field = next((k for k, v in values.items() if "\ufffd" in v), "path")
            raise InvalidInput(f"{field} is not valid UTF-8", field=field) from None
    for name, value in values.items():
        _check_text(value, name)


def _check_text(text: str, field: str) -> None:
    problem = text_problem(text, MAX_PARAMETER_CHARS)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}", field=field)
