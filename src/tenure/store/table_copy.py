"""What a backend migration (``tenure migrate``, docs/migration.md) does with every
table of the schema, and the table copy itself.

``TABLE_PLAN`` names each table of ``tenure.store.tables.metadata`` once, with how
it reaches the target and why:

- ``ledger``: the event rows are streamed in seq order and inserted as they are; the
  Merkle nodes and the head are made on the target from them, and the target's root
  must equal the source's.
- ``replayed``: the projection (``proj_*``) and the state map (``state_leaves``,
  ``state_buckets``) are rebuilt on the target from the leaves, never copied; the
  state digest and the state map's root must equal the source's (and the signed
  ``tenure-state`` root of a checkpoint at the head).
- ``keyed``, ``appended``, ``inserted``: copied rows (see ``How``); after a copy every
  copied table must hold as many rows of the account on the target as on the source.
- ``not copied``: deliberately left behind, with the reason.

A test fails when a table of the schema is missing here, so a table added later
cannot be forgotten by the migration. Every table has an ``account`` column except
``accounts``, whose ``id`` is the account.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from tenure.domain.state import TABLE_ORDER
from tenure.store import tables as t

CHUNK = 10_000


class How(StrEnum):
    """How a backend migration carries a table."""

    LEDGER = "ledger"
    """Streamed from the source's leaves; proven by the Merkle root."""
    REPLAYED = "replayed"
    """Rebuilt on the target by replaying the leaves; proven by digest and state root."""
    KEYED = "keyed"
    """Rows compared by primary key: the target's stale or extra rows deleted, the
    source's missing or changed ones inserted (small tables, or rows that change)."""
    APPENDED = "appended"
    """Append-only: the source's rows past the target's largest ``column``."""
    INSERTED = "inserted"
    """Immutable rows: those whose primary key the target lacks."""
    NOT_COPIED = "not copied"
    """Deliberately not carried (``why`` says why)."""


COPIED = (How.KEYED, How.APPENDED, How.INSERTED)


@dataclass(frozen=True)
class TablePlan:
    """One table's fate in a backend migration."""

    table: str
    how: How
    why: str
    column: str | None = None
    """For ``APPENDED``: the column the rows are appended in order of."""


def _projection_plans() -> tuple[TablePlan, ...]:
    return tuple(
        TablePlan(f"proj_{name}", How.REPLAYED, "projection rows, replayed from the leaves")
        for name in TABLE_ORDER
    )


TABLE_PLAN: tuple[TablePlan, ...] = (
    TablePlan("ledger_events", How.LEDGER, "the signed leaves, byte for byte, in seq order"),
    TablePlan("ledger_nodes", How.LEDGER, "Merkle nodes, hashed again from the copied leaves"),
    TablePlan("ledger_heads", How.LEDGER, "origin and size from the source; state root rebuilt"),
    TablePlan("state_leaves", How.REPLAYED, "state map leaves, rebuilt from the replayed rows"),
    TablePlan("state_buckets", How.REPLAYED, "state map buckets, rebuilt from the leaves"),
    *_projection_plans(),
    TablePlan("accounts", How.KEYED, "the account row (keyed by id)"),
    TablePlan("api_keys", How.KEYED, "API key hashes and roles (revocations change rows)"),
    TablePlan("signing_keys", How.KEYED, "public token-signing keys (retirement changes rows)"),
    TablePlan("ledger_keys", How.KEYED, "verifier keys of the checkpoints"),
    TablePlan("audit_heads", How.KEYED, "the audit chain's head (one row, changes)"),
    TablePlan("ledger_checkpoints", How.APPENDED, "signed checkpoints, as signed", column="size"),
    TablePlan("audit_log", How.APPENDED, "the hash-chained audit entries", column="seq"),
    TablePlan("idempotency_keys", How.INSERTED, "idempotency records (never change)"),
    TablePlan(
        "data_keys",
        How.INSERTED,
        "customers' data keys, wrapped under the master key as stored (a key never "
        "changes); those of customers the ledger erased are deleted on the target",
    ),
    TablePlan("drills", How.KEYED, "restore drill results"),
    TablePlan(
        "webhooks",
        How.KEYED,
        "subscriptions; secrets travel sealed, as stored (they open with the same master key)",
    ),
    TablePlan("webhook_cursors", How.KEYED, "the last event fanned out (no delivery twice)"),
    TablePlan("webhook_deliveries", How.KEYED, "deliveries and their attempts (rows change)"),
    TablePlan("deployments", How.KEYED, "each deployment's latest report (replaced)"),
    TablePlan("activation_sightings", How.KEYED, "when each activation was last reported"),
    TablePlan("drift_findings", How.KEYED, "open drift findings (replaced by each pass)"),
    TablePlan("drift_passes", How.KEYED, "recent reconciliation passes (old ones pruned)"),
    TablePlan("notices", How.INSERTED, "lifecycle notices (never change)"),
    TablePlan("alerts", How.KEYED, "anomaly alerts (clearing changes a row)"),
    TablePlan("ops_minutes", How.KEYED, "per-minute counters (flushes add into a row)"),
    TablePlan(
        "read_generation",
        How.NOT_COPIED,
        "each account's change counter of this database, moved by its own triggers as "
        "rows are copied",
    ),
)

PLAN_OF: Mapping[str, TablePlan] = {plan.table: plan for plan in TABLE_PLAN}

NOT_IN_DATABASE: tuple[tuple[str, str], ...] = (
    ("master.key, keys/", "the data dir's keys: a server of the target needs the same data dir"),
    ("counts not yet flushed", "per-process counters, added into ops_minutes every few seconds"),
)
"""What a backend migration does not carry because it is not in the database."""


def owned_by(table: sa.Table, account: str) -> sa.ColumnElement[bool]:
    """The rows of ``table`` that belong to ``account``."""
    return (table.c.id if table.name == "accounts" else table.c.account) == account


def plain_row(row: sa.Row[Any]) -> dict[str, Any]:
    """A row as ``{column: value}`` with plain ``str`` keys and ``bytes`` values."""
    # SQLAlchemy names columns with ``quoted_name``, a str subclass canonical JSON
    # (rightly) refuses as an object key; PostgreSQL may hand bytes as memoryview.
    return {str(k): bytes(v) if isinstance(v, memoryview) else v for k, v in row._mapping.items()}


# ---------------------------------------------------------------- whole accounts


def row_counts(conn: sa.Connection, account: str) -> dict[str, int]:
    """The number of rows of ``account`` in every table of ``TABLE_PLAN``."""
    counts = {}
    for plan in TABLE_PLAN:
        table = t.metadata.tables[plan.table]
        query = sa.select(sa.func.count()).select_from(table).where(owned_by(table, account))
        counts[plan.table] = int(conn.scalar(query) or 0)
    return counts


def table_digests(conn: sa.Connection, account: str) -> dict[str, str]:
    """For every copied table (``COPIED``), a digest of the rows of ``account``: the
    sum modulo 2**256 of the SHA-256 of each row's values (``plain_row``, in column
    order, as Python's ``repr``). It does not depend on row order, which the two
    backends' collations make differ, and reads rows in chunks. It tells apart any
    two sets of rows a copy could produce; it is not meant to resist rows chosen to
    collide."""
    digests = {}
    for plan in TABLE_PLAN:
        if plan.how not in COPIED:
            continue
        table = t.metadata.tables[plan.table]
        query = sa.select(table).where(owned_by(table, account))
        total = 0
        for row in _streamed(conn, query):
            value = repr(tuple(row.values())).encode()
            total += int.from_bytes(hashlib.sha256(value).digest(), "big")
        digests[plan.table] = f"{total % 2**256:064x}"
    return digests


def delete_account(conn: sa.Connection, account: str) -> None:
    """Delete every row of ``account`` from every table of ``TABLE_PLAN`` but its read
    generation, which only ever moves forward (the triggers move it for the rows
    deleted here): a server's rows proven under an old number must never match a
    counter that started again."""
    for plan in TABLE_PLAN:
        if plan.table == "read_generation":
            continue
        table = t.metadata.tables[plan.table]
        conn.execute(sa.delete(table).where(owned_by(table, account)))


def drop_schema(conn: sa.Connection) -> None:
    """Drop every table of the schema and Alembic's version table."""
    t.metadata.drop_all(conn)
    conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


# ---------------------------------------------------------------- table copy


def copy_tables(source: sa.Connection, target: sa.Connection, account: str) -> None:
    """Make ``target``'s rows of ``account`` in every copied table (``COPIED``)
    ``source``'s, each table as its ``How`` says."""
    for plan in TABLE_PLAN:
        table = t.metadata.tables[plan.table]
        if plan.how is How.KEYED:
            _sync_keyed(source, target, table, account)
        elif plan.how is How.APPENDED:
            _sync_appended(source, target, table, plan.column or "", account)
        elif plan.how is How.INSERTED:
            _sync_inserted(source, target, table, account)


def _keyed_rows(
    conn: sa.Connection, table: sa.Table, account: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key]
    rows = (plain_row(r) for r in conn.execute(sa.select(table).where(owned_by(table, account))))
    return {tuple(row[k] for k in keys): row for row in rows}


def _sync_keyed(src: sa.Connection, dst: sa.Connection, table: sa.Table, account: str) -> None:
    want = _keyed_rows(src, table, account)
    have = _keyed_rows(dst, table, account)
    stale = [key for key, row in have.items() if want.get(key) != row]
    missing = [row for key, row in want.items() if have.get(key) != row]
    if stale:
        keys = [c.name for c in table.primary_key]
        match = sa.and_(*(table.c[k] == sa.bindparam(f"pk_{k}") for k in keys))
        params = [{f"pk_{k}": v for k, v in zip(keys, key, strict=True)} for key in stale]
        dst.execute(sa.delete(table).where(match), params)
    _insert(dst, table, missing)


def _insert(dst: sa.Connection, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert ``rows`` in batches of ``CHUNK`` as they come (memory is bounded by one
    batch, not by the table)."""
    pending = iter(rows)
    while batch := list(itertools.islice(pending, CHUNK)):
        dst.execute(sa.insert(table), batch)


def _streamed(src: sa.Connection, query: sa.Select[Any]) -> Iterator[dict[str, Any]]:
    """The rows of ``query``, fetched ``CHUNK`` at a time (a server-side cursor on
    PostgreSQL)."""
    return (plain_row(r) for r in src.execute(query.execution_options(yield_per=CHUNK)))


def _sync_appended(
    src: sa.Connection, dst: sa.Connection, table: sa.Table, column: str, account: str
) -> None:
    last = dst.scalar(sa.select(sa.func.max(table.c[column])).where(table.c.account == account))
    query = sa.select(table).where(table.c.account == account)
    if last is not None:
        query = query.where(table.c[column] > last)
    _insert(dst, table, _streamed(src, query.order_by(table.c[column])))


def _sync_inserted(src: sa.Connection, dst: sa.Connection, table: sa.Table, account: str) -> None:
    keys = [table.c[c.name] for c in table.primary_key]
    have = {tuple(r) for r in dst.execute(sa.select(*keys).where(table.c.account == account))}
    if not have:  # a first copy: every row, without comparing keys
        _insert(dst, table, _streamed(src, sa.select(table).where(table.c.account == account)))
        return
    want = {tuple(r) for r in src.execute(sa.select(*keys).where(table.c.account == account))}
    missing = sorted(want - have)
    for start in range(0, len(missing), 500):
        match = sa.tuple_(*keys).in_(missing[start : start + 500])
        _insert(dst, table, _streamed(src, sa.select(table).where(match)))
