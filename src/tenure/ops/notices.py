"""Lifecycle notices (docs/webhooks.md): licenses about to expire, and licenses
that entered their grace period.

A job (every ``notice_interval_seconds``) looks at each account's active licenses.
One whose ``expires_at`` is at most ``lead`` days away gets one
``license.expiring_soon`` notice for the smallest lead time of
``notice_expiring_lead_days`` that applies (30, then 7, then 1 day before, by
default); one that is expired but inside its plan's grace gets one
``license.grace_started`` notice. A notice's id is derived from its kind, serial,
lead and expiry, so however often (and in however many processes) the job runs,
each is recorded once, and a renewal (a new expiry) starts over. Each recorded
notice also queues a webhook event of its kind.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tenure.domain.decisions import license_status
from tenure.domain.state import Row
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.errors import InvalidInput
from tenure.ops import webhooks
from tenure.ops.jobs import account_job
from tenure.ops.scrape import count_source
from tenure.ops.views import NoticeView
from tenure.store.notices import StoredNotice
from tenure.store.unit import Store, Transaction
from tenure.workers import Worker

EXPIRING = "license.expiring_soon"
GRACE = "license.grace_started"
KINDS = (EXPIRING, GRACE)


def parse_leads(text: str) -> tuple[int, ...]:
    """``"30,7,1"`` → ``(1, 7, 30)``; ``InvalidInput`` unless positive whole days."""
    try:
        leads = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InvalidInput("lead days must be whole numbers such as 30,7,1", field="lead") from None
    if not leads or leads[0] < 1:
        raise InvalidInput("lead days must be positive whole numbers", field="lead")
    return tuple(leads)


@dataclass(frozen=True)
class Notice:
    """One notice about one license: ``lead`` is None for ``license.grace_started``."""

    kind: str
    serial: str
    customer: str | None
    expires_at: str
    lead: int | None

    @property
    def id(self) -> str:
        text = f"{self.kind}\n{self.serial}\n{self.lead or 0}\n{self.expires_at}"
        digest = hashlib.sha256(text.encode()).digest()
        return "ntc_" + base64.b32encode(digest[:15]).decode().lower()

    def event_data(self) -> dict[str, Any]:
        """The webhook event's ``data``: ids and times only."""
        return {
            "notice": self.id,
            "serial": self.serial,
            "customer": self.customer,
            "expires_at": self.expires_at,
            "lead_days": self.lead,
        }


def due_notices(
    licenses: Iterable[Row],
    plan_versions: Mapping[tuple[str, int], Row],
    now: datetime,
    leads: tuple[int, ...],
) -> list[Notice]:
    """The notices ``licenses`` call for at ``now`` (pure). Each license row needs
    serial, customer, plan, plan_version, status and expires_at."""
    found = []
    for row in licenses:
        if row["status"] != "active" or not row["expires_at"]:
            continue
        expiry = parse_time(row["expires_at"], field="expires_at")
        if now < expiry:
            left = expiry - now
            applies = [lead for lead in leads if left <= timedelta(days=lead)]
            if applies:
                found.append(
                    Notice(EXPIRING, row["serial"], row["customer"], row["expires_at"], applies[0])
                )
            continue
        plan = plan_versions.get((row["plan"], int(row["plan_version"])))
        if license_status(row, plan, now).status == "in_grace":
            found.append(Notice(GRACE, row["serial"], row["customer"], row["expires_at"], None))
    return found


def _candidates(
    tx: Transaction, account: str, now: datetime, leads: tuple[int, ...]
) -> tuple[list[Row], dict[tuple[str, int], Row]]:
    """Active licenses expiring before the longest lead and not before the longest
    grace ago, and the plan versions they are on."""
    plans = {
        (row["plan"], int(row["version"])): row
        for row in tx.projection.rows(account, "plan_versions")
    }
    longest = max(
        (parse_duration(p["grace"]).after(now) - now for p in plans.values() if p["grace"]),
        default=timedelta(0),
    )
    since = format_time(now - longest)
    until = format_time(now + timedelta(days=max(leads)))
    return tx.notices.expiring(account, since, until), plans


def run_notices(store: Store, account: str, now: datetime, leads: tuple[int, ...]) -> list[Notice]:
    """Record the notices due for ``account`` that are not recorded yet, and queue
    a webhook event for each → the new ones."""
    with store.read() as tx:
        licenses, plans = _candidates(tx, account, now, leads)
    due = due_notices(licenses, plans, now, leads)
    if not due:
        return []
    new = []
    with store.shared_write() as tx:
        for notice in due:
            stored = StoredNotice(
                notice.id,
                notice.kind,
                notice.serial,
                notice.customer,
                notice.expires_at,
                notice.lead,
                format_time(now),
            )
            if tx.notices.add(account, stored):
                webhooks.enqueue(tx, account, notice.kind, notice.event_data(), now)
                new.append(notice)
    return new


def list_notices(store: Store, account: str, limit: int = 50) -> list[NoticeView]:
    """The account's most recent ``limit`` notices, newest first; ``InvalidInput``
    unless 1 <= ``limit`` <= 1000."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    with store.read() as tx:
        found = tx.notices.recent(account, limit)
    return [NoticeView.model_validate(n, from_attributes=True) for n in found]


def pending_notices(tx: Transaction, account: str) -> int:
    """Deliveries of notice events of ``account`` still waiting to be delivered."""
    return tx.webhooks.pending(account, KINDS)


pending_metric = count_source(
    "tenure_notices_pending", "Lifecycle notices awaiting webhook delivery.", pending_notices
)
"""``tenure_notices_pending``: notice events not yet delivered to webhooks."""


def notice_job(
    store: Store, lead_days: str, interval: float, lock_dir: Path | None = None
) -> Worker:
    """The scheduled notice job over every account (not started); with ``lock_dir``,
    one process of those sharing it runs it."""
    leads = parse_leads(lead_days)

    def run(account: str) -> None:
        run_notices(store, account, datetime.now(UTC), leads)

    return account_job("tenure-notices", store, run, interval, lock_dir)
