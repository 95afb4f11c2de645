"""The data keys noun (``tenure.store.data_keys``) behaves alike on every store: in
memory, on SQLite and on PostgreSQL, through the Protocol the personal-data service
uses."""

from __future__ import annotations

from tenure.store.data_keys import StoredDataKey
from tenure.store.unit import Store

ACCOUNT = "acme"
OTHER = "other"
T0 = "2026-06-01T12:00:00.000000Z"
T1 = "2026-06-01T12:01:00.000000Z"


def _key(customer: str, fill: int, at: str = T0) -> StoredDataKey:
    return StoredDataKey(customer, b"tdk1" + bytes([fill]) * 60, at)


def test_a_stored_key_is_found_only_for_its_account_and_customer(store: Store) -> None:
    with store.write() as tx:
        assert tx.data_keys.add(ACCOUNT, _key("cus_b", 2, T1)) is True
        assert tx.data_keys.add(ACCOUNT, _key("cus_a", 1)) is True
        assert tx.data_keys.add(OTHER, _key("cus_a", 3)) is True
    with store.read() as tx:
        assert tx.data_keys.get(ACCOUNT, "cus_a") == _key("cus_a", 1)
        assert tx.data_keys.get(ACCOUNT, "cus_b") == _key("cus_b", 2, T1)
        assert tx.data_keys.get(OTHER, "cus_a") == _key("cus_a", 3)
        assert tx.data_keys.get(OTHER, "cus_b") is None
        assert tx.data_keys.customers(ACCOUNT) == ["cus_a", "cus_b"]
        assert tx.data_keys.customers("nobody") == []


def test_a_second_key_for_a_customer_is_refused_and_the_first_kept(store: Store) -> None:
    with store.write() as tx:
        assert tx.data_keys.add(ACCOUNT, _key("cus_a", 1)) is True
        # Refused without an error: the ledger writer's batch transaction goes on.
        assert tx.data_keys.add(ACCOUNT, _key("cus_a", 9, T1)) is False
        assert tx.data_keys.add(ACCOUNT, _key("cus_c", 4)) is True
    with store.read() as tx:
        assert tx.data_keys.get(ACCOUNT, "cus_a") == _key("cus_a", 1)
        assert tx.data_keys.customers(ACCOUNT) == ["cus_a", "cus_c"]


def test_a_deleted_key_is_gone_and_deleting_again_says_so(store: Store) -> None:
    with store.write() as tx:
        tx.data_keys.add(ACCOUNT, _key("cus_a", 1))
        tx.data_keys.add(OTHER, _key("cus_a", 2))
    with store.write() as tx:
        assert tx.data_keys.delete(ACCOUNT, "cus_a") is True
        assert tx.data_keys.delete(ACCOUNT, "cus_a") is False
        assert tx.data_keys.delete(ACCOUNT, "cus_never") is False
    with store.read() as tx:
        assert tx.data_keys.get(ACCOUNT, "cus_a") is None
        assert tx.data_keys.get(OTHER, "cus_a") == _key("cus_a", 2)


def test_a_key_added_in_a_transaction_that_fails_is_not_stored(store: Store) -> None:
    try:
        with store.write() as tx:
            tx.data_keys.add(ACCOUNT, _key("cus_a", 1))
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass
    with store.read() as tx:
        assert tx.data_keys.get(ACCOUNT, "cus_a") is None
