"""Benchmark 1: durable appends through the real ``Ledger`` vs raw ``sqlite3`` inserts.

A store is seeded (catalog, customers, licenses), then OverrideEntitlement, Renew and
CreateCustomer commands are timed, first from one caller that waits for each append
(every batch holds one command), then from 16 caller threads (group commit). The
writer's ``_commit`` is wrapped to count transactions and events, so the raw
baseline inserts the very leaves that were committed, in batches of the average
size the ledger actually committed, with the same pragmas (WAL, synchronous=FULL).
"""

from __future__ import annotations

import cProfile
import pstats
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import peer
from bench.builder import read_leaves
from bench.common import Options, Result, Timer, raw_connection, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import (
    Command,
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    OverrideEntitlement,
    PublishPlan,
    RenewLicense,
    customer_id,
    license_serial,
)
from tenure.domain.events import Actor
from tenure.service.demo import PLANS, PRODUCTS
from tenure.service.ledger import Ledger, Outcome, Submission

ACCOUNT = "default"
ACTOR = Actor("bench", "admin", "internal")
SEATS = (2, 10, 50, 100)


@dataclass
class CommitCounter:
    """Counts what the writer committed (wraps ``Ledger._commit``), and the writer
    thread's CPU time (``time.thread_time``: excludes waiting on fsync) and wall time."""

    transactions: int = 0
    events: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    profiler: cProfile.Profile | None = None

    def reset(self) -> None:
        self.transactions = self.events = 0
        self.cpu = self.wall = 0.0


def instrument(ledger: Ledger, counter: CommitCounter) -> None:
    original: Callable[[list[Any]], None] = ledger._commit

    def counted(items: list[Any]) -> None:
        cpu, wall = time.thread_time(), time.perf_counter()
        if counter.profiler is not None:
            counter.profiler.runcall(original, items)
        else:
            original(items)
        events = sum(
            len(item.outcome.events)
            for item in items
            if item.error is None and item.outcome is not None
        )
        if events:
            counter.cpu += time.thread_time() - cpu
            counter.wall += time.perf_counter() - wall
            counter.transactions += 1
            counter.events += events

    ledger._commit = counted  # type: ignore[method-assign]


@dataclass
class Catalog:
    """What the seeding created: customers and licenses to aim commands at."""

    customers: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)
    next_customer: int = 0


def _plan(plan: str, product: str, entitlements: dict[str, bool | int], mode: str) -> PublishPlan:
    core = [key for key in entitlements if key.startswith("feature:")][:1]
    return PublishPlan(plan, product, dict(entitlements), core=core, activation=mode)


def seed(ledger: Ledger, customers: int, licenses: int, rng: random.Random) -> Catalog:
    """A catalog (3 products, 4 plans), customers and active licenses, group-committed."""
    catalog = Catalog()
    commands: list[tuple[Command, str | None]] = []
    for product, (title, features) in PRODUCTS.items():
        commands.append((DefineProduct(product, title, features), None))
    for plan, product, entitlements, mode in PLANS:
        commands.append((_plan(plan, product, entitlements, mode), None))
    for _ in range(customers):
        command, key = new_customer(catalog)
        commands.append((command, key))
    for number in range(licenses):
        plan, product, _, _ = rng.choice(PLANS)
        customer = rng.choice(catalog.customers)
        order = f"ORD-{number:07d}"
        catalog.serials.append(license_serial(ACCOUNT, product, customer, order))
        commands.append((IssueLicense(product, plan, customer, order), f"order-{order}"))
    futures = [ledger.submit(Submission(ACCOUNT, c, ACTOR, None, key)) for c, key in commands]
    for future in futures:
        future.result()
    return catalog


def new_customer(catalog: Catalog) -> tuple[CreateCustomer, str]:
    catalog.next_customer += 1
    number = catalog.next_customer
    external = f"crm-{number:06d}"
    catalog.customers.append(customer_id(ACCOUNT, external))
    command = CreateCustomer(f"Customer {number}", f"it@customer{number}.example", external)
    return command, f"customer-{external}"


def workload(catalog: Catalog, count: int, rng: random.Random) -> list[Submission]:
    """40 % OverrideEntitlement, 40 % RenewLicense, 20 % CreateCustomer (with key)."""
    subs: list[Submission] = []
    for _ in range(count):
        r = rng.random()
        if r < 0.4:
            serial = rng.choice(catalog.serials)
            command: Command = OverrideEntitlement(serial, "seats", rng.choice(SEATS))
            subs.append(Submission(ACCOUNT, command, ACTOR, "negotiated seat count"))
        elif r < 0.8:
            subs.append(Submission(ACCOUNT, RenewLicense(rng.choice(catalog.serials)), ACTOR))
        else:
            command, key = new_customer(catalog)
            subs.append(Submission(ACCOUNT, command, ACTOR, None, key))
    return subs


def run_threads(ledger: Ledger, subs: list[Submission], threads: int) -> None:
    """Each thread executes its share one at a time (waits for each append)."""
    shares = [subs[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(share: list[Submission]) -> None:
        barrier.wait()
        try:
            for sub in share:
                outcome: Outcome = ledger.execute(sub)
                assert outcome.events
        except BaseException as exc:  # reported after join
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


@dataclass
class Tally:
    """Sums over the interleaved rounds of one configuration (1 or 16 writers)."""

    events: int = 0
    seconds: float = 0.0
    transactions: int = 0
    raw_rows: int = 0
    raw_seconds: float = 0.0
    raw_transactions: int = 0
    raw_batches: list[int] = field(default_factory=list)
    writer_cpu: float = 0.0
    writer_wall: float = 0.0
    peer_events: int = 0
    peer_seconds: float = 0.0
    peer_conflicts: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def average_batch(self) -> float:
        return self.events / self.transactions if self.transactions else 0.0


class RawTable:
    """The raw ``sqlite3`` limit: a plain table of leaves, appended to slice by slice."""

    def __init__(self, path: Path) -> None:
        self.conn = raw_connection(path)
        self.conn.execute(
            "CREATE TABLE events (account TEXT NOT NULL, seq INTEGER NOT NULL, "
            "leaf BLOB NOT NULL, PRIMARY KEY (account, seq))"
        )
        self.seq = 0

    def insert(self, leaves: list[bytes], batch: int) -> float:
        """Seconds to insert ``leaves`` with ``batch`` rows per transaction."""
        rows = [(ACCOUNT, self.seq + i, leaf) for i, leaf in enumerate(leaves)]
        self.seq += len(rows)
        conn = self.conn
        timer = Timer()
        for start in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?)", rows[start : start + batch])
            conn.execute("COMMIT")
        return timer.elapsed()

    def close(self) -> None:
        self.conn.close()


def _head_size(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT size FROM ledger_heads WHERE account = ?", (ACCOUNT,)).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def tenure_slice(
    ledger: Ledger, counter: CommitCounter, db: Path, subs: list[Submission], threads: int
) -> tuple[int, float, int, list[bytes]]:
    """Events, seconds, transactions and the committed leaves of one timed slice."""
    start = _head_size(db)
    counter.reset()
    timer = Timer()
    run_threads(ledger, subs, threads)
    seconds = timer.elapsed()
    # The writer resolves futures inside ``_commit``, before the wrapper counts: wait
    # for the count to catch up with the head.
    appended = _head_size(db) - start
    deadline = time.monotonic() + 10
    while counter.events < appended and time.monotonic() < deadline:
        time.sleep(0.001)
    leaves = read_leaves(db, ACCOUNT, start)[: counter.events]
    return counter.events, seconds, counter.transactions, leaves


def _writer_time(counter: CommitCounter, tally: Tally) -> None:
    tally.writer_cpu += counter.cpu
    tally.writer_wall += counter.wall


def run(opts: Options, with_peer: bool) -> tuple[list[Result], list[bytes]]:
    """Benchmarks 1 (and 4 when ``with_peer``), interleaved round by round.

    Each round runs a Tenure slice, then the raw sqlite3 limit on the leaves that slice
    committed (in batches of its average size), then the peer's slice, so that the
    disk and CPU contention of a shared machine hit all three alike.
    """
    customers, licenses = (100, 500) if opts.quick else (500, 3000)
    rounds = 3 if opts.quick else 5
    per_round = {1: 200 if opts.quick else 500, 16: 1000 if opts.quick else 3000}
    results: list[Result] = []
    sample: list[bytes] = []
    with temp_dir("appends", opts.tmp_root) as root:
        runtime = Runtime.open(Settings(data_dir=root / "store"))
        db = root / "store" / "tenure.db"
        rng = random.Random(11)
        counter = CommitCounter()
        ledger = runtime.ledger()
        instrument(ledger, counter)
        session = (
            peer.PeerSession(root / "eventsourcing.db", customers, licenses) if with_peer else None
        )
        with ledger:
            timer = Timer()
            catalog = seed(ledger, customers, licenses, rng)
            print(
                f"  Tenure: seeded {_head_size(db):,} events ({customers} customers, "
                f"{licenses} licenses) in {timer.elapsed():.1f} s"
            )
            if session is not None:
                print(f"  {session.describe()}")
            print(
                f"  timing OverrideEntitlement 40 % / RenewLicense 40 % / CreateCustomer 20 %, "
                f"{rounds} interleaved rounds of {per_round[1]:,} (1 writer) and "
                f"{per_round[16]:,} (16 writers) commands"
            )
            for threads in (1, 16):
                tally = Tally()
                raw = RawTable(root / f"raw-{threads}.db")
                for _ in range(rounds):
                    subs = workload(catalog, per_round[threads], rng)
                    events, seconds, transactions, leaves = tenure_slice(
                        ledger, counter, db, subs, threads
                    )
                    sample = sample or leaves
                    _writer_time(counter, tally)
                    batch = max(1, round(events / transactions))
                    tally.events += events
                    tally.seconds += seconds
                    tally.transactions += transactions
                    tally.raw_batches.append(batch)
                    tally.raw_rows += len(leaves)
                    tally.raw_seconds += raw.insert(leaves, batch)
                    tally.raw_transactions += -(-len(leaves) // batch)
                    if session is not None:
                        done, took, conflicts = session.slice(per_round[threads], threads)
                        tally.peer_events += done
                        tally.peer_seconds += took
                        tally.peer_conflicts += conflicts
                raw.close()
                results += _report(tally, threads, session is not None)
            if opts.profile:
                for threads in (1, 16):
                    counter.profiler = cProfile.Profile()
                    tenure_slice(
                        ledger, counter, db, workload(catalog, per_round[threads], rng), threads
                    )
                    profiler, counter.profiler = counter.profiler, None
                    print(f"  -- cProfile of the writer thread, {threads} writer(s), by tottime --")
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
                    print("  -- same, by cumulative time --")
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        runtime.close()
        if session is not None:
            session.close()
            rate = peer.recorder_rate(root / "recorder.db", sample)
            line = (
                "eventsourcing recorder alone (StoredEvent of Tenure's leaf bytes, "
                f"1 per transaction): {rate:,.0f} ev/s"
            )
            print(f"    {line}")
            results[-1].notes.append(line)
    return results, sample


def _report(tally: Tally, threads: int, with_peer: bool) -> list[Result]:
    label = "1 writer" if threads == 1 else f"{threads} writers"
    batches = sorted(set(tally.raw_batches))
    raw_rate = tally.raw_rows / tally.raw_seconds
    result = Result(
        f"appends ({label})",
        tally.rate,
        "ev/s",
        raw_rate,
        "raw sqlite3 batch=" + "/".join(str(b) for b in batches),
        "rows/s",
        "goal >= 0.50",
        tally.rate / raw_rate >= 0.5,
    )
    result.notes.append(
        f"{tally.events:,} events in {tally.seconds:.2f} s, {tally.transactions:,} "
        f"transactions, average batch {tally.average_batch:.2f} events"
    )
    per_tx = 1000 / tally.transactions
    result.notes.append(
        f"writer per transaction: {tally.writer_wall * per_tx:.2f} ms wall in _commit, "
        f"{tally.writer_cpu * per_tx:.2f} ms of it on CPU (the rest waits on fsync/locks); "
        f"raw sqlite3: {tally.raw_seconds * 1000 / tally.raw_transactions:.2f} ms per transaction"
    )
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    found = [result]
    if with_peer:
        peer_rate = tally.peer_events / tally.peer_seconds
        versus = Result(
            f"Tenure vs eventsourcing ({label})",
            tally.rate,
            "ev/s",
            peer_rate,
            "eventsourcing Application",
            "ev/s",
            "goal >= 2.00",
            tally.rate / peer_rate >= 2.0,
        )
        versus.notes.append(
            f"eventsourcing: {tally.peer_events:,} events in {tally.peer_seconds:.2f} s, one per "
            f"transaction; {tally.peer_conflicts} optimistic-concurrency conflicts retried"
        )
        print(versus.line())
        print(f"    {versus.notes[0]}")
        found.append(versus)
    return found
