"""The releases recorded in RELEASES.toml (version, commit, date, database schema, API,
event schemas), oldest first."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def releases() -> list[dict[str, Any]]:
    """Every ``[[release]]`` of RELEASES.toml, in the file's order (oldest first)."""
    found: list[dict[str, Any]] = tomllib.loads((ROOT / "RELEASES.toml").read_text())["release"]
    return found


def release_id(release: dict[str, Any]) -> str:
    """A release's version, as a pytest id."""
    return str(release["version"])
