"""Looking licenses up: by the hash of their key or of the key they had before an
import, by the id they had there, and one filtered page of an account's licenses.

Every lookup of the check path goes straight to the driver (``tenure.store.raw``):
SQLAlchemy Core's statement building would cost more than SQLite's own work.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from tenure.domain.state import TABLES, Row
from tenure.store import projection_rows, raw
from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class LicenseFilter:
    """Which licenses a page lists: of ``customer`` and of ``product`` when given,
    whose stored status is one of ``statuses`` if given."""

    customer: str | None = None
    product: str | None = None
    statuses: Collection[str] | None = None

    def selects(self, row: Row) -> bool:
        """Whether ``row`` is one of them."""
        return (
            (self.customer is None or row["customer"] == self.customer)
            and (self.product is None or row["product"] == self.product)
            and (self.statuses is None or row["status"] in self.statuses)
        )


class Licenses(Protocol):
    """The licenses of the projection, found by what names them."""

    def by_key(self, account: str, key_hash: str) -> Row | None:
        """The license of ``account`` whose key hashes to ``key_hash``, or None."""
        ...

    def by_legacy_key(self, account: str, legacy_key_hash: str) -> Row | None:
        """The license of ``account`` imported with a legacy key of that hash, or None."""
        ...

    def holder_by_key(self, key_hash: str) -> tuple[str, str] | None:
        """``(account, serial)`` of the license whose key hashes to ``key_hash``."""
        ...

    def holders_by_legacy_key(self, legacy_key_hash: str) -> list[tuple[str, str]]:
        """``(account, serial)`` of the licenses imported with a legacy key of that
        hash: at most two (more than one names no one license)."""
        ...

    def serial_by_legacy_id(self, account: str, system: str, legacy_id: str) -> str | None:
        """The serial ``legacy_id`` of ``system`` was imported as, or None."""
        ...

    def page(self, account: str, which: LicenseFilter, after: str | None, limit: int) -> list[Row]:
        """Up to ``limit`` licenses of ``account`` that ``which`` selects, by serial,
        after ``after``."""
        ...


_SERIAL_BY_KEY = (
    "SELECT serial FROM proj_licenses WHERE account = :account AND key_hash = :key_hash"
)
_HOLDER_BY_KEY = "SELECT account, serial FROM proj_licenses WHERE key_hash = :key_hash"
_SERIAL_BY_LEGACY_KEY = (
    "SELECT serial FROM proj_legacy_ids WHERE account = :account AND legacy_key_hash = :key_hash"
)
_HOLDER_BY_LEGACY_KEY = (
    "SELECT account, serial FROM proj_legacy_ids WHERE legacy_key_hash = :key_hash LIMIT 2"
)
_SERIAL_BY_LEGACY_ID = (
    "SELECT serial FROM proj_legacy_ids "
    "WHERE account = :account AND system = :system AND legacy_id = :legacy_id"
)


class SqlLicenses(OnConnection):
    """``Licenses`` over SQL."""

    def _license(self, account: str, query: str, key_hash: str) -> Row | None:
        found = raw.execute(self._conn, query, {"account": account, "key_hash": key_hash})
        row = found.fetchone()
        return (
            None
            if row is None
            else projection_rows.read_row(self._conn, account, "licenses", (row[0],))
        )

    def by_key(self, account: str, key_hash: str) -> Row | None:
        return self._license(account, _SERIAL_BY_KEY, key_hash)

    def by_legacy_key(self, account: str, legacy_key_hash: str) -> Row | None:
        return self._license(account, _SERIAL_BY_LEGACY_KEY, legacy_key_hash)

    def holder_by_key(self, key_hash: str) -> tuple[str, str] | None:
        row = raw.execute(self._conn, _HOLDER_BY_KEY, {"key_hash": key_hash}).fetchone()
        return None if row is None else (row[0], row[1])

    def holders_by_legacy_key(self, legacy_key_hash: str) -> list[tuple[str, str]]:
        found = raw.execute(self._conn, _HOLDER_BY_LEGACY_KEY, {"key_hash": legacy_key_hash})
        return [(account, serial) for account, serial in found.fetchall()]

    def serial_by_legacy_id(self, account: str, system: str, legacy_id: str) -> str | None:
        params = {"account": account, "system": system, "legacy_id": legacy_id}
        found = raw.execute(self._conn, _SERIAL_BY_LEGACY_ID, params).fetchone()
        return None if found is None else str(found[0])

    def page(self, account: str, which: LicenseFilter, after: str | None, limit: int) -> list[Row]:
        lic = t.projection["licenses"]
        query: sa.Select[Any] = sa.select(*(lic.c[col] for col in TABLES["licenses"].columns))
        query = query.where(lic.c.account == account)
        if after is not None:
            query = query.where(lic.c.serial > after)
        if which.customer is not None:
            query = query.where(lic.c.customer == which.customer)
        if which.product is not None:
            query = query.where(lic.c.product == which.product)
        if which.statuses is not None:
            query = query.where(lic.c.status.in_(which.statuses))
        query = query.order_by(lic.c.serial).limit(limit)
        return [projection_rows.row_from_sql("licenses", r) for r in self._conn.execute(query)]
