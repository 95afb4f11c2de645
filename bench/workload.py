"""The demo workload of ``tenure.service.demo``, with one hot spot removed.

``seed_demo`` picks a transfer target with ``[c for c in customers if c != customer]``:
O(customers) per transfer, so O(n²) over a run — about 8 × 10⁹ comparisons at 1M
events. ``demo_submissions`` below makes exactly the same random draws
(``rng.choice(others)`` is ``others[rng._randbelow(len(others))]``, the same draw as
``rng.randrange(len(others))``) and maps the index past the excluded customer with a
position table, so it yields the same submissions, byte for byte (the builder checks
its root against ``seed_demo`` through the real ``Ledger`` in every run that builds a
store).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

from tenure.domain.commands import (
    Command,
    DefineProduct,
    OverrideEntitlement,
    ReinstateLicense,
    RenewLicense,
    RevokeLicense,
    SuspendLicense,
    TransferLicense,
)
from tenure.service.demo import (
    DEMO_ACTOR,
    PLANS,
    PRODUCTS,
    START,
    _change_plan,
    _issue,
    _new_customer,
    _new_plan_version,
    _plan,
    _take,
    _World,
)
from tenure.service.ledger import Submission

Action = tuple[Command, str | None, str | None, bool]


class _Positions:
    """Index of each customer in ``world.customers`` (an append-only list)."""

    def __init__(self) -> None:
        self.at: dict[str, int] = {}

    def of(self, world: _World, customer: str) -> int:
        customers = world.customers
        for index in range(len(self.at), len(customers)):
            self.at[customers[index]] = index
        return self.at[customer]


def _next_action(w: _World, positions: _Positions) -> Action | None:
    """``tenure.service.demo._next_action`` with an O(1) transfer target."""
    r = w.rng.random()
    if r < 0.12 or not w.customers:
        return _new_customer(w)
    if r < 0.35 or not w.active:
        return _issue(w)
    if r < 0.50:
        return (RenewLicense(w.rng.choice(w.active)), None, None, False)
    if r < 0.57:
        serial = _take(w, w.active)
        w.suspended.append(serial)
        return (SuspendLicense(serial), "payment overdue", None, False)
    if r < 0.63 and w.suspended:
        serial = _take(w, w.suspended)
        w.active.append(serial)
        return (ReinstateLicense(serial), "payment received", None, False)
    if r < 0.66:
        return (RevokeLicense(_take(w, w.active)), "contract terminated", None, False)
    if r < 0.75:
        return _change_plan(w)
    if r < 0.88:
        serial = w.rng.choice(w.active)
        seats = w.rng.choice([2, 10, 50, 100])
        return (OverrideEntitlement(serial, "seats", seats), "negotiated seat count", None, False)
    if r < 0.95:
        serial = w.rng.choice(w.active)
        product, customer = w.licenses[serial]
        count = len(w.customers) - 1  # customers holds each id once, ``customer`` among them
        if count <= 0:
            return None
        index = w.rng.randrange(count)
        skip = positions.of(w, customer)
        target = w.customers[index if index < skip else index + 1]
        w.licenses[serial] = (product, target)
        return (TransferLicense(serial, target), "company acquired", None, False)
    if r < 0.953:
        return _new_plan_version(w)
    return None


def demo_submissions(events: int, seed: int, account: str = "default") -> Iterator[Submission]:
    """The submissions ``seed_demo(ledger, events, seed, account)`` makes, retries included."""
    world = _World(random.Random(seed), account)
    positions = _Positions()
    clock = START
    written = 0

    def stamp() -> None:
        nonlocal clock, written
        clock += timedelta(seconds=world.rng.randint(1, 900))
        written += 1

    for product, (title, features) in PRODUCTS.items():
        if written < events:
            stamp()
            yield Submission(account, DefineProduct(product, title, features), DEMO_ACTOR, at=clock)
    for plan, product, entitlements, mode in PLANS:
        if written < events:
            stamp()
            world.plan_versions[plan] = 1
            publish = _plan(plan, product, entitlements, mode)
            yield Submission(account, publish, DEMO_ACTOR, at=clock)
    while written < events:
        action = _next_action(world, positions)
        if action is None:
            continue
        command, reason, key, retry = action
        stamp()
        sub = Submission(account, command, DEMO_ACTOR, reason, key, at=clock)
        yield sub
        if retry and key:
            yield sub
