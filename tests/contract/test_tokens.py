"""Token minting against a real store, with the clock in the test's hands: lifetime
from the plan, capped at the license's end, and refresh after a long time offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.shop import ACCOUNT, ACTOR, Runtimes
from tenure.app.runtime import Runtime
from tenure.crypto import jws
from tenure.domain.activations import ActivateDevice, fingerprint_hash
from tenure.domain.commands import CreateCustomer, DefineProduct, IssueLicense, PublishPlan
from tenure.errors import TokenRejected
from tenure.service.ledger import Submission
from tenure.service.tokens import NotActivated

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def runtime(runtimes: Runtimes, data_dir: Path) -> Runtime:
    return runtimes.open(data_dir)


def licensed_device(runtime: Runtime, duration: str = "P30D") -> tuple[str, str]:
    with runtime.ledger(clock=lambda: NOW) as ledger:

        def run(command: object) -> dict[str, object]:
            return ledger.execute(Submission(ACCOUNT, command, ACTOR)).result  # type: ignore[arg-type]

        run(DefineProduct("studio", "Studio", ["export-pdf"]))
        run(
            PublishPlan(
                "pro",
                "studio",
                {"feature:export-pdf": True, "seats": 1},
                core=["feature:export-pdf"],
                duration=duration,
                grace="P7D",
                offline_token_ttl="PT24H",
                activation="node-locked",
            )
        )
        customer = str(run(CreateCustomer(None, None, "c"))["customer"])
        serial = str(run(IssueLicense("studio", "pro", customer, "o"))["serial"])
        fph = fingerprint_hash(serial, "device")
        run(ActivateDevice(serial, fph, 900))
    return serial, fph


def test_a_token_lives_for_the_plans_ttl_but_never_past_the_license(runtime: Runtime) -> None:
    serial, fph = licensed_device(runtime, duration="PT6H")
    tokens = runtime.tokens()
    minted = tokens.mint(ACCOUNT, serial, fph, NOW)
    assert minted.claims["exp"] - minted.claims["iat"] == 6 * 3600  # the license ends first
    assert minted.claims["grace"] == 7 * 86400
    later = tokens.mint(ACCOUNT, serial, fph, NOW + timedelta(hours=7))  # in grace now
    assert later.claims["lic"]["status"] == "in_grace"
    assert later.claims["exp"] == int((NOW + timedelta(hours=7 + 24)).timestamp())
    last_day = tokens.mint(ACCOUNT, serial, fph, NOW + timedelta(hours=6, days=6, minutes=30))
    assert last_day.claims["exp"] == int((NOW + timedelta(hours=6, days=7)).timestamp())


def test_an_expired_token_still_refreshes_but_a_forged_one_never_does(runtime: Runtime) -> None:
    serial, fph = licensed_device(runtime)
    tokens = runtime.tokens()
    minted = tokens.mint(ACCOUNT, serial, fph, NOW)
    much_later = NOW + timedelta(days=3)
    claims = tokens.verify_for_refresh(ACCOUNT, minted.token, much_later)
    assert claims["jti"] == minted.claims["jti"]
    header, payload, signature = minted.token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(TokenRejected) as caught:
        tokens.verify_for_refresh(ACCOUNT, f"{header}.{payload}.{flipped}", much_later)
    assert caught.value.reason == "bad_signature"
    keys = runtime.keyring().published(ACCOUNT, NOW)
    with pytest.raises(TokenRejected) as expired:
        jws.verify(minted.token, keys, typ="tenure-offline+jwt", now=much_later.timestamp())
    assert expired.value.reason == "expired"


def test_a_device_without_a_seat_gets_no_token(runtime: Runtime) -> None:
    serial, _ = licensed_device(runtime)
    with pytest.raises(NotActivated):
        runtime.tokens().mint(ACCOUNT, serial, fingerprint_hash(serial, "stranger"), NOW)
