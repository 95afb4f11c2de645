"""The API reference page, ``/docs`` (Swagger UI), renders in Debian's Chromium under
the service's own Content-Security-Policy with no network beyond the service: every
script and style comes from the service itself (``tenure.api.reference``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from support.server import Server, running_server

from .chromium import launched_chromium

RENDER_TIMEOUT_MS = 20_000
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("reference-data"), tmp_path_factory.mktemp("reference-logs")
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@dataclass
class Visit:
    """A page opened on ``server``: what its scripts reported as errors and the URLs it
    asked for outside the service (none may be: there is no network to reach)."""

    page: Any
    errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


def visit(browser: Any, server: Server, path: str) -> Visit:
    seen = Visit(browser.new_page())
    seen.page.on("pageerror", lambda error: seen.errors.append(str(error)))
    seen.page.on(
        "console",
        lambda message: seen.errors.append(message.text) if message.type == "error" else None,
    )
    seen.page.on(
        "request",
        lambda request: (
            None if request.url.startswith(server.url) else seen.elsewhere.append(request.url)
        ),
    )
    seen.page.goto(server.url + path)
    return seen


def test_the_swagger_ui_lists_the_operations(browser: Any, server: Server) -> None:
    seen = visit(browser, server, "/docs")
    try:
        check = seen.page.locator('.opblock-post .opblock-summary-path[data-path="/v1/check"]')
        check.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        assert check.inner_text().replace("\u200b", "") == "/v1/check"
        assert seen.page.locator(".opblock").count() > 50
        assert seen.errors == []
        assert seen.elsewhere == []
    finally:
        seen.page.close()


def test_redoc_leads_to_the_swagger_ui(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.get("/redoc")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/docs"


def test_the_reference_page_runs_no_inline_script_and_loads_its_assets_from_the_service(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/docs")
        assert page.status_code == 200, page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        scripts = SCRIPT_TAG.findall(page.text)
        assert scripts, page.text
        for attributes, body in scripts:
            assert body.strip() == "", "an inline script"
            source = re.search(r'src="([^"]+)"', attributes)
            assert source is not None, attributes
            assert source.group(1).startswith("/"), source.group(1)
            asset = client.get(source.group(1))
            assert asset.status_code == 200, source.group(1)
            assert "javascript" in asset.headers["content-type"]
