"""The base of every SQL noun: its statements run on one open connection whose
transaction the caller owns (``SqlStore`` opens them; the ledger writer's batch
transaction is one too)."""

from __future__ import annotations

import sqlalchemy as sa


class OnConnection:
    """A noun's SQL on ``conn`` (SQLite and PostgreSQL)."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
