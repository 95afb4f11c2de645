"""What ``tenure restore`` prints: each account's proof, then, table by table, the
rows restored and what was not restored and why (``durability.inventory``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tenure.cli.common import root_text
from tenure.durability import inventory
from tenure.durability.restore import RestoreReport
from tenure.durability.site_restore import SiteRestore
from tenure.store.databases import DatabaseError, drop_schema, holds_no_schema, sqlite_file

_SOURCES = {"none": "NOT restored (none at the site)", "kept": "kept those of the target"}


def restore_json(done: SiteRestore) -> dict[str, Any]:
    """``{"accounts": [report], "tables": [...]}``; with one account, its report's
    fields also at the top (as before several accounts were restored at once)."""
    reports = [{**r.to_json(), "root": root_text(r.root)} for r in done.reports]
    totals = done.totals()
    tables: list[dict[str, Any]] = [
        {"table": name, "restored": True, "rows": totals[name], "how": how}
        for name, how in inventory.RESTORED.items()
    ]
    tables += [
        {"table": name, "restored": False, "rows": 0, "how": why}
        for name, why in inventory.NOT_RESTORED.items()
    ]
    single = reports[0] if len(reports) == 1 else {}
    return {**single, "accounts": reports, "tables": tables, "rows": done.rows}


def restore_text(done: SiteRestore, into: str) -> str:
    lines = [line for report in done.reports for line in account_lines(report, into)]
    totals = done.totals()
    width = max(len(name) for name in [*inventory.RESTORED, *inventory.NOT_RESTORED])
    lines.append("")
    lines.append(f"{'table':<{width}}  {'rows':>9}  how")
    for name, how in inventory.RESTORED.items():
        lines.append(f"{name:<{width}}  {totals[name]:>9}  {how}")
    lines.append("not restored:")
    for name, why in inventory.NOT_RESTORED.items():
        lines.append(f"{name:<{width}}  {'-':>9}  {why}")
    return "\n".join(lines)


def account_lines(report: RestoreReport, into: str) -> list[str]:
    """What was restored of one account, and how it was proven."""
    lines = [
        f"restored {report.size} events of {report.account} into {into} in {report.seconds:.1f} s",
        f"  proven: root {root_text(report.root)} (signed checkpoint at {report.signed_size})"
        if not report.lost
        else f"  NEW EPOCH: {report.lost} signed events were lost; the first "
        f"{report.size} are kept (proven up to the snapshot used)",
        f"  state digest {report.digest}",
        f"  from snapshot at {report.snapshot}"
        if report.snapshot is not None
        else "  replayed from genesis (no usable snapshot)",
        "  API keys and public token keys: "
        + _SOURCES.get(report.key_rows, f"from the {report.key_rows}"),
        "  webhooks, deployments and drift: "
        + _SOURCES.get(report.service_rows, f"from the {report.service_rows}"),
        "  audit chain: " + _audit_text(report),
    ]
    if report.replaced is not None:
        lines.append(f"  replaced a ledger of {report.replaced} events")
    lines.extend(f"  skipped {skipped}" for skipped in report.skipped_snapshots)
    return lines


def _audit_text(report: RestoreReport) -> str:
    return {
        "site": f"{report.audit_entries} entries from the site, proven by its signed head",
        "none": "NOT restored (none at the site): a new chain starts",
        "skipped": "NOT restored (--without-audit): a new chain starts",
        "kept": "kept that of the target",
    }.get(report.audit, report.audit)


@contextmanager
def removed_on_failure(url: str) -> Iterator[None]:
    """Remove what the block created for the database ``url`` if the block fails:
    for SQLite its file, journal and sidecars and the directories made for it; for
    another database the schema, if it had neither a schema revision nor any of
    Tenure's tables before (the restore's rows are one transaction, so a failure
    leaves none of them)."""
    path = sqlite_file(url)
    if path is None:
        with _schema_dropped_on_failure(url, holds_no_schema(url)):
            yield
        return
    path = path.absolute()
    made_dir = _first_missing_dir(path.parent)
    before = set(path.parent.glob(path.name + "*")) if made_dir is None else set()
    try:
        yield
    except BaseException:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)
        else:
            for created in set(path.parent.glob(path.name + "*")) - before:
                _remove(created)
        raise


@contextmanager
def _schema_dropped_on_failure(url: str, fresh: bool) -> Iterator[None]:
    try:
        yield
    except BaseException:
        # The restore's own failure is what the operator must read; a database that
        # cannot be reached now holds no restored rows either.
        with contextlib.suppress(DatabaseError):
            if fresh:
                drop_schema(url)
        raise


def _first_missing_dir(directory: Path) -> Path | None:
    missing = None
    while not directory.exists():
        missing, directory = directory, directory.parent
    return missing


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
