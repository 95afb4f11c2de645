"""Bulk ledger writes in memory (``tenure.store.bulk.BulkLedger``), over the memory
ledger and projection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tenure.domain.state import Row
from tenure.errors import LedgerTampered
from tenure.store.bulk import CHUNK
from tenure.store.memory.ledger import MemoryLedgerRecords, MemoryProjection
from tenure.store.memory.state_map import clear_leaves
from tenure.store.records import EventRow


class MemoryBulkLedger:
    """``BulkLedger`` in memory. ``delete`` drops the account's ledger whole: the
    memory store keeps checkpoints and verifier keys with it, not beside it."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._tables = tables
        self._ledger = MemoryLedgerRecords(tables)
        self._projection = MemoryProjection(tables)

    def prepare_large_write(self) -> None:
        return None

    def event_rows(self, account: str, start: int, stop: int) -> Iterator[list[EventRow]]:
        ledger = self._tables.get("ledger", {}).get(account)
        events: list[EventRow] = ledger.events if ledger else []
        for first in range(start, stop, CHUNK):
            chunk = events[first : min(stop, first + CHUNK)]
            seqs = [event.seq for event in chunk]
            if seqs != list(range(first, min(stop, first + CHUNK))):
                at = next((n for n, seq in enumerate(seqs, first) if seq != n), first + len(seqs))
                raise LedgerTampered(f"event {at} of {account} is missing at the source", seq=at)
            yield chunk

    def append(
        self, account: str, events: Iterable[EventRow], nodes: Iterable[tuple[int, int, bytes]]
    ) -> None:
        self._ledger.append_events(account, list(events))
        self._ledger.append_nodes(account, list(nodes))

    def insert_rows(self, account: str, table: str, rows: Iterable[Row]) -> None:
        self._projection.write(account, table, list(rows), [])

    def delete(self, account: str) -> None:
        self._tables["ledger"].pop(account, None)
        for key in [key for key in self._tables.get("projection", {}) if key[0] == account]:
            del self._tables["projection"][key]
        clear_leaves(self._tables, account)
