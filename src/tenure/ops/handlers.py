"""The use cases of the operations, one function per operation: what the API routes
(and any other entrypoint) call. Each checks its input, builds the audit entry of
the caller's request and submits the change to the ledger writer, which makes it
and audits it in one transaction (``submit``: ``Ledger.execute``, or the API's
``execute_audited``). Reads are the services' own functions (``list_webhooks``,
``drift_list``, ...).

Changes of webhooks go through the writer as typed operations (``CreateWebhook``,
``SetWebhookEnabled``, ``DeleteWebhook``, ``RetryDelivery``), so the audit entry of
each is in the transaction of the change. Deployment reports and reconciliation
passes write operational rows only (the API's middleware audits the request).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenure.config import Settings
from tenure.ops import deployments, reconcile, webhooks
from tenure.ops.deployments import Report
from tenure.ops.views import (
    CreatedWebhook,
    DeletedWebhook,
    DeliveryView,
    DeploymentSummary,
    DriftPass,
    WebhookView,
)
from tenure.ops.webhooks import SecretBox
from tenure.service.apikeys import Principal
from tenure.service.audit import request_entry
from tenure.service.handlers.audited import AuditedChange
from tenure.service.ledger import Ledger, Operation, Outcome
from tenure.store.unit import Store, Transaction

Submit = Callable[[Operation], Outcome]
"""Runs an operation in the ledger writer's transaction, which audits it."""


# ---------------------------------------------------------------- webhook operations


@dataclass(frozen=True)
class CreateWebhook(AuditedChange):
    """Subscribe ``url`` to ``events`` → the subscription with its secret."""

    url: str
    events: tuple[str, ...]
    description: str
    box: SecretBox = field(repr=False)
    now: datetime

    def run(self, tx: Transaction) -> dict[str, Any]:
        made = webhooks.create_webhook(
            tx, self.account, self.url, self.events, self.description, self.box, self.now
        )
        return made.to_json()


@dataclass(frozen=True)
class SetWebhookEnabled(AuditedChange):
    """Pause (``enabled`` False) or resume a subscription → the subscription."""

    webhook: str
    enabled: bool

    def run(self, tx: Transaction) -> dict[str, Any]:
        return webhooks.set_enabled(tx, self.account, self.webhook, self.enabled).to_json()


@dataclass(frozen=True)
class DeleteWebhook(AuditedChange):
    """Remove a subscription and its deliveries → ``{"id", "deleted": true}``."""

    webhook: str

    def run(self, tx: Transaction) -> dict[str, Any]:
        return webhooks.delete_webhook(tx, self.account, self.webhook).to_json()


@dataclass(frozen=True)
class RetryDelivery(AuditedChange):
    """Make a delivery due again at ``now`` → the delivery."""

    webhook: str
    delivery: str
    now: datetime

    def run(self, tx: Transaction) -> dict[str, Any]:
        retried = webhooks.retry_delivery(tx, self.account, self.webhook, self.delivery, self.now)
        return retried.to_json()


# ---------------------------------------------------------------- webhook use cases


def create_webhook(
    submit: Submit,
    caller: Principal,
    url: str,
    events: Sequence[str],
    description: str,
    box: SecretBox,
    settings: Settings,
) -> CreatedWebhook:
    """Subscribe ``url`` to ``events`` for the caller's account → the subscription
    with its secret (shown only here). ``InvalidInput`` (field ``events``) for a bad
    pattern; ``WebhookUrlRefused`` (field ``url``) for a URL that is not http(s) or
    whose host resolves to a non-public address (unless ``webhook_allow_private``),
    checked before anything is written."""
    webhooks.check_patterns(events)
    webhooks.check_url(url, settings.webhook_allow_private)
    entry = request_entry(caller, "create_webhook", detail={"events": list(events)[:10]})
    change = CreateWebhook(entry, url, tuple(events), description, box, datetime.now(UTC))
    return CreatedWebhook.model_validate(submit(change).result)


def set_webhook_enabled(
    submit: Submit, caller: Principal, webhook: str, enabled: bool
) -> WebhookView:
    """Pause or resume one of the caller's subscriptions → it; ``NotFound`` if the
    account has none of that id."""
    entry = request_entry(
        caller, "update_webhook", target=webhook[:80], detail={"enabled": enabled}
    )
    return WebhookView.model_validate(submit(SetWebhookEnabled(entry, webhook, enabled)).result)


def delete_webhook(submit: Submit, caller: Principal, webhook: str) -> DeletedWebhook:
    """Remove one of the caller's subscriptions and its deliveries; ``NotFound`` if
    the account has none of that id."""
    entry = request_entry(caller, "delete_webhook", target=webhook[:80])
    return DeletedWebhook.model_validate(submit(DeleteWebhook(entry, webhook)).result)


def retry_delivery(submit: Submit, caller: Principal, webhook: str, delivery: str) -> DeliveryView:
    """Send a failed (or waiting) delivery again now → the delivery; ``NotFound``
    for an unknown one, ``Conflict`` for one already delivered."""
    entry = request_entry(caller, "retry_delivery", target=delivery[:80])
    change = RetryDelivery(entry, webhook, delivery, datetime.now(UTC))
    return DeliveryView.model_validate(submit(change).result)


# ---------------------------------------------------------------- deployments and drift


def report_deployment(
    store: Store, caller: Principal, deployment: str, report: Report
) -> DeploymentSummary:
    """Store the caller's ``report`` as ``deployment``'s latest (now) → its summary."""
    now = datetime.now(UTC)
    return deployments.record_report(store, caller.account, deployment, report, caller.id, now)


def reconcile_now(store: Store, ledger: Ledger, caller: Principal, settings: Settings) -> DriftPass:
    """Run a reconciliation pass of the caller's account now, with the configured
    policy (corrective events through ``ledger`` when ``reconcile_correct``)."""
    policy = reconcile.DriftPolicy.from_settings(settings)
    return reconcile.run_pass(store, caller.account, policy, None, ledger)
