"""Benchmark 9: durable appends on PostgreSQL from one and from three server processes.

Each "server" is an OS process (``multiprocessing``, spawn) that opens the real
``Runtime`` and ``Ledger`` on one PostgreSQL database and one data dir (shared key
store and sidecar), as ``tenure serve`` does, with 16 caller threads submitting
``CreateCustomer`` (one event each) for a fixed window: group commit, per-account
advisory locks, ``NOTIFY`` and the listener all on the path. HTTP is left out: it is
measured in benchmark 5 and would bound the figure on 2 cores before the store does.

Figures, each next to a limit from the same run:

- 1 process, vs raw psycopg: one row per transaction (the same leaves), one connection;
- 3 processes, one account each (accounts scale independently), vs 1 process (goal
  ≥ 1.5×);
- 3 processes on one account (serialized by its advisory lock), vs 1 process.

PostgreSQL comes from ``TENURE_BENCH_PG`` (libpq conninfo of an admin database;
default trust auth as ``postgres`` on 127.0.0.1:5432, database ``test``); a fresh
database is created and dropped. Without a server the benchmark is skipped.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import threading
import time
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.common import Options, Result, pg_url, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer
from tenure.domain.events import Actor
from tenure.service.ledger import Submission

ADMIN = os.environ.get("TENURE_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")
ACTOR = Actor("bench", "admin", "internal")
CALLERS = 16
WARMUP = 1.0


def _url(database: str) -> str:
    return pg_url(ADMIN, database)


def _server(
    url: str, data_dir: str, account: str, seconds: float, ready: Any, go: MpEvent, out: Any
) -> None:
    """One server process: a Runtime and its Ledger, ``CALLERS`` threads appending to
    ``account``; reports the events committed in the timed window."""
    runtime = Runtime.open(Settings(data_dir=Path(data_dir), database_url=url))
    counts = [0] * CALLERS
    timing = threading.Event()
    stop = threading.Event()
    tag = secrets.token_hex(4)
    with runtime.ledger() as ledger:

        def caller(n: int) -> None:
            i = 0
            while not stop.is_set():
                command = CreateCustomer(None, None, f"{tag}-{n}-{i}")
                ledger.execute(Submission(account, command, ACTOR))
                i += 1
                if timing.is_set():
                    counts[n] += 1

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
        ready.put(os.getpid())
        go.wait()
        for thread in threads:
            thread.start()
        time.sleep(WARMUP)
        timing.set()
        time.sleep(seconds)
        timing.clear()
        stop.set()
        for thread in threads:
            thread.join()
    runtime.close()
    out.put(sum(counts))


def _appends(url: str, data_dir: Path, accounts: list[str], seconds: float) -> float:
    """Events/s committed by one process per entry of ``accounts``, side by side."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    processes = [
        ctx.Process(target=_server, args=(url, str(data_dir), account, seconds, ready, go, out))
        for account in accounts
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    go.set()
    total = sum(int(out.get(timeout=seconds + 60)) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    return total / seconds


def _raw_inserts(url: str, account: str, seconds: float) -> float:
    """Rows/s of raw psycopg, one row per transaction, the leaves the ledger stored."""
    dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        leaves = [
            bytes(row[0])
            for row in conn.execute(
                "SELECT leaf FROM ledger_events WHERE account = %s ORDER BY seq LIMIT 20000",
                (account,),
            )
        ]
        conn.execute(
            "CREATE TABLE raw_events (account text, seq bigint, leaf bytea, "
            "PRIMARY KEY (account, seq))"
        )
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            leaf = leaves[done % len(leaves)]
            with conn.transaction():
                conn.execute(
                    "INSERT INTO raw_events (account, seq, leaf) VALUES (%s, %s, %s)",
                    (account, done, leaf),
                )
            done += 1
        return done / (time.perf_counter() - started)


def run(opts: Options) -> list[Result]:
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        print(f"  skipped: PostgreSQL is not reachable at {ADMIN!r}: {exc}")
        return []
    seconds = 4.0 if opts.quick else 10.0
    name = f"tenure_bench_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with temp_dir("pg", opts.tmp_root) as where:
            url = _url(name)
            # Migrate and make the keys once, before the servers share them.
            Runtime.open(Settings(data_dir=where / "data", database_url=url)).close()
            one = _appends(url, where / "data", ["solo"], seconds)
            raw = _raw_inserts(url, "solo", seconds)
            three = _appends(url, where / "data", ["a1", "a2", "a3"], seconds)
            shared = _appends(url, where / "data", ["shared"] * 3, seconds)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    results = [
        Result(
            "pg appends, 1 process, 16 callers",
            one,
            "ev/s",
            raw,
            "raw psycopg 1 row/tx",
            "rows/s",
            "≥ 1× (group commit)",
            one >= raw,
        ),
        Result(
            "pg appends, 3 processes, 1 account each",
            three,
            "ev/s",
            one,
            "1 process",
            "ev/s",
            "≥ 1.5×",
            three >= 1.5 * one,
        ),
        Result(
            "pg appends, 3 processes, 1 shared account",
            shared,
            "ev/s",
            one,
            "1 process",
            "ev/s",
            "serialized per account",
            None,
        ),
    ]
    for result in results:
        print("  " + result.line())
    return results
