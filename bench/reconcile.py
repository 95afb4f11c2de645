"""Benchmark 12: a reconciliation pass over deployment reports (docs/drift.md).

The store holds N reported activations (100,000; ``--quick``: 10,000), four per
license, 50 per deployment, with 1 % of them drifting. The reconciler reads only
projection tables and reports, so the ledger state is written straight into the
projection (``bulk_insert_rows``) instead of through N ledger appends; the reports
go through ``record_report`` as the API stores them. The figure is
``run_pass`` (read, classify, replace findings, record the pass) in activations/s;
the limit is a raw ``sqlite3`` SELECT of the same rows (report blobs, licenses,
activations, seats, revoked tokens) with ``orjson.loads`` of the blobs — what any
pass must do at least. Goal: a pass over 100,000 activations in under 10 s.
"""

from __future__ import annotations

import cProfile
import hashlib
import pstats
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import Options, Result, Timer, raw_connection, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.activations import activation_id
from tenure.domain.timefmt import format_time
from tenure.ops.deployments import Report, record_report
from tenure.ops.reconcile import DriftPolicy, run_pass
from tenure.store import projection_rows
from tenure.store.engine import write_transaction

ACCOUNT = "default"
PER_LICENSE = 4
PER_DEPLOYMENT = 50
GOAL_SECONDS_PER_100K = 10.0
NOW = datetime.now(UTC)


def _serial(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    digits = "".join(alphabet[(n >> (5 * k)) % 32] for k in range(20))
    return "TNR-" + "-".join(digits[i : i + 5] for i in range(0, 20, 5))


def _ledger_state(runtime: Runtime, licenses: int) -> list[tuple[str, str]]:
    plan = {
        "plan": "studio-pro",
        "version": 1,
        "product": "studio",
        "entitlements": {"feature:export-pdf": True, "seats": 2 * PER_LICENSE},
        "core": [],
        "duration": None,
        "grace": None,
        "offline_token_ttl": "PT24H",
        "activation": "node-locked",
    }
    license_rows, activation_rows, seat_rows, devices = [], [], [], []
    for n in range(licenses):
        serial = _serial(n)
        license_rows.append(
            {
                "serial": serial,
                "product": "studio",
                "customer": "cus_bench",
                "plan": "studio-pro",
                "plan_version": 1,
                "order_ref": f"o{n}",
                "key_hash": hashlib.sha256(serial.encode()).hexdigest(),
                "status": "active",
                "issued_at": format_time(NOW),
                "expires_at": None,
                "overrides": {},
            }
        )
        holders: dict[str, None] = {}
        for d in range(PER_LICENSE):
            fph = hashlib.sha256(f"{serial}/{d}".encode()).hexdigest()
            act = activation_id(ACCOUNT, serial, fph)
            activation_rows.append(
                {
                    "activation": act,
                    "serial": serial,
                    "fingerprint_hash": fph,
                    "mode": "node-locked",
                    "status": "active",
                    "lease_expires_at": None,
                }
            )
            holders[act] = None
            devices.append((serial, fph))
        seat_rows.append({"serial": serial, "holders": holders})
    with write_transaction(runtime.store.engine) as conn:
        projection_rows.bulk_insert_rows(conn, ACCOUNT, "plan_versions", [plan])
        projection_rows.bulk_insert_rows(conn, ACCOUNT, "licenses", license_rows)
        projection_rows.bulk_insert_rows(conn, ACCOUNT, "activations", activation_rows)
        projection_rows.bulk_insert_rows(conn, ACCOUNT, "license_seats", seat_rows)
    return devices


def _entry(n: int, serial: str, fph: str) -> dict[str, Any]:
    exp = int((NOW + timedelta(days=1 if n % 100 else -1)).timestamp())
    device = (
        {"fingerprint_hash": fph} if n % 2 else {"activation": activation_id(ACCOUNT, serial, fph)}
    )
    if n % 100 == 50:  # 1 % drift: an unknown device
        device = {"fingerprint_hash": hashlib.sha256(f"x{n}".encode()).hexdigest()}
    jti = "tok_" + hashlib.sha256(str(n).encode()).hexdigest()[:26].translate(
        str.maketrans("0189", "wxyz")
    )
    return {
        "license": serial,
        **device,
        "entitlements": ["feature:export-pdf"],
        "tokens": [{"jti": jti, "exp": exp}],
    }


def _reports(runtime: Runtime, devices: list[tuple[str, str]]) -> None:
    entries = [_entry(n, s, f) for n, (s, f) in enumerate(devices)]
    for start in range(0, len(entries), PER_DEPLOYMENT):
        report = Report.model_validate(
            {
                "product": "studio",
                "product_version": "1.4.0",
                "sdk_version": "0.3.0",
                "activations": entries[start : start + PER_DEPLOYMENT],
            }
        )
        name = f"site-{start // PER_DEPLOYMENT}"
        record_report(runtime.store, ACCOUNT, name, report, "key_bench", NOW)


def _raw_read(db: Path) -> int:
    conn = raw_connection(db)
    try:
        rows = 0
        for (blob,) in conn.execute(
            "SELECT activations FROM deployments WHERE account = ?", (ACCOUNT,)
        ):
            rows += len(orjson.loads(blob))
        for table in (
            "licenses",
            "plan_versions",
            "activations",
            "license_seats",
            "revoked_tokens",
        ):
            rows += len(
                conn.execute(f"SELECT * FROM proj_{table} WHERE account = ?", (ACCOUNT,)).fetchall()
            )
        return rows
    finally:
        conn.close()


def run(opts: Options) -> list[Result]:
    count = 10_000 if opts.quick else 100_000
    with temp_dir("reconcile", opts.tmp_root) as tmp:
        runtime = Runtime.open(Settings(data_dir=tmp / "data"))
        try:
            build = Timer()
            devices = _ledger_state(runtime, count // PER_LICENSE)
            _reports(runtime, devices)
            print(f"  built {count:,} reported activations in {build.elapsed():.1f} s")
            return [_measure(opts, runtime, count)]
        finally:
            runtime.close()


def _measure(opts: Options, runtime: Runtime, count: int) -> Result:
    policy = DriftPolicy(stale_after=timedelta(hours=1))
    best, summary = float("inf"), None
    for _ in range(3):
        timer = Timer()
        summary = run_pass(runtime.store, ACCOUNT, policy, NOW)
        best = min(best, timer.elapsed())
    assert summary is not None
    db = runtime.settings.data_dir / "tenure.db"
    limit = float("inf")
    for _ in range(3):
        timer = Timer()
        _raw_read(db)
        limit = min(limit, timer.elapsed())
    goal = GOAL_SECONDS_PER_100K * count / 100_000
    result = Result(
        f"reconciliation pass ({count:,} reported activations)",
        count / best,
        "act/s",
        count / limit,
        "raw SELECT of the same rows + orjson",
        "act/s",
        f"goal: pass < {goal:.1f} s",
        best < goal,
    )
    result.notes.append(
        f"pass {best:.3f} s, raw read {limit:.3f} s; {summary['findings']} findings "
        f"({summary['by_kind']['unknown_device']} unknown devices)"
    )
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    if opts.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run_pass, runtime.store, ACCOUNT, policy, NOW)
        print("  -- cProfile of run_pass, top 20 by tottime --")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return result
