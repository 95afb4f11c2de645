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
``max(mean + k * std, min_count)`` of the earlier windows. An alert is a row in
``alerts``, an audit entry (action ``alert.raised``), ``tenure_alerts_total`` and a
webhook event ``alert.raised``; it stays open (and is not raised again) until the
rate falls back to the threshold, when it is cleared.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric

from tenure.config import Settings
from tenure.domain.timefmt import format_time, parse_time
from tenure.errors import InvalidInput
from tenure.observability.metrics import ALERTS
from tenure.ops import counters, webhooks
from tenure.ops.scrape import state_source
from tenure.service.audit import AuditEntry
from tenure.service.ledger import Outcome, Write
from tenure.service.periodic import Periodic, for_every_account
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction, transaction_on

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
    conn: sa.Connection, account: str, kind: str, since: datetime, until: datetime, default: str
) -> list[tuple[datetime, int]]:
    if kind in _LEDGER_TYPES:
        e = t.ledger_events.c
        first = sql.first_seq_since(conn, account, format_time(since))
        times = conn.scalars(
            sa.select(e.time).where(
                e.account == account, e.seq >= first, e.type == _LEDGER_TYPES[kind]
            )
        )
        return [(parse_time(stamp), 1) for stamp in times]
    if kind == "expiries":
        lic = t.projection["licenses"].c
        times = conn.scalars(
            sa.select(lic.expires_at).where(
                lic.account == account,
                lic.expires_at >= format_time(since),
                lic.expires_at < format_time(until),
            )
        )
        return [(parse_time(stamp), 1) for stamp in times]
    metric = _COUNTERS[kind]
    found = counters.read_minutes(conn, account, metric, since, until)
    if kind == "auth_failed" and account == default:
        found += counters.read_minutes(conn, "", metric, since, until)
    return found


def measure(
    conn: sa.Connection, account: str, now: datetime, policy: AlertPolicy
) -> dict[str, list[int]]:
    """Each kind's window counts (``window_counts``) ending at ``now``."""
    since = now - (policy.windows + 1) * policy.window
    return {
        kind: window_counts(
            _stamps(conn, account, kind, since, now, policy.default_account),
            now,
            policy.window,
            policy.windows,
        )
        for kind in KINDS
    }


# ---------------------------------------------------------------- raising


def _open_alert(conn: sa.Connection, account: str, kind: str) -> str | None:
    a = t.alerts.c
    found = conn.scalar(
        sa.select(a.id).where(a.account == account, a.kind == kind, a.cleared_at.is_(None)).limit(1)
    )
    return None if found is None else str(found)


def _alert_id(account: str, kind: str, window_end: str) -> str:
    # The whole stamp, not its minute: with a run interval under a minute an alert
    # can be cleared and raised again within one. One open alert per kind is kept by
    # ``_open_alert`` inside the serialized ledger write, not by this id.
    digest = hashlib.sha256(f"{account}\n{kind}\n{window_end}".encode()).digest()
    return "alr_" + base64.b32encode(digest[:15]).decode().lower()


def _raise_in(
    conn: sa.Connection, account: str, kind: str, verdict: Verdict, now: datetime, window: timedelta
) -> dict[str, Any]:
    if _open_alert(conn, account, kind) is not None:
        return {"raised": False}
    end = format_time(now)
    row = {
        "account": account,
        "id": _alert_id(account, kind, end),
        "kind": kind,
        "window_start": format_time(now - window),
        "window_end": end,
        "observed": verdict.observed,
        "baseline": round(verdict.mean, 3),
        "threshold": round(verdict.threshold, 3),
        "created_at": end,
        "cleared_at": None,
    }
    conn.execute(sa.insert(t.alerts).values(row))
    view = {key: value for key, value in row.items() if key != "account"}
    webhooks.enqueue(conn, account, EVENT, {"alert": row["id"], **view}, now)
    return {"raised": True, **view}


Submit = Callable[[Write], Outcome]
"""Runs a ``Write`` in the ledger writer's transaction, audited (``Ledger.execute``)."""


def run_alerts(
    engine: sa.Engine, submit: Submit, account: str, now: datetime, policy: AlertPolicy
) -> list[dict[str, Any]]:
    """Measure ``account``'s rates at ``now``, raise each new anomaly (row, audit
    entry, metric, webhook event) and clear alerts whose rate fell back → the
    alerts raised."""
    with read_transaction(engine) as conn:
        series = measure(conn, account, now, policy)
        open_kinds = {kind for kind in KINDS if _open_alert(conn, account, kind) is not None}
    raised = []
    for kind, counts in series.items():
        verdict = detect(counts[-1], counts[:-1], policy.k, policy.min_count)
        if verdict.alert and kind not in open_kinds:
            raised += _raise(submit, account, kind, verdict, now, policy.window)
        elif not verdict.alert and kind in open_kinds:
            _clear(engine, account, kind, now)
    return raised


def _raise(
    submit: Submit, account: str, kind: str, verdict: Verdict, now: datetime, window: timedelta
) -> list[dict[str, Any]]:
    def apply(conn: sa.Connection) -> dict[str, Any]:
        return _raise_in(conn, account, kind, verdict, now, window)

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
    # phase b: ops (a typed operation replaces the Write adapter)
    result = submit(Write(account, apply, entry)).result
    if not result.pop("raised"):
        return []
    ALERTS.labels(kind).inc()
    return [result]


def _clear(engine: sa.Engine, account: str, kind: str, now: datetime) -> None:
    a = t.alerts.c
    with engine.connect() as conn, transaction_on(conn):
        conn.execute(
            sa.update(t.alerts)
            .where(a.account == account, a.kind == kind, a.cleared_at.is_(None))
            .values(cleared_at=format_time(now))
        )


# ---------------------------------------------------------------- reading


def list_alerts(engine: sa.Engine, account: str, limit: int = 50) -> list[dict[str, Any]]:
    """The account's most recent ``limit`` alerts, newest first: ``{"id", "kind",
    "window_start", "window_end", "observed", "baseline", "threshold",
    "created_at", "cleared_at"}`` (``cleared_at`` None while the alert is open)."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    a = t.alerts.c
    query = (
        sa.select(t.alerts)
        .where(a.account == account)
        .order_by(a.created_at.desc(), a.id)
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        rows = conn.execute(query).all()
    return [{k: v for k, v in row._mapping.items() if k != "account"} for row in rows]


def open_alerts(conn: sa.Connection, account: str) -> dict[str, int]:
    """Open alerts of ``account`` per kind."""
    a = t.alerts.c
    query = (
        sa.select(a.kind, sa.func.count())
        .where(a.account == account, a.cleared_at.is_(None))
        .group_by(a.kind)
    )
    return {str(kind): int(n) for kind, n in conn.execute(query).all()}


@state_source
def open_alerts_metric(conn: sa.Connection, account: str) -> Iterable[Metric]:
    """``tenure_alerts_open``: alerts not yet cleared, by kind (0 for none)."""
    family = GaugeMetricFamily(
        "tenure_alerts_open", "Anomaly alerts open, by kind.", labels=["account", "kind"]
    )
    found = open_alerts(conn, account)
    for kind in KINDS:
        family.add_metric([account, kind], found.get(kind, 0))
    yield family


def alert_job(engine: sa.Engine, submit: Submit, settings: Settings) -> Periodic:
    """The scheduled detector over every account (not started)."""
    policy = AlertPolicy.of(settings)
    job = for_every_account(
        engine, lambda account: run_alerts(engine, submit, account, datetime.now(UTC), policy)
    )
    interval = settings.alert_interval_seconds
    return Periodic("tenure-alerts", job, interval, lock_dir=settings.data_dir)
