"""The bare endpoints the ``checks`` benchmark compares ``POST /v1/check`` against.

Same server, same workers, no database: one async ``POST /v1/check`` that parses a
small JSON body and answers a small JSON dict, plus ``/healthz``.

- ``create_starlette_app``: a plain Starlette route, the framework's ceiling (the
  figure the check's goal is a share of);
- ``create_app``: the same endpoint as a FastAPI route, to show what FastAPI's
  request machinery costs on its own.

    uvicorn --factory bench.bare_app:create_starlette_app
    granian --interface asgi --factory bench.bare_app:create_app
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.post("/v1/check", response_model=None)
    async def bare_check(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"allowed": True, "license": body.get("license"), "reason": "bare"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def create_starlette_app() -> Starlette:
    async def bare_check(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"allowed": True, "license": body.get("license"), "reason": "bare"})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/check", bare_check, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
