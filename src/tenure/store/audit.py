"""The audit chain of each account (``tenure.service.audit``): its entries, stored
as the canonical JSON that was hashed, and its head (size and last hash).

Rows are read as hostile: a value of the wrong type is ``AuditTampered``.

A row's columns besides ``entry`` and ``hash`` (``seq``, ``time``, ``principal``,
``action``, ``outcome``, ``target``) are copies of the entry's fields that pages are
searched on; ``chain`` returns them beside the entry so that ``audit verify``
compares every one with the hashed entry. ``account`` is the key the chain is read by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import sqlalchemy as sa

from tenure.errors import AuditTampered, LedgerTampered
from tenure.store import columns, raw
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class AuditRecord:
    """One chained entry as stored: the columns searched on, its encoded ``entry``
    and its ``hash`` (every column of its row but ``account``)."""

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

    def chain(self, account: str, after: int, limit: int) -> list[AuditRecord]:
        """Up to ``limit`` records after seq ``after``, in seq order, with every stored
        column. A row holding a value of the wrong type ends the list before it, or,
        first in the list, is ``AuditTampered`` naming its seq and column; an empty
        list is the chain's end."""
        ...

    def accounts(self) -> list[str]:
        """Every account with an audit chain, by name."""
        ...

    def outcomes(self, account: str, action: str, since: str) -> dict[str, int]:
        """How many entries of ``action`` from ``since`` on had each outcome."""
        ...


# ---------------------------------------------------------------- SQL

_l = t.audit_log.c
_T = TypeVar("_T")
_HEAD = "SELECT size, hash FROM audit_heads WHERE account = :account"
_INSERT = (
    "INSERT INTO audit_log (account, seq, time, principal, action, outcome, target, entry, hash) "
    "VALUES (:account, :seq, :time, :principal, :action, :outcome, :target, :entry, :hash)"
)
_SET_HEAD = (
    "INSERT INTO audit_heads (account, size, hash) VALUES (:account, :size, :hash) "
    "ON CONFLICT (account) DO UPDATE SET size = excluded.size, hash = excluded.hash"
)

_RECORD_COLUMNS = (
    _l.seq,
    _l.time,
    _l.principal,
    _l.action,
    _l.outcome,
    _l.target,
    _l.entry,
    _l.hash,
)


def _record(row: Sequence[object], account: str, after: int) -> AuditRecord:
    """The typed columns of ``row`` (``_RECORD_COLUMNS``), the entry after seq
    ``after`` of ``account``; ``AuditTampered`` naming the row and the first column
    of the wrong type."""
    seq, time, principal, action, outcome, target, entry, digest = row
    # verify reads every row: check the types without building messages, and take
    # the slow path that names the column only when one is wrong.
    if (
        type(seq) is int
        and type(time) is str
        and type(principal) is str
        and type(action) is str
        and type(outcome) is str
        and (target is None or type(target) is str)
        and type(entry) is bytes
        and type(digest) is bytes
    ):
        return AuditRecord(seq, time, principal, action, outcome, target, entry, digest)
    return _named_record(row, account, after)


def _named_record(row: Sequence[object], account: str, after: int) -> AuditRecord:
    values = dict(zip((column.name for column in _RECORD_COLUMNS), row, strict=True))
    seq = _typed(
        columns.integer, values["seq"], "seq", f"the audit entry after {after}", after + 1, account
    )
    what = f"audit entry {seq}"

    def text(column: str) -> str:
        return _typed(columns.text, values[column], column, what, seq, account)

    time, principal, action, outcome = map(text, ("time", "principal", "action", "outcome"))
    target = None if values["target"] is None else text("target")
    entry = _typed(columns.blob, values["entry"], "entry", what, seq, account)
    digest = _typed(columns.blob, values["hash"], "hash", what, seq, account)
    return AuditRecord(seq, time, principal, action, outcome, target, entry, digest)


def _typed(
    read: Callable[[object, str, int | None, type[LedgerTampered]], _T],
    value: object,
    column: str,
    what: str,
    seq: int,
    account: str,
) -> _T:
    try:
        return read(value, f"the {column} of {what} of {account}", seq, AuditTampered)
    except AuditTampered as exc:
        raise AuditTampered(exc.message, seq=seq, column=column) from None


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
        # Plain dicts: dataclasses.asdict deep-copies every field of every entry.
        rows = [
            {
                "account": account,
                "seq": r.seq,
                "time": r.time,
                "principal": r.principal,
                "action": r.action,
                "outcome": r.outcome,
                "target": r.target,
                "entry": r.entry,
                "hash": r.hash,
            }
            for r in records
        ]
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

    def chain(self, account: str, after: int, limit: int) -> list[AuditRecord]:
        rows = self._conn.execute(
            sa.select(*_RECORD_COLUMNS)
            .where(_l.account == account, _l.seq > after)
            .order_by(_l.seq)
            .limit(limit)
        ).all()
        found: list[AuditRecord] = []
        for row in rows:
            try:
                record = _record(tuple(row), account, found[-1].seq if found else after)
            except AuditTampered:
                # Hand over the entries before it, so that the reader checks them first
                # and names the first bad entry (SQLite also sorts a seq stored as text
                # after every number: the reader then names the first seq missing).
                if found:
                    break
                raise
            found.append(record)
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
