"""Service level objectives and error budgets of checks (docs/observability.md, "SLOs").

Two objectives over a rolling window (``slo_window_days``), from the per-minute
counters (``tenure.ops.counters``):

- availability: the share of check requests answered without a 5xx
  (``1 - check.error / check.total``), against ``slo_availability``;
- latency: the share answered within ``slo_latency_ms``
  (``1 - check.slow / check.total``), against ``slo_latency_target``.

The error budget of an objective is the share of requests it allows to fail
(``1 - objective``); what remains is ``1 - failed_share / (1 - objective)``: 1.0
with nothing spent, 0.0 exactly spent, negative when overspent. With no checks in
the window nothing is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tenure.config import Settings
from tenure.ops import counters
from tenure.ops.views import SloReport
from tenure.store.unit import Store, Transaction


@dataclass(frozen=True)
class Objectives:
    """The SLO settings."""

    availability: float = 0.999
    latency_ms: float = 50.0
    latency_target: float = 0.99
    window_days: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Objectives:
        return cls(
            settings.slo_availability,
            settings.slo_latency_ms,
            settings.slo_latency_target,
            settings.slo_window_days,
        )


def budget_remaining(failed: int, total: int, objective: float) -> float:
    """What is left of the error budget of ``objective`` with ``failed`` of ``total``
    requests failing it (1.0 for an empty window; negative when overspent)."""
    if total <= 0:
        return 1.0
    return 1.0 - (failed / total) / (1.0 - objective)


def report(objectives: Objectives, total: int, errors: int, slow: int) -> SloReport:
    """The report of a window holding ``total`` checks, ``errors`` of them 5xx and
    ``slow`` of them slower than the latency objective."""
    return SloReport(
        objective_availability=objectives.availability,
        objective_latency_ms=objectives.latency_ms,
        objective_latency_target=objectives.latency_target,
        window_days=objectives.window_days,
        total=total,
        errors=errors,
        slow=slow,
        availability=1.0 - errors / total if total else 1.0,
        fast_share=1.0 - slow / total if total else 1.0,
        availability_budget_remaining=budget_remaining(errors, total, objectives.availability),
        latency_budget_remaining=budget_remaining(slow, total, objectives.latency_target),
    )


def report_on(tx: Transaction, objectives: Objectives, account: str, now: datetime) -> SloReport:
    """``slo_report`` in an open read transaction."""
    since = now - timedelta(days=objectives.window_days)
    sums = counters.totals(tx, account, since, now)
    return report(
        objectives,
        sums.get(counters.CHECK_TOTAL, 0),
        sums.get(counters.CHECK_ERROR, 0),
        sums.get(counters.CHECK_SLOW, 0),
    )


def slo_report(
    store: Store, account: str, now: datetime, objectives: Objectives | None = None
) -> SloReport:
    """The SLO report of ``account``'s checks over the window ending at ``now``
    against ``objectives`` (the defaults if None), from the flushed per-minute
    counters (counts of the last ``ops_flush_seconds`` may not be in yet). Raises
    the store's errors if the database does not answer."""
    with store.read() as tx:
        return report_on(tx, objectives or Objectives(), account, now)
