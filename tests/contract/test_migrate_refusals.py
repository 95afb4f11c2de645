"""``tenure migrate`` leaves no half-made target: a migration that fails (here the
source does not verify: one of its leaves was altered) removes the SQLite file or
the schema it created and commits no row into a target that existed; a target that
holds rows of an account is refused unless ``--replace``, which in turn refuses a
target ledger the source's does not extend (as ``tenure restore --replace`` does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from support.cli import CliResult, tenure
from support.postgres import pg_url
from support.shop import ACCOUNT, ACTOR, Shop
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer
from tenure.durability import migration
from tenure.errors import DigestMismatch
from tenure.service import apikeys
from tenure.service.ledger import Submission
from tenure.service.replay import digest_of
from tenure.store import tables as t
from tenure.store.databases import open_store
from tenure.store.engine import create_engine, read_transaction, transaction_on
from tenure.store.unit import SqlStore

OTHER = "acme"  # migrated before ACCOUNT (accounts go in id order)


def _url(path: Path) -> str:
    return f"sqlite:///{path.as_posix()}"


def _write(data_dir: Path, customers: int, tag: str) -> str:
    """Customers on ACCOUNT (and one on OTHER) through a runtime; the store's URL."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        with runtime.ledger() as ledger:
            shop = Shop(ledger)
            if tag == "first":
                shop.catalog()
                other = CreateCustomer("Other", "o@example.test", "o")
                ledger.execute(Submission(OTHER, other, ACTOR))
            for n in range(customers):
                shop.customer(f"{tag}-{n}")
        return runtime.settings.database()
    finally:
        runtime.close()


def _alter_a_leaf(url: str, account: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn, transaction_on(conn):
            e = t.ledger_events.c
            where = sa.and_(e.account == account, e.seq == 0)
            leaf = conn.scalar(sa.select(e.leaf).where(where))
            altered = bytes(leaf).replace(b"Studio", b"Atelie")
            conn.execute(sa.update(t.ledger_events).where(where).values(leaf=altered))
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _state(url: str, account: str = ACCOUNT) -> tuple[int, str]:
    engine = create_engine(url)
    try:
        report = digest_of(SqlStore(engine), account)
        return report.size, report.digest
    finally:
        engine.dispose()


def _one_line_failure(result: CliResult, text: str, proven: int = 0) -> None:
    """Exit 1 and one line of error, after ``proven`` lines of progress."""
    assert result.code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == proven + 1, result.stderr
    assert text in lines[-1], result.stderr


def test_a_failed_migration_into_a_new_sqlite_file_leaves_no_file(tmp_path: Path) -> None:
    source = _write(tmp_path / "data", 3, "first")
    _alter_a_leaf(source, ACCOUNT)
    target = tmp_path / "new" / "dir" / "tenure.db"
    failed = tenure("migrate", "--from", source, "--to", _url(target))
    _one_line_failure(failed, "lost the source's root", proven=1)
    assert failed.stderr.startswith(f"{OTHER}: ")  # the first account was copied, then undone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_failed_migration_into_an_empty_postgresql_database_leaves_no_table(
    tmp_path: Path, pg_database: str
) -> None:
    source = _write(tmp_path / "data", 3, "first")
    _alter_a_leaf(source, ACCOUNT)
    target = pg_url(pg_database)
    failed = tenure("migrate", "--from", source, "--to", target)
    _one_line_failure(failed, "lost the source's", proven=1)
    assert _tables(target) == []


def test_a_failed_migration_into_a_target_with_a_schema_commits_nothing(tmp_path: Path) -> None:
    source = _write(tmp_path / "data", 3, "first")
    target = _url(tmp_path / "target.db")
    assert tenure("migrate", "--from", source, "--to", target, "--account", OTHER).code == 0
    before = _state(target, OTHER)
    _alter_a_leaf(source, ACCOUNT)
    _one_line_failure(tenure("migrate", "--from", source, "--to", target), "already holds")
    failed = tenure("migrate", "--from", source, "--to", target, "--account", ACCOUNT)
    _one_line_failure(failed, "lost the source's root")
    assert _state(target, OTHER) == before
    engine = create_engine(target)
    try:
        with read_transaction(engine) as conn:
            for table in t.metadata.tables.values():
                owner = table.c.id if table.name == "accounts" else table.c.account
                query = sa.select(sa.func.count()).where(owner == ACCOUNT)
                assert conn.scalar(query.select_from(table)) == 0, table.name
    finally:
        engine.dispose()


def test_a_nonempty_target_is_refused_and_replaced_with_replace_when_the_source_extends_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    source = _write(data_dir, 3, "first")
    target = _url(tmp_path / "target.db")
    assert tenure("migrate", "--from", source, "--to", target).code == 0
    _write(data_dir, 2, "later")
    before = _state(target)
    refused = tenure("migrate", "--from", source, "--to", target)
    _one_line_failure(refused, "already holds a ledger of acme")
    assert "--replace" in refused.stderr
    assert _state(target) == before
    replaced = tenure("migrate", "--from", source, "--to", target, "--replace", "-o", "json")
    assert replaced.code == 0, replaced
    assert _state(target) == _state(source) != before


def test_replace_refuses_a_target_ledger_the_source_does_not_extend(tmp_path: Path) -> None:
    source = _write(tmp_path / "data", 3, "first")
    forked = _write(tmp_path / "elsewhere", 4, "first")  # another store, a longer ledger
    target = _url(tmp_path / "target.db")
    assert tenure("migrate", "--from", forked, "--to", target).code == 0
    before = _state(target)
    only = ("--account", ACCOUNT, "--replace")
    refused = tenure("migrate", "--from", source, "--to", target, *only)
    _one_line_failure(refused, "replacing it would lose events")
    assert _state(target) == before
    _write(tmp_path / "data", 5, "more")
    refused = tenure("migrate", "--from", source, "--to", target, *only)
    _one_line_failure(refused, "they have forked")
    assert _state(target) == before


def test_a_target_holding_other_rows_of_the_account_is_refused_unless_replace(
    tmp_path: Path,
) -> None:
    source = _write(tmp_path / "data", 2, "first")
    target = _url(tmp_path / "target.db")
    engine = create_engine(target)
    try:
        from tenure.store.migrations import upgrade

        upgrade(engine)
        apikeys.create_api_key(SqlStore(engine), ACCOUNT, "owner", "made on the target")
    finally:
        engine.dispose()
    refused = tenure("migrate", "--from", source, "--to", target, "--account", ACCOUNT)
    _one_line_failure(refused, "already holds rows of default (api_keys)")
    replaced = tenure("migrate", "--from", source, "--to", target, "--replace")
    assert replaced.code == 0, replaced
    assert _state(target) == _state(source)


def test_the_proof_finds_a_copied_row_that_differs_on_the_target(tmp_path: Path) -> None:
    source = _write(tmp_path / "data", 2, "first")
    target = _url(tmp_path / "target.db")
    assert tenure("migrate", "--from", source, "--to", target).code == 0
    engine = create_engine(target)
    try:
        with engine.connect() as conn, transaction_on(conn):
            a = t.audit_log.c
            where = sa.and_(a.account == ACCOUNT, a.seq == 0)
            conn.execute(sa.update(t.audit_log).where(where).values(principal="someone else"))
    finally:
        engine.dispose()
    with open_store(source) as ours, open_store(target) as theirs:
        with pytest.raises(DigestMismatch, match="rows of table audit_log differ"):
            migration.prove_equal(ours, theirs, ACCOUNT)
        assert migration.prove_equal(ours, theirs, OTHER).rows["audit_log"] >= 1
