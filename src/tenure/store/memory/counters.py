"""``Counters`` in memory (``tenure.store.counters``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tenure.store.counters import MinuteCount


class MemoryCounters:
    """``Counters`` over a dict (account, minute, metric) → count."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._counts: defaultdict[tuple[str, str, str], int] = tables.setdefault(
            "counters", defaultdict(int)
        )

    def add(self, counts: Sequence[MinuteCount]) -> None:
        for c in counts:
            self._counts[(c.account, c.minute, c.metric)] += c.count

    def minutes(self, account: str, metric: str, since: str, until: str) -> list[tuple[str, int]]:
        return sorted(
            (minute, n)
            for (owner, minute, name), n in self._counts.items()
            if owner == account and name == metric and since <= minute < until
        )

    def totals(self, account: str, since: str, until: str) -> dict[str, int]:
        sums: defaultdict[str, int] = defaultdict(int)
        for (owner, minute, metric), n in self._counts.items():
            if owner == account and since <= minute < until:
                sums[metric] += n
        return dict(sums)
