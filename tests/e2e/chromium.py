"""Debian's Chromium driven by Playwright, for the console tests (FIELD-NOTES:
``playwright install`` cannot download here; ``executable_path`` works)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def missing_browser(why: str) -> None:
    """Fail on CI (the browser tests must run there); skip on a workstation without it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the console browser test cannot run: {why}")
    pytest.skip(why)


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit."""
    if not CHROMIUM.exists():
        missing_browser(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_browser("the playwright package is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
