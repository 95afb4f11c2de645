"""``tenure audit verify`` covers every column of ``audit_log`` (issue 17): the columns
``GET /v1/audit`` and ``tenure audit list`` filter on are copies of the hashed entry,
and an edit to any of them (say, an ``action`` changed to hide a revocation from
``?action=revoke_license``) is named, row and column, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from support.cli import tenure
from support.postgres import BACKENDS, fresh_database, pg_url
from tenure.service import audit
from tenure.service.audit import AuditFilter
from tenure.store import tables
from tenure.store.databases import open_store, sqlite_url

ACCOUNT = "default"
REVOKED = "revoke_license"
OTHER_ROW = f"(SELECT {{0}} FROM audit_log WHERE account = '{ACCOUNT}' AND seq = 0)"


@dataclass(frozen=True)
class Seeded:
    data_dir: Path
    url: str
    revocation: int
    """The seq of the first audit entry of a license revocation."""

    def sql(self, *statements: str) -> None:
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement), {"seq": self.revocation})
        finally:
            engine.dispose()

    def verify(self) -> Any:
        done = tenure(
            "audit", "verify", "--data-dir", self.data_dir, "--db", self.url, "--output", "json"
        )
        assert done.code in (0, 1), str(done)
        return done.json()

    def revocations(self) -> list[int]:
        """The seqs ``GET /v1/audit?action=revoke_license`` lists (its query, in process)."""
        with open_store(self.url) as store, store.read() as tx:
            found, _ = audit.page(tx.audit, ACCOUNT, limit=500, where=AuditFilter(action=REVOKED))
        return [entry["seq"] for entry in found]


@contextmanager
def _database(backend: str, data_dir: Path) -> Iterator[str]:
    """The URL of an empty database of ``backend`` for ``data_dir``."""
    if backend == "sqlite":
        data_dir.mkdir(parents=True)
        yield sqlite_url(data_dir / "tenure.db")
        return
    with fresh_database() as name:
        yield pg_url(name)


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """A store seeded through the command path (its audit log holds a revocation),
    with a copy of ``audit_log`` that ``store`` puts back after each test."""
    data_dir = tmp_path_factory.mktemp(f"audit-columns-{request.param}") / "data"
    with _database(request.param, data_dir) as url:
        done = tenure("demo", "seed", "--events", "150", "--seed", "1", "--data-dir", data_dir,
                      "--db", url, "--output", "json")  # fmt: skip
        assert done.code == 0, str(done)
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE audit_log_copy AS SELECT * FROM audit_log"))
                revocations = conn.execute(
                    sa.text("SELECT seq FROM audit_log WHERE action = :action ORDER BY seq"),
                    {"action": REVOKED},
                ).scalars()
                first = next(iter(revocations), None)
                last = conn.execute(sa.text("SELECT max(seq) FROM audit_log")).scalar_one()
        finally:
            engine.dispose()
        assert first is not None, "the seeded audit log holds no revocation"
        assert first < last, "the revocation is the last entry: no row after it to edit"
        yield Seeded(data_dir, url, first)


@pytest.fixture
def store(seeded: Seeded) -> Iterator[Seeded]:
    yield seeded
    seeded.sql("DELETE FROM audit_log", "INSERT INTO audit_log SELECT * FROM audit_log_copy")


def _set(column: str, value: str) -> list[str]:
    return [f"UPDATE audit_log SET {column} = {value} WHERE seq = :seq"]


EDITS: dict[str, tuple[list[str], str | None, str]] = {
    # edit: (statements on the revocation's row, the column named, what the error says)
    "account": (_set("account", "'elsewhere'"), None, "is missing"),
    "seq swapped": (
        [
            "UPDATE audit_log SET seq = -1 WHERE seq = :seq",
            "UPDATE audit_log SET seq = :seq WHERE seq = :seq + 1",
            "UPDATE audit_log SET seq = :seq + 1 WHERE seq = -1",
        ],
        "seq",
        "its seq column holds",
    ),
    "seq moved": (_set("seq", "1000000"), None, "is missing"),
    "time": (_set("time", "'2020-01-01T00:00:00.000000Z'"), "time", "'2020-01-01T00:00:00"),
    "principal": (_set("principal", "'key_innocent'"), "principal", "holds 'key_innocent'"),
    "action": (_set("action", "'check'"), "action", "holds 'check' but the entry says 'revoke"),
    "outcome": (_set("outcome", "'denied'"), "outcome", "holds 'denied' but the entry says"),
    "target": (_set("target", "'TNR-AAAAA'"), "target", "holds 'TNR-AAAAA' but the entry"),
    "target emptied": (_set("target", "NULL"), "target", "holds None but the entry says 'TNR-"),
    "entry": (_set("entry", OTHER_ROW.format("entry")), None, "was altered"),
    "hash": (_set("hash", OTHER_ROW.format("hash")), None, "was altered"),
}


def test_the_edits_cover_every_column_and_every_filter_of_the_audit_api() -> None:
    assert {edit.split()[0] for edit in EDITS} == set(tables.audit_log.c.keys())
    named = {column for _, column, _ in EDITS.values() if column}
    # GET /v1/audit and tenure audit list filter on AuditFilter's fields, page by seq.
    assert {field.name for field in fields(AuditFilter)} | {"seq"} <= named


def test_an_unedited_store_verifies(store: Seeded) -> None:
    found = store.verify()
    assert found["ok"] is True, found
    assert found["accounts"][0]["size"] > store.revocation


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_column_is_named_by_audit_verify(store: Seeded, edit: str) -> None:
    statements, column, says = EDITS[edit]
    store.sql(*statements)
    found = store.verify()
    assert (found["ok"], found["seq"], found["column"]) == (False, store.revocation, column)
    assert says in found["error"], found


def test_a_revocation_hidden_from_the_action_filter_is_named(store: Seeded) -> None:
    assert store.revocation in store.revocations()
    store.sql("UPDATE audit_log SET action = 'check' WHERE seq = :seq")
    assert store.revocation not in store.revocations()
    done = tenure("audit", "verify", "--data-dir", store.data_dir, "--db", store.url)
    assert done.code == 1, str(done)
    assert done.stdout.startswith(f"TAMPERED (first bad entry {store.revocation}): "), done.stdout
    assert "its action column holds 'check' but the entry says 'revoke_license'" in done.stdout


# PostgreSQL keeps every value in its column's type: SQLite only.
@pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)
def test_a_column_of_another_type_is_named_after_the_rows_before_it(store: Seeded) -> None:
    # SQLite keeps a blob in a TEXT column: read as hostile, the row and column are named.
    store.sql("UPDATE audit_log SET principal = CAST(principal AS BLOB) WHERE seq = :seq + 1")
    found = store.verify()
    assert (found["seq"], found["column"]) == (store.revocation + 1, "principal"), found
    assert "is stored as a blob, not text" in found["error"]
    # A row before it, in the same read, is checked first and named.
    store.sql(*EDITS["time"][0])
    found = store.verify()
    assert (found["seq"], found["column"]) == (store.revocation, "time"), found
