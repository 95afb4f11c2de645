"""Tests that drive a tool from outside Python (Go, Node's ``jose``, SoftHSM2,
Chromium, PostgreSQL) and do not find it.

``make test`` installs those tools first (``scripts/test-tools``) and runs pytest with
``TENURE_REQUIRE_TOOLS=1``: there, and on CI (``CI=true``), a missing tool fails the
test. A bare ``pytest`` on a workstation without the tool skips it, saying why."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def tools_required() -> bool:
    """Whether a missing tool fails the test (``make test``, CI) rather than skips it."""
    return os.environ.get("TENURE_REQUIRE_TOOLS") == "1" or os.environ.get("CI") == "true"


def missing_tool(reason: str) -> NoReturn:
    """Fail (tools required) or skip the calling test, naming what is missing and how
    to install it in ``reason``."""
    if tools_required():
        pytest.fail(f"{reason} (make test installs it: scripts/test-tools)")
    pytest.skip(reason)
