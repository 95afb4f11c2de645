"""Text every backend can store, and containing a failed write batch (pure parts)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tenure.domain.storable import first_unstorable, spell, text_problem
from tenure.service.batches import contain_failures
from tenure.store.failures import is_unavailable, is_unstorable


@given(st.text())
def test_text_without_nul_or_surrogates_is_storable(text: str) -> None:
    expected = "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert (text_problem(text) is not None) == expected


def test_text_problems_say_what_is_wrong() -> None:
    assert text_problem("a\x00b") == "holds a NUL character"
    assert text_problem("\ud800") == "is not valid UTF-8 (it holds a lone surrogate)"
    assert text_problem("x" * 11, limit=10) == "is longer than 10 characters"
    assert text_problem("ünïcødé ✓", limit=10) is None


def test_the_first_unstorable_string_is_found_in_document_order() -> None:
    document = {"a": "fine", "b": [{"c": "ok"}, {"d": "bad\x00"}], "e": "\ud800"}
    assert first_unstorable(document) == (["b", 1, "d"], "holds a NUL character")
    assert spell(["b", 1, "d"]) == "b[1].d"
    assert first_unstorable({"ok": {"x\x00": 1}}) == (
        ["ok"],
        "has a member name that holds a NUL character",
    )
    assert first_unstorable({"a": ["fine", 3, None, {"b": True}]}) is None


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    document: object = "bad\x00"
    for _ in range(100_000):
        document = [document]
    found = first_unstorable(document)
    assert found is not None
    assert len(found[0]) == 100_000


class Poisoned(Exception):
    pass


@pytest.mark.parametrize(("size", "poison"), [(1, {0}), (7, {3}), (512, {0, 200, 511}), (9, set())])
def test_a_failed_batch_is_retried_until_only_the_poisoned_items_fail(
    size: int, poison: set[int]
) -> None:
    committed: list[int] = []
    failed: list[int] = []
    attempts = 0

    def attempt(batch: list[int]) -> BaseException | None:
        nonlocal attempts
        attempts += 1
        if poison & set(batch):
            return Poisoned()
        committed.extend(batch)
        return None

    contain_failures(range(size), attempt, lambda batch, _: failed.extend(batch))
    assert failed == sorted(poison)
    assert committed == [n for n in range(size) if n not in poison]  # in order
    assert attempts <= 1 + 2 * len(poison) * max(1, size.bit_length())


def test_a_batch_the_database_cannot_take_is_not_split() -> None:
    refused = sa.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("refused"))
    given_up: list[list[int]] = []
    contain_failures(range(8), lambda _: refused, lambda batch, _: given_up.append(batch))
    assert given_up == [list(range(8))]


def test_database_errors_are_classified() -> None:
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE t (n INTEGER NOT NULL)")
        with pytest.raises(sqlite3.IntegrityError) as violated:
            db.execute("INSERT INTO t VALUES (NULL)")
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # type: ignore[attr-defined]
    nul = psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    assert is_unavailable(psycopg.OperationalError("connection refused"))
    assert is_unavailable(locked)
    assert is_unavailable(sa.exc.TimeoutError())
    assert not is_unavailable(violated.value)
    assert not is_unavailable(nul)
    assert is_unstorable(nul)
    assert is_unstorable(sa.exc.DataError("SELECT", {}, nul))
    assert not is_unstorable(violated.value)
    assert not is_unstorable(psycopg.OperationalError("connection refused"))
