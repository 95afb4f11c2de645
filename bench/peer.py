"""Benchmark 4: the same append workload on the ``eventsourcing`` package (peer).

An ``eventsourcing.application.Application`` with ``PERSISTENCE_MODULE=eventsourcing.sqlite``
(``SQLiteApplicationRecorder`` on a WAL file) holds Customer and License aggregates.
The timed mix is Tenure's: 40 % override an entitlement, 40 % renew, 20 % create a
customer; each command loads its aggregate from the store (no snapshots, no cache:
the library's defaults), triggers one event and saves it — one event per
transaction. The 16-thread run issues the same commands from 16 threads; the
library serialises writers with a lock, so there is no group commit.

A second line records raw ``StoredEvent``s carrying Tenure's own leaf bytes through
the recorder alone (no aggregate, no mapper): the floor of the peer's write path.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from bench.common import Timer

NAMESPACE = uuid.UUID("5f0c3f3e-6f43-4a52-9d0e-2b8f7d9c1a11")
SEATS = (2, 10, 50, 100)


class Customer(Aggregate):
    @event("Created")
    def __init__(self, external_id: str, name: str, email: str) -> None:
        self.external_id = external_id
        self.name = name
        self.email = email

    @staticmethod
    def create_id(external_id: str, name: str, email: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"customer/{external_id}")


class License(Aggregate):
    @event("Issued")
    def __init__(
        self, serial: str, product: str, plan: str, customer: str, expires_at: str
    ) -> None:
        self.serial = serial
        self.product = product
        self.plan = plan
        self.customer = customer
        self.expires_at = expires_at
        self.status = "active"
        self.overrides: dict[str, int] = {}

    @staticmethod
    def create_id(
        serial: str, product: str, plan: str, customer: str, expires_at: str
    ) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"license/{serial}")

    @event("Renewed")
    def renew(self, expires_at: str) -> None:
        self.expires_at = expires_at

    @event("EntitlementOverridden")
    def override(self, entitlement: str, value: int, reason: str) -> None:
        self.overrides[entitlement] = value


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Licensing(Application[uuid.UUID]):
    def create_customer(self, external_id: str, name: str, email: str) -> uuid.UUID:
        customer = Customer(external_id, name, email)
        self.save(customer)
        return customer.id

    def issue(self, serial: str, product: str, plan: str, customer: str) -> uuid.UUID:
        expires = _stamp(datetime.now(UTC) + timedelta(days=365))
        lic = License(serial, product, plan, customer, expires)
        self.save(lic)
        return lic.id

    def renew(self, license_id: uuid.UUID) -> None:
        lic: License = self.repository.get(license_id)
        start = max(datetime.fromisoformat(lic.expires_at), datetime.now(UTC))
        lic.renew(_stamp(start + timedelta(days=365)))
        self.save(lic)

    def override(self, license_id: uuid.UUID, entitlement: str, value: int, reason: str) -> None:
        lic: License = self.repository.get(license_id)
        lic.override(entitlement, value, reason)
        self.save(lic)


class _Workload:
    def __init__(self, app: Licensing, rng: random.Random) -> None:
        self.app = app
        self.rng = rng
        self.licenses: list[uuid.UUID] = []
        self.customers = 0
        self.conflicts = 0
        self.lock = threading.Lock()

    def new_customer(self) -> tuple[str, str, str]:
        with self.lock:
            self.customers += 1
            number = self.customers
        return (f"crm-{number:06d}", f"Customer {number}", f"it@customer{number}.example")

    def plan(self, count: int) -> list[tuple[str, Any]]:
        ops: list[tuple[str, Any]] = []
        for _ in range(count):
            r = self.rng.random()
            if r < 0.4:
                ops.append(("override", (self.rng.choice(self.licenses), self.rng.choice(SEATS))))
            elif r < 0.8:
                ops.append(("renew", self.rng.choice(self.licenses)))
            else:
                ops.append(("customer", self.new_customer()))
        return ops

    def do(self, op: tuple[str, Any]) -> None:
        """Run one command; on an optimistic-concurrency conflict (another thread
        saved the same aggregate first) reload and retry, as an application must."""
        while True:
            try:
                self._do(op)
                return
            except IntegrityError:
                with self.lock:
                    self.conflicts += 1

    def _do(self, op: tuple[str, Any]) -> None:
        kind, arg = op
        if kind == "override":
            self.app.override(arg[0], "seats", arg[1], "negotiated seat count")
        elif kind == "renew":
            self.app.renew(arg)
        else:
            self.app.create_customer(*arg)


def _run_threads(work: _Workload, ops: list[tuple[str, Any]], threads: int) -> float:
    """Seconds for ``threads`` threads to run their shares of ``ops``."""
    shares = [ops[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def loop(share: list[tuple[str, Any]]) -> None:
        barrier.wait()
        try:
            for op in share:
                work.do(op)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=loop, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    barrier.wait()
    timer = Timer()
    for worker in workers:
        worker.join()
    seconds = timer.elapsed()
    if errors:
        raise errors[0]
    return seconds


class PeerSession:
    """An eventsourcing application on its own SQLite file, seeded like Tenure's store."""

    def __init__(self, db: Path, customers: int, licenses: int) -> None:
        self.db = db
        self.app = Licensing(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(db),
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        )
        self.work = _Workload(self.app, random.Random(11))
        timer = Timer()
        ids = [self.app.create_customer(*self.work.new_customer()) for _ in range(customers)]
        for number in range(licenses):
            customer = str(self.work.rng.choice(ids))
            serial = f"TNR-{number:020d}"
            self.work.licenses.append(self.app.issue(serial, "studio", "studio-pro", customer))
        self.seeded = customers + licenses
        self.seed_seconds = timer.elapsed()

    def describe(self) -> str:
        return (
            f"eventsourcing {_version()}: seeded {self.seeded:,} events in "
            f"{self.seed_seconds:.1f} s; its connections use synchronous={_synchronous(self.db)} "
            "(SQLite's default: the library sets no synchronous pragma) and WAL"
        )

    def slice(self, count: int, threads: int) -> tuple[int, float, int]:
        """Events, seconds and retried conflicts of ``count`` commands on ``threads``."""
        self.work.conflicts = 0
        seconds = _run_threads(self.work, self.work.plan(count), threads)
        return count, seconds, self.work.conflicts

    def close(self) -> None:
        self.app.close()


def _synchronous(db: Path) -> str:
    """The ``synchronous`` level a fresh connection gets (eventsourcing sets none)."""
    conn = sqlite3.connect(db)
    try:
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        conn.close()
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))


def recorder_rate(db: Path, leaves: list[bytes]) -> float:
    """Raw ``StoredEvent`` inserts through ``SQLiteApplicationRecorder``, one per call."""
    datastore = SQLiteDatastore(str(db))
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    originator = uuid.uuid4()
    timer = Timer()
    for position, leaf in enumerate(leaves, start=1):
        recorder.insert_events([StoredEvent(originator, position, "tenure:Event", leaf)])
    seconds = timer.elapsed()
    datastore.close()
    return len(leaves) / seconds


def _version() -> str:
    return version("eventsourcing")
