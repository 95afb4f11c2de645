"""Deployment reports and activation sightings (docs/drift.md): the latest report of
each deployment, and when a report last named each activation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from tenure.domain.fields import field_values
from tenure.store import tables as t
from tenure.store.connected import OnConnection

SIGHTING_BATCH = 1_000
"""Sightings written per statement."""


@dataclass(frozen=True)
class StoredReport:
    """A deployment's latest report; ``activations`` is None where only the summary
    was read."""

    deployment: str
    product: str
    product_version: str
    sdk_version: str
    reported_at: str
    received_at: str
    reported_by: str
    activation_count: int
    activations: list[dict[str, Any]] | None = None

    def as_mapping(self) -> dict[str, Any]:
        """Its fields by name (the activations are not copied)."""
        return field_values(self)


class Deployments(Protocol):
    """The latest report of each deployment and the sightings of activations."""

    def replace(self, account: str, report: StoredReport) -> None:
        """Store ``report`` (with its activations) instead of the deployment's last one."""
        ...

    def see(self, account: str, sightings: Mapping[str, str], at: str) -> None:
        """Record that activation → serial of ``sightings`` were reported at ``at``."""
        ...

    def summaries(self, account: str) -> list[StoredReport]:
        """Every deployment's latest report without activations, by deployment id."""
        ...

    def report(self, account: str, deployment: str) -> StoredReport | None:
        """One deployment's latest report with its activations."""
        ...

    def reports(self, account: str) -> list[StoredReport]:
        """Every latest report with its activations (in no particular order)."""
        ...

    def sightings(self, account: str) -> dict[str, str]:
        """Activation → when a report last named it."""
        ...


# ---------------------------------------------------------------- SQL

_c = t.deployments.c
_SUMMARY = [c for c in t.deployments.c if c.name not in ("account", "activations")]


def _report(row: Any, with_activations: bool) -> StoredReport:
    return StoredReport(
        row.deployment,
        row.product,
        row.product_version,
        row.sdk_version,
        row.reported_at,
        row.received_at,
        row.reported_by,
        row.activation_count,
        orjson.loads(row.activations) if with_activations else None,
    )


class SqlDeployments(OnConnection):
    """``Deployments`` on an open connection (SQLite and PostgreSQL)."""

    def replace(self, account: str, report: StoredReport) -> None:
        values = report.as_mapping()
        values["activations"] = orjson.dumps(report.activations or [])
        where = (_c.account == account, _c.deployment == report.deployment)
        self._conn.execute(sa.delete(t.deployments).where(*where))
        self._conn.execute(sa.insert(t.deployments).values(account=account, **values))

    def see(self, account: str, sightings: Mapping[str, str], at: str) -> None:
        table = t.activation_sightings
        ids = sorted(sightings)
        for start in range(0, len(ids), SIGHTING_BATCH):
            batch = ids[start : start + SIGHTING_BATCH]
            self._conn.execute(
                sa.delete(table).where(table.c.account == account, table.c.activation.in_(batch))
            )
            rows = [
                {"account": account, "activation": a, "serial": sightings[a], "last_seen": at}
                for a in batch
            ]
            self._conn.execute(sa.insert(table), rows)

    def summaries(self, account: str) -> list[StoredReport]:
        query = sa.select(*_SUMMARY).where(_c.account == account).order_by(_c.deployment)
        return [_report(row, False) for row in self._conn.execute(query)]

    def report(self, account: str, deployment: str) -> StoredReport | None:
        query = sa.select(t.deployments).where(_c.account == account, _c.deployment == deployment)
        row = self._conn.execute(query).first()
        return None if row is None else _report(row, True)

    def reports(self, account: str) -> list[StoredReport]:
        query = sa.select(t.deployments).where(_c.account == account)
        return [_report(row, True) for row in self._conn.execute(query)]

    def sightings(self, account: str) -> dict[str, str]:
        s = t.activation_sightings.c
        query = sa.select(s.activation, s.last_seen).where(s.account == account)
        return {activation: seen for activation, seen in self._conn.execute(query)}
