"""Benchmark 3: ``ledger verify`` on stores of 100,000 and 1,000,000 events.

Stores come from the fast bulk builder (``bench.builder``; its time is reported, it
is not a goal). The figure is ``tenure.service.verify.verify_ledger`` (leaves parsed
and schema-validated, Merkle nodes recomputed and compared, every checkpoint's
signature and consistency proof, the sidecar); the limit is the RFC 6962 leaf hash
(SHA-256 of 0x00 ‖ leaf) of the same leaves in memory, the one cost verify cannot
avoid. No goal is set; the ratio shows the headroom.
"""

from __future__ import annotations

import hashlib

from bench.builder import ACCOUNT, BuiltStore, read_leaves
from bench.common import Options, Result, Timer
from bench.replay import best_rate
from tenure.service.verify import verify_ledger


def leaf_hashes(leaves: list[bytes]) -> None:
    sha256 = hashlib.sha256
    for leaf in leaves:
        sha256(b"\x00" + leaf).digest()


def run(opts: Options, store: BuiltStore) -> Result:
    runtime = store.runtime
    timer = Timer()
    report = verify_ledger(runtime.store, ACCOUNT, runtime.sidecar)
    seconds = timer.elapsed()
    if report.size != store.events:
        raise AssertionError(f"verify saw {report.size} events, the builder wrote {store.events}")
    leaves = read_leaves(runtime.settings.data_dir / "tenure.db")
    limit = best_rate(len(leaves), lambda: leaf_hashes(leaves), 3)
    result = Result(
        f"verify ({store.events:,} events)",
        store.events / seconds,
        "ev/s",
        limit,
        "SHA-256 leaf hash",
        "ev/s",
        "no goal set",
        None,
    )
    result.notes.append(
        f"verify took {seconds:.1f} s ({report.checkpoints} checkpoints); store built in "
        f"{store.seconds:.1f} s ({store.rate:,.0f} ev/s, not a goal)"
    )
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    return result
