"""``tenure migrate``: accounts move between SQLite and PostgreSQL with the same state
digest and Merkle root; dual-write mirrors writes until cutover; rollback loses none.

Each test gets real SQLite files and a fresh PostgreSQL database (see
``tests/conformance/conftest.py``); operators' steps run the real ``tenure``."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from support.cli import tenure
from support.postgres import pg_url
from support.shop import ACCOUNT, Shop
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer
from tenure.ledger.merkle import tree_hash
from tenure.ops import webhooks
from tenure.service.replay import digest_of
from tenure.store import ledger_records
from tenure.store import tables as t
from tenure.store.engine import create_engine, read_transaction
from tenure.store.unit import SqlStore


def _state(url: str) -> tuple[int, str, str]:
    """(size, state digest, Merkle root) of the default account at ``url``."""
    engine = create_engine(url)
    try:
        report = digest_of(SqlStore(engine), ACCOUNT)
        with read_transaction(engine) as conn:
            root = tree_hash(report.size, ledger_records.NodeReader(conn, ACCOUNT)).hex()
        return report.size, report.digest, root
    finally:
        engine.dispose()


def _write(data_dir: Path, customers: int, tag: str, mirror: bool = False) -> str:
    """Append through a runtime on the data dir's current database (with its mirror
    running if asked, waiting until it has caught up); return that database's URL."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    running = runtime.mirror() if mirror else None
    try:
        if running is not None:
            assert running.start()
        with runtime.ledger() as ledger:
            shop = Shop(ledger)
            if tag == "first":
                shop.catalog()
            for n in range(customers):
                shop.license(shop.customer(f"{tag}-{n}"), f"order-{tag}-{n}")
        if running is not None:
            _wait_for_mirror(running)
        return runtime.settings.database()
    finally:
        if running is not None:
            running.stop()
        runtime.close()


def _add_webhook(data_dir: Path) -> None:
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        box = webhooks.SecretBox.from_settings(runtime.settings)
        with runtime.store.shared_write() as tx:
            now = datetime.now(UTC)
            webhooks.create_webhook(tx, ACCOUNT, "https://example.test/h", ["*"], "", box, now)
    finally:
        runtime.close()


def _webhooks(url: str) -> int:
    engine = create_engine(url)
    try:
        with read_transaction(engine) as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(t.webhooks)) or 0)
    finally:
        engine.dispose()


def _wait_for_mirror(mirror: object) -> None:
    passes = getattr(mirror, "passes", 0)
    deadline = time.monotonic() + 10
    while getattr(mirror, "passes", 0) < passes + 2:
        assert time.monotonic() < deadline, getattr(mirror, "error", None)
        time.sleep(0.05)


def test_sqlite_to_postgresql_and_back_proves_digest_and_root_at_each_step(
    tmp_path: Path,
    pg_database: str,
) -> None:
    data_dir = tmp_path / "data"
    sqlite_url = f"sqlite:///{(data_dir / 'tenure.db').as_posix()}"
    pg = pg_url(pg_database)
    _write(data_dir, 20, "first")
    started = tenure(
        "migrate", "start", "--from", sqlite_url, "--to", pg, "--data-dir", data_dir, "-o", "json"
    )
    assert started.code == 0, started
    assert started.json()["accounts"][0]["digest"] == _state(pg)[1] == _state(sqlite_url)[1]

    # Dual-write: the source stays in use; the mirror copies each write to the target.
    assert _write(data_dir, 5, "dual", mirror=True) == sqlite_url
    assert _state(pg) == _state(sqlite_url)
    status = tenure("migrate", "status", "--data-dir", data_dir, "-o", "json")
    assert status.code == 0, status
    assert status.json()["phase"] == "dual-write"
    assert status.json()["accounts"][0]["lag"] == 0

    # Writes the mirror has not seen are synced by the cutover itself, rows of the
    # operations tables (a webhook) too.
    _write(data_dir, 3, "unmirrored")
    _add_webhook(data_dir)
    assert _state(pg) != _state(sqlite_url)
    assert _webhooks(pg) == 0
    cut = tenure("migrate", "cutover", "--data-dir", data_dir, "-o", "json")
    assert cut.code == 0, cut
    assert _state(pg) == _state(sqlite_url)
    assert _webhooks(pg) == 1
    assert cut.json()["accounts"][0]["rows"]["webhooks"] == 1
    assert Settings(data_dir=data_dir).database() == pg

    # After cutover the target is in use, mirrored back to the source.
    assert _write(data_dir, 4, "after-cutover", mirror=True) == pg
    _write(data_dir, 2, "after-cutover-unmirrored")
    size_on_pg = _state(pg)
    rolled = tenure("migrate", "rollback", "--data-dir", data_dir, "-o", "json")
    assert rolled.code == 0, rolled
    assert _state(sqlite_url) == size_on_pg
    assert size_on_pg[0] == rolled.json()["accounts"][0]["size"]
    assert Settings(data_dir=data_dir).database() == sqlite_url

    # Starting again over the same target replaces it: the source's ledger extends it.
    _write(data_dir, 1, "after-rollback")
    again = ("migrate", "start", "--from", sqlite_url, "--to", pg, "--data-dir", data_dir)
    refused = tenure(*again)
    assert refused.code == 1
    assert "--replace" in refused.stderr
    restarted = tenure(*again, "--replace")
    assert restarted.code == 0, restarted
    assert _state(pg) == _state(sqlite_url)


def test_cutover_then_finish_leaves_the_target_in_use(
    tmp_path: Path,
    pg_database: str,
) -> None:
    data_dir = tmp_path / "data"
    sqlite_url = f"sqlite:///{(data_dir / 'tenure.db').as_posix()}"
    pg = pg_url(pg_database)
    _write(data_dir, 3, "first")
    assert (
        tenure("migrate", "start", "--from", sqlite_url, "--to", pg, "--data-dir", data_dir).code
        == 0
    )
    assert tenure("migrate", "finish", "--data-dir", data_dir).code == 1
    assert tenure("migrate", "cutover", "--data-dir", data_dir).code == 0
    finished = tenure("migrate", "finish", "--data-dir", data_dir)
    assert finished.code == 0, finished
    assert _write(data_dir, 1, "later") == pg
    assert _state(pg)[0] > _state(sqlite_url)[0]


def test_postgresql_to_sqlite_copy_verifies_and_a_nonempty_target_is_refused(
    tmp_path: Path,
    pg_database: str,
) -> None:
    data_dir = tmp_path / "data"
    pg = pg_url(pg_database)
    _write_on(data_dir, pg)
    back = f"sqlite:///{(tmp_path / 'back.db').as_posix()}"
    copied = tenure("migrate", "--from", pg, "--to", back, "-o", "json")
    assert copied.code == 0, copied
    proof = copied.json()["accounts"][0]
    root = base64.b64decode(proof["root"]).hex()  # printed in base64, as checkpoints are
    assert (proof["size"], proof["digest"], root) == _state(pg) == _state(back)
    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--db", back)
    assert verified.code == 0, verified

    again = tenure("migrate", "--from", pg, "--to", back)
    assert again.code == 1
    assert again.stderr.strip().count("\n") == 0
    assert "already holds a ledger of default" in again.stderr
    assert _state(back) == _state(pg)


def _write_on(data_dir: Path, url: str) -> None:
    """Customers with idempotency keys (service rows the migration copies too)."""
    runtime = Runtime.open(Settings(data_dir=data_dir, database_url=url))
    try:
        with runtime.ledger() as ledger:
            shop = Shop(ledger)
            shop.catalog()
            for n in range(10):
                command = CreateCustomer(f"Customer {n}", f"c{n}@example.test", f"ext-{n}")
                shop.run(command, key=f"idem-{n}")
    finally:
        runtime.close()
