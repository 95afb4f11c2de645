"""State rows: the tables of the projection, a read interface, and an in-memory state.

A row is a JSON object (``dict``) holding only JSON values; its key is the tuple of
its key columns. The same rows live in SQL tables (``tenure.store``) and in
``MemoryState`` (replay, tests); both feed the same state digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tenure.ledger.digest import state_digest

Row = dict[str, Any]
Key = tuple[str | int, ...]
Change = tuple[str, Key, Row | None]
"""``(table, key, row)``: upsert ``row`` at ``key``, or delete it when ``row`` is None."""


@dataclass(frozen=True)
class TableSpec:
    """A projection table: its key columns, all columns, and the JSON-valued ones."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()

    def key_of(self, row: Row) -> Key:
        return tuple(row[column] for column in self.key)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("customers", ("customer",), ("customer", "name", "email", "external_id")),
        # Personal fields of schema-2 customers as ciphertext, and erased customers
        # (docs/personal-data.md); empty in ledgers without them.
        TableSpec(
            "customer_sealed",
            ("customer",),
            ("customer", "sealed_in", "name", "email"),
            frozenset({"name", "email"}),
        ),
        TableSpec("customer_erasures", ("customer",), ("customer",)),
        TableSpec(
            "licenses",
            ("serial",),
            (
                "serial",
                "product",
                "customer",
                "plan",
                "plan_version",
                "order_ref",
                "key_hash",
                "status",
                "issued_at",
                "expires_at",
                "overrides",
            ),
            frozenset({"overrides"}),
        ),
        TableSpec(
            "plan_versions",
            ("plan", "version"),
            (
                "plan",
                "version",
                "product",
                "entitlements",
                "core",
                "duration",
                "grace",
                "offline_token_ttl",
                "activation",
            ),
            frozenset({"entitlements", "core"}),
        ),
        TableSpec("plans", ("plan",), ("plan", "product", "latest_version")),
        TableSpec(
            "activations",
            ("activation",),
            ("activation", "serial", "fingerprint_hash", "mode", "status", "lease_expires_at"),
        ),
        TableSpec("license_seats", ("serial",), ("serial", "holders"), frozenset({"holders"})),
        TableSpec("revoked_tokens", ("jti",), ("jti", "serial")),
        TableSpec(
            "products", ("product",), ("product", "name", "features"), frozenset({"features"})
        ),
        # Empty in ledgers without legacy imports; an empty table adds nothing to the digest.
        TableSpec(
            "legacy_ids",
            ("system", "legacy_id"),
            ("system", "legacy_id", "serial", "legacy_key_hash"),
        ),
        # Empty in ledgers without plan retirements or approvals (tenure.domain.approvals).
        TableSpec("retired_plans", ("plan",), ("plan", "product")),
        TableSpec(
            "approvals",
            ("approval",),
            (
                "approval",
                "action",
                "target",
                "payload",
                "requested_by",
                "expires_at",
                "status",
                "detail",
            ),
            frozenset({"payload"}),
        ),
    )
}
TABLE_ORDER: tuple[str, ...] = tuple(sorted(TABLES))


class StateView(Protocol):
    """Read access to the projection of one account, as the projector needs it."""

    def get(self, table: str, key: Key) -> Row | None:
        """The row of ``table`` at ``key``, or None."""
        ...


class MemoryState:
    """The whole projection of one account held in dictionaries."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, Row]] = {name: {} for name in TABLES}

    def get(self, table: str, key: Key) -> Row | None:
        return self.tables[table].get(key)

    def apply_changes(self, changes: Iterable[Change]) -> None:
        for table, key, row in changes:
            if row is None:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = row

    def rows(self, table: str) -> Iterator[Row]:
        """Rows of ``table`` in ascending key order."""
        rows = self.tables[table]
        for key in sorted(rows):
            yield rows[key]

    def digest(self) -> str:
        """The state digest of this projection (see ``tenure.ledger.digest``)."""
        return state_digest((name, self.rows(name)) for name in TABLE_ORDER)

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())
