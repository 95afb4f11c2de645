"""The service rows in memory (``tenure.store.service_rows.ServiceRows``)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tenure.canonical import canonical_json
from tenure.store import tables as t
from tenure.store.records import IdempotencyRecord
from tenure.store.service_rows import Rows


class MemoryServiceRows:
    """``ServiceRows`` in memory: each table's rows of each account, copied in and out."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._rows: dict[tuple[str, str], list[dict[str, Any]]] = tables.setdefault(
            "service_rows", {}
        )
        self._records: dict[tuple[str, str], IdempotencyRecord] = tables.setdefault(
            "idempotency", {}
        )
        self._created: dict[tuple[str, str], str] = tables.setdefault("idempotency_created", {})

    def read(self, account: str, tables: Sequence[str]) -> Rows:
        found: Rows = {}
        for name in tables:
            keys = [c.name for c in t.metadata.tables[name].primary_key]
            rows = self._rows.get((name, account), [])
            found[name] = copy.deepcopy(sorted(rows, key=lambda r: [r[k] for k in keys]))
        return found

    def insert(self, account: str, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        for name, values in rows.items():
            stored = self._rows.setdefault((name, account), [])
            if name == "accounts" and stored:
                continue
            stored.extend(dict(copy.deepcopy(row)) for row in values)

    def idempotency_of_events(self, account: str, first: int, end: int) -> list[dict[str, Any]]:
        # The records the ledger noun keeps (``MemoryIdempotency``), as SQL rows.
        found = []
        for (owner, key), record in sorted(self._records.items()):
            seq = record.first_seq
            if owner == account and seq is not None and first <= seq < end:
                row = {"account": account, "key": key, **dataclasses.asdict(record)}
                row["result"] = canonical_json(record.result).decode()
                found.append({**row, "created_at": self._created[account, key]})
        return found

    def counts(self, account: str, tables: Sequence[str]) -> dict[str, int]:
        return {name: len(self._rows.get((name, account), [])) for name in tables}
