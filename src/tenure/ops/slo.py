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

import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from tenure.config import Settings
from tenure.ops import counters
from tenure.store.engine import read_transaction


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


@dataclass(frozen=True)
class SloReport:
    """Both objectives over the window ending now, and what is left of their budgets."""

    objective_availability: float
    objective_latency_ms: float
    objective_latency_target: float
    window_days: float
    total: int
    errors: int
    slow: int
    availability: float
    fast_share: float
    availability_budget_remaining: float
    latency_budget_remaining: float


_objectives: weakref.WeakKeyDictionary[sa.Engine, Objectives] = weakref.WeakKeyDictionary()


def configure(engine: sa.Engine, objectives: Objectives) -> None:
    """Use ``objectives`` for reports over ``engine`` (``create_app`` does this; without
    it the defaults apply)."""
    _objectives[engine] = objectives


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


def report_on(
    conn: sa.Connection, objectives: Objectives, account: str, now: datetime
) -> SloReport:
    """``slo_report`` on an open read connection."""
    since = now - timedelta(days=objectives.window_days)
    sums = counters.totals(conn, account, since, now)
    return report(
        objectives,
        sums.get(counters.CHECK_TOTAL, 0),
        sums.get(counters.CHECK_ERROR, 0),
        sums.get(counters.CHECK_SLOW, 0),
    )


def slo_report(engine: sa.Engine, account: str, now: datetime) -> SloReport:
    """The SLO report of ``account``'s checks over the window ending at ``now``, from
    the flushed per-minute counters (counts of the last ``ops_flush_seconds`` may not
    be in yet). Raises SQLAlchemy's errors if the database does not answer."""
    objectives = _objectives.get(engine, Objectives())
    with read_transaction(engine) as conn:
        return report_on(conn, objectives, account, now)


def objectives_of(engine: sa.Engine) -> Objectives:
    """The objectives configured for ``engine`` (the defaults if none)."""
    return _objectives.get(engine, Objectives())
