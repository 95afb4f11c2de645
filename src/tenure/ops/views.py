"""The answers of the operations (webhooks, notices, alerts, deployments, drift,
SLOs, readiness), described once: the services return these views, the routes use
them as response models, so ``/openapi.json`` is generated from them.

A view is closed (``additionalProperties: false``) and frozen. It also reads like the
JSON it becomes (``view["id"]``), so code and templates written against the JSON
keep working. Field order is the JSON's key order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field

from tenure.service.views import View

NonNegative = Annotated[int, Field(ge=0)]


# ---------------------------------------------------------------- webhooks


class WebhookView(View):
    """A webhook subscription (never its secret)."""

    id: str
    url: str
    events: list[str] = Field(description="event-type patterns: *, license.*, license.revoked")
    description: str
    enabled: bool
    created_at: str


class CreatedWebhook(WebhookView):
    """A new subscription, with the secret shown this once."""

    secret: str = Field(description="whsec_ + base64 of 32 random bytes (Standard Webhooks)")


class WebhookList(View):
    webhooks: list[WebhookView]


class DeletedWebhook(View):
    id: str
    deleted: Literal[True]


class AttemptView(View):
    """One attempt to deliver: when, the HTTP status (None when no answer came), the
    error and how long it took."""

    at: str
    status_code: int | None
    error: str | None
    ms: NonNegative


class DeliveryView(View):
    """A delivery with every attempt made; ``next_attempt_at`` only while pending."""

    id: str
    webhook: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: NonNegative
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    history: list[AttemptView]
    created_at: str
    payload: dict[str, Any] = Field(description="the body sent: {type, timestamp, data}")


class DeliveryList(View):
    deliveries: list[DeliveryView]


# ---------------------------------------------------------------- notices and alerts


class NoticeView(View):
    """A lifecycle notice; ``lead`` (days) is None for ``license.grace_started``."""

    id: str
    kind: Literal["license.expiring_soon", "license.grace_started"]
    serial: str
    customer: str | None
    expires_at: str
    lead: int | None
    created_at: str


class NoticeList(View):
    notices: list[NoticeView]


class AlertView(View):
    """An anomaly alert; ``cleared_at`` is None while it is open."""

    id: str
    kind: str
    window_start: str
    window_end: str
    observed: NonNegative
    baseline: float
    threshold: float
    created_at: str
    cleared_at: str | None


class AlertList(View):
    alerts: list[AlertView]


# ---------------------------------------------------------------- deployments and drift


class DeploymentSummary(View):
    """A deployment's latest report, without its activations."""

    id: str = Field(validation_alias=AliasChoices("id", "deployment"))
    """The deployment's id (a stored report's ``deployment``)."""
    product: str
    product_version: str
    sdk_version: str
    reported_at: str
    received_at: str
    reported_by: str
    activation_count: NonNegative


class Deployment(DeploymentSummary):
    """A deployment's latest report with its activations."""

    activations: list[dict[str, Any]]


class DeploymentList(View):
    deployments: list[DeploymentSummary]


class DriftFinding(View):
    """One open drift finding of the reconciler."""

    kind: str
    deployment: str
    subject: str
    detail: str
    first_seen: str
    last_seen: str


class DriftPassSummary(View):
    """A recorded reconciliation pass."""

    at: str
    duration_seconds: float
    reports: NonNegative
    activations: NonNegative
    findings: NonNegative
    corrections: NonNegative


class DriftPass(DriftPassSummary):
    """The pass that just ran, with its findings counted by kind."""

    by_kind: dict[str, int]


class DriftList(View):
    summary: dict[str, int]
    findings: list[DriftFinding]
    last_pass: DriftPassSummary | None


# ---------------------------------------------------------------- SLOs and readiness


class SloReport(View):
    """Both check objectives over the window ending now, and what is left of their
    error budgets (1 unspent, 0 spent, negative overspent)."""

    objective_availability: float
    objective_latency_ms: float
    objective_latency_target: float
    window_days: float
    total: NonNegative
    errors: NonNegative
    slow: NonNegative
    availability: float
    fast_share: float
    availability_budget_remaining: float
    latency_budget_remaining: float


class Check(View):
    """One readiness check."""

    name: str
    ok: bool
    detail: str
    required: bool = Field(
        default=True, description="a failed required check makes /readyz answer 503"
    )


class Readiness(View):
    """``/readyz``: ready when every required check passed (else 503, same shape)."""

    status: Literal["ready", "unavailable"]
    schema_: str | None = Field(alias="schema", description="the database schema revision")
    version: str
    checks: list[Check]
