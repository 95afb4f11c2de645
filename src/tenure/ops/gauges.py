"""The state metrics Tenure itself reads from the store at scrape time (registered
with ``tenure.ops.scrape.state_source`` when this module is imported),
and the shipper's figures, which live in the process that ships."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client.core import Metric

from tenure.durability.shipping import Shipper
from tenure.observability import metrics
from tenure.observability.metrics import account_gauge
from tenure.ops import slo
from tenure.ops.scrape import Scrape, count_source, state_source
from tenure.store.unit import Transaction


def _age(stamp: str) -> float | None:
    """Seconds since ``stamp`` (an ISO 8601 time in UTC); None if it is not one."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds()


@state_source
def ledger_state(scrape: Scrape) -> Iterable[Metric]:
    """Ledger size and the latest signed checkpoint's size and age."""
    account, ledger = scrape.account, scrape.tx.ledger
    head = ledger.head(account)
    size = head.size if head else 0
    yield account_gauge("tenure_ledger_size", "Events in the account's ledger.", account, size)
    latest = ledger.checkpoint(account)
    if latest is not None:
        yield account_gauge(
            "tenure_checkpoint_size", "Size of the latest signed checkpoint.", account, latest.size
        )
        age = _age(latest.signed_at)
        if age is not None:
            yield account_gauge(
                "tenure_checkpoint_age_seconds",
                "Seconds since the latest checkpoint was signed.",
                account,
                age,
            )


@state_source
def drill_state(scrape: Scrape) -> Iterable[Metric]:
    """The latest restore drill: passed (1/0), its age and its recovery time."""
    account = scrape.account
    latest = scrape.tx.gauges.latest_drill(account)
    if latest is None:
        return
    yield account_gauge(
        "tenure_drill_passed",
        "1 if the latest restore drill passed, else 0.",
        account,
        1 if latest.passed else 0,
    )
    yield account_gauge(
        "tenure_drill_rto_seconds", "Restore time of the latest drill.", account, latest.rto_seconds
    )
    age = _age(latest.at)
    if age is not None:
        yield account_gauge(
            "tenure_drill_age_seconds", "Seconds since the latest restore drill.", account, age
        )


def _pending_approvals(tx: Transaction, account: str) -> int:
    return tx.gauges.pending_approvals(account)


approvals_state = count_source(
    "tenure_approvals_pending", "Approval requests waiting for a decision.", _pending_approvals
)
"""Approval requests waiting for a second principal."""


@state_source
def slo_state(scrape: Scrape) -> Iterable[Metric]:
    """The SLO report of the account's checks (``tenure.ops.slo``)."""
    account = scrape.account
    objectives = slo.Objectives.from_settings(scrape.settings)
    report = slo.report_on(scrape.tx, objectives, account, datetime.now(UTC))
    figures = {
        "tenure_slo_checks": ("Check requests in the SLO window.", report.total),
        "tenure_slo_errors": ("Check requests answered with a 5xx in the window.", report.errors),
        "tenure_slo_slow": ("Check requests slower than the latency objective.", report.slow),
        "tenure_slo_availability": ("Share of checks answered without a 5xx.", report.availability),
        "tenure_slo_fast_share": (
            "Share of checks within the latency objective.",
            report.fast_share,
        ),
        "tenure_slo_availability_budget_remaining": (
            "Availability error budget left (1 unspent, 0 spent, negative overspent).",
            report.availability_budget_remaining,
        ),
        "tenure_slo_latency_budget_remaining": (
            "Latency error budget left (1 unspent, 0 spent, negative overspent).",
            report.latency_budget_remaining,
        ),
    }
    for name, (doc, value) in figures.items():
        yield account_gauge(name, doc, account, value)


def sample_shipper(shipper: Shipper) -> None:
    """Set the shipping and snapshot gauges from ``shipper`` (only the process that
    ships has figures to give)."""
    if not shipper.running:
        return
    last = shipper.last_success
    for site, behind in shipper.last.behind.items():
        metrics.SHIPPING_BEHIND.labels(site).set(behind)
        if last is not None:
            metrics.SHIPPING_AGE.labels(site).set(time.time() - last)
    for namespace, (size, age) in shipper.snapshots.items():
        metrics.SNAPSHOT_AGE.labels(namespace).set(age)
        metrics.SNAPSHOT_SIZE.labels(namespace).set(size)
