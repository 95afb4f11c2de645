"""Anomaly alerts (docs/webhooks.md, "Anomaly alerts"): event rates far above
their baseline.

Every ``alert_interval_seconds`` the job counts, per account and kind, the events
of the last window (``alert_window_minutes``) and of each of the windows of the
same length before it over ``alert_baseline_hours``:

- ``revocations`` and ``suspensions``: ``license.revoked`` / ``license.suspended``
  ledger events, by event time;
- ``expiries``: licenses whose ``expires_at`` falls in the window;
- ``check_denied``: checks answered "denied" (``check.denied`` per-minute counter);
- ``auth_failed``: requests refused for a bad credential (``auth.failed``; the
  unauthenticated ones count for the default account).

``detect`` (pure) raises when the current count exceeds
``max(mean + k * std, min_count)`` of the earlier windows. An alert is a stored
alert (``tx.alerts``), an audit entry (action ``alert.raised``; the ``RaiseAlert``
operation runs in the ledger writer's transaction), ``tenure_alerts_total`` and a
webhook event ``alert.raised``; it stays open (and is not raised again) until the
rate falls back to the threshold, when it is cleared.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from tenure.config import Settings
from tenure.domain.timefmt import format_time, parse_time
from tenure.errors import InvalidInput
from tenure.observability.metrics import ALERTS
from tenure.ops import counters, webhooks
from tenure.ops.jobs import account_job
from tenure.ops.scrape import Scrape, state_source
from tenure.ops.views import AlertView
from tenure.service.audit import AuditEntry
from tenure.service.handlers.audited import AuditedChange
from tenure.service.ledger import Operation, Outcome
from tenure.store.alerts import StoredAlert
from tenure.store.unit import Store, Transaction
from tenure.workers import Worker

KINDS = ("revocations", "suspensions", "expiries", "check_denied", "auth_failed")
EVENT = "alert.raised"
_LEDGER_TYPES = {"revocations": "license.revoked", "suspensions": "license.suspended"}
_COUNTERS = {"check_denied": counters.CHECK_DENIED, "auth_failed": counters.AUTH_FAILED}


@dataclass(frozen=True)
class Verdict:
    """A window's count against its baseline."""

    observed: int
    mean: float
    std: float
    threshold: float

    @property
    def alert(self) -> bool:
        return self.observed > self.threshold


def detect(current: int, history: Sequence[int], k: float, min_count: int) -> Verdict:
    """Compare ``current`` with the (population) mean and standard deviation of
    ``history``: alert when it exceeds ``max(mean + k * std, min_count)``. An empty
    history has mean and deviation 0."""
    mean = sum(history) / len(history) if history else 0.0
    variance = sum((n - mean) ** 2 for n in history) / len(history) if history else 0.0
    std = math.sqrt(variance)
    return Verdict(current, mean, std, max(mean + k * std, float(min_count)))


def window_counts(
    stamps: Iterable[tuple[datetime, int]], end: datetime, window: timedelta, windows: int
) -> list[int]:
    """Counts of ``windows`` + 1 consecutive windows ending at ``end``, oldest first
    (the last is the current one); window ``i`` is ``[end - (windows + 1 - i) *
    window, end - (windows - i) * window)``. Stamps outside them are ignored."""
    counts = [0] * (windows + 1)
    start = end - (windows + 1) * window
    for moment, n in stamps:
        if start <= moment < end:
            counts[int((moment - start) / window)] += n
    return counts


@dataclass(frozen=True)
class AlertPolicy:
    """The detector's settings."""

    window: timedelta
    windows: int
    k: float
    min_count: int
    default_account: str

    @classmethod
    def of(cls, settings: Settings) -> AlertPolicy:
        window = timedelta(minutes=settings.alert_window_minutes)
        windows = max(1, round(settings.alert_baseline_hours * 60 / settings.alert_window_minutes))
        return cls(
            window, windows, settings.alert_k, settings.alert_min_count, settings.default_account
        )


# ---------------------------------------------------------------- counting


def _stamps(
    tx: Transaction, account: str, kind: str, since: datetime, until: datetime, default: str
) -> list[tuple[datetime, int]]:
    if kind in _LEDGER_TYPES:
        times = tx.alerts.event_times(account, _LEDGER_TYPES[kind], format_time(since))
        return [(parse_time(stamp), 1) for stamp in times]
    if kind == "expiries":
        times = tx.alerts.expiries(account, format_time(since), format_time(until))
        return [(parse_time(stamp), 1) for stamp in times]
    metric = _COUNTERS[kind]
    found = counters.read_minutes(tx, account, metric, since, until)
    if kind == "auth_failed" and account == default:
        found += counters.read_minutes(tx, "", metric, since, until)
    return found


def measure(
    tx: Transaction, account: str, now: datetime, policy: AlertPolicy
) -> dict[str, list[int]]:
    """Each kind's window counts (``window_counts``) ending at ``now``."""
    since = now - (policy.windows + 1) * policy.window
    return {
        kind: window_counts(
            _stamps(tx, account, kind, since, now, policy.default_account),
            now,
            policy.window,
            policy.windows,
        )
        for kind in KINDS
    }


# ---------------------------------------------------------------- raising


def _alert_id(account: str, kind: str, window_end: str) -> str:
    # The whole stamp, not its minute: with a run interval under a minute an alert
    # can be cleared and raised again within one. One open alert per kind is kept by
    # ``open_alert`` inside the serialized ledger write, not by this id.
    digest = hashlib.sha256(f"{account}\n{kind}\n{window_end}".encode()).digest()
    return "alr_" + base64.b32encode(digest[:15]).decode().lower()


def _raise_in(
    tx: Transaction, account: str, kind: str, verdict: Verdict, now: datetime, window: timedelta
) -> dict[str, Any]:
    if tx.alerts.open_alert(account, kind) is not None:
        return {"raised": False}
    end = format_time(now)
    alert = StoredAlert(
        id=_alert_id(account, kind, end),
        kind=kind,
        window_start=format_time(now - window),
        window_end=end,
        observed=verdict.observed,
        baseline=round(verdict.mean, 3),
        threshold=round(verdict.threshold, 3),
        created_at=end,
    )
    tx.alerts.add(account, alert)
    view = asdict(alert)
    webhooks.enqueue(tx, account, EVENT, {"alert": alert.id, **view}, now)
    return {"raised": True, **view}


@dataclass(frozen=True)
class RaiseAlert(AuditedChange):
    """Raise an alert of ``kind`` unless one is open: its row, its webhook event and
    (in any case) its audit entry, in the ledger writer's transaction → ``{"raised":
    false}`` or ``{"raised": true, ...the alert}``."""

    kind: str
    verdict: Verdict
    now: datetime
    window: timedelta

    def run(self, tx: Transaction) -> dict[str, Any]:
        return _raise_in(tx, self.account, self.kind, self.verdict, self.now, self.window)


Submit = Callable[[Operation], Outcome]
"""Runs an ``Operation`` in the ledger writer's transaction, audited (``Ledger.execute``)."""


def run_alerts(
    store: Store, submit: Submit, account: str, now: datetime, policy: AlertPolicy
) -> list[AlertView]:
    """Measure ``account``'s rates at ``now``, raise each new anomaly (row, audit
    entry, metric, webhook event) and clear alerts whose rate fell back → the
    alerts raised."""
    with store.read() as tx:
        series = measure(tx, account, now, policy)
        open_kinds = {kind for kind in KINDS if tx.alerts.open_alert(account, kind) is not None}
    raised = []
    for kind, counts in series.items():
        verdict = detect(counts[-1], counts[:-1], policy.k, policy.min_count)
        if verdict.alert and kind not in open_kinds:
            raised += _raise(submit, account, kind, verdict, now, policy.window)
        elif not verdict.alert and kind in open_kinds:
            _clear(store, account, kind, now)
    return raised


def _raise(
    submit: Submit, account: str, kind: str, verdict: Verdict, now: datetime, window: timedelta
) -> list[AlertView]:
    entry = AuditEntry(
        account,
        "system",
        "monitor",
        "internal",
        EVENT,
        "allowed",
        "ok",
        target=kind,
        # Audit entries are canonical JSON, which has no floats: the threshold as text.
        detail={"observed": verdict.observed, "threshold": f"{verdict.threshold:g}"},
    )
    result = dict(submit(RaiseAlert(entry, kind, verdict, now, window)).result)
    if not result.pop("raised"):
        return []
    ALERTS.labels(kind).inc()
    return [AlertView(**result)]


def _clear(store: Store, account: str, kind: str, now: datetime) -> None:
    with store.shared_write() as tx:
        tx.alerts.clear(account, kind, format_time(now))


# ---------------------------------------------------------------- reading


def list_alerts(store: Store, account: str, limit: int = 50) -> list[AlertView]:
    """The account's most recent ``limit`` alerts, newest first (``cleared_at`` None
    while an alert is open); ``InvalidInput`` unless 1 <= ``limit`` <= 1000."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    with store.read() as tx:
        found = tx.alerts.recent(account, limit)
    return [AlertView.model_validate(alert, from_attributes=True) for alert in found]


def open_alerts(tx: Transaction, account: str) -> dict[str, int]:
    """Open alerts of ``account`` per kind."""
    return tx.alerts.open_counts(account)


@state_source
def open_alerts_metric(scrape: Scrape) -> Iterable[Metric]:
    """``tenure_alerts_open``: alerts not yet cleared, by kind (0 for none)."""
    family = GaugeMetricFamily(
        "tenure_alerts_open", "Anomaly alerts open, by kind.", labels=["account", "kind"]
    )
    found = open_alerts(scrape.tx, scrape.account)
    for kind in KINDS:
        family.add_metric([scrape.account, kind], found.get(kind, 0))
    yield family


def alert_job(store: Store, submit: Submit, settings: Settings) -> Worker:
    """The scheduled detector over every account (not started)."""
    policy = AlertPolicy.of(settings)

    def run(account: str) -> None:
        run_alerts(store, submit, account, datetime.now(UTC), policy)

    interval = settings.alert_interval_seconds
    return account_job("tenure-alerts", store, run, interval, settings.data_dir)
