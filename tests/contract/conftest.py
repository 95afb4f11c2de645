"""Fixtures for the contract tests: real SQLite stores in temporary directories, the
real ledger writer thread, and the real ``tenure`` executable in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import (
    Command,
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    PublishPlan,
)
from tenure.domain.events import Actor, event_from_json
from tenure.ledger.merkle import Frontier, leaf_hash
from tenure.service.ledger import Ledger, Outcome, Submission
from tenure.service.replay import DigestReport, digest_of
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction, write_transaction
from tenure.store.unit import SqlStore

ACCOUNT = "default"
ACTOR = Actor("key_contract", "owner", "api_key")
TENURE = Path(sys.executable).with_name("tenure")


# ---------------------------------------------------------------- the command line


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"tenure {' '.join(self.args)} -> {self.code}\n{self.stdout}\n{self.stderr}"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
    env["COLUMNS"] = "200"
    return env


def tenure(*args: str | Path) -> CliResult:
    """Run the installed ``tenure`` executable and wait for it."""
    return tenure_many([args])[0]


def tenure_many(calls: Iterable[Iterable[str | Path]]) -> list[CliResult]:
    """Run several ``tenure`` commands at once (each is a separate process)."""
    started = []
    for call in calls:
        args = tuple(str(a) for a in call)
        proc = subprocess.Popen(
            [str(TENURE), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        started.append((args, proc))
    results = []
    for args, proc in started:
        out, err = proc.communicate(timeout=120)
        results.append(CliResult(args, proc.returncode, out.decode(), err.decode()))
    return results


def seed_args(data_dir: Path, events: int, seed: int) -> list[str | Path]:
    return [
        "demo",
        "seed",
        "--events",
        str(events),
        "--seed",
        str(seed),
        "--data-dir",
        data_dir,
        "--output",
        "json",
    ]


# ---------------------------------------------------------------- direct SQLite access


def db_path(data_dir: Path) -> Path:
    return data_dir / "tenure.db"


def raw_sqlite(data_dir: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to a store (not through Tenure); close it yourself."""
    return sqlite3.connect(db_path(data_dir), isolation_level=None)


def tampered_copy(pristine: Path, copy: Path, tamper: Callable[[sqlite3.Connection], None]) -> Path:
    """A copy of the store in ``pristine`` at ``copy``, changed by ``tamper`` (one
    transaction of plain ``sqlite3``, not through Tenure)."""
    shutil.copytree(pristine, copy)
    db = raw_sqlite(copy)
    try:
        db.execute("BEGIN")
        tamper(db)
        db.execute("COMMIT")
    finally:
        db.close()
    return copy


def backup_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database with the online backup API."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def replace_database(data_dir: Path, copy: Path) -> None:
    """Put an older copy of the database back under the store's name (no WAL left over)."""
    target = db_path(data_dir)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    backup_sqlite(copy, target)


# ---------------------------------------------------------------- looking into a store


class Probe:
    """Read-only questions about a store, asked through SQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def seqs(self) -> list[int]:
        with read_transaction(self.engine) as conn:
            query = sa.select(t.ledger_events.c.seq).where(t.ledger_events.c.account == ACCOUNT)
            return list(conn.scalars(query.order_by(t.ledger_events.c.seq)))

    def size(self) -> int:
        with read_transaction(self.engine) as conn:
            head = sql.read_head(conn, ACCOUNT)
            return 0 if head is None else head.size

    def event_count(self) -> int:
        with read_transaction(self.engine) as conn:
            events = t.ledger_events
            query = sa.select(sa.func.count()).where(events.c.account == ACCOUNT)
            return int(conn.scalar(query) or 0)

    def checkpoint_sizes(self) -> list[int]:
        with read_transaction(self.engine) as conn:
            return [cp.size for cp in sql.all_checkpoints(conn, ACCOUNT)]

    def digest(self) -> DigestReport:
        return digest_of(SqlStore(self.engine), ACCOUNT)

    def snapshot(self) -> tuple[int, int, str, list[int]]:
        """Everything a rejected command must leave unchanged."""
        report = self.digest()
        return (self.event_count(), report.size, report.digest, self.checkpoint_sizes())


# ---------------------------------------------------------------- a licensing workload


class Shop:
    """Submits commands as one principal; knows a small catalog."""

    PRODUCT = "studio"
    PLAN = "studio-pro"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def submission(
        self, command: Command, reason: str | None = None, key: str | None = None
    ) -> Submission:
        return Submission(ACCOUNT, command, ACTOR, reason=reason, idempotency_key=key)

    def run(self, command: Command, reason: str | None = None, key: str | None = None) -> Outcome:
        return self.ledger.execute(self.submission(command, reason, key))

    def catalog(self) -> None:
        self.run(DefineProduct(self.PRODUCT, "Studio", ["export-pdf", "cloud-sync"]))
        self.run(
            PublishPlan(
                self.PLAN,
                self.PRODUCT,
                {"feature:export-pdf": True, "seats": 5},
                core=["feature:export-pdf"],
            )
        )

    def customer(self, external_id: str) -> str:
        command = CreateCustomer(
            f"Customer {external_id}", f"{external_id}@example.test", external_id
        )
        return str(self.run(command).result["customer"])

    def license(self, customer: str, order: str) -> str:
        return str(
            self.run(IssueLicense(self.PRODUCT, self.PLAN, customer, order)).result["serial"]
        )


# ---------------------------------------------------------------- replaying leaves elsewhere


def read_leaves(lines: str) -> list[bytes]:
    """Leaves as written by ``tenure ledger export``: one canonical event per line."""
    return [line.encode("utf-8") for line in lines.splitlines() if line]


def import_leaves(engine: sa.Engine, leaves: list[bytes], account: str = ACCOUNT) -> bytes:
    """Append exported leaves to an empty ledger of a fresh store: events, Merkle nodes
    (from ``Frontier``) and head, in one transaction. Returns the Merkle root."""
    frontier = Frontier()
    rows: list[sql.EventRow] = []
    nodes: list[tuple[int, int, bytes]] = []
    for seq, leaf in enumerate(leaves):
        event = event_from_json(orjson.loads(leaf))
        assert event.seq == seq
        rows.append(
            sql.EventRow(
                seq, event.id, event.type, event.subject, event.time, event.idempotency_key, leaf
            )
        )
        nodes.extend(frontier.append(leaf_hash(leaf)))
    with write_transaction(engine) as conn:
        assert sql.read_head(conn, account) is None, "import into an empty account only"
        sql.create_head(conn, account, f"tenure.localhost/ledger/{account}")
        sql.insert_events(conn, account, rows)
        sql.insert_nodes(conn, account, nodes)
        sql.set_head_size(conn, account, 0, frontier.size)
    return frontier.root()


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


class Runtimes:
    """Opens runtimes over data dirs and closes them all at the end of the test."""

    def __init__(self) -> None:
        self._open: list[Runtime] = []

    def open(self, data_dir: Path, **settings: Any) -> Runtime:
        runtime = Runtime.open(Settings(data_dir=data_dir, **settings))
        self._open.append(runtime)
        return runtime

    def close_all(self) -> None:
        for runtime in self._open:
            runtime.close()
        self._open.clear()


@pytest.fixture
def runtimes() -> Iterator[Runtimes]:
    opened = Runtimes()
    yield opened
    opened.close_all()


@pytest.fixture
def runtime(runtimes: Runtimes, data_dir: Path) -> Runtime:
    return runtimes.open(data_dir)


@pytest.fixture
def ledger(runtime: Runtime) -> Iterator[Ledger]:
    with runtime.ledger() as writer:
        yield writer


@pytest.fixture
def shop(ledger: Ledger) -> Shop:
    shop = Shop(ledger)
    shop.catalog()
    return shop


@pytest.fixture
def probe(runtime: Runtime) -> Probe:
    return Probe(runtime.engine)
