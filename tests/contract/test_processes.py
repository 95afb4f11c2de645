"""Several processes appending to one SQLite store (as ``tenure serve --workers N``
does): every append lands exactly once, the ledger and the audit chain verify."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.cli import tenure
from support.shop import ACCOUNT, Probe
from tenure.app.runtime import Runtime
from tenure.config import Settings

APPENDER = """
import sys
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer
from tenure.domain.events import Actor
from tenure.service.ledger import Submission
from tenure.app.runtime import Runtime

data_dir, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
runtime = Runtime.open(Settings(data_dir=data_dir))
actor = Actor("key_" + name, "issuer", "api_key")
with runtime.ledger() as ledger:
    futures = [
        ledger.submit(Submission("default", CreateCustomer(None, None, f"{name}-{i}"), actor))
        for i in range(count)
    ]
    for future in futures:
        future.result()
runtime.close()
"""


def test_two_processes_appending_at_once_lose_nothing(data_dir: Path) -> None:
    Runtime.open(Settings(data_dir=data_dir)).close()  # migrate once, before the race
    count = 300
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(data_dir), name, str(count)],
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    runtime = Runtime.open(Settings(data_dir=data_dir), migrate=False)
    try:
        probe = Probe(runtime.store.engine)
        assert probe.seqs() == list(range(2 * count))
    finally:
        runtime.close()
    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--output", "json")
    assert verified.code == 0, verified
    assert verified.json()["size"] == 2 * count
    audited = tenure("audit", "verify", "--data-dir", data_dir, "--output", "json")
    assert audited.code == 0, audited
    [report] = audited.json()["accounts"]
    assert (report["account"], report["size"], report["events"]) == (
        ACCOUNT,
        2 * count,
        [0, 2 * count],
    )
