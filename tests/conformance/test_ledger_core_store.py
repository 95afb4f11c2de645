"""The ledger core's store nouns behave alike on every store (in memory, on SQLite
and on PostgreSQL): license lookups (``tenure.store.licenses``), the projection's
column updates, clearing and bulk insert, and the ledger records' stored nodes by
level and last event time."""

from __future__ import annotations

from typing import Any

from support.stores import license_row
from tenure.domain.state import Row
from tenure.store.licenses import LicenseFilter
from tenure.store.records import EventRow
from tenure.store.unit import Store

ACCOUNT = "acme"
OTHER = "other"
T0 = "2026-06-01T12:00:00.000000Z"
T1 = "2026-06-01T12:01:00.000000Z"


def _license(serial: str, **fields: Any) -> Row:
    return license_row(serial, **{"key_hash": f"hash-{serial}", **fields})


def _legacy(system: str, legacy_id: str, serial: str, key_hash: str) -> Row:
    return {"system": system, "legacy_id": legacy_id, "serial": serial, "legacy_key_hash": key_hash}


def _seed(store: Store) -> None:
    with store.write() as tx:
        tx.projection.write(
            ACCOUNT,
            "licenses",
            [
                _license("TNR-A"),
                _license("TNR-B", customer="cus_2", status="revoked"),
                _license("TNR-C", product="lite"),
            ],
            [],
        )
        tx.projection.write(OTHER, "licenses", [_license("TNR-Z", key_hash="hash-z")], [])
        tx.projection.write(
            ACCOUNT, "legacy_ids", [_legacy("oldlm", "L1", "TNR-A", "legacy-a")], []
        )
        tx.projection.write(
            OTHER, "legacy_ids", [_legacy("oldlm", "L1", "TNR-Z", "legacy-shared")], []
        )
        tx.projection.write(
            ACCOUNT, "legacy_ids", [_legacy("oldlm", "L2", "TNR-C", "legacy-shared")], []
        )


def test_a_license_is_found_by_its_key_hash_and_its_legacy_key_hash(store: Store) -> None:
    _seed(store)
    with store.read() as tx:
        found = tx.licenses.by_key(ACCOUNT, "hash-TNR-B")
        assert found is not None
        assert found["serial"] == "TNR-B"
        assert found["overrides"] == {}
        assert tx.licenses.by_key(ACCOUNT, "hash-z") is None  # another account's
        legacy = tx.licenses.by_legacy_key(ACCOUNT, "legacy-a")
        assert legacy is not None
        assert legacy["serial"] == "TNR-A"
        assert tx.licenses.by_legacy_key(ACCOUNT, "nothing") is None


def test_holders_are_found_across_accounts(store: Store) -> None:
    _seed(store)
    with store.quick_read() as tx:
        assert tx.licenses.holder_by_key("hash-z") == (OTHER, "TNR-Z")
        assert tx.licenses.holder_by_key("nothing") is None
        assert tx.licenses.holders_by_legacy_key("legacy-a") == [(ACCOUNT, "TNR-A")]
        shared = tx.licenses.holders_by_legacy_key("legacy-shared")
        assert sorted(shared) == [(ACCOUNT, "TNR-C"), (OTHER, "TNR-Z")]


def test_a_legacy_id_names_the_serial_it_was_imported_as(store: Store) -> None:
    _seed(store)
    with store.read() as tx:
        assert tx.licenses.serial_by_legacy_id(ACCOUNT, "oldlm", "L1") == "TNR-A"
        assert tx.licenses.serial_by_legacy_id(OTHER, "oldlm", "L1") == "TNR-Z"
        assert tx.licenses.serial_by_legacy_id(ACCOUNT, "oldlm", "L9") is None


def test_a_page_lists_the_selected_licenses_by_serial_after_a_cursor(store: Store) -> None:
    _seed(store)
    with store.read() as tx:
        everything = tx.licenses.page(ACCOUNT, LicenseFilter(), None, 10)
        assert [r["serial"] for r in everything] == ["TNR-A", "TNR-B", "TNR-C"]
        assert everything[0] == _license("TNR-A")
        after = tx.licenses.page(ACCOUNT, LicenseFilter(), "TNR-A", 1)
        assert [r["serial"] for r in after] == ["TNR-B"]
        active = tx.licenses.page(ACCOUNT, LicenseFilter(statuses=("active",)), None, 10)
        assert [r["serial"] for r in active] == ["TNR-A", "TNR-C"]
        of_product = tx.licenses.page(ACCOUNT, LicenseFilter(product="lite"), None, 10)
        assert [r["serial"] for r in of_product] == ["TNR-C"]
        of_customer = tx.licenses.page(ACCOUNT, LicenseFilter(customer="cus_2"), None, 10)
        assert [r["serial"] for r in of_customer] == ["TNR-B"]


def test_projection_updates_columns_clears_an_account_and_inserts_in_bulk(store: Store) -> None:
    _seed(store)
    with store.write() as tx:
        changed = _license("TNR-A", status="suspended", customer="ignored")
        tx.projection.update(ACCOUNT, "licenses", ("status",), [changed])
    with store.read() as tx:
        assert tx.projection.row(ACCOUNT, "licenses", ("TNR-A",)) == _license(
            "TNR-A", status="suspended"
        )
    with store.write() as tx:
        tx.projection.clear(ACCOUNT)
        assert tx.projection.rows(ACCOUNT, "licenses") == []
        assert tx.projection.rows(ACCOUNT, "legacy_ids") == []
        assert len(tx.projection.rows(OTHER, "licenses")) == 1
        tx.projection.insert_all(ACCOUNT, "licenses", iter([_license("TNR-Q")]))
    with store.read() as tx:
        assert tx.projection.rows(ACCOUNT, "licenses") == [_license("TNR-Q")]


def test_ledger_records_give_stored_nodes_by_level_and_the_last_event_time(
    store: Store,
) -> None:
    with store.write() as tx:
        tx.ledger.create_head(ACCOUNT, "example.test/acme")
        tx.ledger.append_events(
            ACCOUNT,
            [
                EventRow(0, "evt_0", "x.y", None, T0, None, b"{}"),
                EventRow(1, "evt_1", "x.y", None, T1, None, b"{}"),
            ],
        )
        tx.ledger.append_nodes(
            ACCOUNT, [(0, 1, b"b" * 32), (0, 0, b"a" * 32), (1, 0, b"c" * 32), (3, 0, b"d" * 32)]
        )
        tx.ledger.move_head(ACCOUNT, 0, 2)
    with store.read() as tx:
        assert list(tx.ledger.level(ACCOUNT, 0)) == [(0, b"a" * 32), (1, b"b" * 32)]
        assert list(tx.ledger.level(ACCOUNT, 2)) == []
        assert tx.ledger.lowest_level_from(ACCOUNT, 2) == 3
        assert tx.ledger.lowest_level_from(ACCOUNT, 4) is None
        assert tx.ledger.last_event_time(ACCOUNT, 2) == T1
        assert tx.ledger.last_event_time(ACCOUNT, 0) is None
