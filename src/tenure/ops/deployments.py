"""Deployment reports (docs/drift.md): what an installation says it enforces.

Reports are operational data, not ledger events: the latest report of each
deployment replaces the one before, and every activation a report names has its
``last_seen`` refreshed in ``activation_sightings`` (how the reconciler tells a
dead seat from a device that never reported). The reconciler
(``tenure.ops.reconcile``) compares them with the ledger state.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tenure.domain.activations import activation_id
from tenure.domain.decisions import ENTITLEMENT_KEY_PATTERN
from tenure.domain.timefmt import format_time
from tenure.domain.values import (
    ActivationId,
    Code,
    Hex64,
    Serial,
    Time,
    TokenId,
)
from tenure.errors import NotFound
from tenure.ops.views import Deployment, DeploymentSummary
from tenure.store.deployments import StoredReport
from tenure.store.unit import Store

MAX_ACTIVATIONS = 5_000
"""Activations one report may carry; a bigger installation reports in several
deployments."""
MAX_ENTITLEMENTS = 64
MAX_TOKENS = 16

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
    store: Store,
    account: str,
    deployment: str,
    report: Report,
    reported_by: str,
    now: datetime,
) -> DeploymentSummary:
    """Store ``report`` as the latest of ``deployment`` (received at ``now``) and
    refresh the sightings of its activations, in one transaction → its summary."""
    received = format_time(now)
    entries = [entry.model_dump(exclude_none=True) for entry in report.activations]
    stored = StoredReport(
        deployment=deployment,
        product=report.product,
        product_version=report.product_version,
        sdk_version=report.sdk_version,
        reported_at=report.reported_at or received,
        received_at=received,
        reported_by=reported_by[:80],
        activation_count=len(entries),
        activations=entries,
    )
    sightings = {device_of(account, e): e["license"] for e in entries}
    with store.write() as tx:
        tx.deployments.replace(account, stored)
        tx.deployments.see(account, sightings, received)
    return summary_view(stored)


def summary_view(report: StoredReport) -> DeploymentSummary:
    """A deployment's latest report without its activations."""
    return DeploymentSummary.model_validate(report, from_attributes=True)


def list_deployments(store: Store, account: str) -> list[DeploymentSummary]:
    """Every deployment of ``account`` with its latest report's summary, by id."""
    with store.read() as tx:
        return [summary_view(r) for r in tx.deployments.summaries(account)]


def get_deployment(store: Store, account: str, deployment: str) -> Deployment:
    """One deployment with its latest report's activations. Raises ``NotFound``."""
    with store.read() as tx:
        found = tx.deployments.report(account, deployment)
    if found is None:
        raise NotFound(f"deployment {deployment} not found")
    return Deployment.model_validate(
        replace(found, activations=found.activations or []), from_attributes=True
    )
