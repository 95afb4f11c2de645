"""The ledger core's read use cases on the memory store: checks (by serial, by key,
by legacy key; one and many), license authentication, licensing pages and the
rebuild of a projection, through the same ``Store`` the SQL stores implement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from support.stores import license_row
from tenure.crypto.keystore import hash_license_key
from tenure.domain.licensekeys import hash_legacy_key
from tenure.domain.state import Row
from tenure.errors import InvalidInput, NotFound, Unauthenticated
from tenure.service import checks, licensing
from tenure.service.checks import CheckItem
from tenure.service.replay import digest_of, rebuild
from tenure.store.memory import MemoryStore
from tenure.store.records import StoredCheckpoint

ACCOUNT = "acme"
SERIAL = "TNR-AAAAA-BBBBB-CCCCC-DDDDD"
KEY = "TNRK-AAAAAAAA-BBBBBBBB-CCCCCCCC-DDDDDDDD"
LEGACY_KEY = "OLD-123"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _license(serial: str, key: str, **fields: Any) -> Row:
    overrides = {"feature:export": True}
    return license_row(serial, key_hash=hash_license_key(key), **{"overrides": overrides, **fields})


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    with memory.write() as tx:
        tx.ledger.create_head(ACCOUNT, "example.test/acme")
        tx.ledger.add_checkpoint(ACCOUNT, StoredCheckpoint(0, b"\x01" * 32, "note", "t"))
        tx.projection.write(ACCOUNT, "licenses", [_license(SERIAL, KEY)], [])
        legacy = {
            "system": "oldlm",
            "legacy_id": "L1",
            "serial": SERIAL,
            "legacy_key_hash": hash_legacy_key(LEGACY_KEY),
        }
        tx.projection.write(ACCOUNT, "legacy_ids", [legacy], [])
    return memory


def test_a_check_by_serial_echoes_the_serial_and_the_latest_checkpoint(
    store: MemoryStore,
) -> None:
    decided = checks.check(store, ACCOUNT, CheckItem(SERIAL, "feature:export"), NOW)
    assert decided.answer["allowed"] is True
    assert decided.answer["serial"] == SERIAL
    assert decided.answer["checkpoint"] == {
        "size": 0,
        "root": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
    }
    assert decided.serial == SERIAL


def test_a_key_and_a_legacy_key_answer_like_the_serial_without_revealing_it(
    store: MemoryStore,
) -> None:
    by_serial = checks.check(store, ACCOUNT, CheckItem(SERIAL, "feature:export"), NOW)
    for named in (KEY, LEGACY_KEY):
        decided = checks.check(store, ACCOUNT, CheckItem(named, "feature:export"), NOW)
        assert "serial" not in decided.answer
        assert decided.answer == {k: v for k, v in by_serial.answer.items() if k != "serial"}
        assert decided.serial == SERIAL


def test_an_unknown_license_is_an_answer_not_an_error(store: MemoryStore) -> None:
    decided = checks.check(store, ACCOUNT, CheckItem("TNRK-nobody", "seats"), NOW)
    assert (decided.answer["allowed"], decided.answer["reason"]) == (False, "unknown_license")
    assert decided.serial is None


def test_check_many_answers_in_order_and_names_the_bad_item(store: MemoryStore) -> None:
    items = [CheckItem(SERIAL, "feature:export"), CheckItem("nobody", "seats")]
    answers = checks.check_many(store, ACCOUNT, items, NOW)
    assert [a.answer["allowed"] for a in answers] == [True, False]
    with pytest.raises(InvalidInput) as raised:
        checks.check_many(store, ACCOUNT, [items[0], CheckItem(SERIAL, "Bad Key")], NOW)
    assert raised.value.field == "checks[1].entitlement"
    with pytest.raises(InvalidInput) as too_many:
        checks.check_many(store, ACCOUNT, items * (checks.MAX_BATCH // 2 + 1), NOW)
    assert too_many.value.field == "checks"


def test_a_license_key_authenticates_its_holder(store: MemoryStore) -> None:
    holder = checks.authenticate_license(store, KEY)
    assert (holder.account, holder.serial) == (ACCOUNT, SERIAL)
    assert checks.authenticate_license(store, LEGACY_KEY).serial == SERIAL
    with pytest.raises(Unauthenticated):
        checks.authenticate_license(store, "TNRK-nobody")


def test_licenses_are_listed_by_page_and_found_by_legacy_id(store: MemoryStore) -> None:
    with store.write() as tx:
        more = [_license(f"TNR-B{i}", f"key-{i}", status="revoked") for i in range(3)]
        tx.projection.write(ACCOUNT, "licenses", more, [])
    first = licensing.list_licenses(store, ACCOUNT, status="revoked", limit=2, clock=lambda: NOW)
    assert [v["serial"] for v in first["licenses"]] == ["TNR-B0", "TNR-B1"]
    rest = licensing.list_licenses(
        store, ACCOUNT, status="revoked", cursor=first["next_cursor"], clock=lambda: NOW
    )
    assert [v["serial"] for v in rest["licenses"]] == ["TNR-B2"]
    assert rest["next_cursor"] is None
    assert licensing.serial_by_legacy_id(store, ACCOUNT, "oldlm", "L1") == SERIAL
    with pytest.raises(NotFound):
        licensing.serial_by_legacy_id(store, ACCOUNT, "oldlm", "L2")


def test_rebuilding_an_empty_ledger_clears_a_stray_projection(store: MemoryStore) -> None:
    before = digest_of(store, ACCOUNT)
    report = rebuild(store, ACCOUNT, accept_change=True)
    assert report.changed
    assert report.before == before.digest
    with store.read() as tx:
        assert tx.projection.rows(ACCOUNT, "licenses") == []
    assert not rebuild(store, ACCOUNT).changed
