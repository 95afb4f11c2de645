"""The webhook worker (docs/webhooks.md): fans ledger events out to deliveries and
sends due deliveries, in a thread of its own per server process.

Each pass (a ``tenure.workers.Worker`` run every ``webhook_poll_seconds``) queues
deliveries for new ledger events (``webhooks.fan_out``), then claims due
deliveries with a lease (``tx.webhooks.lease``: conditional, so two processes never
send the same delivery at once) and hands them to the worker's pool of at most
``webhook_concurrency`` threads, at most ``PER_ENDPOINT`` of them per
subscription: an endpoint that hangs holds its own slots, not the others'. Each
request has a timeout and follows no redirect; the URL policy is checked again
after resolving the host, so a name that later points inward is refused, and the
request goes to an address that check approved (the name is not resolved again).

A 2xx answer delivers; anything else is retried after the next wait of
``webhook_retry_schedule`` (with up to 25 % jitter, so retries of many
deliveries spread out), and once the schedule is used up the delivery fails.
Every attempt is kept in the delivery's ``history``.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tenure import __version__
from tenure.config import Settings
from tenure.domain.timefmt import format_time
from tenure.errors import InvalidInput, TenureError
from tenure.observability.metrics import WEBHOOK_DELIVERIES
from tenure.ops import alerts, notices, webhooks
from tenure.ops.webhooks import SecretBox
from tenure.service.context import ServiceContext
from tenure.service.ledger import Ledger
from tenure.store.unit import Store
from tenure.store.webhooks import AttemptRecord, DueDelivery
from tenure.workers import Worker

_log = logging.getLogger("tenure.webhooks")

PER_ENDPOINT = 2
"""Deliveries in flight at most per subscription."""
HISTORY_MAX = 20
"""Attempts kept per delivery (the latest)."""
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"5s,30s,2m,10m,1h"`` → seconds. Raises ``InvalidInput`` for anything else."""
    waits = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = _WAIT.match(part)
        if match is None:
            raise InvalidInput(
                f"webhook retry wait {part!r} is not like 5s, 2m or 1h", field="schedule"
            )
        waits.append(float(match[1]) * _UNITS[match[2] or "s"])
    return tuple(waits)


def next_wait(schedule: tuple[float, ...], attempts: int, jitter: float) -> float | None:
    """Seconds until the retry after ``attempts`` failed attempts (``jitter`` in
    [0, 1) stretches it by up to 25 %), or None when the schedule is used up."""
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * (1.0 + 0.25 * jitter)


def _jitter() -> float:
    return random.random()  # noqa: S311 - spreads retries; nothing secret depends on it


@dataclass(frozen=True)
class Claimed:
    """A delivery this process holds the lease of."""

    account: str
    id: str
    webhook: str
    url: str
    secret: str = field(repr=False)
    payload: str
    attempts: int
    history: str
    lease: str


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to."""

    status_code: int | None
    error: str | None
    milliseconds: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookWorker:
    """Fans out and delivers; see the module doc. ``run_once`` is one pass."""

    def __init__(self, store: Store, settings: Settings, box: SecretBox) -> None:
        self._store = store
        self._settings = settings
        self._box = box
        self._schedule = parse_schedule(settings.webhook_retry_schedule)
        self._inflight: Tally[str] = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker = Worker(
            "tenure-webhooks",
            self.run_once,
            settings.webhook_poll_seconds,
            pool=settings.webhook_concurrency,
            logger=_log,
            what="webhook pass",
        )

    def start(self) -> WebhookWorker:
        self._worker.start()
        return self

    def stop(self) -> None:
        """Stop claiming; deliveries in flight finish (bounded by their timeout)."""
        self._stop.set()
        self._worker.stop()

    def run_once(self, now: datetime | None = None) -> int:
        """Fan out new ledger events, then start sending due deliveries → how many
        were started."""
        now = now or datetime.now(UTC)
        with self._store.read() as tx:
            accounts = tx.webhooks.cursor_accounts()
        # A stop ends a long backlog's fan-out between batches (the cursor keeps the
        # place) and claims nothing that shutdown would cancel with its lease held.
        for account in accounts:
            while self._fan_out(account, now) > 0 and not self._stop.is_set():
                pass
        if self._stop.is_set():
            return 0
        claimed = self._claim(now)
        for delivery in claimed:
            self._worker.pool.submit(self._deliver, delivery)
        return len(claimed)

    def _fan_out(self, account: str, now: datetime) -> int:
        with self._store.shared_write() as tx:
            return webhooks.fan_out(tx, account, now)

    # ------------------------------------------------------------ claiming

    def _claim(self, now: datetime) -> list[Claimed]:
        with self._lock:
            room = self._settings.webhook_concurrency - sum(self._inflight.values())
        if room <= 0:
            return []
        stamp = format_time(now)
        lease = format_time(
            now + timedelta(seconds=2 * self._settings.webhook_timeout_seconds + 30)
        )
        claimed: list[Claimed] = []
        with self._store.shared_write() as tx:
            for due in tx.webhooks.due(stamp, room * 4):
                if len(claimed) >= room or not self._take_slot(due.webhook):
                    continue
                if not tx.webhooks.lease(due.account, due.id, stamp, lease):
                    self._free_slot(due.webhook)
                    continue
                opened = self._open(due, lease)
                if opened is None:
                    self._free_slot(due.webhook)
                    continue
                claimed.append(opened)
        return claimed

    def _open(self, due: DueDelivery, lease: str) -> Claimed | None:
        """The claimed delivery with its secret opened; None (logged) if it does not
        open: another master key (retried when the lease ends)."""
        try:
            secret = self._box.open(due.account, due.webhook, due.secret)
        except TenureError as exc:
            _log.error("webhook %s: %s", due.webhook, exc)
            return None
        return Claimed(
            due.account,
            due.id,
            due.webhook,
            due.url,
            secret,
            due.payload,
            due.attempts,
            due.history,
            lease,
        )

    def _take_slot(self, webhook: str) -> bool:
        with self._lock:
            if self._inflight[webhook] >= PER_ENDPOINT:
                return False
            self._inflight[webhook] += 1
            return True

    def _free_slot(self, webhook: str) -> None:
        with self._lock:
            self._inflight[webhook] -= 1
            if self._inflight[webhook] <= 0:
                del self._inflight[webhook]

    # ------------------------------------------------------------ sending

    def _deliver(self, delivery: Claimed) -> None:
        try:
            attempt = self.send(delivery)
            self._record(delivery, attempt, datetime.now(UTC))
        except Exception as exc:  # the lease runs out and another pass retries it
            _log.error("webhook delivery %s failed to record: %s", delivery.id, exc)
        finally:
            self._free_slot(delivery.webhook)

    def send(self, delivery: Claimed) -> Attempt:
        """POST the delivery's body, signed, to its URL: one attempt."""
        started = time.monotonic()
        allow_private = self._settings.webhook_allow_private
        try:
            addresses = webhooks.check_url(delivery.url, allow_private)
        except TenureError as exc:
            return Attempt(None, f"refused: {exc.message}"[:500], 0)
        named = url = httpx.URL(delivery.url)
        pinned: dict[str, Any] = {}
        if not allow_private and addresses:
            # Connect to an address the policy just approved: resolving the name again
            # would let a DNS answer that changed in between (rebinding) point inward.
            # Host header and TLS (SNI, certificate) still use the name.
            pinned = {"sni_hostname": named.host}
            url = url.copy_with(host=addresses[0])
        body = delivery.payload.encode()
        stamp = int(time.time())
        headers = {
            "host": named.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": f"tenure-webhooks/{__version__}",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhooks.sign(delivery.secret, delivery.id, stamp, body),
        }
        timeout = httpx.Timeout(self._settings.webhook_timeout_seconds, connect=5.0)
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                response = client.post(url, content=body, headers=headers, extensions=pinned)
        except httpx.HTTPError as exc:
            elapsed = round((time.monotonic() - started) * 1000)
            reason = str(exc) or type(exc).__name__
            return Attempt(None, f"{type(exc).__name__}: {reason}"[:500], elapsed)
        elapsed = round((time.monotonic() - started) * 1000)
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Attempt(response.status_code, error, elapsed)

    def _record(self, delivery: Claimed, attempt: Attempt, now: datetime) -> None:
        attempts = delivery.attempts + 1
        history: list[dict[str, Any]] = orjson.loads(delivery.history)
        history.append(
            {
                "at": format_time(now),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "ms": attempt.milliseconds,
            }
        )
        wait = None if attempt.delivered else next_wait(self._schedule, attempts, _jitter())
        if attempt.delivered:
            status, next_at, outcome = "delivered", None, "delivered"
        elif wait is None:
            status, next_at, outcome = "failed", None, "failed"
        else:
            status, next_at = "pending", format_time(now + timedelta(seconds=wait))
            outcome = "retry"
        record = AttemptRecord(
            status=status,
            attempts=attempts,
            next_attempt_at=next_at,
            last_status_code=attempt.status_code,
            last_error=attempt.error,
            history=orjson.dumps(history[-HISTORY_MAX:]).decode(),
        )
        with self._store.shared_write() as tx:
            tx.webhooks.record(delivery.account, delivery.id, delivery.lease, record)
        WEBHOOK_DELIVERIES.labels(outcome).inc()


@dataclass
class WebhookServices:
    """The background work of docs/webhooks.md in one server process: the webhook
    worker, the lifecycle notice job and the anomaly detector."""

    worker: WebhookWorker
    jobs: tuple[Worker, ...]

    @classmethod
    def start(cls, runtime: ServiceContext, ledger: Ledger) -> WebhookServices:
        """Build and start them from ``runtime.settings``; ``ledger`` audits alerts."""
        s, store = runtime.settings, runtime.store
        worker = WebhookWorker(store, s, SecretBox.from_settings(s)).start()
        jobs = (
            notices.notice_job(
                store, s.notice_expiring_lead_days, s.notice_interval_seconds, s.data_dir
            ),
            alerts.alert_job(store, ledger.execute, s),
        )
        for job in jobs:
            job.start()
        return cls(worker, jobs)

    def stop(self) -> None:
        """Stop the jobs, then the worker (deliveries in flight finish first)."""
        for job in self.jobs:
            job.stop()
        self.worker.stop()
