"""The DBAPI underneath a SQLAlchemy connection, for the statements on the hot path.

SQLAlchemy Core builds, caches and compiles a statement on every call; on the
append path that costs more than SQLite's own work. The writer's per-batch
statements (and replay's leaf scan) therefore go straight to the driver's cursor,
inside the same transaction. SQL is written once with ``:name`` parameters, which
sqlite3 takes as is and which are rewritten to ``%(name)s`` for psycopg.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

_NAMED = re.compile(r":(\w+)")


@functools.cache
def _sql(text: str, dialect: str) -> str:
    return text if dialect == "sqlite" else _NAMED.sub(r"%(\1)s", text)


def execute(conn: sa.Connection, text: str, params: Mapping[str, Any]) -> Any:
    """Run one statement on the driver's cursor; return the cursor."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(_sql(text, conn.dialect.name), params)
    return cursor


def executemany(conn: sa.Connection, text: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run one statement for every row in ``rows`` (one driver call)."""
    if rows:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(_sql(text, conn.dialect.name), rows)
        cursor.close()
