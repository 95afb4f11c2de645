"""Drift (docs/drift.md): the reconciler's open findings and its recorded passes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection

FindingKey = tuple[str, str, str]
"""(kind, deployment, subject): what a finding is about."""


@dataclass(frozen=True)
class StoredFinding:
    """An open finding, seen first at ``first_seen`` and last at ``last_seen``."""

    kind: str
    deployment: str
    subject: str
    detail: str
    first_seen: str
    last_seen: str


@dataclass(frozen=True)
class StoredPass:
    """A recorded reconciliation pass."""

    at: str
    duration_seconds: float
    reports: int
    activations: int
    findings: int
    corrections: int


class Drift(Protocol):
    """Open findings and recorded passes of every account."""

    def first_seen(self, account: str) -> dict[FindingKey, str]:
        """When each open finding was first seen."""
        ...

    def replace_findings(self, account: str, findings: Sequence[StoredFinding]) -> None:
        """Make ``findings`` the account's open findings (all others close)."""
        ...

    def record_pass(self, account: str, done: StoredPass, keep_from: str) -> None:
        """Record ``done`` (replacing one of the same time) and forget passes before
        ``keep_from``."""
        ...

    def counts(self, account: str) -> dict[str, int]:
        """Kind → open findings (kinds with none are absent)."""
        ...

    def findings(self, account: str, kind: str | None, limit: int) -> list[StoredFinding]:
        """Open findings (of ``kind`` if given), by kind, deployment and subject."""
        ...

    def last_pass(self, account: str) -> StoredPass | None: ...


# ---------------------------------------------------------------- SQL

_f, _p = t.drift_findings.c, t.drift_passes.c
_PASS = [c for c in t.drift_passes.c if c.name != "account"]
_FINDING = [c for c in t.drift_findings.c if c.name != "account"]


class SqlDrift(OnConnection):
    """``Drift`` on an open connection (SQLite and PostgreSQL)."""

    def first_seen(self, account: str) -> dict[FindingKey, str]:
        query = sa.select(_f.kind, _f.deployment, _f.subject, _f.first_seen)
        rows = self._conn.execute(query.where(_f.account == account))
        return {(kind, deployment, subject): seen for kind, deployment, subject, seen in rows}

    def replace_findings(self, account: str, findings: Sequence[StoredFinding]) -> None:
        self._conn.execute(sa.delete(t.drift_findings).where(_f.account == account))
        rows = [{"account": account, **f.__dict__} for f in findings]
        if rows:
            self._conn.execute(sa.insert(t.drift_findings), rows)

    def record_pass(self, account: str, done: StoredPass, keep_from: str) -> None:
        self._conn.execute(
            sa.delete(t.drift_passes).where(
                _p.account == account, (_p.at == done.at) | (_p.at < keep_from)
            )
        )
        self._conn.execute(sa.insert(t.drift_passes).values(account=account, **done.__dict__))

    def counts(self, account: str) -> dict[str, int]:
        query = sa.select(_f.kind, sa.func.count()).where(_f.account == account)
        return {kind: int(n) for kind, n in self._conn.execute(query.group_by(_f.kind))}

    def findings(self, account: str, kind: str | None, limit: int) -> list[StoredFinding]:
        query = sa.select(*_FINDING).where(_f.account == account)
        if kind is not None:
            query = query.where(_f.kind == kind)
        query = query.order_by(_f.kind, _f.deployment, _f.subject).limit(limit)
        return [StoredFinding(*row) for row in self._conn.execute(query)]

    def last_pass(self, account: str) -> StoredPass | None:
        query = sa.select(*_PASS).where(_p.account == account).order_by(_p.at.desc()).limit(1)
        row = self._conn.execute(query).first()
        return None if row is None else StoredPass(*row)
