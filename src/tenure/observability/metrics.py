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

import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

MetricT = TypeVar("MetricT", bound=MetricWrapperBase)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

DECISIONS = Counter(
    "tenure_decisions_total",
    "Entitlement decisions answered, by outcome and reason.",
    ["allowed", "reason"],
)
READ_MODEL = Counter(
    "tenure_check_read_model_lookups_total",
    "Licenses and credentials a check looked up in this process's read model, by "
    "result: hit (proven rows in memory), miss (read from the store and proven).",
    ["result"],
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
    "tenure_drift_corrections_total",
    "Corrective events the reconciler appended, by kind.",
    ["kind"],
)

HTTP_REQUESTS = Counter(
    "tenure_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "tenure_http_request_seconds",
    "Time from request to the end of the answer, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
SHIPPING_BEHIND = Gauge(
    "tenure_shipping_behind_events",
    "Committed events not yet at the site after the last shipping pass (the process "
    "that ships reports it).",
    ["site"],
    multiprocess_mode="livemax",
)
SHIPPING_AGE = Gauge(
    "tenure_shipping_last_success_age_seconds",
    "Seconds since the last shipping pass that reached every site.",
    ["site"],
    multiprocess_mode="livemin",
)
SNAPSHOT_SIZE = Gauge(
    "tenure_snapshot_size",
    "Ledger size the last snapshot holds, by account namespace at the sites.",
    ["namespace"],
    multiprocess_mode="livemax",
)
SNAPSHOT_AGE = Gauge(
    "tenure_snapshot_age_seconds",
    "Seconds since the last snapshot (or since this process first looked), by namespace.",
    ["namespace"],
    multiprocess_mode="livemin",
)

_process_metrics = [True]
"""Whether process metrics are counted (``metrics_enabled``); a list so that the
hot paths read it without a ``global`` statement."""


def enable_process_metrics(enabled: bool) -> None:
    """Count process metrics (decisions, requests, appends), or stop counting them."""
    _process_metrics[0] = enabled


def process_metrics_enabled() -> bool:
    """Whether process metrics are counted."""
    return _process_metrics[0]


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: MetricT, *values: str) -> MetricT:
    """``metric.labels(*values)``, kept: the per-request paths ask for the same few
    children every time, and ``labels`` validates and locks on each call."""
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return cast(MetricT, child)


def observe_decisions(answers: Iterable[Mapping[str, object]]) -> None:
    """Count decisions by ``allowed`` and ``reason`` (no-op when process metrics are off)."""
    if _process_metrics[0]:
        counted: dict[tuple[str, str], int] = {}
        for answer in answers:
            key = ("true" if answer["allowed"] else "false", str(answer["reason"]))
            counted[key] = counted.get(key, 0) + 1
        for (allowed, reason), count in counted.items():
            labelled(DECISIONS, allowed, reason).inc(count)


def observe_read_model(hit: bool, lookups: int = 1) -> None:
    """Count read-model lookups (no-op when process metrics are off)."""
    if _process_metrics[0]:
        labelled(READ_MODEL, "hit" if hit else "miss").inc(lookups)


def observe_append(seconds: float, events: int) -> None:
    """Record one ledger batch: its time and the events it appended."""
    if _process_metrics[0]:
        APPEND_SECONDS.observe(seconds)
        if events:
            APPENDED_EVENTS.inc(events)


def process_registry() -> Collector:
    """Where process metrics are read: every worker's files (multiprocess mode, when
    ``PROMETHEUS_MULTIPROC_DIR`` is set) or this process's default registry."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def mark_process_dead(pid: int) -> None:
    """Drop a stopped worker's live gauges (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _Families(Collector):
    """State metrics of several accounts merged into one family per name (a name
    appears once in the text format, whatever the number of accounts)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        merged: dict[str, Metric] = {}
        for metric in metrics:
            family = merged.get(metric.name)
            if family is None:
                merged[metric.name] = metric
            else:
                family.samples.extend(metric.samples)
        self._families = list(merged.values())

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(state: Iterable[Metric], with_process: bool) -> bytes:
    """The text format of the process metrics (unless ``with_process`` is false) and
    of the given state metrics."""
    text = generate_latest(_Families(state))
    if with_process:
        text = generate_latest(process_registry()) + text
    return text


def account_gauge(name: str, doc: str, account: str, value: float) -> GaugeMetricFamily:
    """A state metric: gauge ``name`` of ``account`` at ``value``."""
    family = GaugeMetricFamily(name, doc, labels=["account"])
    family.add_metric([account], value)
    return family
