"""The state digest: one SHA-256 over the whole projection of an account.

Definition (stable across machines, backends and releases): for each table in
``TABLE_ORDER``, for each row in ascending order of its primary key, feed
``JCS([table, row]) ‖ 0x0A`` to SHA-256, where ``row`` is the row as a JSON object
without its ``account`` column. The digest is the lowercase hex of the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from tenure.canonical import hashed_json


def state_digest(tables: Iterable[tuple[str, Iterable[Mapping[str, Any]]]]) -> str:
    """Digest ``(table, rows)`` pairs given in table order with rows in key order."""
    hasher = hashlib.sha256()
    for name, rows in tables:
        for row in rows:
            hasher.update(hashed_json([name, row]))
            hasher.update(b"\n")
    return hasher.hexdigest()
