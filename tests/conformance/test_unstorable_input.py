"""A value a backend cannot store is refused at the edge: 400 naming the field, on
both backends, for every route.

PostgreSQL refuses a NUL character in text (SQLite stores it), and no driver can
encode a lone surrogate, so such a value used to answer 500 on PostgreSQL (and 404
or 201 on SQLite). Now every path parameter, query parameter and JSON or YAML body
string is checked before the route runs: no NUL, valid UTF-8, bounded length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

from support.server import Server

PROBLEM = "application/problem+json"
EMAIL = "it@example.test"


def _assert_refused(response: httpx.Response, field: str) -> None:
    request = f"{response.request.method} {response.request.url}"
    assert response.status_code == 400, f"{request} -> {response.status_code} {response.text}"
    assert response.headers["content-type"] == PROBLEM, request
    assert response.json()["field"] == field, f"{request} -> {response.text}"


# (method, path and query exactly as sent, JSON body or raw bytes, the field named)
VARIANTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/licenses?customer=a%00b", None, "customer"),
    ("GET", "/v1/licenses/TNR-%00", None, "serial"),
    ("GET", "/v1/licenses/TNR-%00/history", None, "serial"),
    ("GET", "/v1/customers/cus_%00", None, "customer"),
    ("GET", "/v1/audit?target=TNR-%00", None, "target"),
    ("GET", "/v1/licenses?%00=1", None, "query"),
    ("GET", "/v1/licenses?customer=%FF", None, "customer"),
    ("GET", "/v1/licenses/%FF%FE", None, "serial"),
    ("GET", "/v1/licenses?anything=" + "x" * 1025, None, "anything"),
    ("POST", "/v1/licenses/TNR-%00/suspend", {"reason": "r"}, "serial"),
    ("POST", "/v1/customers", {"name": "n", "email": EMAIL, "external_id": "a\x00"}, "external_id"),
    ("POST", "/v1/customers", {"name": "bad\x00", "email": EMAIL}, "name"),
    ("POST", "/v1/customers", b'{"name": "\\ud800", "email": "it@example.test"}', "name"),
    ("POST", "/v1/customers", b'{"name": "a\\udc00b", "email": "it@example.test"}', "name"),
    ("POST", "/v1/customers", b'{"name": "\xff", "email": "it@example.test"}', "name"),
    ("POST", "/v1/customers", {"name": "n", "email": EMAIL, "x\x00": 1}, "body"),
    ("POST", "/v1/check", {"license": "TNR-\x00", "entitlement": "seats"}, "license"),
    (
        "POST",
        "/v1/check/batch",
        {"checks": [{"license": "TNR-A", "entitlement": "seats\x00"}]},
        "checks[0].entitlement",
    ),
    ("POST", "/v1/apikeys", {"role": "agent", "name": "bad\x00"}, "name"),
]

CATALOG_WITH_NUL = b'products:\n  - code: studio\n    name: "Stu\\0dio"\n    features: []\n'


def test_every_unstorable_value_is_a_400_naming_its_field(server: Server) -> None:
    with server.client(server.owner_key()) as owner:
        for method, url, body, field in VARIANTS:
            raw = body if isinstance(body, bytes) else None
            json = None if isinstance(body, bytes) else body
            headers = {"Content-Type": "application/json"} if raw is not None else None
            response = owner.request(method, url, json=json, content=raw, headers=headers)
            _assert_refused(response, field)
        catalog = owner.post(
            "/v1/catalog", content=CATALOG_WITH_NUL, headers={"Content-Type": "application/yaml"}
        )
        _assert_refused(catalog, "products[0].name")


def _operations(server: Server) -> Iterator[tuple[str, str, dict[str, Any]]]:
    with server.client() as anonymous:
        document = anonymous.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _fill(path: str, target: str | None) -> str:
    """``path`` with ``target`` set to ``a%00b`` and every other parameter to ``x``."""
    return re.sub(r"\{(\w+)\}", lambda m: "a%00b" if m.group(1) == target else "x", path)


def test_a_nul_in_any_path_or_query_parameter_of_any_route_is_a_400(server: Server) -> None:
    """Every parameter the OpenAPI document declares, of every operation."""
    tried = 0
    with server.client(server.owner_key()) as owner:
        for method, path, operation in _operations(server):
            for parameter in operation.get("parameters", []):
                name, where = parameter["name"], parameter["in"]
                if where == "path":
                    response = owner.request(method, _fill(path, name))
                elif where == "query":
                    response = owner.request(method, f"{_fill(path, None)}?{name}=a%00b")
                else:
                    continue
                _assert_refused(response, name)
                tried += 1
    assert tried >= 30  # the document really declares the parameters swept here
