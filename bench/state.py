"""Benchmark 14 (``--only state``, issue 17): what the state map costs.

a. Appends with the map vs without: the append benchmark's workload (``bench.appends``)
   on two stores seeded alike, in interleaved rounds; for the store "without", map
   maintenance is switched off in this process during its rounds only
   (``map_switched_off``). Goal: ratio >= 0.8.
b. In-process checks (``tenure.service.checks.check``) with a ``StateGuard`` that
   proved the account (every check proves the rows it read) vs ``guard=None``, same
   store, random licenses, interleaved rounds. Goal: ratio >= 0.5.
c. and d. are in ``bench.state_store``: proof verification as an SDK would do it
   (goal >= 20,000 proofs/s) and full state verification (goal <= 20 s per 1M rows).
e. is in ``bench.state_http``: ``POST /v1/check`` with ``"proof": true`` vs without,
   over HTTP (goal >= 0.5).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import appends, state_http, state_store
from bench.builder import ACCOUNT, build_store
from bench.common import Options, Result, Timer, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.ledger.statemap import Bucket
from tenure.service import checks
from tenure.service.ledger import Ledger
from tenure.service.state_check import ProvenState
from tenure.service.state_guard import StateGuard
from tenure.store import state_map
from tenure.store.state_map import SqlStateMap

APPEND_GOAL = 0.8
CHECK_GOAL = 0.5
EVENTS_PER_ROW = 2.7
"""Demo events (``bench.builder``) per projection row (measured: 20,000 events, 7,484 rows)."""

PATCHED = (
    "tenure.store.state_map.leaf_changes (returns no leaves), "
    "tenure.store.state_map.write_leaves, SqlStateMap.settle (returns no buckets) "
    "and SqlStateMap.set_root: no-ops"
)


def _no_leaf_changes(
    table: str, upserts: Any, deletes: Any
) -> tuple[list[tuple[int, bytes, bytes]], list[tuple[int, bytes]]]:
    return [], []


def _no_leaf_writes(
    conn: sa.Connection,
    account: str,
    written: Sequence[tuple[int, bytes, bytes]],
    removed: Sequence[tuple[int, bytes]],
) -> None:
    return None


def _no_settle(self: SqlStateMap, account: str, buckets: Collection[int]) -> dict[int, Bucket]:
    return {}


def _no_root(self: SqlStateMap, account: str, root: bytes) -> None:
    return None


@contextmanager
def map_switched_off() -> Iterator[None]:
    """Within: no state-map leaf is computed or written, no bucket settled, no root
    stored (``PATCHED``). The writer still computes each written row's bucket."""
    saved = (
        state_map.leaf_changes,
        state_map.write_leaves,
        SqlStateMap.settle,
        SqlStateMap.set_root,
    )
    state_map.leaf_changes = _no_leaf_changes
    state_map.write_leaves = _no_leaf_writes
    SqlStateMap.settle = _no_settle  # type: ignore[method-assign]
    SqlStateMap.set_root = _no_root  # type: ignore[method-assign]
    try:
        yield
    finally:
        state_map.leaf_changes, state_map.write_leaves = saved[0], saved[1]
        SqlStateMap.settle, SqlStateMap.set_root = saved[2], saved[3]  # type: ignore[method-assign]


# ---------------------------------------------------------------- a. appends


@dataclass
class AppendSide:
    """One of the two stores of benchmark a, with its writer and what it timed."""

    runtime: Runtime
    ledger: Ledger
    counter: appends.CommitCounter
    db: Path
    catalog: appends.Catalog
    rng: random.Random
    events: int = 0
    seconds: float = 0.0
    transactions: int = 0

    def slice(self, count: int, threads: int) -> None:
        subs = appends.workload(self.catalog, count, self.rng)
        events, seconds, transactions, _ = appends.tenure_slice(
            self.ledger, self.counter, self.db, subs, threads
        )
        self.events += events
        self.seconds += seconds
        self.transactions += transactions

    def reset(self) -> None:
        self.events, self.seconds, self.transactions = 0, 0.0, 0


def _open_side(stack: ExitStack, root: Path, customers: int, licenses: int) -> AppendSide:
    runtime = Runtime.open(Settings(data_dir=root))
    stack.callback(runtime.close)
    counter = appends.CommitCounter()
    ledger = runtime.ledger()
    appends.instrument(ledger, counter)
    stack.enter_context(ledger)
    rng = random.Random(11)
    catalog = appends.seed(ledger, customers, licenses, rng)
    return AppendSide(runtime, ledger, counter, root / "tenure.db", catalog, rng)


def appends_with_and_without(opts: Options) -> list[Result]:
    """Benchmark a (see the module doc)."""
    customers, licenses = (100, 500) if opts.quick else (500, 3000)
    rounds = 3 if opts.quick else 5
    per_round = {1: 200 if opts.quick else 500, 16: 600 if opts.quick else 3000}
    results = []
    with temp_dir("state-appends", opts.tmp_root) as root, ExitStack() as stack:
        timer = Timer()
        on = _open_side(stack, root / "with", customers, licenses)
        off = _open_side(stack, root / "without", customers, licenses)
        print(
            f"  two stores seeded alike ({customers} customers, {licenses} licenses) in "
            f"{timer.elapsed():.1f} s; {rounds} interleaved rounds of {per_round[1]:,} "
            f"(1 writer) and {per_round[16]:,} (16 writers) commands each"
        )
        print(f"  without the map: {PATCHED}, in this process, during its rounds only")
        for threads in (1, 16):
            on.reset()
            off.reset()
            for number in range(rounds):
                # Alternate which side goes first, so that neither always follows
                # the other's checkpoint or WAL growth.
                for side in (on, off) if number % 2 == 0 else (off, on):
                    if side is on:
                        side.slice(per_round[threads], threads)
                    else:
                        with map_switched_off():
                            side.slice(per_round[threads], threads)
            results.append(_append_result(on, off, threads))
    return results


def _append_result(on: AppendSide, off: AppendSide, threads: int) -> Result:
    label = "1 writer" if threads == 1 else f"{threads} writers"
    with_rate, without_rate = on.events / on.seconds, off.events / off.seconds
    result = Result(
        f"appends with the state map ({label})",
        with_rate,
        "ev/s",
        without_rate,
        "map switched off",
        "ev/s",
        f"goal >= {APPEND_GOAL:.2f}",
        with_rate / without_rate >= APPEND_GOAL,
    )
    for name, side in (("with", on), ("without", off)):
        result.notes.append(
            f"{name}: {side.events:,} events in {side.seconds:.2f} s, {side.transactions:,} "
            f"transactions, average batch {side.events / max(1, side.transactions):.2f}"
        )
    result.show()
    return result


# ---------------------------------------------------------------- b. checks


def _license_items(signed: state_store.SignedStore, count: int) -> list[checks.CheckItem]:
    with signed.built.runtime.store.read() as tx:
        serials = [row["serial"] for row in tx.projection.rows(ACCOUNT, "licenses")]
    rng = random.Random(3)
    wanted = ("feature:export-pdf", "feature:cloud-sync", "seats", "feature:sso")
    return [checks.CheckItem(rng.choice(serials), rng.choice(wanted)) for _ in range(count)]


def checks_with_and_without(
    opts: Options, signed: state_store.SignedStore, proven: ProvenState
) -> Result:
    """Benchmark b (see the module doc). The guard keeps the map ``prove_state``
    proved (what ``StateGuard.verify`` keeps after verifying the ledger)."""
    store = signed.built.runtime.store
    guard = StateGuard()
    guard.advance(ACCOUNT, signed.checkpoint.size, proven.top)
    rounds, per_round = (3, 2000) if opts.quick else (5, 10_000)
    now = datetime.now(UTC)
    seconds = {"with": 0.0, "without": 0.0}
    allowed = 0
    for number in range(rounds):
        items = _license_items(signed, per_round)
        order = ("with", "without") if number % 2 == 0 else ("without", "with")
        for name in order:
            kept = guard if name == "with" else None
            timer = Timer()
            for item in items:
                decided = checks.check(store, ACCOUNT, item, now, kept)
                allowed += decided.answer["allowed"]
            seconds[name] += timer.elapsed()
    count = rounds * per_round
    result = Result(
        f"checks proving their rows ({signed.rows:,}-row store)",
        count / seconds["with"],
        "checks/s",
        count / seconds["without"],
        "checks without a guard",
        "checks/s",
        f"goal >= {CHECK_GOAL:.2f}",
        seconds["without"] / seconds["with"] >= CHECK_GOAL,
    )
    result.notes.append(
        f"in process, checks.check with a StateGuard vs guard=None; {rounds} interleaved "
        f"rounds of {per_round:,} random licenses ({allowed / (2 * count):.0%} allowed)"
    )
    result.notes.append(
        "over HTTP every check runs with the service's guard (benchmark 5); "
        '"proof": true over HTTP is e. below'
    )
    result.show()
    return result


# ---------------------------------------------------------------- all


def rows_wanted(opts: Options) -> int:
    if opts.state_rows is not None:
        return opts.state_rows
    return 20_000 if opts.quick else 1_000_000


def run(opts: Options) -> list[Result]:
    """Benchmarks a to d; the store of c and d has about ``rows_wanted`` rows."""
    results = appends_with_and_without(opts)
    rows = rows_wanted(opts)
    events = round(rows * EVENTS_PER_ROW)
    with temp_dir("state-store", opts.tmp_root) as root:
        print(f"  building a {events:,}-event demo store (about {rows:,} rows) ...", flush=True)
        built = build_store(root / "data", events)
        try:
            signed = state_store.signed_at_head(built)
            print(
                f"  built {built.events:,} events, {signed.rows:,} rows in {built.seconds:.1f} s; "
                f"state map and a signed checkpoint with its root at the head in "
                f"{signed.seconds:.1f} s"
            )
            verified, proven = state_store.full_verification(signed)
            results.append(checks_with_and_without(opts, signed, proven))
            proofs = 2000 if opts.quick else 10_000
            results.append(state_store.proof_verification(signed, 1_000_000, proofs))
            results += verified
        finally:
            built.runtime.close()
    if shutil.which("wrk") is None:
        print("  e. not measured: wrk is not installed")
    else:
        results.append(state_http.proof_over_http(opts))
    return results
