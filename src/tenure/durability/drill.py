"""Drills: restore the latest state from a site into a scratch database and compare
it with the live store, as a restore on a bad day would.

A drill reports:
- **RTO**: the seconds the restore took;
- **RPO**: how far the site is behind the live ledger, in events and in seconds
  since the oldest event the site lacks;
- **pass/fail**: the restored tree must have the live tree's root at the restored
  size, and the restored state the live state's digest at that size. The live
  digest is replayed from the live ledger when the live store has moved on.

Each result is kept in ``drills``. ``GET /v1/drills/latest`` shows the newest.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from tenure.domain.timefmt import format_time, parse_time
from tenure.durability.restore import RestoreReport, restore
from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.merkle import EMPTY_ROOT, tree_hash
from tenure.ledger.note import NoteVerifier
from tenure.service.replay import replay, stored_digest
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import create_engine, read_transaction, write_transaction
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlTransaction

_log = logging.getLogger("tenure.drill")


@dataclass(frozen=True)
class DrillReport:
    account: str
    at: str
    site: str
    passed: bool
    rto_seconds: float
    rpo_events: int
    rpo_seconds: float
    restored_size: int
    live_size: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_drill(
    live: sa.Engine,
    site: Site,
    account: str,
    verifiers: list[NoteVerifier],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DrillReport:
    """Restore from ``site`` into a scratch database, compare, record, report."""
    started = now()
    scratch_dir = Path(tempfile.mkdtemp(prefix="tenure-drill-"))
    scratch = create_engine(f"sqlite:///{scratch_dir / 'drill.db'}")
    clock = time.monotonic()
    size, rpo_seconds = 0, 0.0
    try:
        upgrade(scratch)
        restored = restore(site, account, scratch, verifiers)
        rto = time.monotonic() - clock
        size = restored.size
        live_size, rpo_seconds, problems = _compare(live, account, restored, now())
        detail = "; ".join(problems) or (
            f"restored {size} events; root and digest equal the live store's"
        )
    except TenureError as exc:
        rto = time.monotonic() - clock
        live_size, problems, detail = (
            _live_size(live, account),
            ["failed"],
            f"restore failed: {exc}",
        )
    finally:
        scratch.dispose()
        shutil.rmtree(scratch_dir, ignore_errors=True)
    report = DrillReport(
        account,
        format_time(started),
        site.url,
        not problems,
        round(rto, 3),
        live_size - size,
        round(rpo_seconds, 3),
        size,
        live_size,
        detail,
    )
    record(live, report)
    return report


def _live_size(live: sa.Engine, account: str) -> int:
    with read_transaction(live) as conn:
        head = sql.read_head(conn, account)
    return head.size if head else 0


def _compare(
    live: sa.Engine, account: str, restored: RestoreReport, now: datetime
) -> tuple[int, float, list[str]]:
    """The live size, the age of the oldest event the site lacks, and what differs."""
    size = restored.size
    with read_transaction(live) as conn:
        head = sql.read_head(conn, account)
        live_size = head.size if head else 0
        live_root = tree_hash(size, sql.NodeReader(conn, account)) if size else EMPTY_ROOT
        if live_size == size:
            live_digest = stored_digest(SqlTransaction(conn), account)
        else:
            live_digest = replay(sql.iter_leaves(conn, account, 0, size)).digest()
        lacking = list(sql.iter_leaves(conn, account, size, size + 1))
    rpo_seconds = 0.0
    if lacking:
        oldest = parse_time(orjson.loads(lacking[0][1])["time"])
        rpo_seconds = max(0.0, (now - oldest).total_seconds())
    problems = []
    if live_root.hex() != restored.root:
        problems.append("the restored tree's root differs from the live tree's")
    if live_digest != restored.digest:
        problems.append("the restored state differs from the live state at that size")
    return live_size, rpo_seconds, problems


def record(engine: sa.Engine, report: DrillReport) -> None:
    with write_transaction(engine) as conn:
        conn.execute(sa.insert(t.drills).values(**report.to_json()))


def latest(engine: sa.Engine, account: str) -> DrillReport | None:
    drills = t.drills.c
    with read_transaction(engine) as conn:
        row = conn.execute(
            sa.select(t.drills).where(drills.account == account).order_by(drills.at.desc()).limit(1)
        ).first()
    return None if row is None else DrillReport(**{str(k): v for k, v in row._asdict().items()})
