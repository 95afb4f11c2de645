"""The bare endpoint the ``checks`` benchmark compares ``POST /v1/check`` against:
the framework's ceiling (issue 19).

Same server, same workers, no database: one plain Starlette ``POST /v1/check`` that
parses a small JSON body and answers a small JSON dict, ``POST /v1/check/batch`` that
parses ``{"checks": [...]}`` and answers one such dict per item, plus ``/healthz``.

    uvicorn --factory bench.bare_app:create_starlette_app
    granian --interface asgi --factory bench.bare_app:create_starlette_app
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_starlette_app() -> Starlette:
    async def bare_check(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"allowed": True, "license": body.get("license"), "reason": "bare"})

    async def bare_batch(request: Request) -> JSONResponse:
        body = await request.json()
        results = [
            {"allowed": True, "license": item.get("license"), "reason": "bare"}
            for item in body.get("checks", [])
        ]
        return JSONResponse({"results": results})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/check", bare_check, methods=["POST"]),
            Route("/v1/check/batch", bare_batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
