"""A test whose outside tool is missing fails under ``make test`` and on CI, and skips
only on a workstation running pytest by hand (``tests/support/required.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.required import missing_tool

TESTS = Path(__file__).resolve().parents[1]
SKIPS = re.compile(r"pytest\.skip\(|\.skipif\(|importorskip\(|mark\.skip\b")
SKIPS_FOR_NO_TOOL = {
    # The one place a test skips for a missing tool, saying why.
    "support/required.py",
    # A release commit that a shallow clone lacks: history, not a tool.
    "contract/test_compatibility.py",
}


@pytest.fixture
def workstation(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("TENURE_REQUIRE_TOOLS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    return monkeypatch


def test_a_missing_tool_fails_the_test_under_make_test(workstation: pytest.MonkeyPatch) -> None:
    workstation.setenv("TENURE_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="go is not installed"):
        missing_tool("go is not installed")


def test_a_missing_tool_fails_the_test_on_ci(workstation: pytest.MonkeyPatch) -> None:
    workstation.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make test installs it"):
        missing_tool("go is not installed")


def test_a_missing_tool_skips_the_test_on_a_workstation(workstation: pytest.MonkeyPatch) -> None:
    with pytest.raises(pytest.skip.Exception, match="go is not installed"):
        missing_tool("go is not installed")


def test_no_test_skips_for_a_missing_tool_but_through_missing_tool() -> None:
    skipping = {
        path.relative_to(TESTS).as_posix()
        for path in TESTS.rglob("*.py")
        if path != Path(__file__).resolve() and SKIPS.search(path.read_text(encoding="utf-8"))
    }
    assert skipping == SKIPS_FOR_NO_TOOL
