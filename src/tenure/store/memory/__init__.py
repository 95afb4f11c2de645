"""The store in memory: the ``Store`` and ``Transaction`` Protocols of
``tenure.store.unit`` over dicts, for unit tests of services (cosmicpython's fake
unit of work). Each noun lives in a module of its own here, beside its SQL one.

One lock serializes every transaction, so each sees one state; a write that raises
puts the state back as it was (a deep copy taken when it began). Nothing is
durable, nothing is shared between processes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tenure.store.accounts import Accounts
from tenure.store.alerts import Alerts
from tenure.store.apikeys import ApiKeys
from tenure.store.audit import AuditLog
from tenure.store.bulk import BulkLedger
from tenure.store.counters import Counters
from tenure.store.data_keys import DataKeys
from tenure.store.deployments import Deployments
from tenure.store.drift import Drift
from tenure.store.drills import Drills
from tenure.store.gauges import Gauges
from tenure.store.licenses import Licenses
from tenure.store.listings import Listings
from tenure.store.memory.accounts import MemoryAccounts
from tenure.store.memory.alerts import MemoryAlerts
from tenure.store.memory.apikeys import MemoryApiKeys
from tenure.store.memory.audit import MemoryAuditLog
from tenure.store.memory.bulk import MemoryBulkLedger
from tenure.store.memory.counters import MemoryCounters
from tenure.store.memory.data_keys import MemoryDataKeys
from tenure.store.memory.deployments import MemoryDeployments
from tenure.store.memory.drift import MemoryDrift
from tenure.store.memory.drills import MemoryDrills
from tenure.store.memory.gauges import MemoryGauges
from tenure.store.memory.ledger import MemoryIdempotency, MemoryLedgerRecords, MemoryProjection
from tenure.store.memory.licenses import MemoryLicenses
from tenure.store.memory.listings import MemoryListings
from tenure.store.memory.notices import MemoryNotices
from tenure.store.memory.revocations import MemoryRevocations
from tenure.store.memory.service_rows import MemoryServiceRows
from tenure.store.memory.signing_keys import MemorySigningKeys
from tenure.store.memory.state_map import MemoryStateMap
from tenure.store.memory.webhooks import MemoryWebhooks
from tenure.store.notices import Notices
from tenure.store.revocations import Revocations
from tenure.store.service_rows import ServiceRows
from tenure.store.signing_keys import SigningKeys
from tenure.store.state_map import StateMap
from tenure.store.unit import Idempotency, LedgerRecords, Projection, Transaction, noun
from tenure.store.webhooks import Webhooks

Tables = dict[str, Any]
"""Every noun's state, under the noun's name."""


_T = TypeVar("_T")


def on_tables(make: Callable[[Tables], _T]) -> noun[_T]:
    """The noun ``make`` builds over its transaction's tables, on first use."""
    return noun(lambda transaction: make(transaction._tables))


class MemoryTransaction:
    """A ``Transaction`` over the tables of a ``MemoryStore``."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    ledger: noun[LedgerRecords] = on_tables(MemoryLedgerRecords)
    projection: noun[Projection] = on_tables(MemoryProjection)
    idempotency: noun[Idempotency] = on_tables(MemoryIdempotency)
    state_map: noun[StateMap] = on_tables(MemoryStateMap)

    # --- operations (tenure.ops) ---

    webhooks: noun[Webhooks] = on_tables(MemoryWebhooks)
    deployments: noun[Deployments] = on_tables(MemoryDeployments)
    drift: noun[Drift] = on_tables(MemoryDrift)

    @noun
    def notices(self) -> Notices:
        return MemoryNotices(self._tables, self.projection)

    @noun
    def alerts(self) -> Alerts:
        return MemoryAlerts(self._tables, self.ledger, self.projection)

    counters: noun[Counters] = on_tables(MemoryCounters)

    @noun
    def gauges(self) -> Gauges:
        return MemoryGauges(self._tables, self.projection)

    # --- durability (tenure.durability) ---

    service_rows: noun[ServiceRows] = on_tables(MemoryServiceRows)
    bulk: noun[BulkLedger] = on_tables(MemoryBulkLedger)
    drills: noun[Drills] = on_tables(MemoryDrills)

    # --- governance (accounts, keys, audit, tokens) ---

    accounts: noun[Accounts] = on_tables(MemoryAccounts)
    apikeys: noun[ApiKeys] = on_tables(MemoryApiKeys)
    audit: noun[AuditLog] = on_tables(MemoryAuditLog)
    signing_keys: noun[SigningKeys] = on_tables(MemorySigningKeys)
    revocations: noun[Revocations] = on_tables(MemoryRevocations)

    @noun
    def listings(self) -> Listings:
        return MemoryListings(self._tables, self.projection)

    data_keys: noun[DataKeys] = on_tables(MemoryDataKeys)

    # --- licenses (checks and license pages) ---

    @noun
    def licenses(self) -> Licenses:
        projection = self._tables.setdefault("projection", {})
        return MemoryLicenses(self.projection, lambda: {account for account, _ in projection})


class MemoryStore:
    """A ``Store`` in memory (see the module doc)."""

    def __init__(self) -> None:
        self.tables: Tables = {}
        self._lock = threading.RLock()
        self._generation = 0

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with self._lock:
            yield MemoryTransaction(self.tables)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        with self._lock:
            saved = copy.deepcopy(self.tables)
            try:
                yield MemoryTransaction(self.tables)
            except BaseException:
                self.tables.clear()
                self.tables.update(saved)
                raise
            self._generation += 1

    def generation(self, account: str) -> int:
        """Moves with every write transaction (memory has no triggers to be precise)."""
        return self._generation

    quick_read = read
    shared_write = write
