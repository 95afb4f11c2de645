"""Projection rows found by something other than their key: a license's
activations, the licenses on a plan, the count of licenses by status, a page of
customer ids, and the erased customers of every account.
"""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa

from tenure.domain.state import Row
from tenure.store import projection_rows
from tenure.store import tables as t
from tenure.store.connected import OnConnection


class Listings(Protocol):
    """Projection rows by something other than their key."""

    def activations_of(self, account: str, serial: str) -> list[Row]:
        """The activation rows of license ``serial``, by activation id."""
        ...

    def plan_in_use(self, account: str, plan: str) -> bool:
        """Whether any license of ``account`` is on ``plan``."""
        ...

    def license_statuses(self, account: str) -> dict[str, int]:
        """How many licenses have each stored status."""
        ...

    def expired_active(self, account: str, now: str) -> list[str]:
        """Serials of the active licenses whose ``expires_at`` is at or before ``now``."""
        ...

    def customer_ids(
        self, account: str, after: str | None, prefix: str | None, limit: int
    ) -> list[str]:
        """Up to ``limit`` customer ids after ``after`` starting with ``prefix``, by id."""
        ...

    def erased_customers(self) -> list[tuple[str, str]]:
        """``(account, customer)`` of every erased customer of every account."""
        ...


# ---------------------------------------------------------------- SQL

_act = t.projection["activations"]
_lic = t.projection["licenses"].c
_cust = t.projection["customers"].c
_erased = t.projection["customer_erasures"]


class SqlListings(OnConnection):
    """``Listings`` on an open connection (SQLite and PostgreSQL)."""

    def activations_of(self, account: str, serial: str) -> list[Row]:
        query = (
            sa.select(_act)
            .where(_act.c.account == account, _act.c.serial == serial)
            .order_by(_act.c.activation)
        )
        return [
            projection_rows.row_from_sql("activations", row[1:])
            for row in self._conn.execute(query)
        ]

    def plan_in_use(self, account: str, plan: str) -> bool:
        query = sa.select(_lic.serial).where(_lic.account == account, _lic.plan == plan).limit(1)
        return self._conn.scalar(query) is not None

    def license_statuses(self, account: str) -> dict[str, int]:
        query = (
            sa.select(_lic.status, sa.func.count())
            .where(_lic.account == account)
            .group_by(_lic.status)
        )
        return {str(status): int(count) for status, count in self._conn.execute(query)}

    def expired_active(self, account: str, now: str) -> list[str]:
        query = sa.select(_lic.serial).where(
            _lic.account == account, _lic.status == "active", _lic.expires_at <= now
        )
        return [str(serial) for serial in self._conn.scalars(query)]

    def customer_ids(
        self, account: str, after: str | None, prefix: str | None, limit: int
    ) -> list[str]:
        query = sa.select(_cust.customer).where(_cust.account == account)
        if after:
            query = query.where(_cust.customer > after)
        if prefix:
            query = query.where(_cust.customer.startswith(prefix, autoescape=True))
        query = query.order_by(_cust.customer).limit(limit)
        return [str(customer) for customer in self._conn.scalars(query)]

    def erased_customers(self) -> list[tuple[str, str]]:
        if not sa.inspect(self._conn).has_table(_erased.name):
            return []  # a schema older than 0007 (not yet upgraded) records no erasures
        query = sa.select(_erased.c.account, _erased.c.customer)
        return [(str(a), str(c)) for a, c in self._conn.execute(query)]
