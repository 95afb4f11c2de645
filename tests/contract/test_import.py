"""Legacy import (docs/import.md): ``tenure import`` on real SQLite through the real
writer and the real executable, and the row parser as a property."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from support.cli import tenure
from support.shop import ACCOUNT, Probe, Runtimes, Shop
from support.sqlite import db_path
from tenure.app.runtime import Runtime
from tenure.domain.commands import PublishPlan
from tenure.domain.licensekeys import hash_legacy_key
from tenure.errors import InvalidInput
from tenure.service import checks, licensing
from tenure.service.checks import CheckItem
from tenure.service.legacy_import import (
    COLUMNS,
    LegacyRow,
    RowError,
    import_rows,
    parse_csv,
    parse_json,
    parse_row,
)
from tenure.store import tables as t
from tenure.store.engine import read_transaction

SYSTEM = "oldlm"
KEY_PREFIX = "LEGKEY-"
ROWS = 10_000


def _key(i: int) -> str:
    return f"{KEY_PREFIX}{i:06d}-zq"


def _good(i: int) -> dict[str, str]:
    row = {
        "legacy_id": f"L{i}",
        "legacy_key": _key(i),
        "customer_id": f"C{i % 3000}",
        "customer_name": f"Customer {i % 3000}",
        "customer_email": f"c{i % 3000}@example.test",
        "product": Shop.PRODUCT,
        "plan": Shop.PLAN,
        "plan_version": "",
        "starts_at": "2024-01-01" if i % 2 else "",
        "expires_at": "2099-06-30T12:00:00Z" if i % 5 == 0 else ("never" if i % 7 == 0 else ""),
        "status": "active",
        "overrides": "",
    }
    if i % 50 == 1:
        row["status"] = "suspended"
    elif i % 50 == 2:
        row["status"] = "revoked"
    if i % 11 == 0:
        row["overrides"] = "seats=12;feature:cloud-sync=true"
    return row


BAD_KINDS = ("unknown_plan", "bad_date", "duplicate_id", "empty_key", "unknown_feature")


def _bad(i: int, kind: str) -> dict[str, str]:
    row = _good(i)
    if kind == "unknown_plan":
        row["plan"] = "no-such-plan"
    elif kind == "bad_date":
        row["expires_at"] = "2024-02-30"
    elif kind == "duplicate_id":
        row["legacy_id"] = f"L{i - 1}"  # the previous (good) row's id, other data
        row["customer_id"] = "someone-else"
    elif kind == "empty_key":
        row["legacy_key"] = "  "
    else:
        row["overrides"] = "feature:teleport=true"
    return row


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


@pytest.fixture
def catalog_runtime(runtimes: Runtimes, data_dir: Path) -> Runtime:
    runtime = runtimes.open(data_dir)
    with runtime.ledger() as ledger:
        Shop(ledger).catalog()
    return runtime


def _import(data_dir: Path, file: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = tenure(
        "import", file, "--system", SYSTEM, "--data-dir", data_dir, "--output", "json", *extra
    )
    assert result.stdout, str(result)
    return result.code, result.json()


def _leaves(engine: sa.Engine) -> list[bytes]:
    with read_transaction(engine) as conn:
        events = t.ledger_events
        return list(conn.scalars(sa.select(events.c.leaf).where(events.c.account == ACCOUNT)))


def test_ten_thousand_rows_import_once_with_bad_rows_reported(
    catalog_runtime: Runtime, data_dir: Path, tmp_path: Path
) -> None:
    rows: list[dict[str, str]] = []
    bad_rows: dict[int, str] = {}
    for i in range(ROWS):
        if i % 100 == 99:
            kind = BAD_KINDS[(i // 100) % len(BAD_KINDS)]
            rows.append(_bad(i, kind))
            bad_rows[i + 1] = kind
        else:
            rows.append(_good(i))
    file = tmp_path / "legacy.csv"
    _write_csv(file, rows)
    probe = Probe(catalog_runtime.store.engine)

    started = time.monotonic()
    code, first = _import(data_dir, file)
    elapsed = time.monotonic() - started
    print(f"imported {ROWS} rows in {elapsed:.1f} s")

    assert code == 1  # some rows failed
    assert (first["rows"], first["imported"], first["already_imported"]) == (ROWS, 9900, 0)
    assert {e["row"] for e in first["errors"]} == set(bad_rows)
    assert all(e["reason"] and "\n" not in e["reason"] for e in first["errors"])
    reasons = {bad_rows[e["row"]]: e["reason"] for e in first["errors"]}
    assert "no-such-plan" in reasons["unknown_plan"]
    assert "expires_at" in reasons["bad_date"]
    assert "different data" in reasons["duplicate_id"]
    assert "legacy_key is empty" in reasons["empty_key"]
    assert "teleport" in reasons["unknown_feature"]
    size = probe.size()
    digest = probe.digest().digest

    code, second = _import(data_dir, file)
    assert code == 1
    assert (second["imported"], second["already_imported"]) == (0, 9900)
    assert {e["row"] for e in second["errors"]} == set(bad_rows)
    assert probe.size() == size
    assert probe.digest().digest == digest

    with read_transaction(catalog_runtime.store.engine) as conn:
        mapped = conn.scalar(sa.select(sa.func.count()).select_from(t.projection["legacy_ids"]))
        licenses = conn.scalar(sa.select(sa.func.count()).select_from(t.projection["licenses"]))
    assert mapped == licenses == 9900


def test_ledger_and_database_hold_no_legacy_key_in_clear(
    catalog_runtime: Runtime, data_dir: Path, tmp_path: Path
) -> None:
    file = tmp_path / "few.json"
    file.write_text(json.dumps([_good(i) for i in range(1, 60)]), encoding="utf-8")
    code, report = _import(data_dir, file)
    assert (code, report["imported"]) == (0, 59), report
    leaves = _leaves(catalog_runtime.store.engine)
    assert any(b"license.legacy_mapped" in leaf for leaf in leaves)
    assert not [leaf for leaf in leaves if KEY_PREFIX.encode() in leaf]
    catalog_runtime.store.engine.dispose()
    stored = b"".join(
        path.read_bytes() for path in db_path(data_dir).parent.glob("tenure.db*") if path.is_file()
    )
    assert KEY_PREFIX.encode() not in stored
    assert hash_legacy_key(_key(1)).encode() in stored


def test_legacy_id_lookup_and_legacy_key_check_answer_like_the_new_key(
    catalog_runtime: Runtime, data_dir: Path, tmp_path: Path
) -> None:
    file = tmp_path / "few.csv"
    _write_csv(file, [_good(i) for i in (1, 2, 3, 11)])  # suspended, revoked, active, overrides
    code, report = _import(data_dir, file)
    assert (code, report["imported"]) == (0, 4), report
    store = catalog_runtime.store
    now = datetime.now(UTC)
    for i in (1, 2, 3, 11):
        serial = licensing.serial_by_legacy_id(store, ACCOUNT, SYSTEM, f"L{i}")
        view = licensing.get_license(store, ACCOUNT, serial)
        assert view["order_ref"] == f"legacy:{SYSTEM}:L{i}"
        new_key = catalog_runtime.license_keys.key(ACCOUNT, serial)
        for entitlement in ("seats", "feature:cloud-sync", "feature:export-pdf"):
            by_new = checks.check(store, ACCOUNT, CheckItem(new_key, entitlement), now).answer
            by_legacy = checks.check(store, ACCOUNT, CheckItem(_key(i), entitlement), now).answer
            assert by_legacy == by_new
            assert "serial" not in by_legacy
    statuses = {
        i: licensing.get_license(
            store, ACCOUNT, licensing.serial_by_legacy_id(store, ACCOUNT, SYSTEM, f"L{i}")
        )
        for i in (1, 2, 11)
    }
    assert statuses[1]["status"] == "suspended"
    assert statuses[2]["status"] == "revoked"
    assert statuses[11]["overrides"] == {"seats": 12, "feature:cloud-sync": True}
    unknown = checks.check(store, ACCOUNT, CheckItem("LEGKEY-nobody", "seats"), now).answer
    assert unknown["reason"] == "unknown_license"


def test_a_row_that_fails_midway_appends_none_of_its_events(
    catalog_runtime: Runtime, data_dir: Path
) -> None:
    probe = Probe(catalog_runtime.store.engine)
    before = probe.snapshot()
    row = _good(11)
    row["overrides"] = "seats=3;feature:teleport=true"  # the second override is refused
    parsed = [parse_row(1, row)]
    assert isinstance(parsed[0], LegacyRow)
    with catalog_runtime.ledger() as ledger:
        report = import_rows(ledger, catalog_runtime.store, ACCOUNT, SYSTEM, parsed)
    assert [e.row for e in report.errors] == [1]
    assert probe.snapshot()[:3] == before[:3]


def test_plan_version_and_explicit_dates_are_kept(catalog_runtime: Runtime) -> None:
    with catalog_runtime.ledger() as ledger:
        shop = Shop(ledger)
        shop.run(PublishPlan(Shop.PLAN, Shop.PRODUCT, {"seats": 9}))
        row = {**_good(5), "plan_version": "1", "starts_at": "2023-03-01T08:00:00+02:00"}
        parsed = [parse_row(1, row)]
        report = import_rows(ledger, catalog_runtime.store, ACCOUNT, SYSTEM, parsed)
    assert len(report.imported) == 1
    view = licensing.get_license(catalog_runtime.store, ACCOUNT, report.imported[0]["serial"])
    assert view["plan_version"] == 1
    assert view["issued_at"] == "2023-03-01T06:00:00.000000Z"
    assert view["expires_at"] == "2099-06-30T12:00:00.000000Z"


def test_cli_refuses_a_file_without_the_required_columns(data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "bad.csv"
    file.write_text("legacy_id,product\nA,studio\n", encoding="utf-8")
    result = tenure("import", file, "--data-dir", data_dir)
    assert result.code == 1
    assert "lacks column legacy_key" in result.stderr


# ---------------------------------------------------------------- the parser, as a property

_CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "never", "2024-01-01", "studio", "active", "seats=1", "L1", "a@b"]),
)


def _check_parsed(parsed: list[LegacyRow | RowError]) -> None:
    numbers = [p.row for p in parsed]
    assert numbers == sorted(numbers)
    for item in parsed:
        if isinstance(item, RowError):
            assert item.reason.strip()
            assert "\n" not in item.reason
        else:
            assert item.legacy_id
            assert len(item.legacy_key_hash) == 64


def _parsed_or_file_error(
    parse: Callable[[Any], list[LegacyRow | RowError]], data: Any
) -> list[LegacyRow | RowError] | InvalidInput:
    try:
        return parse(data)
    except InvalidInput as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_csv_parser_never_crashes_on_arbitrary_text(text: str) -> None:
    parsed = _parsed_or_file_error(parse_csv, text)
    if isinstance(parsed, InvalidInput):
        assert parsed.field == "file"
        assert parsed.message
    else:
        _check_parsed(parsed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=len(COLUMNS), max_size=len(COLUMNS)), max_size=8))
def test_csv_parser_gives_every_rejected_row_a_reason(cells: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(cells)
    parsed = parse_csv(buffer.getvalue())
    _check_parsed(parsed)
    rows = [r for r in cells if any(c.strip() for c in r)]
    assert len(parsed) == len(rows)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            _JSON,
            st.dictionaries(st.sampled_from(COLUMNS), st.one_of(_CELL, _JSON), max_size=12),
        ),
        max_size=6,
    )
)
def test_json_parser_gives_every_rejected_row_a_reason(items: list[Any]) -> None:
    parsed = parse_json(json.dumps(items))
    _check_parsed(parsed)
    assert len(parsed) == len(items)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_json_parser_never_crashes_on_arbitrary_bytes(data: bytes) -> None:
    parsed = _parsed_or_file_error(parse_json, data)
    if isinstance(parsed, InvalidInput):
        assert parsed.field == "file"
    else:
        _check_parsed(parsed)
