"""The bare endpoint the ``checks`` benchmark compares ``POST /v1/check`` against.

Same server, same workers, same FastAPI, no database: one async ``POST`` route that
parses a small JSON body and answers a small JSON dict, plus ``/healthz``.

    uvicorn --factory bench.bare_app:create_app
    granian --interface asgi --factory bench.bare_app:create_app
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request


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
