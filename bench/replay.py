"""Benchmark 2: replay of stored leaves into a ``MemoryState``.

The figure is ``tenure.service.replay.replay`` over the leaves of a built demo store,
held in memory (so SQL reading is not part of it; a note line gives the rate with
``iter_leaves`` reading them from the store, as ``rebuild`` does). The limit is what
any replay must do at least: ``orjson.loads`` plus ``hashlib.sha256`` of each leaf.
The goal is absolute: at least 100,000 events/s.
"""

from __future__ import annotations

import cProfile
import hashlib
import pstats
from collections.abc import Callable

import orjson

from bench.builder import ACCOUNT, BuiltStore, read_leaves
from bench.common import Options, Result, Timer
from tenure.service.replay import replay
from tenure.store import ledger_records
from tenure.store.engine import read_transaction

GOAL = 100_000


def best_rate(count: int, action: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        timer = Timer()
        action()
        best = min(best, timer.elapsed())
    return count / best


def parse_and_hash(leaves: list[bytes]) -> None:
    loads, sha256 = orjson.loads, hashlib.sha256
    for leaf in leaves:
        loads(leaf)
        sha256(leaf).digest()


def run(opts: Options, store: BuiltStore) -> list[Result]:
    db = store.runtime.settings.data_dir / "tenure.db"
    leaves = read_leaves(db)
    pairs = list(enumerate(leaves))
    count = len(leaves)
    state = replay(pairs)
    if state.digest() != store.digest:
        raise AssertionError("replay of the built store does not give the built digest")
    repeats = 3
    rate = best_rate(count, lambda: replay(pairs), repeats)
    limit = best_rate(count, lambda: parse_and_hash(leaves), repeats)

    def from_store() -> None:
        with read_transaction(store.runtime.store.engine) as conn:
            replay(ledger_records.iter_leaves(conn, ACCOUNT))

    stored = best_rate(count, from_store, 1)
    result = Result(
        f"replay ({count:,} events)",
        rate,
        "ev/s",
        limit,
        "orjson.loads + sha256 per leaf",
        "ev/s",
        f"goal >= {GOAL:,} ev/s absolute",
        rate >= GOAL,
    )
    result.notes.append(f"replay reading leaves with iter_leaves (as rebuild): {stored:,.0f} ev/s")
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    if opts.profile:
        profiler = cProfile.Profile()
        profiler.runcall(replay, pairs)
        print("  -- cProfile of replay, top 20 by tottime --")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return [result]
