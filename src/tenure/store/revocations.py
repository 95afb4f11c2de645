"""What revokes: the ledger events of the revocation list (``tenure.service.tokens``)
and the count of license revocations the approval threshold looks at
(``tenure.service.approvals``), found by event type.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

import sqlalchemy as sa

from tenure.store import ledger_records
from tenure.store import tables as t
from tenure.store.connected import OnConnection


class Revocations(Protocol):
    """Ledger events by type, for the revocation list and approval thresholds."""

    def events(self, account: str, since: int, types: Collection[str]) -> list[tuple[int, bytes]]:
        """``(seq, leaf)`` of every stored event from seq ``since`` on whose type is
        in ``types``, in seq order."""
        ...

    def revoked_since(self, account: str, since: str) -> int:
        """How many ``license.revoked`` events ``account`` has at or after the time
        ``since`` (event times never run backwards within a ledger)."""
        ...


# ---------------------------------------------------------------- SQL

_e = t.ledger_events.c


class SqlRevocations(OnConnection):
    """``Revocations`` on an open connection (SQLite and PostgreSQL)."""

    def events(self, account: str, since: int, types: Collection[str]) -> list[tuple[int, bytes]]:
        query = (
            sa.select(_e.seq, _e.leaf)
            .where(_e.account == account, _e.seq >= since, _e.type.in_(sorted(types)))
            .order_by(_e.seq)
        )
        return [(int(seq), bytes(leaf)) for seq, leaf in self._conn.execute(query)]

    def revoked_since(self, account: str, since: str) -> int:
        # Only the window's events are counted: it starts at a seq found by bisection
        # on the primary key.
        low = ledger_records.first_seq_since(self._conn, account, since)
        count = self._conn.scalar(
            sa.select(sa.func.count())
            .select_from(t.ledger_events)
            .where(_e.account == account, _e.seq >= low, _e.type == "license.revoked")
        )
        return int(count or 0)
