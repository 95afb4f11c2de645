"""The durability store nouns (``tenure.store.service_rows``, ``bulk``, ``drills``)
behave alike on every store: in memory, on SQLite and on PostgreSQL, through the
Protocols durability uses; and the backend migration's table copy
(``databases.copy_tables``, every copied table) between SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from support.postgres import BACKENDS, pg_url
from tenure.errors import LedgerTampered
from tenure.ledger.merkle import EMPTY_ROOT, Frontier, leaf_hash, root_of
from tenure.store.databases import copy_tables, open_store, sqlite_url
from tenure.store.drills import DrillReport
from tenure.store.memory import MemoryStore
from tenure.store.records import EventRow, IdempotencyRecord
from tenure.store.unit import Store

ACCOUNT = "acme"
OTHER = "other"
T0 = "2026-06-01T12:00:00.000000Z"
T1 = "2026-06-01T12:01:00.000000Z"


def _url(kind: str, request: pytest.FixtureRequest, path: Path) -> str:
    if kind == "sqlite":
        return sqlite_url(path)
    return pg_url(request.getfixturevalue("pg_database"))


def _api_key(name: str, account: str = ACCOUNT) -> dict[str, object]:
    return {
        "id": f"key-{name}",
        "account": account,
        "key_hash": f"{name:0>64}",
        "role": "owner",
        "name": name,
        "created_at": T0,
        "revoked_at": None,
        "created_by": None,
    }


def _account_row(name: str) -> dict[str, object]:
    return {"id": ACCOUNT, "name": name, "created_at": T0, "created_by": "test"}


# ---------------------------------------------------------------- service rows


def test_service_rows_are_read_back_per_table_in_key_order_for_their_account_only(
    store: Store,
) -> None:
    with store.write() as tx:
        tx.service_rows.insert(
            ACCOUNT,
            {"api_keys": [_api_key("b"), _api_key("a")], "accounts": [_account_row("Acme")]},
        )
        tx.service_rows.insert(OTHER, {"api_keys": [_api_key("c", OTHER)]})
    with store.read() as tx:
        rows = tx.service_rows.read(ACCOUNT, ("api_keys", "accounts", "signing_keys"))
    assert list(rows) == ["api_keys", "accounts", "signing_keys"]
    assert rows["api_keys"] == [_api_key("a"), _api_key("b")]
    assert rows["accounts"] == [_account_row("Acme")]
    assert rows["signing_keys"] == []


def test_inserting_service_rows_keeps_an_account_row_that_exists(store: Store) -> None:
    with store.write() as tx:
        tx.service_rows.insert(ACCOUNT, {"accounts": [_account_row("Acme")]})
    with store.write() as tx:
        tx.service_rows.insert(ACCOUNT, {"accounts": [_account_row("Renamed")], "api_keys": []})
    with store.read() as tx:
        assert tx.service_rows.read(ACCOUNT, ("accounts",))["accounts"] == [_account_row("Acme")]


# ---------------------------------------------------------------- bulk ledger


def _events(start: int, stop: int) -> list[EventRow]:
    return [
        EventRow(seq, f"evt-{seq}", "test.event", None, T0, None, f'{{"n":{seq}}}'.encode())
        for seq in range(start, stop)
    ]


def _fill(store: Store, size: int) -> bytes:
    """A ledger of ``size`` events written in bulk; returns its root."""
    frontier = Frontier()
    events = _events(0, size)
    nodes = [node for event in events for node in frontier.append(leaf_hash(event.leaf))]
    with store.write() as tx:
        tx.bulk.prepare_large_write()
        tx.ledger.create_head(ACCOUNT, "test.example/acme")
        tx.bulk.append(ACCOUNT, events, nodes)
        tx.ledger.move_head(ACCOUNT, 0, size)
        tx.bulk.insert_rows(
            ACCOUNT, "products", [{"product": "app", "name": "App", "features": []}]
        )
    return frontier.root()


def test_bulk_appended_events_read_back_in_chunks_with_their_tree(store: Store) -> None:
    root = _fill(store, 25)
    with store.read() as tx:
        chunks = list(tx.bulk.event_rows(ACCOUNT, 5, 25))
        assert root_of(25, tx.ledger.nodes(ACCOUNT)) == root
        assert root_of(0, tx.ledger.nodes(ACCOUNT)) == EMPTY_ROOT
        assert [row["product"] for row in tx.projection.rows(ACCOUNT, "products")] == ["app"]
    assert [event for chunk in chunks for event in chunk] == _events(5, 25)


def test_reading_events_past_the_stored_ones_names_the_first_missing(store: Store) -> None:
    _fill(store, 3)
    with store.read() as tx, pytest.raises(LedgerTampered) as caught:
        list(tx.bulk.event_rows(ACCOUNT, 0, 5))
    assert caught.value.seq == 3


def test_bulk_delete_removes_the_ledger_and_projection_of_one_account(store: Store) -> None:
    _fill(store, 4)
    with store.write() as tx:
        tx.bulk.delete(ACCOUNT)
    with store.read() as tx:
        assert tx.ledger.head(ACCOUNT) is None
        assert tx.projection.rows(ACCOUNT, "products") == []
        assert list(tx.ledger.leaves(ACCOUNT)) == []


# ---------------------------------------------------------------- drills


def _drill(at: str, passed: bool) -> DrillReport:
    return DrillReport(ACCOUNT, at, "file:///site", passed, 1.5, 2, 3.25, 10, 12, "detail")


def test_the_latest_drill_is_the_newest_of_the_account(store: Store) -> None:
    with store.read() as tx:
        assert tx.drills.latest(ACCOUNT) is None
    with store.write() as tx:
        tx.drills.record(_drill(T1, False))
        tx.drills.record(_drill(T0, True))
    with store.read() as tx:
        assert tx.drills.latest(ACCOUNT) == _drill(T1, False)
        assert tx.drills.latest(OTHER) is None


# ---------------------------------------------------------------- table copy


@pytest.mark.parametrize(("source_kind", "target_kind"), [tuple(BACKENDS), tuple(BACKENDS[::-1])])
def test_the_table_copy_works_between_backends_and_follows_changes(
    source_kind: str, target_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source_url = _url(source_kind, request, tmp_path / "source.db")
    target_url = _url(target_kind, request, tmp_path / "target.db")
    with (
        open_store(source_url, upgrade=True) as source,
        open_store(target_url, upgrade=True) as target,
    ):
        with source.write() as tx:
            tx.service_rows.insert(ACCOUNT, {"api_keys": [_api_key("a"), _api_key("b")]})
        with source.read() as src, target.write() as dst:
            copy_tables(src, dst, ACCOUNT)
        with source.write() as tx:  # a key made at the source since
            tx.service_rows.insert(ACCOUNT, {"api_keys": [_api_key("c")]})
        with source.read() as src, target.write() as dst:
            copy_tables(src, dst, ACCOUNT)
        with target.read() as tx:
            copied = tx.service_rows.read(ACCOUNT, ("api_keys",))["api_keys"]
        assert copied == [_api_key("a"), _api_key("b"), _api_key("c")]


def test_the_table_copy_refuses_a_store_that_is_not_sql() -> None:
    memory = MemoryStore()
    with memory.read() as src, memory.read() as dst, pytest.raises(TypeError):
        copy_tables(src, dst, ACCOUNT)


# ---------------------------------------------------------------- shipped service rows


def _keyed_events(keys: list[str | None]) -> list[EventRow]:
    return [
        EventRow(seq, f"evt-{seq}", "test.event", None, T0, key, f'{{"n":{seq}}}'.encode())
        for seq, key in enumerate(keys)
    ]


def test_the_idempotency_records_of_a_range_of_events_are_those_whose_first_event_is_in_it(
    store: Store,
) -> None:
    # Events 0-1 answer "k-a", event 2 none, events 3-4 "k-b"; "k-none" appended nothing.
    keys: list[str | None] = ["k-a", "k-a", None, "k-b", "k-b"]
    records = [
        ("k-a", IdempotencyRecord("h" * 64, 0, 2, {"serial": "A"}), T0),
        ("k-b", IdempotencyRecord("i" * 64, 3, 2, {"serial": "B"}), T1),
        ("k-none", IdempotencyRecord("j" * 64, None, 0, {}), T1),
    ]
    with store.write() as tx:
        tx.ledger.create_head(ACCOUNT, "test.example/acme")
        tx.ledger.append_events(ACCOUNT, _keyed_events(keys))
        tx.ledger.move_head(ACCOUNT, 0, len(keys))
        tx.idempotency.insert(ACCOUNT, records)
    with store.read() as tx:
        assert [r["key"] for r in tx.service_rows.idempotency_of_events(ACCOUNT, 0, 5)] == [
            "k-a",
            "k-b",
        ]
        assert tx.service_rows.idempotency_of_events(ACCOUNT, 1, 3) == []
        assert tx.service_rows.idempotency_of_events(OTHER, 0, 5) == []
        [found] = tx.service_rows.idempotency_of_events(ACCOUNT, 3, 4)
    assert found == {
        "account": ACCOUNT,
        "key": "k-b",
        "request_hash": "i" * 64,
        "first_seq": 3,
        "event_count": 2,
        "result": '{"serial":"B"}',
        "created_at": T1,
    }


def test_binary_service_rows_travel_as_base64_and_are_counted_per_account(store: Store) -> None:
    report = {
        "account": ACCOUNT,
        "deployment": "plant-a",
        "product": "studio",
        "product_version": "2.1.0",
        "sdk_version": "0.2.0",
        "reported_at": T0,
        "received_at": T0,
        "reported_by": "key-a",
        "activation_count": 1,
        "activations": base64.b64encode(b"\x00\xffbinary").decode(),
    }
    with store.write() as tx:
        tx.service_rows.insert(ACCOUNT, {"deployments": [report], "api_keys": [_api_key("a")]})
    with store.read() as tx:
        assert tx.service_rows.read(ACCOUNT, ("deployments",)) == {"deployments": [report]}
        assert tx.service_rows.counts(ACCOUNT, ("deployments", "api_keys", "webhooks")) == {
            "deployments": 1,
            "api_keys": 1,
            "webhooks": 0,
        }
        assert tx.service_rows.counts(OTHER, ("deployments",)) == {"deployments": 0}
