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

import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tenure.domain.timefmt import format_time, parse_time
from tenure.durability.restore import RestoreReport, restore
from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.merkle import root_of
from tenure.ledger.note import NoteVerifier
from tenure.service.audit import AuditEntry
from tenure.service.replay import replay, stored_digest
from tenure.store.databases import open_store, sqlite_url
from tenure.store.drills import DrillReport
from tenure.store.unit import Store

__all__ = ["DrillReport", "latest", "record", "run_drill"]


def run_drill(
    live: Store,
    site: Site,
    account: str,
    verifiers: list[NoteVerifier],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DrillReport:
    """Restore from ``site`` into a scratch database, compare, record, report."""
    started = now()
    scratch_dir = Path(tempfile.mkdtemp(prefix="tenure-drill-"))
    clock = time.monotonic()
    size, rpo_seconds = 0, 0.0
    try:
        with open_store(sqlite_url(scratch_dir / "drill.db"), upgrade=True) as scratch:
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


def _live_size(live: Store, account: str) -> int:
    with live.read() as tx:
        head = tx.ledger.head(account)
    return head.size if head else 0


def _compare(
    live: Store, account: str, restored: RestoreReport, now: datetime
) -> tuple[int, float, list[str]]:
    """The live size, the age of the oldest event the site lacks, and what differs."""
    size = restored.size
    with live.read() as tx:
        head = tx.ledger.head(account)
        live_size = head.size if head else 0
        live_root = root_of(size, tx.ledger.nodes(account))
        if live_size == size:
            live_digest = stored_digest(tx, account)
        else:
            live_digest = replay(tx.ledger.leaves(account, 0, size)).digest()
        lacking = list(tx.ledger.leaves(account, size, size + 1))
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


def record(store: Store, report: DrillReport) -> None:
    """Keep ``report`` (``latest`` shows the newest of an account)."""
    with store.write() as tx:
        tx.drills.record(report)


def drill_entry(
    report: DrillReport, principal: str, auth: str, detail: dict[str, Any]
) -> AuditEntry:
    """The audit entry of a drill the restorer ``principal`` ran: allowed with code
    ``passed`` when it passed, denied with ``failed`` otherwise, naming its site."""
    return AuditEntry(
        report.account,
        principal,
        "restorer",
        auth,
        "drill",
        "allowed" if report.passed else "denied",
        "passed" if report.passed else "failed",
        target=report.site,
        detail=detail,
    )


def latest(store: Store, account: str) -> DrillReport | None:
    """The account's newest drill, or None before the first."""
    with store.read() as tx:
        return tx.drills.latest(account)
