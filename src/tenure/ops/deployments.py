"""Deployment reports (docs/drift.md): what an installation says it enforces.

Reports are operational data, not ledger events: the latest report of each
deployment replaces the one before, and every activation a report names has its
``last_seen`` refreshed in ``activation_sightings`` (how the reconciler tells a
dead seat from a device that never reported). The reconciler
(``tenure.ops.reconcile``) compares them with the ledger state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tenure.domain.activations import activation_id
from tenure.domain.events import (
    ENTITLEMENT_KEY_PATTERN,
    ActivationId,
    Code,
    Hex64,
    Serial,
    Time,
    TokenId,
)
from tenure.domain.timefmt import format_time
from tenure.errors import NotFound
from tenure.store import tables as t
from tenure.store.engine import read_transaction, write_transaction

MAX_ACTIVATIONS = 5_000
"""Activations one report may carry; a bigger installation reports in several
deployments."""
MAX_ENTITLEMENTS = 64
MAX_TOKENS = 16
SIGHTING_BATCH = 1_000

DeploymentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")]
EntitlementKey = Annotated[str, StringConstraints(pattern=ENTITLEMENT_KEY_PATTERN, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TokenInUse(_Strict):
    """An offline token the installation accepts: its id and expiry (Unix seconds)."""

    jti: TokenId
    exp: Annotated[int, Field(ge=0, le=253_402_300_799)]


class ActivationInUse(_Strict):
    """One device the installation enforces: the license, the device (activation id
    and/or fingerprint hash), the entitlements it uses and the tokens it accepts."""

    license: Serial
    activation: ActivationId | None = None
    fingerprint_hash: Hex64 | None = None
    entitlements: Annotated[list[EntitlementKey], Field(max_length=MAX_ENTITLEMENTS)] = []
    tokens: Annotated[list[TokenInUse], Field(max_length=MAX_TOKENS)] = []

    @model_validator(mode="after")
    def _names_a_device(self) -> ActivationInUse:
        if self.activation is None and self.fingerprint_hash is None:
            raise ValueError("an activation needs its activation id or fingerprint_hash")
        return self


class Report(_Strict):
    """A deployment's report (``POST /v1/deployments/{id}/reports``)."""

    product: Code
    product_version: Version
    sdk_version: Version
    reported_at: Time | None = None
    activations: Annotated[list[ActivationInUse], Field(max_length=MAX_ACTIVATIONS)] = []


def device_of(account: str, entry: dict[str, Any]) -> str:
    """The activation id a report entry names (derived from its fingerprint hash
    when it gives no id)."""
    if entry.get("activation"):
        return str(entry["activation"])
    return activation_id(account, entry["license"], entry["fingerprint_hash"])


def record_report(
    engine: sa.Engine,
    account: str,
    deployment: str,
    report: Report,
    reported_by: str,
    now: datetime,
) -> dict[str, Any]:
    """Store ``report`` as the latest of ``deployment`` (received at ``now``) and
    refresh the sightings of its activations, in one transaction → the stored view."""
    received = format_time(now)
    entries = [entry.model_dump(exclude_none=True) for entry in report.activations]
    row = {
        "account": account,
        "deployment": deployment,
        "product": report.product,
        "product_version": report.product_version,
        "sdk_version": report.sdk_version,
        "reported_at": report.reported_at or received,
        "received_at": received,
        "reported_by": reported_by[:80],
        "activation_count": len(entries),
        "activations": orjson.dumps(entries),
    }
    sightings = {device_of(account, e): e["license"] for e in entries}
    with write_transaction(engine) as conn:
        _upsert(conn, t.deployments, row, ("account", "deployment"))
        _record_sightings(conn, account, sightings, received)
    return _view(row, with_activations=False)


def _upsert(
    conn: sa.Connection, table: sa.Table, row: dict[str, Any], key: tuple[str, ...]
) -> None:
    where = [table.c[column] == row[column] for column in key]
    conn.execute(sa.delete(table).where(*where))
    conn.execute(sa.insert(table).values(**row))


def _record_sightings(
    conn: sa.Connection, account: str, sightings: dict[str, str], seen: str
) -> None:
    table = t.activation_sightings
    ids = sorted(sightings)
    for start in range(0, len(ids), SIGHTING_BATCH):
        batch = ids[start : start + SIGHTING_BATCH]
        conn.execute(
            sa.delete(table).where(table.c.account == account, table.c.activation.in_(batch))
        )
        rows = [
            {"account": account, "activation": a, "serial": sightings[a], "last_seen": seen}
            for a in batch
        ]
        conn.execute(sa.insert(table), rows)


def _view(row: Any, *, with_activations: bool) -> dict[str, Any]:
    view = {
        "id": row["deployment"],
        "product": row["product"],
        "product_version": row["product_version"],
        "sdk_version": row["sdk_version"],
        "reported_at": row["reported_at"],
        "received_at": row["received_at"],
        "reported_by": row["reported_by"],
        "activation_count": row["activation_count"],
    }
    if with_activations:
        view["activations"] = orjson.loads(row["activations"])
    return view


_SUMMARY_COLUMNS = [c for c in t.deployments.c if c.name != "activations"]


def list_deployments(engine: sa.Engine, account: str) -> list[dict[str, Any]]:
    """Every deployment of ``account`` with its latest report's summary, by id."""
    c = t.deployments.c
    query = sa.select(*_SUMMARY_COLUMNS).where(c.account == account).order_by(c.deployment)
    with read_transaction(engine) as conn:
        rows = conn.execute(query).mappings().all()
    return [_view(row, with_activations=False) for row in rows]


def get_deployment(engine: sa.Engine, account: str, deployment: str) -> dict[str, Any]:
    """One deployment with its latest report's activations. Raises ``NotFound``."""
    c = t.deployments.c
    query = sa.select(t.deployments).where(c.account == account, c.deployment == deployment)
    with read_transaction(engine) as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"deployment {deployment} not found")
    return _view(row, with_activations=True)


def all_reports(conn: sa.Connection, account: str) -> list[dict[str, Any]]:
    """Every stored report of ``account`` (one query), activations parsed."""
    c = t.deployments.c
    rows = conn.execute(sa.select(t.deployments).where(c.account == account)).mappings()
    return [{**row, "activations": orjson.loads(row["activations"])} for row in rows]
