"""Benchmark 7 (issue 5): restore time, shipping overhead on appends, measured RPO.

[7a] Restore. A demo store of N events (``bench.builder``) is shipped to a ``file://``
site with the real ``Shipper.ship_once`` (its last checkpoint, signed by the builder
at N, becomes the site's ``<account>/checkpoint``). It is restored into a fresh SQLite
file with ``tenure.durability.restore.restore`` (a) from genesis and (b) from a
snapshot at 90 % plus the 10 % tail. The snapshot at 0.9 N is reconstructed from the
N-event store: ``snapshots.take`` gives the service rows (idempotency records kept if
their first event is below 0.9 N), the projection is the replay of the first 0.9 N
leaves, the root is the stored tree at 0.9 N, and the checkpoint of 0.9 N is signed
with the store's ledger key; ``snapshots.publish`` writes it. The restore then proves
it like any other (signature, hash, digest of its rows, its root against the leaves).
Each restore runs in a fresh interpreter (``spawn``), as ``tenure restore`` does, so
that its peak RSS (``ru_maxrss``) is its own and the builder's heap does not slow its
garbage collector. Stages are timed by wrapping the restore module's steps.
The limit, in the same child: read the segment files, split the leaves, SHA-256
each leaf (RFC 6962 leaf hash), and insert ``(account, seq, leaf)`` into a plain
SQLite table (WAL, synchronous=FULL) in one transaction. Goal: 1 M events in <= 30 s.

[7b] Shipping overhead: the append workload of ``bench.appends`` (1 and 16 writers)
with no site, and with two ``file://`` sites shipped by ``Shipper(interval=1.0)``
running in the same process, rounds interleaved. Before each shipping round the sites
are caught up (untimed), so each round ships only its own events.

[7c] Measured RPO: ``RATE`` submissions/s through the ledger, paced, with a
``Shipper(interval=1.0)`` to a ``file://`` site. Every ~100 ms a sampler reads the
head and the site's gap-free end (``site_end``) and records the events the site lacks
and the age of the oldest committed event it lacks (from the commit time of each
event, taken when its future resolves).
"""

from __future__ import annotations

import cProfile
import dataclasses
import hashlib
import io
import multiprocessing
import pstats
import random
import resource
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import appends
from bench.builder import ACCOUNT, BuiltStore, build_store, read_leaves
from bench.common import Options, Result, Timer, raw_connection, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.state import TABLE_ORDER
from tenure.durability import restore as restoring
from tenure.durability import snapshots
from tenure.durability.shipping import Shipper, site_end
from tenure.durability.sites import open_site
from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint
from tenure.ledger.merkle import tree_hash
from tenure.service.ledger import Outcome
from tenure.service.replay import replay
from tenure.store import ledger_records
from tenure.store.engine import read_transaction
from tenure.store.unit import SqlStore

GOAL_EVENTS = 1_000_000
GOAL_SECONDS = 30.0
"""Issue 18: 1 M events restored from genesis in 30 s ..."""
SNAPSHOT_GOAL_SECONDS = 15.0
"""... and from a snapshot plus a 10 % tail in 15 s."""
SNAPSHOT_AT = 0.9
RATE = 200
STAGES = (
    ("_newest_good_snapshot", "snapshot"),
    ("_Walk.segment", "fetched segments: hash, parse, replay, write events"),
    ("apply", "projection and the rest"),
    ("verify_written", "read-back"),
)
"""What the restore's time is split into: (function of ``tenure.durability.restore``,
or ``Class.method``, label). Fetching a segment is the time between two segments."""


# ------------------------------------------------------------------ 7a: restore


def _origin(runtime: Runtime) -> str:
    return f"{runtime.settings.ledger_origin_prefix.rstrip('/')}/{ACCOUNT}"


def snapshot_at(store: BuiltStore, size: int) -> snapshots.Snapshot:
    """The snapshot ``snapshots.take`` would have made at ``size`` (see module doc)."""
    runtime = store.runtime
    origin = _origin(runtime)
    signer = runtime.keystore.ledger_signer(origin)
    now = snapshots.take(runtime.store, ACCOUNT, origin, signer)
    leaves = read_leaves(runtime.settings.data_dir / "tenure.db")[:size]
    state = replay(enumerate(leaves))
    tables = {name: list(state.rows(name)) for name in TABLE_ORDER}
    with read_transaction(runtime.store.engine) as conn:
        root = tree_hash(size, ledger_records.NodeReader(conn, ACCOUNT))
    service = dict(now.service)
    service["idempotency_keys"] = [
        row
        for row in now.service["idempotency_keys"]
        if row.get("first_seq") is None or row["first_seq"] < size
    ]
    note = sign_checkpoint(Checkpoint(origin, size, root), [signer])
    return dataclasses.replace(
        now,
        size=size,
        digest=state.digest(),
        root=root,
        checkpoint=note,
        tables=tables,
        service=service,
    )


@contextmanager
def _stage_timers(times: dict[str, float]) -> Iterator[None]:
    """Wrap the restore module's steps (those that exist) with timers."""
    saved: list[tuple[Any, str, Any]] = []
    for name, label in STAGES:
        owner: Any = restoring
        attr = name
        if "." in name:
            cls, attr = name.split(".")
            owner = getattr(restoring, cls, None)
        original = getattr(owner, attr, None)
        if original is None:
            continue
        saved.append((owner, attr, original))

        def timed(*args: Any, _f: Any = original, _l: str = label, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                times[_l] = times.get(_l, 0.0) + time.perf_counter() - start

        setattr(owner, attr, timed)
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def _raw_limit(site_dir: Path, db: Path) -> dict[str, float]:
    """Read the segment files, split, leaf-hash, insert raw: seconds per step."""
    timer = Timer()
    leaves: list[bytes] = []
    for path in sorted((site_dir / ACCOUNT / "segments").glob("*.seg")):
        lines = path.read_bytes().split(b"\n")
        leaves.extend(lines[4:-2])
    read = timer.elapsed()
    timer = Timer()
    sha256 = hashlib.sha256
    for leaf in leaves:
        sha256(b"\x00" + leaf).digest()
    hashed = timer.elapsed()
    conn = raw_connection(db)
    conn.execute(
        "CREATE TABLE events (account TEXT, seq INTEGER, leaf BLOB, PRIMARY KEY (account, seq))"
    )
    timer = Timer()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?)", ((ACCOUNT, i, leaf) for i, leaf in enumerate(leaves))
    )
    conn.execute("COMMIT")
    inserted = timer.elapsed()
    conn.close()
    return {"events": len(leaves), "read": read, "hash": hashed, "insert": inserted}


def restore_child(
    site_url: str, site_dir: str, work: str, key: str, profile: bool
) -> dict[str, Any]:
    """One timed restore into a fresh SQLite file, then the raw limit (in a child)."""
    from tenure.ledger.note import NoteVerifier
    from tenure.store.engine import create_engine
    from tenure.store.migrations import upgrade

    target = create_engine(f"sqlite:///{work}/restored.db")
    upgrade(target)
    site = open_site(site_url)
    verifiers = [NoteVerifier.from_key_string(key)]
    times: dict[str, float] = {}
    profiler = cProfile.Profile() if profile else None
    with _stage_timers(times):
        timer = Timer()
        if profiler is not None:
            report = profiler.runcall(restoring.restore, site, ACCOUNT, SqlStore(target), verifiers)
        else:
            report = restoring.restore(site, ACCOUNT, SqlStore(target), verifiers)
        seconds = timer.elapsed()
    target.dispose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out: dict[str, Any] = {
        "seconds": seconds,
        "size": report.size,
        "snapshot": report.snapshot,
        "skipped": list(report.skipped_snapshots),
        "digest": report.digest,
        "stages": times,
        "rss_mb": rss,
        "db_mb": Path(work, "restored.db").stat().st_size / 1e6,
        "limit": _raw_limit(Path(site_dir), Path(work) / "raw.db"),
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        out["profile"] = text.getvalue()
    return out


def _in_child(func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(func, args)


def restore_size(opts: Options, events: int) -> list[Result]:
    results: list[Result] = []
    with temp_dir(f"restore{events}", opts.tmp_root) as root:
        print(f"  building a {events:,}-event demo store ...", flush=True)
        store = build_store(root / "data", events)
        try:
            print(f"  built {store.events:,} events in {store.seconds:.1f} s")
            timer = Timer()
            site_dir = root / "site"
            site = open_site(f"file://{site_dir}")
            report = Shipper(store.runtime.store, [site]).ship_once()
            note = (site.get(f"{ACCOUNT}/checkpoint") or b"").decode()
            signed = int(note.splitlines()[1]) if note else 0
            if signed != store.events or report.behind[site.url]:
                raise AssertionError(f"site checkpoint at {signed}, not {store.events}")
            segs = len(site.list(f"{ACCOUNT}/segments/"))
            mb = sum(p.stat().st_size for p in site_dir.rglob("*.seg")) / 1e6
            print(
                f"  shipped {store.events:,} events in {segs} segments ({mb:.0f} MB) with "
                f"Shipper.ship_once in {timer.elapsed():.1f} s; site checkpoint at {signed:,}"
            )
            key = store.runtime.keystore.ledger_signer(_origin(store.runtime)).verifier
            runs: dict[str, dict[str, Any]] = {}
            for label in ("genesis", "snapshot"):
                if label == "snapshot":
                    timer = Timer()
                    cut = int(events * SNAPSHOT_AT)
                    snap = snapshot_at(store, cut)
                    signer = store.runtime.keystore.ledger_signer(_origin(store.runtime))
                    path = snapshots.publish(snap, signer, [site])
                    size_mb = (site_dir / path).stat().st_size / 1e6
                    print(
                        f"  snapshot at {cut:,} events published ({size_mb:.1f} MB gzip) "
                        f"in {timer.elapsed():.1f} s"
                    )
                with temp_dir("restored", opts.tmp_root) as work:
                    runs[label] = _in_child(
                        restore_child,
                        site.url,
                        str(site_dir),
                        str(work),
                        key.key_string(),
                        opts.profile,
                    )
                run = runs[label]
                if run["digest"] != store.digest or run["size"] != store.events:
                    raise AssertionError(f"restore ({label}) does not give the built store")
                results.append(_restore_result(events, label, run))
            if runs["snapshot"]["snapshot"] is None:
                raise AssertionError(f"the snapshot was not used: {runs['snapshot']['skipped']}")
        finally:
            store.runtime.close()
    return results


def _restore_result(events: int, label: str, run: dict[str, Any]) -> Result:
    limit = run["limit"]
    raw = limit["read"] + limit["hash"] + limit["insert"]
    seconds = run["seconds"]
    goal_seconds = GOAL_SECONDS if label == "genesis" else SNAPSHOT_GOAL_SECONDS
    projected = seconds * GOAL_EVENTS / events
    met = seconds <= goal_seconds if events >= GOAL_EVENTS else None
    goal = (
        f"goal 1 M in <= {goal_seconds:.0f} s"
        if events >= GOAL_EVENTS
        else f"1 M goal <= {goal_seconds:.0f} s; linear projection {projected:.0f} s"
    )
    how = "from genesis" if label == "genesis" else f"from snapshot at {run['snapshot']:,} + tail"
    result = Result(
        f"restore {events:,} events {how}",
        events / seconds,
        "ev/s",
        events / raw,
        "read segments + leaf SHA-256 + raw sqlite insert",
        "ev/s",
        goal,
        met,
    )
    stages = run["stages"]
    other = seconds - sum(stages.values())
    split = ", ".join(f"{name} {t:.2f}" for name, t in stages.items())
    result.notes.append(f"{seconds:.1f} s: {split}, other {other:.2f} (s)")
    result.notes.append(
        f"limit {raw:.2f} s: read+split {limit['read']:.2f}, leaf hash {limit['hash']:.2f}, "
        f"raw insert {limit['insert']:.2f}; peak RSS of the restoring process "
        f"{run['rss_mb']:,.0f} MB; restored file {run['db_mb']:,.0f} MB"
    )
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    if "profile" in run:
        print(f"  -- cProfile of restore ({label}), top 18 by tottime --")
        print(run["profile"])
    return result


# ----------------------------------------------------------- 7b: shipping overhead


def overhead(opts: Options) -> list[Result]:
    customers, licenses = (100, 500) if opts.quick else (500, 3000)
    rounds = 3 if opts.quick else 5
    per_round = {1: 300 if opts.quick else 1000, 16: 800 if opts.quick else 3000}
    results: list[Result] = []
    with temp_dir("shipping", opts.tmp_root) as root:
        runtime = Runtime.open(Settings(data_dir=root / "store"))
        db = root / "store" / "tenure.db"
        sites = [open_site(f"file://{root / f'site{i}'}") for i in (1, 2)]
        rng = random.Random(13)
        passes: list[float] = []
        with runtime.ledger() as ledger:
            catalog = appends.seed(ledger, customers, licenses, rng)
            Shipper(runtime.store, sites).ship_once()
            print(
                f"  seeded {appends._head_size(db):,} events; {rounds} interleaved rounds of "
                f"{per_round[1]:,} (1 writer) / {per_round[16]:,} (16 writers) commands, "
                "without and with 2 file:// sites shipping every 1 s"
            )
            for threads in (1, 16):
                tally = {False: [0, 0.0], True: [0, 0.0]}
                for _ in range(rounds):
                    for shipping in (False, True):
                        subs = appends.workload(catalog, per_round[threads], rng)
                        shipper = None
                        if shipping:
                            shipper = Shipper(runtime.store, sites, interval=1.0)
                            shipper.ship_once()  # caught up, untimed
                            _time_passes(shipper, passes)
                            shipper.start()
                        start = appends._head_size(db)
                        timer = Timer()
                        appends.run_threads(ledger, subs, threads)
                        seconds = timer.elapsed()
                        tally[shipping][0] += appends._head_size(db) - start
                        tally[shipping][1] += seconds
                        if shipper is not None:
                            shipper.stop()
                rate = {k: n / s for k, (n, s) in tally.items()}
                label = "1 writer" if threads == 1 else f"{threads} writers"
                result = Result(
                    f"appends with 2 sites shipping ({label})",
                    rate[True],
                    "ev/s",
                    rate[False],
                    "same workload, no site",
                    "ev/s",
                    "no goal set",
                    None,
                )
                result.notes.append(
                    f"no site: {tally[False][0]:,} events in {tally[False][1]:.2f} s; "
                    f"2 sites: {tally[True][0]:,} events in {tally[True][1]:.2f} s"
                )
                print(result.line())
                print(f"    {result.notes[0]}")
                results.append(result)
        for site in sites:
            if site_end(site, ACCOUNT) != appends._head_size(db):
                raise AssertionError(f"{site.url} is behind after the last pass")
        runtime.close()
    if passes:
        print(
            f"  shipping passes while timed: {len(passes)}, "
            f"{statistics.mean(passes) * 1000:.1f} ms mean, "
            f"{max(passes) * 1000:.1f} ms max (two sites each)"
        )
    return results


def _time_passes(shipper: Shipper, passes: list[float]) -> None:
    original = shipper.ship_once

    def timed() -> Any:
        timer = Timer()
        try:
            return original()
        finally:
            passes.append(timer.elapsed())

    shipper.ship_once = timed  # type: ignore[method-assign]


# ------------------------------------------------------------------------ 7c: RPO


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rpo(opts: Options) -> list[Result]:
    seconds = 8.0 if opts.quick else 30.0
    with temp_dir("rpo", opts.tmp_root) as root:
        runtime = Runtime.open(Settings(data_dir=root / "store"))
        db = root / "store" / "tenure.db"
        site = open_site(f"file://{root / 'site'}")
        rng = random.Random(17)
        committed: dict[int, float] = {}
        passes: list[float] = []
        samples: list[tuple[int, float]] = []
        with runtime.ledger() as ledger:
            catalog = appends.seed(ledger, 100, 500, rng)
            shipper = Shipper(runtime.store, [site], interval=1.0)
            shipper.ship_once()
            _time_passes(shipper, passes)
            subs = appends.workload(catalog, int(RATE * seconds), rng)
            head = sqlite3.connect(db, check_same_thread=False)
            stop = threading.Event()

            def record(future: Future[Outcome]) -> None:
                now = time.monotonic()
                if future.exception() is None:
                    for event in future.result().events:
                        committed[event.seq] = now

            def sample() -> None:
                while not stop.wait(0.1):
                    now = time.monotonic()
                    row = head.execute(
                        "SELECT size FROM ledger_heads WHERE account = ?", (ACCOUNT,)
                    ).fetchone()
                    end = site_end(site, ACCOUNT)
                    lag = int(row[0]) - end
                    age = now - committed[end] if lag > 0 and end in committed else 0.0
                    samples.append((max(lag, 0), age))

            shipper.start()
            sampler = threading.Thread(target=sample)
            sampler.start()
            futures = []
            start = time.monotonic()
            for i, sub in enumerate(subs):
                delay = start + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                future = ledger.submit(sub)
                future.add_done_callback(record)
                futures.append(future)
            for future in futures:
                future.result()
            elapsed = time.monotonic() - start
            stop.set()
            sampler.join()
            shipper.stop()
            head.close()
        runtime.close()
    lags = [float(n) for n, _ in samples]
    ages = [a for _, a in samples]
    achieved = len(committed) / elapsed
    result = Result(
        "RPO under steady load: p99 age of oldest unshipped event",
        _pct(ages, 0.99) * 1000,
        "ms",
        1000.0,
        "configured interval",
        "ms",
        "no goal set (RPO setting 1 s)",
        None,
    )
    result.notes += [
        f"{len(committed):,} events at {achieved:,.0f} ev/s (target {RATE}/s) over "
        f"{elapsed:.1f} s; {len(samples)} samples every ~100 ms",
        f"lag in events: p50 {_pct(lags, 0.5):.0f}, p99 {_pct(lags, 0.99):.0f}, "
        f"max {max(lags):.0f}",
        f"lag in seconds (age of the oldest committed event the site lacks): p50 "
        f"{_pct(ages, 0.5):.2f}, p99 {_pct(ages, 0.99):.2f}, max {max(ages):.2f}",
        f"shipping passes: {len(passes)}, {statistics.mean(passes) * 1000:.1f} ms mean, "
        f"{max(passes) * 1000:.1f} ms max",
    ]
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    return [result]


def run(opts: Options, restore_sizes: list[int]) -> list[Result]:
    results: list[Result] = []
    print("\n  [7a] restore from a file:// site into a fresh SQLite file")
    for events in restore_sizes:
        results += restore_size(opts, events)
    print("\n  [7b] shipping overhead on append throughput (bench.appends workload)")
    results += overhead(opts)
    print(f"\n  [7c] measured RPO: {RATE} submissions/s, Shipper(interval=1.0) to a file:// site")
    results += rpo(opts)
    return results
