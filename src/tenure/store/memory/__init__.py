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
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from tenure.store.accounts import Accounts
from tenure.store.alerts import Alerts
from tenure.store.apikeys import ApiKeys
from tenure.store.audit import AuditLog
from tenure.store.bulk import BulkLedger
from tenure.store.counters import Counters
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
from tenure.store.memory.webhooks import MemoryWebhooks
from tenure.store.notices import Notices
from tenure.store.revocations import Revocations
from tenure.store.service_rows import ServiceRows
from tenure.store.signing_keys import SigningKeys
from tenure.store.unit import Idempotency, LedgerRecords, Projection, Transaction
from tenure.store.webhooks import Webhooks

Tables = dict[str, Any]
"""Every noun's state, under the noun's name."""


class MemoryTransaction:
    """A ``Transaction`` over the tables of a ``MemoryStore``."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @cached_property
    def ledger(self) -> LedgerRecords:
        return MemoryLedgerRecords(self._tables)

    @cached_property
    def projection(self) -> Projection:
        return MemoryProjection(self._tables)

    @cached_property
    def idempotency(self) -> Idempotency:
        return MemoryIdempotency(self._tables)

    # --- operations (tenure.ops) ---

    @cached_property
    def webhooks(self) -> Webhooks:
        return MemoryWebhooks(self._tables)

    @cached_property
    def deployments(self) -> Deployments:
        return MemoryDeployments(self._tables)

    @cached_property
    def drift(self) -> Drift:
        return MemoryDrift(self._tables)

    @cached_property
    def notices(self) -> Notices:
        return MemoryNotices(self._tables, self.projection)

    @cached_property
    def alerts(self) -> Alerts:
        return MemoryAlerts(self._tables, self.ledger, self.projection)

    @cached_property
    def counters(self) -> Counters:
        return MemoryCounters(self._tables)

    @cached_property
    def gauges(self) -> Gauges:
        return MemoryGauges(self._tables, self.projection)

    # --- durability (tenure.durability) ---

    @cached_property
    def service_rows(self) -> ServiceRows:
        return MemoryServiceRows(self._tables)

    @cached_property
    def bulk(self) -> BulkLedger:
        return MemoryBulkLedger(self._tables)

    @cached_property
    def drills(self) -> Drills:
        return MemoryDrills(self._tables)

    # --- governance (accounts, keys, audit, tokens) ---

    @cached_property
    def accounts(self) -> Accounts:
        return MemoryAccounts(self._tables)

    @cached_property
    def apikeys(self) -> ApiKeys:
        return MemoryApiKeys(self._tables)

    @cached_property
    def audit(self) -> AuditLog:
        return MemoryAuditLog(self._tables)

    @cached_property
    def signing_keys(self) -> SigningKeys:
        return MemorySigningKeys(self._tables)

    @cached_property
    def revocations(self) -> Revocations:
        return MemoryRevocations(self._tables)

    @cached_property
    def listings(self) -> Listings:
        return MemoryListings(self._tables, self.projection)

    # --- licenses (checks and license pages) ---

    @cached_property
    def licenses(self) -> Licenses:
        projection = self._tables.setdefault("projection", {})
        return MemoryLicenses(self.projection, lambda: {account for account, _ in projection})


class MemoryStore:
    """A ``Store`` in memory (see the module doc)."""

    def __init__(self) -> None:
        self.tables: Tables = {}
        self._lock = threading.RLock()

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

    quick_read = read
    shared_write = write
