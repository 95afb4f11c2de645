"""Suite-wide: the longest test files start first.

``make test`` runs the suite on two pytest-xdist workers, a file each at a time
(``--dist loadfile``), handing out files in collection order. A long file collected
last runs alone at the end while the other worker idles; started first, it overlaps
with the many short ones. Order within a file is kept.
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = (
    "test_schemathesis.py",
    "test_crash.py",
    "test_cli_remote.py",
    "test_import.py",
    "test_webhooks.py",
    "test_durability.py",
    "test_cli_offline.py",
    "test_cli_apikeys.py",
    "test_upgrade_drill.py",
    "test_backup_restore.py",
)
"""File names, longest first (``--durations`` of a full run, 2026-11-29)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))
