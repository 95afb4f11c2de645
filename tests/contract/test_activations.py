"""Activation leases against a real store, with the writer's clock in the test's
hands: leases end and free seats without events, heartbeats append only past half
the lease, and replay gives the same state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.shop import ACCOUNT, ACTOR, Probe, Runtimes
from tenure.app.runtime import Runtime
from tenure.domain.activations import (
    ActivateDevice,
    DeactivateDevice,
    LicenseInactive,
    RenewLease,
    SeatLimitReached,
    fingerprint_hash,
)
from tenure.domain.commands import (
    Command,
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    OverrideEntitlement,
    PublishPlan,
    SuspendLicense,
)
from tenure.errors import Conflict
from tenure.service.ledger import Ledger, Outcome, Submission
from tenure.service.replay import rebuild

LEASE = 600


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Floor:
    """A floating license with two seats, run through a writer on a test clock."""

    def __init__(self, ledger: Ledger, mode: str = "floating") -> None:
        self.ledger = ledger
        self.run(DefineProduct("studio", "Studio", ["export-pdf"]))
        self.run(
            PublishPlan(
                "pro",
                "studio",
                {"feature:export-pdf": True, "seats": 2},
                core=["feature:export-pdf"],
                activation=mode,
            )
        )
        customer = self.run(CreateCustomer(None, None, "c1")).result["customer"]
        self.serial = self.run(IssueLicense("studio", "pro", customer, "o1")).result["serial"]

    def run(self, command: Command, reason: str | None = None) -> Outcome:
        return self.ledger.execute(Submission(ACCOUNT, command, ACTOR, reason=reason))

    def activate(self, device: str) -> Outcome:
        fph = fingerprint_hash(self.serial, device)
        return self.run(ActivateDevice(self.serial, fph, LEASE))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(runtimes: Runtimes, data_dir: Path) -> Runtime:
    return runtimes.open(data_dir)


@pytest.fixture
def floor(runtime: Runtime, clock: Clock) -> object:
    with runtime.ledger(clock=clock) as ledger:
        yield Floor(ledger)


def test_an_ended_lease_frees_its_seat_without_an_event(
    floor: Floor, clock: Clock, runtime: Runtime
) -> None:
    probe = Probe(runtime.store.engine)
    floor.activate("a")
    floor.activate("b")
    with pytest.raises(SeatLimitReached):
        floor.activate("c")
    size = probe.size()
    clock.advance(LEASE + 1)
    assert probe.size() == size  # nothing happened at the lease end
    granted = floor.activate("c")
    assert granted.result["created"] is True
    # "a" comes back: its lease ended but one seat is still free.
    again = floor.activate("a")
    assert again.result["created"] is False
    with pytest.raises(SeatLimitReached):
        floor.activate("b")


def test_a_heartbeat_appends_only_once_half_the_lease_has_passed(
    floor: Floor, clock: Clock, runtime: Runtime
) -> None:
    probe = Probe(runtime.store.engine)
    activation = floor.activate("a").result["activation"]
    size = probe.size()
    clock.advance(LEASE / 2 - 10)
    early = floor.run(RenewLease(activation, LEASE))
    assert early.events == ()
    clock.advance(20)
    late = floor.run(RenewLease(activation, LEASE))
    assert [e.type for e in late.events] == ["activation.renewed"]
    assert late.result["lease_expires_at"] == "2026-11-29T12:15:10.000000Z"  # now + lease
    assert probe.size() == size + 1


def test_a_lapsed_lease_cannot_come_back_when_its_seat_was_taken(
    floor: Floor, clock: Clock
) -> None:
    first = floor.activate("a").result["activation"]
    floor.activate("b")
    clock.advance(LEASE + 1)
    floor.activate("c")
    floor.activate("d")
    with pytest.raises(SeatLimitReached):
        floor.run(RenewLease(first, LEASE))


def test_deactivated_and_inactive_cases_are_refused(floor: Floor) -> None:
    activation = floor.activate("a").result["activation"]
    floor.run(DeactivateDevice(activation))
    with pytest.raises(Conflict, match="deactivated"):
        floor.run(RenewLease(activation, LEASE))
    floor.run(SuspendLicense(floor.serial), "unpaid")
    with pytest.raises(LicenseInactive):
        floor.activate("b")


def test_lowering_the_seats_keeps_holders_but_refuses_newcomers(floor: Floor) -> None:
    floor.activate("a")
    floor.activate("b")
    floor.run(OverrideEntitlement(floor.serial, "seats", 1), "downsize")
    with pytest.raises(SeatLimitReached):
        floor.activate("c")
    assert floor.activate("a").result["created"] is False


def test_replaying_the_ledger_gives_the_same_state(
    floor: Floor, clock: Clock, runtime: Runtime
) -> None:
    activation = floor.activate("a").result["activation"]
    floor.activate("b")
    clock.advance(LEASE)
    floor.run(RenewLease(activation, LEASE))
    floor.run(DeactivateDevice(activation))
    before = Probe(runtime.store.engine).digest()
    report = rebuild(runtime.store, ACCOUNT)
    assert (report.before, report.after) == (before.digest, before.digest)


def test_a_lease_renewed_for_a_token_outlasts_the_token(floor: Floor, clock: Clock) -> None:
    activation = floor.activate("a").result["activation"]
    covered = floor.run(RenewLease(activation, LEASE, covering_tokens=True))
    # The plan's offline_token_ttl is PT24H: the seat is held while the token works.
    assert covered.result["lease_expires_at"] == "2026-11-30T12:00:00.000000Z"
    clock.advance(LEASE + 1)
    floor.activate("b")
    with pytest.raises(SeatLimitReached):
        floor.activate("c")
