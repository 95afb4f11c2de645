"""``Licenses`` in memory: scans of the projection's license and legacy id rows."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

from tenure.domain.state import Row
from tenure.store.licenses import LicenseFilter
from tenure.store.unit import Projection


class MemoryLicenses:
    """``Licenses`` over a memory ``Projection``."""

    def __init__(self, projection: Projection, accounts: Callable[[], Collection[str]]) -> None:
        self._projection = projection
        self._accounts = accounts
        """The accounts with projection rows."""

    def _all(self, table: str) -> Iterator[tuple[str, Row]]:
        for account in sorted(self._accounts()):
            for row in self._projection.rows(account, table):
                yield account, row

    def by_key(self, account: str, key_hash: str) -> Row | None:
        rows = self._projection.rows(account, "licenses")
        return next((row for row in rows if row["key_hash"] == key_hash), None)

    def by_legacy_key(self, account: str, legacy_key_hash: str) -> Row | None:
        for row in self._projection.rows(account, "legacy_ids"):
            if row["legacy_key_hash"] == legacy_key_hash:
                return self._projection.row(account, "licenses", (row["serial"],))
        return None

    def holder_by_key(self, key_hash: str) -> tuple[str, str] | None:
        found = (
            (account, row["serial"])
            for account, row in self._all("licenses")
            if row["key_hash"] == key_hash
        )
        return next(found, None)

    def holders_by_legacy_key(self, legacy_key_hash: str) -> list[tuple[str, str]]:
        found = [
            (account, row["serial"])
            for account, row in self._all("legacy_ids")
            if row["legacy_key_hash"] == legacy_key_hash
        ]
        return found[:2]

    def serial_by_legacy_id(self, account: str, system: str, legacy_id: str) -> str | None:
        row = self._projection.row(account, "legacy_ids", (system, legacy_id))
        return None if row is None else str(row["serial"])

    def page(self, account: str, which: LicenseFilter, after: str | None, limit: int) -> list[Row]:
        rows = self._projection.rows(account, "licenses")
        found = [r for r in rows if (after is None or r["serial"] > after) and which.selects(r)]
        return found[:limit]
