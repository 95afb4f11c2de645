"""A licensing workload on real runtimes: the principal it acts as, the runtimes it
opens, the commands it submits and the read-only questions asked of its store."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import (
    Command,
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    PublishPlan,
)
from tenure.domain.events import Actor
from tenure.service.ledger import Ledger, Outcome, Submission
from tenure.service.replay import DigestReport, digest_of
from tenure.store import ledger_records
from tenure.store import tables as t
from tenure.store.engine import read_transaction
from tenure.store.unit import SqlStore

ACCOUNT = "default"
ACTOR = Actor("key_contract", "owner", "api_key")


class Runtimes:
    """Opens runtimes over data dirs and closes them all at the end of the test
    (``close_all``, or leaving ``with Runtimes() as runtimes:``)."""

    def __init__(self) -> None:
        self._open: list[Runtime] = []

    def open(self, data_dir: Path, **settings: Any) -> Runtime:
        runtime = Runtime.open(Settings(data_dir=data_dir, **settings))
        self._open.append(runtime)
        return runtime

    def close_all(self) -> None:
        for runtime in self._open:
            runtime.close()
        self._open.clear()

    def __enter__(self) -> Runtimes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close_all()


class Probe:
    """Read-only questions about a store, asked through SQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def seqs(self) -> list[int]:
        with read_transaction(self.engine) as conn:
            query = sa.select(t.ledger_events.c.seq).where(t.ledger_events.c.account == ACCOUNT)
            return list(conn.scalars(query.order_by(t.ledger_events.c.seq)))

    def size(self) -> int:
        with read_transaction(self.engine) as conn:
            head = ledger_records.read_head(conn, ACCOUNT)
            return 0 if head is None else head.size

    def event_count(self) -> int:
        with read_transaction(self.engine) as conn:
            events = t.ledger_events
            query = sa.select(sa.func.count()).where(events.c.account == ACCOUNT)
            return int(conn.scalar(query) or 0)

    def checkpoint_sizes(self) -> list[int]:
        with read_transaction(self.engine) as conn:
            return [cp.size for cp in ledger_records.all_checkpoints(conn, ACCOUNT)]

    def digest(self) -> DigestReport:
        return digest_of(SqlStore(self.engine), ACCOUNT)

    def snapshot(self) -> tuple[int, int, str, list[int]]:
        """Everything a rejected command must leave unchanged."""
        report = self.digest()
        return (self.event_count(), report.size, report.digest, self.checkpoint_sizes())


class Shop:
    """Submits commands as one principal; knows a small catalog."""

    PRODUCT = "studio"
    PLAN = "studio-pro"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def submission(
        self, command: Command, reason: str | None = None, key: str | None = None
    ) -> Submission:
        return Submission(ACCOUNT, command, ACTOR, reason=reason, idempotency_key=key)

    def run(self, command: Command, reason: str | None = None, key: str | None = None) -> Outcome:
        return self.ledger.execute(self.submission(command, reason, key))

    def catalog(self) -> None:
        self.run(DefineProduct(self.PRODUCT, "Studio", ["export-pdf", "cloud-sync"]))
        self.run(
            PublishPlan(
                self.PLAN,
                self.PRODUCT,
                {"feature:export-pdf": True, "seats": 5},
                core=["feature:export-pdf"],
            )
        )

    def customer(self, external_id: str) -> str:
        command = CreateCustomer(
            f"Customer {external_id}", f"{external_id}@example.test", external_id
        )
        return str(self.run(command).result["customer"])

    def license(self, customer: str, order: str) -> str:
        return str(
            self.run(IssueLicense(self.PRODUCT, self.PLAN, customer, order)).result["serial"]
        )
