"""``Drift`` in memory (``tenure.store.drift``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tenure.store.drift import FindingKey, StoredFinding, StoredPass


@dataclass
class _Tables:
    findings: dict[str, list[StoredFinding]]
    passes: dict[str, dict[str, StoredPass]]


class MemoryDrift:
    """``Drift`` over dicts."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._t: _Tables = tables.setdefault("drift", _Tables({}, {}))

    def first_seen(self, account: str) -> dict[FindingKey, str]:
        return {
            (f.kind, f.deployment, f.subject): f.first_seen
            for f in self._t.findings.get(account, [])
        }

    def replace_findings(self, account: str, findings: Sequence[StoredFinding]) -> None:
        self._t.findings[account] = list(findings)

    def record_pass(self, account: str, done: StoredPass, keep_from: str) -> None:
        passes = self._t.passes.setdefault(account, {})
        for at in [at for at in passes if at < keep_from]:
            del passes[at]
        passes[done.at] = done

    def counts(self, account: str) -> dict[str, int]:
        return dict(Counter(f.kind for f in self._t.findings.get(account, [])))

    def findings(self, account: str, kind: str | None, limit: int) -> list[StoredFinding]:
        found = [f for f in self._t.findings.get(account, []) if kind in (None, f.kind)]
        return sorted(found, key=lambda f: (f.kind, f.deployment, f.subject))[:limit]

    def last_pass(self, account: str) -> StoredPass | None:
        passes = self._t.passes.get(account, {})
        return passes[max(passes)] if passes else None
