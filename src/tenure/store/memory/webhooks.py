"""``Webhooks`` in memory (``tenure.store.webhooks``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from tenure.store.webhooks import (
    PENDING,
    AttemptRecord,
    Delivery,
    DueDelivery,
    NewDelivery,
    Subscription,
)


@dataclass
class _Tables:
    subscriptions: dict[tuple[str, str], Subscription]
    cursors: dict[str, int]
    deliveries: dict[tuple[str, str], Delivery]


class MemoryWebhooks:
    """``Webhooks`` over dicts."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._t: _Tables = tables.setdefault("webhooks", _Tables({}, {}, {}))

    def add(self, account: str, subscription: Subscription) -> None:
        key = (account, subscription.id)
        if key in self._t.subscriptions:
            raise KeyError(f"webhook {subscription.id} exists")
        self._t.subscriptions[key] = subscription

    def subscriptions(self, account: str, enabled_only: bool = False) -> list[Subscription]:
        found = [
            s
            for (owner, _), s in self._t.subscriptions.items()
            if owner == account and (s.enabled or not enabled_only)
        ]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def subscription(self, account: str, webhook: str) -> Subscription | None:
        return self._t.subscriptions.get((account, webhook))

    def set_enabled(self, account: str, webhook: str, enabled: bool) -> None:
        found = self._t.subscriptions.get((account, webhook))
        if found is not None:
            self._t.subscriptions[(account, webhook)] = replace(found, enabled=enabled)

    def remove(self, account: str, webhook: str) -> None:
        self._t.subscriptions.pop((account, webhook), None)
        for key, delivery in list(self._t.deliveries.items()):
            if key[0] == account and delivery.webhook == webhook:
                del self._t.deliveries[key]

    def cursor(self, account: str) -> int | None:
        return self._t.cursors.get(account)

    def start_cursor(self, account: str, seq: int) -> None:
        self._t.cursors.setdefault(account, seq)

    def move_cursor(self, account: str, old: int, new: int) -> None:
        if self._t.cursors.get(account) == old:
            self._t.cursors[account] = new

    def cursor_accounts(self) -> list[str]:
        return list(self._t.cursors)

    def queue(self, account: str, deliveries: Sequence[NewDelivery], at: str) -> None:
        for d in deliveries:
            new = Delivery(
                d.id, d.webhook, d.event_type, d.payload, PENDING, 0, at, None, None, None, "[]", at
            )
            self._t.deliveries.setdefault((account, d.id), new)

    def deliveries(
        self, account: str, webhook: str, status: str | None, limit: int
    ) -> list[Delivery]:
        found = [
            d
            for (owner, _), d in self._t.deliveries.items()
            if owner == account and d.webhook == webhook and status in (None, d.status)
        ]
        return sorted(found, key=lambda d: (d.created_at, d.id), reverse=True)[:limit]

    def delivery(self, account: str, webhook: str, delivery: str) -> Delivery | None:
        found = self._t.deliveries.get((account, delivery))
        return found if found is not None and found.webhook == webhook else None

    def make_due(self, account: str, webhook: str, delivery: str, at: str) -> None:
        found = self.delivery(account, webhook, delivery)
        if found is not None:
            self._t.deliveries[(account, delivery)] = replace(
                found, status=PENDING, next_attempt_at=at
            )

    def due(self, at: str, limit: int) -> list[DueDelivery]:
        found = []
        for (account, _), d in self._t.deliveries.items():
            hook = self._t.subscriptions.get((account, d.webhook))
            if hook is None or not hook.enabled or d.status != PENDING:
                continue
            if d.next_attempt_at is None or d.next_attempt_at > at or not _free(d, at):
                continue
            sending = (d.payload, d.attempts, d.history, hook.url, hook.secret)
            found.append(DueDelivery(account, d.id, d.webhook, *sending))
        waiting = {(f.account, f.id): self._t.deliveries[(f.account, f.id)] for f in found}
        found.sort(key=lambda f: waiting[(f.account, f.id)].next_attempt_at or "")
        return found[:limit]

    def lease(self, account: str, delivery: str, at: str, until: str) -> bool:
        found = self._t.deliveries.get((account, delivery))
        if found is None or found.status != PENDING or not _free(found, at):
            return False
        self._t.deliveries[(account, delivery)] = replace(found, lease_until=until)
        return True

    def record(self, account: str, delivery: str, lease: str, attempt: AttemptRecord) -> None:
        found = self._t.deliveries.get((account, delivery))
        if found is None or found.lease_until != lease:
            return
        changed = replace(found, lease_until=None, **asdict(attempt))
        self._t.deliveries[(account, delivery)] = changed

    def pending(self, account: str, event_types: Sequence[str] | None = None) -> int:
        return sum(
            1
            for (owner, _), d in self._t.deliveries.items()
            if owner == account
            and d.status == PENDING
            and (event_types is None or d.event_type in event_types)
        )


def _free(delivery: Delivery, at: str) -> bool:
    """No lease, or one that ended before ``at``."""
    return delivery.lease_until is None or delivery.lease_until < at
