"""Webhook rows (docs/webhooks.md): subscriptions, the fan-out cursor of each account,
and deliveries with their lease, attempts and history.

What the rows mean (patterns, sealed secrets, payload bodies, the retry
schedule) is ``tenure.ops.webhooks``'s business; this module only stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection

PENDING = "pending"


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription as stored; ``secret`` is sealed (``ops.webhooks.SecretBox``)."""

    id: str
    url: str
    events: tuple[str, ...]
    description: str
    secret: str = field(repr=False)
    enabled: bool
    from_seq: int
    """The first ledger seq it receives (the ledger's size when it was created)."""
    created_at: str


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to queue: its id (derived from webhook and event, so queuing it twice
    queues it once), the subscription, the event type and the exact body to send."""

    id: str
    webhook: str
    event_type: str
    payload: str


@dataclass(frozen=True)
class Delivery:
    """A delivery as stored: ``history`` is the JSON list of its attempts."""

    id: str
    webhook: str
    event_type: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: str | None
    lease_until: str | None
    last_status_code: int | None
    last_error: str | None
    history: str
    created_at: str


@dataclass(frozen=True)
class DueDelivery:
    """A pending delivery whose time has come, with what sending it needs."""

    account: str
    id: str
    webhook: str
    payload: str
    attempts: int
    history: str
    url: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt changes of its delivery."""

    status: str
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    history: str


class Webhooks(Protocol):
    """Subscriptions, fan-out cursors and deliveries of every account."""

    def add(self, account: str, subscription: Subscription) -> None: ...

    def subscriptions(self, account: str, enabled_only: bool = False) -> list[Subscription]:
        """The account's subscriptions (only the enabled ones if asked), oldest first."""
        ...

    def subscription(self, account: str, webhook: str) -> Subscription | None: ...

    def set_enabled(self, account: str, webhook: str, enabled: bool) -> None: ...

    def remove(self, account: str, webhook: str) -> None:
        """Delete the subscription and every delivery of it."""
        ...

    def cursor(self, account: str) -> int | None:
        """The next ledger seq the fan-out reads; None before the first subscription."""
        ...

    def start_cursor(self, account: str, seq: int) -> None:
        """Start the account's cursor at ``seq`` unless it has one."""
        ...

    def move_cursor(self, account: str, old: int, new: int) -> None:
        """Move the cursor from ``old`` to ``new`` (nothing if another process moved it)."""
        ...

    def cursor_accounts(self) -> list[str]:
        """Accounts with a cursor (those that ever had a subscription)."""
        ...

    def queue(self, account: str, deliveries: Sequence[NewDelivery], at: str) -> None:
        """Queue ``deliveries`` as pending and due at ``at``; one already queued (same
        id) is left as it is."""
        ...

    def deliveries(
        self, account: str, webhook: str, status: str | None, limit: int
    ) -> list[Delivery]:
        """The subscription's deliveries (of ``status`` if given), newest first."""
        ...

    def delivery(self, account: str, webhook: str, delivery: str) -> Delivery | None: ...

    def make_due(self, account: str, webhook: str, delivery: str, at: str) -> None:
        """Set the delivery pending and due at ``at`` (its lease stays)."""
        ...

    def due(self, at: str, limit: int) -> list[DueDelivery]:
        """Pending deliveries of enabled subscriptions due at ``at`` and not leased
        past it, the longest waiting first, at most ``limit``."""
        ...

    def lease(self, account: str, delivery: str, at: str, until: str) -> bool:
        """Lease a pending delivery whose lease ended before ``at`` until ``until``;
        False if it is not pending or another holds a live lease."""
        ...

    def record(self, account: str, delivery: str, lease: str, attempt: AttemptRecord) -> None:
        """Record an attempt and end the lease, if ``lease`` is still the delivery's."""
        ...

    def pending(self, account: str, event_types: Sequence[str] | None = None) -> int:
        """Deliveries of ``account`` still pending (of ``event_types`` if given)."""
        ...


# ---------------------------------------------------------------- SQL

_w, _c, _d = t.webhooks.c, t.webhook_cursors.c, t.webhook_deliveries.c

_INSERT_DELIVERY = sa.text(
    "INSERT INTO webhook_deliveries (account, id, webhook, event_type, payload, status, "
    "attempts, next_attempt_at, lease_until, last_status_code, last_error, history, "
    "created_at) VALUES (:account, :id, :webhook, :event_type, :payload, 'pending', 0, "
    ":now, NULL, NULL, NULL, '[]', :now) ON CONFLICT DO NOTHING"
)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        row.id,
        row.url,
        tuple(orjson.loads(row.events)),
        row.description,
        row.secret,
        bool(row.enabled),
        int(row.from_seq),
        row.created_at,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.id,
        row.webhook,
        row.event_type,
        row.payload,
        row.status,
        row.attempts,
        row.next_attempt_at,
        row.lease_until,
        row.last_status_code,
        row.last_error,
        row.history,
        row.created_at,
    )


class SqlWebhooks(OnConnection):
    """``Webhooks`` on an open connection (SQLite and PostgreSQL)."""

    def add(self, account: str, subscription: Subscription) -> None:
        s = subscription
        self._conn.execute(
            sa.insert(t.webhooks).values(
                account=account,
                id=s.id,
                url=s.url,
                events=orjson.dumps(list(s.events)).decode(),
                description=s.description,
                secret=s.secret,
                enabled=s.enabled,
                from_seq=s.from_seq,
                created_at=s.created_at,
            )
        )

    def subscriptions(self, account: str, enabled_only: bool = False) -> list[Subscription]:
        query = sa.select(t.webhooks).where(_w.account == account)
        if enabled_only:
            query = query.where(_w.enabled.is_(True))
        rows = self._conn.execute(query.order_by(_w.created_at, _w.id)).all()
        return [_subscription(row) for row in rows]

    def subscription(self, account: str, webhook: str) -> Subscription | None:
        query = sa.select(t.webhooks).where(_w.account == account, _w.id == webhook)
        row = self._conn.execute(query).first()
        return None if row is None else _subscription(row)

    def set_enabled(self, account: str, webhook: str, enabled: bool) -> None:
        self._conn.execute(
            sa.update(t.webhooks)
            .where(_w.account == account, _w.id == webhook)
            .values(enabled=enabled)
        )

    def remove(self, account: str, webhook: str) -> None:
        deliveries = t.webhook_deliveries
        self._conn.execute(
            sa.delete(deliveries).where(_d.account == account, _d.webhook == webhook)
        )
        self._conn.execute(sa.delete(t.webhooks).where(_w.account == account, _w.id == webhook))

    def cursor(self, account: str) -> int | None:
        found = self._conn.scalar(sa.select(_c.next_seq).where(_c.account == account))
        return None if found is None else int(found)

    def start_cursor(self, account: str, seq: int) -> None:
        if self.cursor(account) is None:
            self._conn.execute(sa.insert(t.webhook_cursors).values(account=account, next_seq=seq))

    def move_cursor(self, account: str, old: int, new: int) -> None:
        self._conn.execute(
            sa.update(t.webhook_cursors)
            .where(_c.account == account, _c.next_seq == old)
            .values(next_seq=new)
        )

    def cursor_accounts(self) -> list[str]:
        return list(self._conn.scalars(sa.select(_c.account)))

    def queue(self, account: str, deliveries: Sequence[NewDelivery], at: str) -> None:
        rows = [
            {
                "account": account,
                "id": d.id,
                "webhook": d.webhook,
                "event_type": d.event_type,
                "payload": d.payload,
                "now": at,
            }
            for d in deliveries
        ]
        if rows:
            self._conn.execute(_INSERT_DELIVERY, rows)

    def deliveries(
        self, account: str, webhook: str, status: str | None, limit: int
    ) -> list[Delivery]:
        query = sa.select(t.webhook_deliveries).where(_d.account == account, _d.webhook == webhook)
        if status is not None:
            query = query.where(_d.status == status)
        query = query.order_by(_d.created_at.desc(), _d.id.desc()).limit(limit)
        return [_delivery(row) for row in self._conn.execute(query).all()]

    def delivery(self, account: str, webhook: str, delivery: str) -> Delivery | None:
        query = sa.select(t.webhook_deliveries).where(*self._one(account, webhook, delivery))
        row = self._conn.execute(query).first()
        return None if row is None else _delivery(row)

    def make_due(self, account: str, webhook: str, delivery: str, at: str) -> None:
        self._conn.execute(
            sa.update(t.webhook_deliveries)
            .where(*self._one(account, webhook, delivery))
            .values(status=PENDING, next_attempt_at=at)
        )

    @staticmethod
    def _one(account: str, webhook: str, delivery: str) -> tuple[Any, ...]:
        return (_d.account == account, _d.webhook == webhook, _d.id == delivery)

    def due(self, at: str, limit: int) -> list[DueDelivery]:
        query = (
            sa.select(_d.account, _d.id, _d.webhook, _d.payload, _d.attempts, _d.history)
            .add_columns(_w.url, _w.secret)
            .join(t.webhooks, sa.and_(_w.account == _d.account, _w.id == _d.webhook))
            .where(_d.status == PENDING, _d.next_attempt_at <= at, _w.enabled.is_(True))
            .where(sa.or_(_d.lease_until.is_(None), _d.lease_until < at))
            .order_by(_d.next_attempt_at)
            .limit(limit)
        )
        return [DueDelivery(*row) for row in self._conn.execute(query).all()]

    def lease(self, account: str, delivery: str, at: str, until: str) -> bool:
        taken = self._conn.execute(
            sa.update(t.webhook_deliveries)
            .where(_d.account == account, _d.id == delivery, _d.status == PENDING)
            .where(sa.or_(_d.lease_until.is_(None), _d.lease_until < at))
            .values(lease_until=until)
        ).rowcount
        return bool(taken == 1)

    def record(self, account: str, delivery: str, lease: str, attempt: AttemptRecord) -> None:
        self._conn.execute(
            sa.update(t.webhook_deliveries)
            .where(_d.account == account, _d.id == delivery, _d.lease_until == lease)
            .values(lease_until=None, **asdict(attempt))
        )

    def pending(self, account: str, event_types: Sequence[str] | None = None) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(t.webhook_deliveries)
            .where(_d.account == account, _d.status == PENDING)
        )
        if event_types is not None:
            query = query.where(_d.event_type.in_(event_types))
        return int(self._conn.scalar(query) or 0)
