"""The audit chain of each account (``tenure.service.audit``): its entries, stored
as the canonical JSON that was hashed, and its head (size and last hash).

Rows are read as hostile: a value of the wrong type is ``AuditTampered``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.errors import AuditTampered
from tenure.store import columns, raw
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class AuditRecord:
    """One chained entry as stored: the columns searched on, its encoded ``entry``
    and its ``hash``."""

    seq: int
    time: str
    principal: str
    action: str
    outcome: str
    target: str | None
    entry: bytes
    hash: bytes


@dataclass(frozen=True)
class AuditFilter:
    """Which entries a page shows; None matches everything."""

    action: str | None = None
    outcome: str | None = None
    principal: str | None = None
    target: str | None = None


class AuditLog(Protocol):
    """The audit chains of every account."""

    def head(self, account: str) -> tuple[int, bytes] | None:
        """Size and last hash of the chain; None before its first entry;
        ``AuditTampered`` if the stored head holds other types."""
        ...

    def append(self, account: str, records: Sequence[AuditRecord], size: int, last: bytes) -> None:
        """Store ``records`` and move the head to ``size`` and ``last``."""
        ...

    def page(
        self, account: str, after: int | None, limit: int, where: AuditFilter, newest_first: bool
    ) -> list[tuple[int, bytes, bytes]]:
        """Up to ``limit`` ``(seq, entry, hash)`` matching ``where`` after (or, newest
        first, before) seq ``after``, in that order."""
        ...

    def chain(self, account: str, after: int, limit: int) -> list[tuple[int, bytes, bytes]]:
        """Up to ``limit`` ``(seq, entry, hash)`` after seq ``after``, in seq order;
        ``AuditTampered`` for a value of the wrong type."""
        ...

    def accounts(self) -> list[str]:
        """Every account with an audit chain, by name."""
        ...

    def outcomes(self, account: str, action: str, since: str) -> dict[str, int]:
        """How many entries of ``action`` from ``since`` on had each outcome."""
        ...


# ---------------------------------------------------------------- SQL

_l = t.audit_log.c
_HEAD = "SELECT size, hash FROM audit_heads WHERE account = :account"
_INSERT = (
    "INSERT INTO audit_log (account, seq, time, principal, action, outcome, target, entry, hash) "
    "VALUES (:account, :seq, :time, :principal, :action, :outcome, :target, :entry, :hash)"
)
_SET_HEAD = (
    "INSERT INTO audit_heads (account, size, hash) VALUES (:account, :size, :hash) "
    "ON CONFLICT (account) DO UPDATE SET size = excluded.size, hash = excluded.hash"
)


class SqlAuditLog(OnConnection):
    """``AuditLog`` on an open connection (SQLite and PostgreSQL); the writes go
    straight to the driver (every write batch chains entries)."""

    def head(self, account: str) -> tuple[int, bytes] | None:
        row = raw.execute(self._conn, _HEAD, {"account": account}).fetchone()
        if row is None:
            return None
        what = f"the audit head of {account}"
        size = columns.integer(row[0], f"the size of {what}", None, AuditTampered)
        return size, columns.blob(row[1], f"the hash of {what}", None, AuditTampered)

    def append(self, account: str, records: Sequence[AuditRecord], size: int, last: bytes) -> None:
        rows = [{"account": account, **asdict(record)} for record in records]
        raw.executemany(self._conn, _INSERT, rows)
        params = {"account": account, "size": size, "hash": last}
        raw.execute(self._conn, _SET_HEAD, params).close()

    def page(
        self, account: str, after: int | None, limit: int, where: AuditFilter, newest_first: bool
    ) -> list[tuple[int, bytes, bytes]]:
        query = sa.select(_l.seq, _l.entry, _l.hash).where(_l.account == account)
        for column, value in (
            (_l.action, where.action),
            (_l.outcome, where.outcome),
            (_l.principal, where.principal),
            (_l.target, where.target),
        ):
            if value is not None:
                query = query.where(column == value)
        if after is not None:
            query = query.where(_l.seq < after if newest_first else _l.seq > after)
        order = _l.seq.desc() if newest_first else _l.seq
        rows = self._conn.execute(query.order_by(order).limit(limit))
        return [(row.seq, bytes(row.entry), bytes(row.hash)) for row in rows]

    def chain(self, account: str, after: int, limit: int) -> list[tuple[int, bytes, bytes]]:
        rows = self._conn.execute(
            sa.select(_l.seq, _l.entry, _l.hash)
            .where(_l.account == account, _l.seq > after)
            .order_by(_l.seq)
            .limit(limit)
        ).all()
        found: list[tuple[int, bytes, bytes]] = []
        for row in rows:
            what = f"audit entry after {after} of {account}"
            try:
                seq = columns.integer(row.seq, f"the seq of the {what}", after + 1, AuditTampered)
            except AuditTampered:
                # SQLite sorts a seq stored as text after every number: hand over the
                # entries before it, so that the reader names the first seq missing.
                if found:
                    break
                raise
            what = f"audit entry {seq} of {account}"
            entry = columns.blob(row.entry, what, seq, AuditTampered)
            digest = columns.blob(row.hash, f"the hash of {what}", seq, AuditTampered)
            found.append((seq, entry, digest))
            after = seq
        return found

    def accounts(self) -> list[str]:
        query = sa.select(t.audit_heads.c.account).order_by(t.audit_heads.c.account)
        return list(self._conn.scalars(query))

    def outcomes(self, account: str, action: str, since: str) -> dict[str, int]:
        query = (
            sa.select(_l.outcome, sa.func.count())
            .where(_l.account == account, _l.action == action, _l.time >= since)
            .group_by(_l.outcome)
        )
        return {str(outcome): int(count) for outcome, count in self._conn.execute(query)}
