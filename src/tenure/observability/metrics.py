"""Prometheus metrics (docs/operations.md, "Metrics").

Two kinds:

- **Process metrics** (counters, histograms) that request handlers and workers update
  as things happen: decisions by reason, request latency, append latency. With
  several worker processes they are aggregated through prometheus-client's
  multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``tenure serve``).
- **State metrics** read from the database when ``/metrics`` is scraped: ledger size,
  checkpoint and snapshot age, drift, approvals pending, webhook backlog. Any worker
  answers them the same, since they come from the shared store. A module contributes
  them by registering a ``StateSource`` with ``state_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric

DECISIONS = Counter(
    "tenure_decisions_total",
    "Entitlement decisions answered, by outcome and reason.",
    ["allowed", "reason"],
)
AUTH_FAILURES = Counter(
    "tenure_auth_failures_total", "Requests refused for a missing or invalid credential (401)."
)
APPEND_SECONDS = Histogram(
    "tenure_ledger_append_seconds",
    "Time to append one batch of events to the ledger (sign, store, commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
APPENDED_EVENTS = Counter("tenure_ledger_appended_events_total", "Events appended to the ledger.")
WEBHOOK_DELIVERIES = Counter(
    "tenure_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, retry, failed).",
    ["outcome"],
)
ALERTS = Counter("tenure_alerts_total", "Anomaly alerts raised, by kind.", ["kind"])
DRIFT_CORRECTIONS = Counter(
    "tenure_drift_corrections_total", "Corrective events the reconciler appended, by kind.", ["kind"]
)

StateSource = Callable[[sa.Connection, str], Iterable[Metric]]
"""Reads state metrics of one account from an open read connection."""

_SOURCES: list[StateSource] = []


def state_source(source: StateSource) -> StateSource:
    """Register ``source`` (a decorator): ``/metrics`` calls it on every scrape."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def state_sources() -> tuple[StateSource, ...]:
    """The registered state sources, in registration order."""
    return tuple(_SOURCES)
