"""The ledger records, projection rows and idempotency records in memory (the
``LedgerRecords``, ``Projection`` and ``Idempotency`` of ``tenure.store.unit``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tenure.domain.state import TABLES, Key, Row
from tenure.errors import LedgerTampered
from tenure.ledger.merkle import Frontier, HashReader, NodeId
from tenure.ledger.statemap import ZERO
from tenure.store.memory.state_map import clear_leaves, record_leaves
from tenure.store.records import EventRow, Head, IdempotencyRecord, StoredCheckpoint
from tenure.store.state_map import leaf_changes


@dataclass
class _Ledger:
    origin: str
    events: list[EventRow] = field(default_factory=list)
    size: int = 0
    nodes: dict[NodeId, bytes] = field(default_factory=dict)
    checkpoints: dict[int, StoredCheckpoint] = field(default_factory=dict)
    verifiers: dict[str, tuple[str, str]] = field(default_factory=dict)


class _Nodes:
    """A ``HashReader`` over one ledger's stored nodes."""

    def __init__(self, account: str, nodes: dict[NodeId, bytes]) -> None:
        self._account, self._nodes = account, nodes

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        found = []
        for level, index in ids:
            digest = self._nodes.get((level, index))
            if digest is None:
                raise LedgerTampered(
                    f"Merkle node {(level, index)} of {self._account} is missing",
                    seq=index << level,
                )
            found.append(digest)
        return found


class MemoryLedgerRecords:
    """``LedgerRecords`` in memory."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._ledgers: dict[str, _Ledger] = tables.setdefault("ledger", {})
        self._roots: dict[str, bytes] = tables.setdefault("state_roots", {})

    def _of(self, account: str) -> _Ledger:
        ledger = self._ledgers.get(account)
        if ledger is None:
            raise LedgerTampered(f"{account} has no ledger")
        return ledger

    def head(self, account: str) -> Head | None:
        ledger = self._ledgers.get(account)
        return None if ledger is None else Head(account, ledger.origin, ledger.size)

    def create_head(self, account: str, origin: str) -> Head:
        self._ledgers[account] = _Ledger(origin)
        self._roots[account] = ZERO
        return Head(account, origin, 0)

    def move_head(self, account: str, old: int, new: int) -> None:
        ledger = self._of(account)
        if ledger.size != old:
            raise LedgerTampered(f"the head of {account} moved from {old}")
        ledger.size = new

    def accounts(self) -> list[str]:
        return sorted(self._ledgers)

    def append_events(self, account: str, rows: Sequence[EventRow]) -> None:
        self._of(account).events.extend(rows)

    def append_nodes(self, account: str, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._of(account).nodes.update(((level, index), digest) for level, index, digest in nodes)

    def leaves(
        self, account: str, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        ledger = self._ledgers.get(account)
        for event in ledger.events[start:stop] if ledger else ():
            yield event.seq, event.leaf

    def events_about(self, account: str, subject: str) -> list[tuple[int, bytes]]:
        ledger = self._ledgers.get(account)
        events = ledger.events if ledger else []
        return [(e.seq, e.leaf) for e in events if e.subject == subject]

    def last_event_time(self, account: str, size: int) -> str | None:
        ledger = self._ledgers.get(account)
        if ledger is None or size == 0 or len(ledger.events) < size:
            return None
        return ledger.events[size - 1].time

    def nodes(self, account: str) -> HashReader:
        return _Nodes(account, self._of(account).nodes)

    def frontier(self, account: str, size: int) -> Frontier:
        return Frontier(size, self.nodes(account).read_hashes(Frontier.node_ids(size)))

    def level(self, account: str, level: int) -> Iterator[tuple[int, bytes]]:
        ledger = self._ledgers.get(account)
        nodes = ledger.nodes if ledger else {}
        return iter(sorted((ix, h) for (lv, ix), h in nodes.items() if lv == level))

    def lowest_level_from(self, account: str, level: int) -> int | None:
        ledger = self._ledgers.get(account)
        return min((lv for lv, _ in ledger.nodes if lv >= level), default=None) if ledger else None

    def add_checkpoint(self, account: str, checkpoint: StoredCheckpoint) -> None:
        self._of(account).checkpoints[checkpoint.size] = checkpoint

    def checkpoint(self, account: str, size: int | None = None) -> StoredCheckpoint | None:
        ledger = self._ledgers.get(account)
        if ledger is None or not ledger.checkpoints:
            return None
        return ledger.checkpoints.get(max(ledger.checkpoints) if size is None else size)

    def checkpoints(self, account: str) -> list[StoredCheckpoint]:
        ledger = self._ledgers.get(account)
        return [ledger.checkpoints[size] for size in sorted(ledger.checkpoints)] if ledger else []

    def verifier_keys(self, account: str) -> list[str]:
        ledger = self._ledgers.get(account)
        found = sorted(ledger.verifiers.values(), key=lambda kept: kept[1]) if ledger else []
        return [verifier for verifier, _ in found]

    def record_verifier_key(self, account: str, key_id: str, verifier: str, at: str) -> None:
        self._of(account).verifiers.setdefault(key_id, (verifier, at))


class MemoryProjection:
    """``Projection`` in memory: each table a dict by key; rows are copied in and out
    (through JSON, as the SQL store stores them) so a caller never shares one."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._tables: dict[tuple[str, str], dict[Key, bytes]] = tables.setdefault("projection", {})
        self._all = tables

    def row(self, account: str, table: str, key: Key) -> Row | None:
        stored = self._tables.get((account, table), {}).get(tuple(key))
        return None if stored is None else dict(orjson.loads(stored))

    def rows(self, account: str, table: str, ordered: bool = True) -> list[Row]:
        stored = self._tables.get((account, table), {})
        return [dict(orjson.loads(stored[key])) for key in sorted(stored)]

    def write(
        self, account: str, table: str, upserts: Sequence[Row], deletes: Sequence[Key]
    ) -> None:
        stored = self._tables.setdefault((account, table), {})
        spec = TABLES[table]
        for key in deletes:
            stored.pop(tuple(key), None)
        for row in upserts:
            stored[spec.key_of(row)] = orjson.dumps({c: row.get(c) for c in spec.columns})
        record_leaves(self._all, account, *leaf_changes(table, upserts, deletes))

    def clear(self, account: str) -> None:
        for slot in [slot for slot in self._tables if slot[0] == account]:
            del self._tables[slot]
        clear_leaves(self._all, account)

    def insert_all(self, account: str, table: str, rows: Iterable[Row]) -> None:
        self.write(account, table, list(rows), [])

    def update(
        self, account: str, table: str, columns: tuple[str, ...], rows: Sequence[Row]
    ) -> None:
        stored = self._tables.setdefault((account, table), {})
        key_of = TABLES[table].key_of
        for row in rows:
            key = key_of(row)
            if key in stored:
                kept = orjson.loads(stored[key])
                kept.update((column, row[column]) for column in columns)
                stored[key] = orjson.dumps(kept)
                record_leaves(self._all, account, *leaf_changes(table, [kept], ()))


class MemoryIdempotency:
    """``Idempotency`` in memory."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._records: dict[tuple[str, str], IdempotencyRecord] = tables.setdefault(
            "idempotency", {}
        )
        self._created: dict[tuple[str, str], str] = tables.setdefault("idempotency_created", {})

    def read(self, account: str, key: str) -> IdempotencyRecord | None:
        return self._records.get((account, key))

    def insert(self, account: str, records: Sequence[tuple[str, IdempotencyRecord, str]]) -> None:
        for key, record, created_at in records:
            self._records.setdefault((account, key), record)
            self._created.setdefault((account, key), created_at)
