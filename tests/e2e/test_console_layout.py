"""The console's pages fit a 1280 px wide window (issue 15, item 6): measured in
Debian's Chromium (Playwright) against a real server whose audit log holds the long,
unbreakable values real use produces (license principals, key ids, serials, error
codes, a reason without spaces)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.api import apply_example_catalog, issue_license
from support.server import Server, running_server

from .chromium import launched_chromium

VIEWPORT = {"width": 1280, "height": 800}
LONG_REASON = "invoice-1002-unpaid-since-2026-11-01;see:https://tickets.example.com/SUP-48213"


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose audit log names a license principal, serials, key ids, a
    denial code and a long reason."""
    root = tmp_path_factory.mktemp("layout")
    with running_server(root / "data", root) as server:
        with server.client(server.owner_key()) as owner:
            apply_example_catalog(owner)
            issued = issue_license(owner)
            check = {"license": issued["key"], "entitlement": "feature:color-grading"}
            headers = {"Authorization": f"License {issued['key']}"}
            assert owner.post("/v1/check", json=check, headers=headers).status_code == 200
            suspend = f"/v1/licenses/{issued['serial']}/suspend"
            assert owner.post(suspend, json={"reason": LONG_REASON}).status_code == 200
            unknown = {"license": "TNR-AAAAA-BBBBB-CCCCC-DDDDD", "entitlement": "seats"}
            assert owner.post("/v1/check", json=unknown).status_code == 200
        yield server


@pytest.fixture
def page(busy_server: Server) -> Iterator[Any]:
    with launched_chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        opened = context.new_page()
        opened.goto(f"{busy_server.url}/console/signin")
        opened.fill("#api_key", busy_server.owner_key())
        with opened.expect_navigation():
            opened.click("button[type=submit]")
        yield opened
        context.close()


@pytest.mark.parametrize("path", ["/console/audit", "/console/licenses", "/console/overview"])
def test_the_page_fits_a_1280_px_window(page: Any, tmp_path: Path, path: str) -> None:
    page.goto(page.url.split("/console")[0] + path)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    widths = page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth,
            window: document.documentElement.clientWidth,
            overflowing: [...document.querySelectorAll('.panel')]
                .filter(panel => panel.scrollWidth > panel.clientWidth)
                .map(panel => panel.querySelector('h2, th')?.textContent || panel.className),
        })"""
    )
    assert widths["page"] <= widths["window"] == VIEWPORT["width"], widths
    assert widths["overflowing"] == [], widths


def test_the_audit_table_shows_long_values_whole(page: Any) -> None:
    """Fitting the window wraps long values; it never clips them."""
    page.goto(page.url.split("/console")[0] + "/console/audit")
    table = page.locator("table").first
    for value in ("license:TNR-", LONG_REASON, "unknown_license"):
        assert value in table.inner_text().replace("\n", ""), value
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('td')]
            .filter(cell => cell.scrollWidth > cell.clientWidth + 1)
            .map(cell => cell.textContent)"""
    )
    assert clipped == []
