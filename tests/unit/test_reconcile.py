"""The reconciler finds every injected drift with its kind and subject, and nothing
else (docs/drift.md)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.activations import ActivateDevice, RevokeToken, activation_id
from tenure.domain.commands import (
    Command,
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    OverrideEntitlement,
    PublishPlan,
)
from tenure.domain.events import Actor
from tenure.ops.deployments import Report, record_report
from tenure.ops.reconcile import (
    KINDS,
    DriftPolicy,
    LedgerState,
    classify,
    drift_summary,
    last_pass,
    list_drift,
    run_pass,
    version_key,
)
from tenure.service.ledger import Ledger, Outcome, Submission
from tenure.store import ledger_records, projection_rows

ACCOUNT = "default"
ACTOR = Actor("key_test", "owner", "api_key")
PER_LICENSE = 4
PER_DEPLOYMENT = 50
POLICY = DriftPolicy(stale_after=timedelta(hours=1))


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _jti(text: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digest = hashlib.sha256(text.encode()).digest()
    return "tok_" + "".join(alphabet[b % 32] for b in digest[:26])


@dataclass
class World:
    """A store with clean reports plus injected drift, and what was injected."""

    runtime: Runtime
    ledger: Ledger
    now: datetime
    expected: set[tuple[str, str]] = field(default_factory=set)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def run_all(self, commands: list[Command]) -> list[Outcome]:
        futures = [self.ledger.submit(Submission(ACCOUNT, c, ACTOR, "test")) for c in commands]
        return [f.result() for f in futures]

    def report(
        self,
        deployment: str,
        entries: list[dict[str, Any]],
        received: datetime | None = None,
        product_version: str = "1.4.0",
    ) -> None:
        body = {"product": "studio", "product_version": product_version, "sdk_version": "0.3.0"}
        report = Report.model_validate({**body, "activations": entries})
        received = received or self.now
        store = self.runtime.store
        record_report(store, ACCOUNT, deployment, report, "key_agent", received)


def _catalog(world: World) -> None:
    world.run_all(
        [
            DefineProduct("studio", "Studio", ["export-pdf", "cloud-sync", "scripting"]),
            PublishPlan(
                "studio-pro",
                "studio",
                {"feature:export-pdf": True, "seats": 2 * PER_LICENSE},
                activation="node-locked",
            ),
        ]
    )


def _clean(world: World, activations: int) -> None:
    """``activations`` devices, ``PER_LICENSE`` per license, each activated in the
    ledger and reported with a granted entitlement and a live token."""
    customer = world.run_all([CreateCustomer("Big Co", "it@big.example", "big")])[0]
    licenses = world.run_all(
        [
            IssueLicense("studio", "studio-pro", customer.result["customer"], f"order-{i}")
            for i in range(activations // PER_LICENSE)
        ]
    )
    serials = [o.result["serial"] for o in licenses]
    devices = [(s, _hex(f"{s}-{n}")) for s in serials for n in range(PER_LICENSE)]
    world.run_all([ActivateDevice(s, fph, 3600) for s, fph in devices])
    live = int((world.now + timedelta(days=1)).timestamp())
    for i, (serial, fph) in enumerate(devices):
        device: dict[str, Any] = {"fingerprint_hash": fph}
        if i % 2:
            device = {"activation": activation_id(ACCOUNT, serial, fph)}
        world.entries.append(
            {
                "license": serial,
                **device,
                "entitlements": ["feature:export-pdf"],
                "tokens": [{"jti": _jti(f"live-{i}"), "exp": live}],
            }
        )


def _inject(world: World, per_kind: int) -> None:
    """``per_kind`` drifts of every kind, each on entries no other injection touches."""
    entries, now = world.entries, world.now
    by_license = entries[::PER_LICENSE]  # one entry of each license
    chunks = [by_license[k * per_kind : (k + 1) * per_kind] for k in range(5)]
    unknown, not_granted, revoked, expired, over = chunks
    assert len(over) == per_kind, "too few licenses for the injections"
    for i, entry in enumerate(unknown):
        fph = _hex(f"stranger-{i}")
        entries.append({"license": entry["license"], "fingerprint_hash": fph})
        world.expected.add(("unknown_device", activation_id(ACCOUNT, entry["license"], fph)))
    for entry in not_granted:
        entry["entitlements"] = [*entry["entitlements"], "feature:scripting"]
        world.expected.add(("entitlement_not_granted", f"{entry['license']}/feature:scripting"))
    revocations: list[Command] = []
    for i, entry in enumerate(revoked):
        jti = _jti(f"revoked-{i}")
        entry["tokens"] = [*entry["tokens"], {"jti": jti, "exp": int(now.timestamp()) + 600}]
        revocations.append(RevokeToken(entry["license"], jti))
        world.expected.add(("revoked_token", jti))
    world.run_all(revocations)
    for i, entry in enumerate(expired):
        jti = _jti(f"expired-{i}")
        entry["tokens"] = [*entry["tokens"], {"jti": jti, "exp": int(now.timestamp()) - 60}]
        world.expected.add(("expired_token", jti))
    world.run_all([OverrideEntitlement(e["license"], "seats", PER_LICENSE - 1) for e in over])
    world.expected.update(("over_seat", e["license"]) for e in over)


def _write_reports(world: World, per_kind: int) -> None:
    entries = world.entries
    for start in range(0, len(entries), PER_DEPLOYMENT):
        world.report(f"site-{start // PER_DEPLOYMENT}", entries[start : start + PER_DEPLOYMENT])
    for i in range(per_kind):
        again = [entries[i]]  # a device another deployment reports too: still clean
        world.report(f"stale-{i}", again, received=world.now - timedelta(hours=2))
        world.report(f"old-{i}", again, product_version="0.9.0")
        world.expected.add(("stale_report", f"stale-{i}"))
        world.expected.add(("version_skew", "product_version"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    try:
        with runtime.ledger() as ledger:
            world = World(runtime, ledger, datetime.now(UTC))
            _catalog(world)
            yield world
    finally:
        runtime.close()


def _assert_exact_recall(world: World, clean: int, per_kind: int) -> None:
    _clean(world, clean)
    _inject(world, per_kind)
    _write_reports(world, per_kind)
    started = time.perf_counter()
    summary = run_pass(world.runtime.store, ACCOUNT, POLICY, world.now)
    took = time.perf_counter() - started
    print(f"\nreconciliation pass over {summary['activations']} reported activations: {took:.3f} s")
    found = list_drift(world.runtime.store, ACCOUNT, limit=10 * per_kind * len(KINDS))
    skew = [f for f in found if f["kind"] == "version_skew"]
    assert {f["deployment"] for f in skew} == {f"old-{i}" for i in range(per_kind)}
    found_keys = {(f["kind"], f["subject"]) for f in found if f["kind"] != "version_skew"}
    assert found_keys == {e for e in world.expected if e[0] != "version_skew"}
    assert summary["by_kind"] == dict.fromkeys(KINDS, per_kind)
    assert drift_summary(world.runtime.store, ACCOUNT) == dict.fromkeys(KINDS, per_kind)


def test_a_pass_finds_every_injected_drift_and_nothing_else(world: World) -> None:
    _assert_exact_recall(world, clean=1_000, per_kind=20)


@pytest.mark.slow
def test_a_pass_over_ten_thousand_activations_finds_exactly_the_200_drifts_per_kind(
    world: World,
) -> None:
    _assert_exact_recall(world, clean=10_000, per_kind=200)


def test_a_persisting_finding_keeps_first_seen_and_a_fixed_one_closes(world: World) -> None:
    _clean(world, 8)
    stale = world.now - timedelta(hours=2)
    world.report("alpha", world.entries[:2], received=stale)
    store = world.runtime.store
    run_pass(store, ACCOUNT, POLICY, world.now)
    later = world.now + timedelta(minutes=5)
    run_pass(store, ACCOUNT, POLICY, later)
    (finding,) = list_drift(store, ACCOUNT, "stale_report")
    assert finding["first_seen"] < finding["last_seen"]
    world.report("alpha", world.entries[:2], received=later)
    run_pass(store, ACCOUNT, POLICY, later)
    assert list_drift(store, ACCOUNT) == []
    recorded = last_pass(store, ACCOUNT)
    assert recorded is not None
    assert (recorded["findings"], recorded["reports"]) == (0, 1)


def test_with_corrections_a_dead_seat_is_deactivated_once_with_a_reason(world: World) -> None:
    _clean(world, 4)
    gone, kept = world.entries[0], world.entries[1]
    world.report("alpha", [gone, kept], received=world.now - timedelta(hours=2))
    world.report("alpha", [kept])
    store = world.runtime.store
    correcting = DriftPolicy(stale_after=timedelta(hours=1), correct=True)
    assert run_pass(store, ACCOUNT, POLICY, world.now, world.ledger)["corrections"] == 0
    first = run_pass(store, ACCOUNT, correcting, world.now, world.ledger)
    again = run_pass(store, ACCOUNT, correcting, world.now, world.ledger)
    assert (first["corrections"], again["corrections"]) == (1, 0)
    device = activation_id(ACCOUNT, gone["license"], gone["fingerprint_hash"])
    with world.runtime.store.engine.connect() as conn:
        row = projection_rows.read_row(conn, ACCOUNT, "activations", (device,))
        (_, leaf), *_ = reversed(ledger_records.events_about(conn, ACCOUNT, gone["license"]))
    assert row is not None
    assert row["status"] == "deactivated"
    event = orjson.loads(leaf)
    assert event["type"] == "activation.deactivated"
    assert event["reason"].startswith("reconciler: no deployment report")


# ---------------------------------------------------------------- pure classification

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SERIAL = "TNR-AAAAA-BBBBB-CCCCC-DDDDD"


def _state(devices: int, seats: int, revoked: frozenset[str]) -> LedgerState:
    plan = {
        "plan": "p",
        "version": 1,
        "entitlements": {"feature:a": True, "seats": seats},
        "grace": None,
    }
    license_row = {
        "serial": SERIAL,
        "plan": "p",
        "plan_version": 1,
        "status": "active",
        "expires_at": None,
        "overrides": {},
    }
    activations = {}
    for n in range(devices):
        fph = _hex(str(n))
        act = activation_id(ACCOUNT, SERIAL, fph)
        activations[act] = {
            "activation": act,
            "serial": SERIAL,
            "fingerprint_hash": fph,
            "status": "active",
        }
    return LedgerState(
        {SERIAL: license_row},
        {("p", 1): plan},
        activations,
        {SERIAL: dict.fromkeys(activations)},
        dict.fromkeys(revoked, SERIAL),
    )


@settings(max_examples=60, deadline=None)
@given(
    devices=st.integers(1, 6),
    seats=st.integers(1, 6),
    strangers=st.integers(0, 3),
    revoked=st.integers(0, 3),
    expired=st.integers(0, 3),
    ungranted=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_classify_finds_exactly_what_differs_from_the_ledger_in_any_report_order(
    devices: int,
    seats: int,
    strangers: int,
    revoked: int,
    expired: int,
    ungranted: bool,
    order: Any,
) -> None:
    revoked_ids = frozenset(_jti(f"r{n}") for n in range(revoked))
    state = _state(devices, seats, revoked_ids)
    stamp = int(NOW.timestamp())
    entries: list[dict[str, Any]] = [
        {"license": SERIAL, "fingerprint_hash": _hex(str(n)), "entitlements": ["feature:a"]}
        for n in range(devices)
    ]
    entries += [{"license": SERIAL, "fingerprint_hash": _hex(f"x{n}")} for n in range(strangers)]
    entries[0]["tokens"] = [{"jti": j, "exp": stamp + 60} for j in sorted(revoked_ids)]
    entries[0]["tokens"] += [{"jti": _jti(f"e{n}"), "exp": stamp - n} for n in range(expired)]
    if ungranted:
        entries[0]["entitlements"] = ["feature:a", "feature:b"]
    order.shuffle(entries)
    report = {
        "deployment": "d",
        "product": "studio",
        "product_version": "1.0",
        "sdk_version": "1.0",
        "received_at": "2026-06-01T00:00:00.000000Z",
        "activations": entries,
    }
    found = classify(ACCOUNT, [report], state, POLICY, NOW)
    counts = {kind: sum(f.kind == kind for f in found) for kind in KINDS}
    assert counts == {
        "unknown_device": strangers,
        "over_seat": int(devices + strangers > seats),
        "entitlement_not_granted": int(ungranted),
        "revoked_token": revoked,
        "expired_token": expired,
        "stale_report": 0,
        "version_skew": 0,
    }


@given(st.lists(st.integers(0, 99), min_size=1, max_size=4), st.integers(0, 99))
def test_version_key_compares_dotted_numbers_numerically(parts: list[int], extra: int) -> None:
    version = ".".join(map(str, parts))
    assert version_key(version) == tuple(parts)
    assert version_key(f"{version}.{extra}") > version_key(version)
    assert version_key(f"{version}+build.7") == version_key(version)
