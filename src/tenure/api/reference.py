"""The API reference page: ``/docs``, Swagger UI on ``/openapi.json``, with every
script and style served by the service itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and start them with an
inline script; under the service's Content-Security-Policy (``script-src 'self'``,
``style-src 'self'``: ``tenure.api.limits``) and without internet they render blank.
Swagger UI's files come from the ``fastapi-offline`` package (Swagger UI 5, which
reads OpenAPI 3.1; ``swagger-ui-bundle`` ships Swagger UI 4, which refuses 3.1
documents), mounted at ``/docs/vendor``; its initializer is our file
``reference_assets/swagger-init.js`` at ``/docs/assets``.

There is no ReDoc page: ReDoc injects inline ``<style>`` elements as its script
loads, builds its search worker from a ``blob:`` URL and fetches its logo from its
vendor's CDN, each of which the policy refuses. ``/redoc`` leads to ``/docs``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).with_name("reference_assets")
VENDOR_PACKAGE = ("fastapi_offline", "static")
"""Swagger UI's dist files, as shipped in that package."""

_SWAGGER_UI = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API reference</title>
<link rel="icon" href="{root}/docs/vendor/favicon.png">
<link rel="stylesheet" href="{root}/docs/vendor/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{openapi}"></div>
<script src="{root}/docs/vendor/swagger-ui-bundle.js"></script>
<script src="{root}/docs/assets/swagger-init.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (``app`` was made with ``docs_url=None,
    redoc_url=None``, so FastAPI's CDN pages are not there); ``/redoc`` redirects to
    it."""
    app.mount("/docs/vendor", StaticFiles(packages=[VENDOR_PACKAGE]), name="reference-vendor")
    app.mount("/docs/assets", StaticFiles(directory=ASSETS), name="reference-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = escape(request.scope.get("root_path", ""))
        page = _SWAGGER_UI.format(
            title=escape(app.title), root=root, openapi=escape(app.openapi_url or "")
        )
        return HTMLResponse(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "") + "/docs")
