"""The projector: deterministic replay, purity, and the invariants it guards."""

from __future__ import annotations

import copy
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.canonical import canonical_json
from tenure.domain.commands import (
    ChangePlan,
    Command,
    Context,
    CreateCustomer,
    Decision,
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
from tenure.domain.decisions import effective_entitlements
from tenure.domain.events import CURRENT_SCHEMA, REASON_REQUIRED, event_from_json
from tenure.domain.projector import apply
from tenure.domain.state import MemoryState
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, InvalidInput, NotFound, TenureError

ACCOUNT = "default"
NOW = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
CUSTOMERS = [customer_id(ACCOUNT, f"crm-{i}") for i in range(1, 4)]
PRODUCTS = {"acme": ["audit", "sso"], "beta": ["api"]}
ORDERS = ["o-1", "o-2", "o-3"]
SERIALS = [
    license_serial(ACCOUNT, product, customer, order)
    for product in PRODUCTS
    for customer in CUSTOMERS
    for order in ORDERS
]


def envelope(seq: int, type_name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Wrap a draft the way the ledger does."""
    return {
        "id": f"evt_{seq:032x}",
        "account": ACCOUNT,
        "seq": seq,
        "type": type_name,
        "schema": CURRENT_SCHEMA[type_name],  # drafts are of the current schema
        "time": format_time(NOW),
        "actor": {"id": "usr_test", "role": "admin", "auth": "api_key"},
        "reason": "test reason" if type_name in REASON_REQUIRED else None,
        "idempotency_key": None,
        "data": copy.deepcopy(data),
    }


@dataclass
class Ledger:
    """Commands decided and applied purely in memory, as the service would."""

    seed: int = 0
    state: MemoryState = field(default_factory=MemoryState)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.ctx = Context(
            ACCOUNT,
            NOW,
            lambda: rng.randbytes(20),
            lambda serial: hashlib.sha256(serial.encode()).hexdigest(),
        )

    def run(self, command: Command) -> Decision:
        decision = command.decide(self.state, self.ctx)
        for draft in decision.drafts:
            self.append(draft.type, draft.data)
        return decision

    def append(self, type_name: str, data: dict[str, Any]) -> None:
        obj = envelope(len(self.events), type_name, data)
        event = event_from_json(obj)
        tables_before = copy.deepcopy(self.state.tables)
        data_before = copy.deepcopy(event.data)
        changes = apply(self.state, event)
        # apply is pure: it reads rows and returns new ones, never touching its inputs.
        assert self.state.tables == tables_before
        assert event.data == data_before
        self.state.apply_changes(changes)
        self.events.append(obj)

    def license(self, serial: str) -> dict[str, Any]:
        row = self.state.get("licenses", (serial,))
        assert row is not None
        return row


def replay(events: list[dict[str, Any]]) -> MemoryState:
    state = MemoryState()
    for obj in events:
        state.apply_changes(apply(state, event_from_json(obj)))
    return state


# ---------------------------------------------------------------- random lifecycles

ENTITLEMENT_KEYS = ["seats", "quota:calls", "feature:sso", "feature:audit", "feature:api"]


def _value_for(key: str) -> st.SearchStrategy[Any]:
    if key in ("seats", "quota:calls"):
        return st.integers(0, 100)
    return st.booleans()


@st.composite
def entitlements(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(ENTITLEMENT_KEYS), unique=True, max_size=4))
    return {key: draw(_value_for(key)) for key in keys}


@st.composite
def publish_plan(draw: st.DrawFn) -> PublishPlan:
    grants = draw(entitlements())
    return PublishPlan(
        plan=draw(st.sampled_from(["basic", "pro", "team"])),
        product=draw(st.sampled_from(sorted(PRODUCTS))),
        entitlements=grants,
        core=draw(st.lists(st.sampled_from(sorted(grants) or ["seats"]), max_size=2)),
        duration=draw(st.sampled_from([None, "P365D", "P1M", "P1Y", "PT24H"])),
        grace=draw(st.sampled_from([None, "P14D"])),
        offline_token_ttl=draw(st.sampled_from(["PT24H", "P7D"])),
        activation=draw(st.sampled_from(["floating", "node-locked"])),
    )


@dataclass(frozen=True)
class OnLicense:
    """A command about a license, aimed when it runs at an existing license (or any serial)."""

    make: Callable[[str], Command]
    pick: int

    def resolve(self, state: MemoryState) -> Command:
        existing = sorted(serial for (serial,) in state.tables["licenses"]) or SERIALS
        return self.make(existing[self.pick % len(existing)])


def on_license(make: st.SearchStrategy[Callable[[str], Command]]) -> st.SearchStrategy[OnLicense]:
    return st.builds(OnLicense, make, st.integers(0, 50))


@st.composite
def override(draw: st.DrawFn) -> Callable[[str], Command]:
    key = draw(st.sampled_from([*ENTITLEMENT_KEYS, "module:reports"]))
    value = draw(st.one_of(st.none(), _value_for(key), _value_for(key)))
    return lambda serial: OverrideEntitlement(serial, key, value)


SERIAL = st.sampled_from(SERIALS)
PLAN = st.sampled_from(["basic", "pro", "team", "ghost"])
VERSION = st.sampled_from([None, None, 1, 2, 3])
PRODUCT_PLAN = st.sampled_from(
    [("acme", "basic"), ("acme", "pro"), ("beta", "team"), ("acme", "team"), ("beta", "ghost")]
)


@st.composite
def issue_license(draw: st.DrawFn) -> IssueLicense:
    product, plan = draw(PRODUCT_PLAN)
    return IssueLicense(
        product=product,
        plan=plan,
        customer=draw(st.sampled_from(CUSTOMERS)),
        order_ref=draw(st.sampled_from(ORDERS)),
        plan_version=draw(VERSION),
    )


def _renew(duration: str | None) -> Callable[[str], Command]:
    return lambda serial: RenewLicense(serial, duration)


def _change_plan(plan: str, version: int | None) -> Callable[[str], Command]:
    return lambda serial: ChangePlan(serial, plan, version)


def _transfer(customer: str) -> Callable[[str], Command]:
    return lambda serial: TransferLicense(serial, customer)


LICENSE_COMMANDS: st.SearchStrategy[OnLicense] = st.one_of(
    on_license(st.builds(_renew, st.sampled_from([None, "P1M", "P30D"]))),
    on_license(st.just(SuspendLicense)),
    on_license(st.just(ReinstateLicense)),
    on_license(st.just(RevokeLicense)),
    on_license(st.builds(_change_plan, PLAN, VERSION)),
    on_license(override()),
    on_license(st.builds(_transfer, st.sampled_from(CUSTOMERS))),
)
SETUP_COMMANDS: st.SearchStrategy[Command] = st.one_of(
    st.builds(
        DefineProduct,
        product=st.sampled_from(sorted(PRODUCTS)),
        title=st.sampled_from(["Acme", "Beta", "Acme \u2728"]),
        features=st.lists(st.sampled_from(["sso", "audit", "api", "export"]), max_size=4),
    ),
    publish_plan(),
    st.builds(
        CreateCustomer,
        display_name=st.sampled_from([None, "Ada", "Grace"]),
        email=st.sampled_from([None, "ada@example.com"]),
        external_id=st.sampled_from([None, "crm-1", "crm-2", "crm-3", "crm-4"]),
    ),
    st.builds(RevokeLicense, serial=SERIAL),  # aimed at any serial, existing or not
)
STEPS: st.SearchStrategy[Command | OnLicense] = st.one_of(
    SETUP_COMMANDS, issue_license(), issue_license(), LICENSE_COMMANDS, LICENSE_COMMANDS
)

PRELUDE: list[Command] = [
    DefineProduct("acme", "Acme", ["sso", "audit"]),
    DefineProduct("beta", "Beta", ["api"]),
    PublishPlan("basic", "acme", {"seats": 5}, core=["seats"]),
    PublishPlan("pro", "acme", {"seats": 20, "feature:sso": True}, duration="P1Y"),
    PublishPlan("team", "beta", {"seats": 10, "feature:api": True}, duration=None),
    *(CreateCustomer(external_id=f"crm-{i}") for i in range(1, 4)),
]


def run_lifecycle(steps: list[Command | OnLicense], seed: int) -> Ledger:
    ledger = Ledger(seed)
    for step in [*PRELUDE, *steps]:
        command = step.resolve(ledger.state) if isinstance(step, OnLicense) else step
        try:
            ledger.run(command)
        except (Conflict, NotFound, InvalidInput):
            continue
    return ledger


@settings(max_examples=50, deadline=None)
@given(commands=st.lists(STEPS, min_size=15, max_size=40), seed=st.integers(0, 2**32))
def test_replaying_the_events_reproduces_the_state_digest(
    commands: list[Command | OnLicense], seed: int
) -> None:
    ledger = run_lifecycle(commands, seed)
    assert len(ledger.events) >= len(PRELUDE)
    expected = ledger.state.digest()
    assert re.fullmatch(r"[0-9a-f]{64}", expected)

    assert replay(ledger.events).digest() == expected

    # The leaves are what is stored: canonical JSON parsed back on another machine.
    leaves = [canonical_json(obj) for obj in ledger.events]
    assert replay([orjson.loads(leaf) for leaf in leaves]).digest() == expected

    # Replay is deterministic: the same event list gives the same rows twice.
    assert replay(ledger.events).tables == ledger.state.tables


@settings(max_examples=15, deadline=None)
@given(commands=st.lists(STEPS, min_size=10, max_size=30), seed=st.integers(0, 2**32))
def test_the_same_commands_with_the_same_seed_give_the_same_ledger(
    commands: list[Command | OnLicense], seed: int
) -> None:
    first, second = run_lifecycle(commands, seed), run_lifecycle(commands, seed)
    assert first.events == second.events
    assert first.state.digest() == second.state.digest()


@settings(max_examples=25, deadline=None)
@given(commands=st.lists(STEPS, min_size=10, max_size=30), seed=st.integers(0, 2**32))
def test_every_prefix_of_the_ledger_replays_to_the_state_it_had_then(
    commands: list[Command | OnLicense], seed: int
) -> None:
    ledger = Ledger(seed)
    digests = [ledger.state.digest()]
    for step in [*PRELUDE, *commands]:
        command = step.resolve(ledger.state) if isinstance(step, OnLicense) else step
        try:
            ledger.run(command)
        except TenureError:
            continue
        while len(digests) <= len(ledger.events):
            digests.append(ledger.state.digest())
    for size in {0, len(ledger.events) // 2, len(ledger.events)}:
        assert replay(ledger.events[:size]).digest() == digests[size]


def test_empty_state_digest_is_sha256_of_nothing() -> None:
    assert MemoryState().digest() == hashlib.sha256(b"").hexdigest()


def test_digest_changes_when_any_row_changes() -> None:
    ledger = run_lifecycle([], seed=1)
    before = ledger.state.digest()
    ledger.run(DefineProduct("acme", "Acme Renamed", ["sso", "audit"]))
    assert ledger.state.digest() != before


# ---------------------------------------------------------------- example lifecycles


@pytest.fixture
def ledger() -> Ledger:
    return run_lifecycle([], seed=7)


def issue(ledger: Ledger, plan: str = "pro", order: str = "o-1", product: str = "acme") -> str:
    result = ledger.run(IssueLicense(product, plan, CUSTOMERS[0], order)).result
    serial = result["serial"]
    assert isinstance(serial, str)
    return serial


@pytest.mark.parametrize(
    "command",
    [
        SuspendLicense,
        ReinstateLicense,
        RevokeLicense,
        lambda serial: RenewLicense(serial),
        lambda serial: ChangePlan(serial, "basic"),
        lambda serial: OverrideEntitlement(serial, "seats", 3),
        lambda serial: TransferLicense(serial, CUSTOMERS[1]),
    ],
)
def test_revoked_license_cannot_be_changed_any_more(ledger: Ledger, command: Any) -> None:
    serial = issue(ledger)
    ledger.run(RevokeLicense(serial))
    assert ledger.license(serial)["status"] == "revoked"
    count = len(ledger.events)
    with pytest.raises(Conflict, match="revoked"):
        ledger.run(command(serial))
    assert len(ledger.events) == count
    assert ledger.license(serial)["status"] == "revoked"


def test_suspend_twice_conflicts_and_reinstate_restores(ledger: Ledger) -> None:
    serial = issue(ledger)
    ledger.run(SuspendLicense(serial))
    assert ledger.license(serial)["status"] == "suspended"
    with pytest.raises(Conflict, match="already suspended"):
        ledger.run(SuspendLicense(serial))
    ledger.run(ReinstateLicense(serial))
    assert ledger.license(serial)["status"] == "active"
    with pytest.raises(Conflict, match="not suspended"):
        ledger.run(ReinstateLicense(serial))


def test_suspended_license_can_still_be_revoked(ledger: Ledger) -> None:
    serial = issue(ledger)
    ledger.run(SuspendLicense(serial))
    ledger.run(RevokeLicense(serial))
    assert ledger.license(serial)["status"] == "revoked"


def test_commands_on_an_unknown_license_are_not_found(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        ledger.run(SuspendLicense(SERIALS[-1]))


def _plan_data(version: int, **changes: Any) -> dict[str, Any]:
    data = {
        "plan": "basic",
        "product": "acme",
        "version": version,
        "entitlements": {"seats": 5},
        "core": [],
        "duration": None,
        "grace": None,
        "offline_token_ttl": "PT24H",
        "activation": "floating",
    }
    return {**data, **changes}


def test_plan_versions_must_be_consecutive(ledger: Ledger) -> None:
    head = ledger.state.get("plans", ("basic",))
    assert head == {"plan": "basic", "product": "acme", "latest_version": 1}
    with pytest.raises(Conflict, match="version 2 next"):
        ledger.append("plan.published", _plan_data(3))
    with pytest.raises(Conflict):
        ledger.append("plan.published", _plan_data(1))
    ledger.append("plan.published", _plan_data(2))
    assert ledger.state.get("plans", ("basic",)) == {
        "plan": "basic",
        "product": "acme",
        "latest_version": 2,
    }
    assert ledger.state.get("plan_versions", ("basic", 1)) is not None


def test_publish_plan_numbers_versions_and_skips_unchanged_definitions(ledger: Ledger) -> None:
    same = PublishPlan("basic", "acme", {"seats": 5}, core=["seats"])
    assert ledger.run(same).drafts == []
    bigger = PublishPlan("basic", "acme", {"seats": 6}, core=["seats"])
    assert ledger.run(bigger).result == {"plan": "basic", "version": 2, "changed": True}


def test_plan_cannot_move_to_another_product(ledger: Ledger) -> None:
    with pytest.raises(Conflict, match="belongs to product"):
        ledger.append("plan.published", _plan_data(2, product="beta", entitlements={}))


def test_plan_cannot_grant_a_feature_its_product_does_not_declare(ledger: Ledger) -> None:
    with pytest.raises(Conflict, match="does not declare"):
        ledger.run(PublishPlan("basic", "acme", {"feature:api": True}))


def test_product_cannot_drop_a_declared_feature(ledger: Ledger) -> None:
    with pytest.raises(Conflict, match="cannot drop"):
        ledger.run(DefineProduct("acme", "Acme", ["sso"]))
    ledger.run(DefineProduct("acme", "Acme", ["sso", "audit", "export"]))
    product = ledger.state.get("products", ("acme",))
    assert product is not None
    assert product["features"] == ["audit", "export", "sso"]


def test_feature_overrides_must_be_declared_by_the_product(ledger: Ledger) -> None:
    serial = issue(ledger)
    with pytest.raises(Conflict, match="does not declare"):
        ledger.run(OverrideEntitlement(serial, "feature:api", True))
    ledger.run(OverrideEntitlement(serial, "feature:audit", True))
    assert ledger.license(serial)["overrides"] == {"feature:audit": True}


def test_effective_entitlements_are_the_plan_with_overrides_on_top(ledger: Ledger) -> None:
    serial = issue(ledger, plan="pro")
    plan = ledger.state.get("plan_versions", ("pro", 1))
    assert plan is not None
    assert effective_entitlements(plan, ledger.license(serial)) == {
        "seats": 20,
        "feature:sso": True,
    }
    ledger.run(OverrideEntitlement(serial, "seats", 50))
    ledger.run(OverrideEntitlement(serial, "feature:sso", False))
    ledger.run(OverrideEntitlement(serial, "quota:calls", 1000))
    assert effective_entitlements(plan, ledger.license(serial)) == {
        "seats": 50,
        "feature:sso": False,
        "quota:calls": 1000,
    }
    assert plan["entitlements"] == {"seats": 20, "feature:sso": True}
    ledger.run(OverrideEntitlement(serial, "seats", None))
    assert effective_entitlements(plan, ledger.license(serial))["seats"] == 20
    with pytest.raises(Conflict, match="no override"):
        ledger.run(OverrideEntitlement(serial, "seats", None))


def test_license_serial_is_deterministic() -> None:
    serial = license_serial(ACCOUNT, "acme", CUSTOMERS[0], "o-1")
    assert serial == license_serial(ACCOUNT, "acme", CUSTOMERS[0], "o-1")
    assert re.fullmatch(r"TNR-[A-Z2-7]{5}(-[A-Z2-7]{5}){3}", serial)
    others = {
        license_serial(ACCOUNT, "acme", CUSTOMERS[0], "o-2"),
        license_serial(ACCOUNT, "beta", CUSTOMERS[0], "o-1"),
        license_serial(ACCOUNT, "acme", CUSTOMERS[1], "o-1"),
        license_serial("other", "acme", CUSTOMERS[0], "o-1"),
    }
    assert serial not in others
    assert len(others) == 4


def test_issuing_the_same_order_twice_returns_the_existing_license(ledger: Ledger) -> None:
    first = ledger.run(IssueLicense("acme", "pro", CUSTOMERS[0], "o-1"))
    assert first.result["created"] is True
    again = ledger.run(IssueLicense("acme", "pro", CUSTOMERS[0], "o-1"))
    assert again.drafts == []
    assert again.result["created"] is False
    assert again.result["serial"] == first.result["serial"]
    with pytest.raises(Conflict, match="another plan"):
        ledger.run(IssueLicense("acme", "basic", CUSTOMERS[0], "o-1"))


def test_issued_license_expires_after_the_plan_duration(ledger: Ledger) -> None:
    serial = issue(ledger, plan="pro")  # P1Y
    row = ledger.license(serial)
    assert row["issued_at"] == "2026-11-28T22:00:00.000000Z"
    assert row["expires_at"] == "2027-11-28T22:00:00.000000Z"
    assert "key_hash" in row
    ledger.run(RenewLicense(serial, "P1M"))
    assert ledger.license(serial)["expires_at"] == "2027-12-28T22:00:00.000000Z"


def test_perpetual_license_cannot_be_renewed(ledger: Ledger) -> None:
    serial = issue(ledger, plan="team", product="beta")
    assert ledger.license(serial)["expires_at"] is None
    with pytest.raises(Conflict, match="never expires"):
        ledger.run(RenewLicense(serial))
    with pytest.raises(Conflict, match="never expires"):
        ledger.append("license.renewed", {"serial": serial, "expires_at": format_time(NOW)})


def test_license_needs_an_existing_customer_and_a_plan_of_its_product(ledger: Ledger) -> None:
    stranger = customer_id(ACCOUNT, "nobody")
    with pytest.raises(Conflict, match="customer"):
        ledger.run(IssueLicense("acme", "pro", stranger, "o-9"))
    with pytest.raises(InvalidInput):
        ledger.run(IssueLicense("beta", "pro", CUSTOMERS[0], "o-9"))


def test_transfer_moves_the_license_and_refuses_a_no_op(ledger: Ledger) -> None:
    serial = issue(ledger)
    ledger.run(TransferLicense(serial, CUSTOMERS[1]))
    assert ledger.license(serial)["customer"] == CUSTOMERS[1]
    with pytest.raises(Conflict, match="already belongs"):
        ledger.run(TransferLicense(serial, CUSTOMERS[1]))


def test_change_plan_refuses_the_current_plan_and_other_products(ledger: Ledger) -> None:
    serial = issue(ledger, plan="pro")
    with pytest.raises(Conflict, match="already on"):
        ledger.run(ChangePlan(serial, "pro"))
    with pytest.raises(Conflict, match="for product beta"):
        ledger.run(ChangePlan(serial, "team"))
    ledger.run(ChangePlan(serial, "basic"))
    assert ledger.license(serial)["plan"] == "basic"


def test_customer_cannot_be_created_twice(ledger: Ledger) -> None:
    with pytest.raises(Conflict):
        ledger.append(
            "customer.created",
            {
                "customer": CUSTOMERS[0],
                "name": None,
                "email": None,
                "external_id": "crm-1",
                "sealed_in": None,
            },
        )
    assert ledger.run(CreateCustomer(external_id="crm-1")).drafts == []
