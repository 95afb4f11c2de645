"""``python -m bench``: run the benchmarks; each figure prints next to a limit measured
in the same run, as a ratio.

    python -m bench --quick                              # CI-sized, under ~2 minutes
    python -m bench                                      # full: verify on 100,000 events
    python -m bench --events-verify 100000,1000000       # adds the 1M verify (~8 min)
    python -m bench --only replay --profile              # one benchmark, with cProfile
    python -m bench --only checks --quick                # HTTP checks (needs wrk and Go)
    python -m bench --only offline --quick               # SDK checks, tokens, seat contention
    python -m bench --only durability --events-restore 100000,1000000   # restore, shipping, RPO
    python -m bench --only migrate --quick              # tenure migrate SQLite -> PostgreSQL
    python -m bench --only postgres --quick             # PG appends, 1 and 3 processes
    python -m bench --only hsm --quick                  # Ed25519 through SoftHSM2 (PKCS#11)
    python -m bench --only personal --quick             # sealed vs plaintext personal data
    python -m bench --only reconcile --quick            # drift pass over 10,000 activations
    python -m bench --only observability --quick        # checks with metrics + tracing on/off (wrk)
    python -m bench --only state --quick                # state map: appends, checks, proofs, verify
    python -m bench --markdown results.md                # also write the results table
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import shutil
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bench import (
    appends,
    bench_postgres,
    checks_http,
    durability,
    hsm,
    migrate,
    observability,
    offline,
    personal,
    reconcile,
    replay,
    state,
    verify,
)
from bench.builder import BuiltStore, build_store, check_against_seed_demo
from bench.common import Options, Result, Timer, machine_info, temp_dir

NAMES = (
    "appends",
    "peer",
    "replay",
    "verify",
    "checks",
    "offline",
    "durability",
    "migrate",
    "postgres",
    "hsm",
    "personal",
    "reconcile",
    "observability",
    "state",
)


class _Tee(io.TextIOBase):
    """Copies what is printed into a buffer for ``--markdown``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.buffer_text = io.StringIO()

    def write(self, text: str) -> int:
        self.out.write(text)
        self.buffer_text.write(text)
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def parse(argv: list[str]) -> tuple[Options, Path | None]:
    opts, markdown, _ = parse_all(argv)
    return opts, markdown


def parse_all(argv: list[str]) -> tuple[Options, Path | None, list[int]]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CI-sized run (< ~2 min)")
    parser.add_argument(
        "--events-verify",
        default=None,
        help="comma-separated store sizes for the verify benchmark "
        "(default 100000; --quick: 20000); the smallest also feeds replay",
    )
    parser.add_argument(
        "--only", choices=NAMES, help="run one benchmark (peer runs interleaved with appends)"
    )
    parser.add_argument(
        "--events-restore",
        default=None,
        help="comma-separated store sizes for the durability restore benchmark "
        "(default 100000; --quick: 20000)",
    )
    parser.add_argument(
        "--state-rows",
        type=lambda s: int(s.replace("_", "")),
        default=None,
        help="projection rows of the state benchmark's store (default 1000000; --quick: 20000)",
    )
    parser.add_argument("--markdown", type=Path, help="write the results table to this file")
    parser.add_argument("--tmp-dir", type=Path, help="where the SQLite files go (default: $TMPDIR)")
    parser.add_argument(
        "--profile", action="store_true", help="print cProfile of the append writer and replay"
    )
    args = parser.parse_args(argv)
    default = "20000" if args.quick else "100000"
    sizes = sorted({int(s.replace("_", "")) for s in (args.events_verify or default).split(",")})
    if not sizes or min(sizes) < 100:
        parser.error("--events-verify needs sizes of at least 100 events")
    restore_sizes = sorted(
        {int(s.replace("_", "")) for s in (args.events_restore or default).split(",")}
    )
    if not restore_sizes or min(restore_sizes) < 100:
        parser.error("--events-restore needs sizes of at least 100 events")
    opts = Options(args.quick, sizes, args.only, args.tmp_dir, args.profile, args.state_rows)
    return opts, args.markdown, restore_sizes


def main(argv: list[str]) -> int:
    opts, markdown, restore_sizes = parse_all(argv)
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    command = "python -m bench" + (" " + shlex.join(argv) if argv else "")
    started = datetime.now(UTC)
    total = Timer()
    print(f"$ {command}    # {started:%Y-%m-%d %H:%M} UTC")
    for line in machine_info():
        print(line)
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    results: list[Result] = []
    wanted = [opts.only] if opts.only else list(NAMES)
    with ExitStack() as stack:
        stores: dict[int, BuiltStore] = {}

        def store(size: int) -> BuiltStore:
            if size not in stores:
                where = stack.enter_context(temp_dir(f"store{size}", opts.tmp_root))
                print(f"  building a {size:,}-event demo store ...", flush=True)
                built = stores[size] = build_store(where / "data", size)
                stack.callback(built.runtime.close)
                print(
                    f"  built {built.events:,} events in {built.seconds:.1f} s "
                    f"({built.rate:,.0f} ev/s)"
                )
            return stores[size]

        if "appends" in wanted or "peer" in wanted:
            print(
                "\n[1] durable appends through Ledger vs raw sqlite3 (WAL, synchronous=FULL)"
                "\n[4] and vs the eventsourcing package on SQLite (peer), rounds interleaved"
            )
            results += appends.run(opts, with_peer="peer" in wanted)[0]
        if "replay" in wanted or "verify" in wanted:
            where = stack.enter_context(temp_dir("check", opts.tmp_root))
            root = check_against_seed_demo(where, 2000)
            print(
                "\n  builder check: 2,000 demo events via the bulk builder and via seed_demo "
                f"through Ledger verify to the same root {root.hex()[:16]}"
            )
        if "replay" in wanted:
            print("\n[2] replay of stored leaves into MemoryState")
            results += replay.run(opts, store(opts.verify_sizes[0]))
        if "verify" in wanted:
            print("\n[3] ledger verify vs SHA-256 of the same leaves")
            for size in opts.verify_sizes:
                results.append(verify.run(opts, store(size)))
        if "checks" in wanted:
            print(
                "\n[5] POST /v1/check over HTTP vs a bare Starlette endpoint, same server and"
                " workers (uvicorn, granian; 1 and 2 workers)"
            )
            missing = checks_http.missing_tools()
            if missing:
                print(f"  skipped: {', '.join(missing)} not found (see docs/benchmarks.md)")
            else:
                results += checks_http.run(opts)
        if "offline" in wanted:
            print(
                "\n[6] offline operation: SDK check() on a cached token, token mint/verify,"
                " ActivateDevice under seat contention"
            )
            results += offline.run(opts)
        if "durability" in wanted:
            print(
                "\n[7] durability: restore from a site (genesis, snapshot + tail), shipping"
                " overhead on appends, measured RPO under a steady write load"
            )
            results += durability.run(opts, restore_sizes)
        if "migrate" in wanted:
            print(
                "\n[8] tenure migrate SQLite -> PostgreSQL (copy, replay, prove) vs a raw"
                " psycopg COPY of the same event rows"
            )
            results += migrate.run(opts, store(migrate.size(opts)))
        if "postgres" in wanted:
            print(
                "\n[9] PostgreSQL durable appends: 1 and 3 server processes (Runtime + Ledger)"
                " vs raw psycopg, one row per transaction"
            )
            results += bench_postgres.run(opts)
        if "hsm" in wanted:
            print(
                "\n[10] Ed25519 through a PKCS#11 token (SoftHSM2) vs in-process, and the"
                " checkpoint and token mint rates through the token"
            )
            results += hsm.run(opts)
        if "personal" in wanted:
            print(
                "\n[11] Personal data: customer create sealed vs plaintext, and checks on"
                " a sealed store vs a plaintext one"
            )
            results += personal.run(opts)
        if "reconcile" in wanted:
            print(
                "\n[12] Reconciliation pass over deployment reports vs a raw SELECT of the"
                " same rows"
            )
            results += reconcile.run(opts)
        if "observability" in wanted:
            print(
                "\n[13] Checks over HTTP with metrics and tracing on vs off, next to the"
                " bare ASGI endpoint"
            )
            if shutil.which("wrk") is None:
                print("  SKIPPED: wrk is not installed (apt-get install wrk)")
            else:
                results += observability.run(opts)
        if "state" in wanted:
            print(
                "\n[14] State map (issue 17): appends with the map vs without, checks proving"
                " their rows vs unguarded, full state verification, proof verification (SDK)"
            )
            results += state.run(opts)
    print(
        f"\ntotal {total.elapsed():.0f} s; load average at end: "
        + "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    )
    sys.stdout = tee.out
    if markdown is not None:
        markdown.write_text(_markdown(command, started, results, tee.buffer_text.getvalue()))
        print(f"wrote {markdown}")
    return 0


def _markdown(command: str, started: datetime, results: list[Result], log: str) -> str:
    lines = [
        f"### `{command}` — {started:%Y-%m-%d %H:%M} UTC",
        "",
        "| benchmark | figure | limit (same run) | ratio | goal | met |",
        "|---|---:|---|---:|---|---|",
    ]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.name} | {r.figure:,.0f} {r.unit} | {r.limit_label}: {r.limit:,.0f} "
            f"{r.limit_unit} | {r.ratio:.2f} | {r.goal} | {met} |"
        )
    lines += ["", "```text", log.rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
