"""The service rows in memory (``tenure.store.service_rows.ServiceRows``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from tenure.store import tables as t
from tenure.store.service_rows import Rows


class MemoryServiceRows:
    """``ServiceRows`` in memory: each table's rows of each account, copied in and out."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._rows: dict[tuple[str, str], list[dict[str, Any]]] = tables.setdefault(
            "service_rows", {}
        )

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
        rows = self._rows.get(("idempotency_keys", account), [])
        found = [r for r in rows if r["first_seq"] is not None and first <= r["first_seq"] < end]
        return copy.deepcopy(sorted(found, key=lambda r: str(r["key"])))

    def counts(self, account: str, tables: Sequence[str]) -> dict[str, int]:
        return {name: len(self._rows.get((name, account), [])) for name in tables}
