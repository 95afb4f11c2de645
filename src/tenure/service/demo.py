"""``tenure demo seed``: a realistic, deterministic licensing workload.

A catalog of three products and their plans, customers arriving over simulated
months, licenses issued, renewed, suspended, reinstated, revoked, moved between
plans, given overrides and transferred; a new plan version now and then; some
requests retried with their idempotency key. Everything goes through the ledger
writer exactly as API requests do.

Same ``seed`` and ``events`` → the same events, byte for byte, on any machine:
times come from a simulated clock, ids from a seeded generator, and license keys
from a secret derived from the seed. (So never seed a production account.)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tenure.crypto.keystore import LicenseKeys
from tenure.domain.commands import (
    ChangePlan,
    Command,
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    OverrideEntitlement,
    PublishPlan,
    ReinstateLicense,
    RenewLicense,
    RevokeLicense,
    SuspendLicense,
    TransferLicense,
    customer_id,
    license_serial,
)
from tenure.domain.events import Actor
from tenure.service.ledger import Ledger, Outcome, Submission

DEMO_ACTOR = Actor("demo-seed", "admin", "internal")
START = datetime(2026, 1, 1, tzinfo=UTC)

PRODUCTS = {
    "studio": ("Studio", ["export-pdf", "cloud-sync", "scripting", "color-grading"]),
    "render-farm": ("Render Farm", ["gpu-nodes", "priority-queue"]),
    "docs-cloud": ("Docs Cloud", ["sso", "audit-export", "custom-domain"]),
}
PLANS = [
    ("studio-basic", "studio", {"feature:export-pdf": True, "seats": 1}, "node-locked"),
    (
        "studio-pro",
        "studio",
        {
            "feature:export-pdf": True,
            "feature:cloud-sync": True,
            "seats": 5,
            "quota:api-calls": 10000,
        },
        "floating",
    ),
    ("farm-node", "render-farm", {"feature:gpu-nodes": True, "seats": 8}, "floating"),
    (
        "docs-team",
        "docs-cloud",
        {"feature:sso": True, "seats": 25, "module:analytics": True},
        "floating",
    ),
]


def demo_license_keys(seed: int) -> LicenseKeys:
    return LicenseKeys(hashlib.sha256(f"tenure demo seed {seed}".encode()).digest())


@dataclass
class _World:
    """What the generator believes the state is (it only issues valid commands)."""

    rng: random.Random
    account: str
    customers: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    licenses: dict[str, tuple[str, str]] = field(default_factory=dict)
    plan_of: dict[str, tuple[str, int]] = field(default_factory=dict)
    plan_versions: dict[str, int] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)
    orders: int = 0


@dataclass(frozen=True)
class SeedReport:
    account: str
    events: int
    commands: int
    retries: int


def demo_submissions(events: int, seed: int, account: str = "default") -> Iterator[Submission]:
    """The workload as submissions: exactly ``events`` of them append one event each;
    an idempotent retry is yielded again right after its original."""
    world = _World(random.Random(seed), account)  # noqa: S311 - deterministic by design
    clock = START
    written = 0

    def submission(
        command: Command, reason: str | None = None, key: str | None = None
    ) -> Submission:
        nonlocal clock, written
        clock += timedelta(seconds=world.rng.randint(1, 900))
        written += 1
        return Submission(account, command, DEMO_ACTOR, reason, key, at=clock)

    for product, (title, features) in PRODUCTS.items():
        if written < events:
            yield submission(DefineProduct(product, title, features))
    for plan, product, entitlements, mode in PLANS:
        if written < events:
            yield submission(_plan(plan, product, entitlements, mode))
            world.plan_versions[plan] = 1
    while written < events:
        action = _next_action(world)
        if action is None:
            continue
        command, reason, key, retry = action
        sub = submission(command, reason, key)
        yield sub
        if retry and key:
            yield sub


def seed_demo(
    ledger: Ledger,
    events: int,
    seed: int,
    account: str = "default",
    progress: Callable[[int], None] | None = None,
    window: int = 256,
) -> SeedReport:
    """Append exactly ``events`` events of a deterministic workload to ``account``.

    The account's ledger must be empty (ids and serials would collide otherwise).
    Submissions are pipelined ``window`` at a time so the writer can group-commit.
    """
    commands = retries = 0
    previous: Submission | None = None
    pending: list[Future[Outcome]] = []
    for sub in demo_submissions(events, seed, account):
        if sub is previous:
            retries += 1
        else:
            commands += 1
        previous = sub
        pending.append(ledger.submit(sub))
        if len(pending) >= window:
            _drain(pending, progress, commands)
    _drain(pending, progress, commands)
    return SeedReport(account, commands, commands, retries)


def _drain(
    pending: list[Future[Outcome]], progress: Callable[[int], None] | None, done: int
) -> None:
    for future in pending:
        future.result()
    pending.clear()
    if progress is not None:
        progress(done)


def _plan(plan: str, product: str, entitlements: dict[str, bool | int], mode: str) -> PublishPlan:
    core = [key for key in entitlements if key.startswith("feature:")][:1]
    return PublishPlan(plan, product, dict(entitlements), core=core, activation=mode)


Action = tuple[Command, str | None, str | None, bool]


def _next_action(w: _World) -> Action | None:
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
        # Any customer but the current one, drawn as rng.choice(others) would draw it
        # (one randbelow of len(others)) without building ``others``: O(1), not O(n).
        count = len(w.customers) - 1
        if count <= 0:
            return None
        index = w.rng.randrange(count)
        skip = w.position[customer]
        target = w.customers[index if index < skip else index + 1]
        w.licenses[serial] = (product, target)
        return (TransferLicense(serial, target), "company acquired", None, False)
    if r < 0.953:
        return _new_plan_version(w)
    return None


def _take(w: _World, pool: list[str]) -> str:
    return pool.pop(w.rng.randrange(len(pool)))


def _new_customer(w: _World) -> Action:
    number = len(w.customers) + 1
    external = f"crm-{number:06d}"
    command = CreateCustomer(f"Customer {number}", f"it@customer{number}.example", external)
    w.position[customer_id(w.account, external)] = len(w.customers)
    w.customers.append(customer_id(w.account, external))
    return (command, None, f"customer-{external}", w.rng.random() < 0.05)


def _issue(w: _World) -> Action:
    plan, product, _, _ = w.rng.choice(PLANS)
    customer = w.rng.choice(w.customers)
    w.orders += 1
    order = f"ORD-{w.orders:07d}"
    serial = license_serial(w.account, product, customer, order)
    w.licenses[serial] = (product, customer)
    w.plan_of[serial] = (plan, w.plan_versions[plan])
    w.active.append(serial)
    return (
        IssueLicense(product, plan, customer, order),
        None,
        f"order-{order}",
        w.rng.random() < 0.1,
    )


def _change_plan(w: _World) -> Action | None:
    serial = w.rng.choice(w.active)
    product, _ = w.licenses[serial]
    choices = [
        (plan, w.plan_versions[plan])
        for plan, prod, _, _ in PLANS
        if prod == product and (plan, w.plan_versions[plan]) != w.plan_of[serial]
    ]
    if not choices:
        return None
    target = w.rng.choice(choices)
    w.plan_of[serial] = target
    return (ChangePlan(serial, target[0]), None, None, False)


def _new_plan_version(w: _World) -> Action:
    plan, product, entitlements, mode = w.rng.choice(PLANS)
    w.plan_versions[plan] += 1
    bumped = dict(entitlements)
    bumped["seats"] = int(bumped.get("seats", 1)) + w.plan_versions[plan]
    return (_plan(plan, product, bumped, mode), None, None, False)
