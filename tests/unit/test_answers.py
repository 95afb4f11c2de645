"""Answers are defined once: the type a service returns is the one ``/openapi.json``
publishes, the answer it builds fits that type (closed, patterns kept) with its keys
in the type's order, and ``tenure.api.schemas`` restates no service's answer."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from support.stores import license_row
from tenure.api import schemas
from tenure.crypto.keystore import hash_license_key
from tenure.service import checks, licensing
from tenure.service.checks import CheckAnswer, CheckItem
from tenure.service.licensing import License, LicenseList
from tenure.store.memory import MemoryStore
from tenure.store.records import StoredCheckpoint

ACCOUNT = "acme"
SERIAL = "TNR-AAAAA-BBBBB-CCCCC-DDDDD"
KEY = "TNRK-AAAAAAAA-BBBBBBBB-CCCCCCCC-DDDDDDDD"
CUSTOMER = "cus_" + "a" * 26
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    row = license_row(SERIAL, key_hash=hash_license_key(KEY), customer=CUSTOMER)
    with memory.write() as tx:
        tx.ledger.create_head(ACCOUNT, "example.test/acme")
        tx.ledger.add_checkpoint(ACCOUNT, StoredCheckpoint(0, b"\x01" * 32, "note", "t"))
        tx.projection.write(ACCOUNT, "licenses", [row], [])
    return memory


def fits(answer: Any, answer_type: Any) -> None:
    """``answer`` validates as ``answer_type`` and has its keys in the type's order."""
    TypeAdapter(answer_type).validate_python(answer)
    assert list(answer) == [k for k in answer_type.__annotations__ if k in answer]


def test_the_api_schemas_restate_no_service_answer() -> None:
    models = {
        name
        for name, value in inspect.getmembers(schemas, inspect.isclass)
        if issubclass(value, BaseModel) and value.__module__ == schemas.__name__
    }
    assert models == {"Doc", "Problem", "Health"}


def test_a_check_answer_fits_its_type_with_and_without_the_serial(store: MemoryStore) -> None:
    by_serial = checks.check(store, ACCOUNT, CheckItem(SERIAL, "seats"), NOW).answer
    by_key = checks.check(store, ACCOUNT, CheckItem(KEY, "seats"), NOW).answer
    unknown = checks.check(store, ACCOUNT, CheckItem("nobody", "seats"), NOW).answer
    for answer in (by_serial, by_key, unknown):
        fits(answer, CheckAnswer)
    assert "serial" in by_serial
    assert "serial" not in by_key


def test_license_answers_fit_their_types(store: MemoryStore) -> None:
    fits(licensing.get_license(store, ACCOUNT, SERIAL, lambda: NOW), License)
    page = licensing.list_licenses(store, ACCOUNT, clock=lambda: NOW)
    fits(page, LicenseList)
    fits(page["licenses"][0], License)


def test_a_closed_answer_type_refuses_a_member_it_does_not_name(store: MemoryStore) -> None:
    answer = dict(checks.check(store, ACCOUNT, CheckItem(SERIAL, "seats"), NOW).answer)
    with pytest.raises(ValidationError):
        TypeAdapter(CheckAnswer).validate_python({**answer, "extra": 1})
