"""``Deployments`` in memory (``tenure.store.deployments``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tenure.store.deployments import StoredReport


@dataclass
class _Tables:
    reports: dict[tuple[str, str], StoredReport]
    sightings: dict[str, dict[str, tuple[str, str]]]
    """account → activation → (serial, last seen)."""


class MemoryDeployments:
    """``Deployments`` over dicts; reports are copied in and out."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._t: _Tables = tables.setdefault("deployments", _Tables({}, {}))

    def replace(self, account: str, report: StoredReport) -> None:
        kept = replace(report, activations=copy.deepcopy(report.activations or []))
        self._t.reports[(account, report.deployment)] = kept

    def see(self, account: str, sightings: Mapping[str, str], at: str) -> None:
        seen = self._t.sightings.setdefault(account, {})
        for activation, serial in sightings.items():
            seen[activation] = (serial, at)

    def summaries(self, account: str) -> list[StoredReport]:
        return [replace(r, activations=None) for r in self._of(account)]

    def report(self, account: str, deployment: str) -> StoredReport | None:
        found = self._t.reports.get((account, deployment))
        return None if found is None else copy.deepcopy(found)

    def reports(self, account: str) -> list[StoredReport]:
        return [copy.deepcopy(r) for r in self._of(account)]

    def sightings(self, account: str) -> dict[str, str]:
        return {a: seen for a, (_, seen) in self._t.sightings.get(account, {}).items()}

    def _of(self, account: str) -> list[StoredReport]:
        mine = [(d, r) for (owner, d), r in self._t.reports.items() if owner == account]
        return [r for _, r in sorted(mine, key=lambda found: found[0])]
