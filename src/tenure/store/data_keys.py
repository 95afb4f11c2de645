"""Customers' data keys (docs/personal-data.md): one row per customer whose personal
fields are sealed, holding the key wrapped under the master key. Deleting the row is
the erasure (crypto-shredding).

``DataKeys`` is the noun (``tx.data_keys``); ``SqlDataKeys`` holds its SQL. The store
never sees a key in the clear: wrapping and unwrapping are ``tenure.crypto.datakeys``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.connected import OnConnection


@dataclass(frozen=True)
class StoredDataKey:
    """A customer's wrapped data key, and when it was stored."""

    customer: str
    wrapped: bytes
    created_at: str


class DataKeys(Protocol):
    """The wrapped data keys of every account."""

    def get(self, account: str, customer: str) -> StoredDataKey | None:
        """The customer's key; None if it has none (never sealed, or erased). A
        ``wrapped`` value the database holds as another type than bytes comes back
        empty (it then fails to unwrap, loudly)."""
        ...

    def add(self, account: str, key: StoredDataKey) -> bool:
        """Store ``key``; False, and nothing written, if the customer has one already."""
        ...

    def delete(self, account: str, customer: str) -> bool:
        """Delete the customer's key; True if there was one."""
        ...

    def customers(self, account: str) -> list[str]:
        """The customers of ``account`` that have a key, by id."""
        ...


# ---------------------------------------------------------------- SQL

_keys = t.data_keys.c
_INSERT = sa.text(
    "INSERT INTO data_keys (account, customer, wrapped, created_at) "
    "VALUES (:account, :customer, :wrapped, :created_at) ON CONFLICT DO NOTHING"
)


def _mine(account: str, customer: str) -> sa.ColumnElement[bool]:
    return sa.and_(_keys.account == account, _keys.customer == customer)


class SqlDataKeys(OnConnection):
    """``DataKeys`` in SQL (SQLite and PostgreSQL)."""

    def get(self, account: str, customer: str) -> StoredDataKey | None:
        query = sa.select(_keys.wrapped, _keys.created_at).where(_mine(account, customer))
        row = self._conn.execute(query).first()
        if row is None:
            return None
        wrapped = row.wrapped
        # SQLite keeps whatever type a statement wrote; PostgreSQL may hand a memoryview.
        raw = bytes(wrapped) if isinstance(wrapped, bytes | memoryview) else b""
        return StoredDataKey(customer, raw, str(row.created_at))

    def add(self, account: str, key: StoredDataKey) -> bool:
        values = {
            "account": account,
            "customer": key.customer,
            "wrapped": key.wrapped,
            "created_at": key.created_at,
        }
        # ON CONFLICT DO NOTHING, not a failing INSERT: on PostgreSQL an error would
        # abort the ledger writer's whole batch transaction.
        return bool(self._conn.execute(_INSERT, values).rowcount)

    def delete(self, account: str, customer: str) -> bool:
        return bool(
            self._conn.execute(sa.delete(t.data_keys).where(_mine(account, customer))).rowcount
        )

    def customers(self, account: str) -> list[str]:
        query = sa.select(_keys.customer).where(_keys.account == account).order_by(_keys.customer)
        return [str(customer) for customer in self._conn.scalars(query)]
