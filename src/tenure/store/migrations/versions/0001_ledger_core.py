"""Ledger core: events, stored Merkle nodes, checkpoints, keys, idempotency, API keys
and the first projection tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, so that
    # both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


ACCOUNT = _string(64)


def _text(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ledger_heads",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_events",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", _string(40), nullable=False),
        sa.Column("type", _string(64), nullable=False),
        sa.Column("subject", _string(64), nullable=True),
        sa.Column("time", _string(32), nullable=False),
        sa.Column("idempotency_key", _string(255), nullable=True),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("account", "id", name="uq_ledger_events_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_ledger_events_subject", "ledger_events", ["account", "subject", "seq"])
    op.create_table(
        "ledger_nodes",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_keys",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("key_id", _string(8), primary_key=True),
        sa.Column("verifier", sa.Text, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("key", _string(255), primary_key=True),
        sa.Column("request_hash", _string(64), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=True),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", _string(40), primary_key=True),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("key_hash", _string(64), nullable=False, unique=True),
        sa.Column("role", _string(16), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sa.Column("revoked_at", _string(32), nullable=True),
    )
    _projection_tables()


def _projection_tables() -> None:
    def key(name: str, kind: sa.types.TypeEngine[object] | type = sa.Text) -> sa.Column[object]:
        return sa.Column(name, kind, primary_key=True, autoincrement=False)

    op.create_table(
        "proj_customers",
        sa.Column("account", ACCOUNT, primary_key=True),
        key("customer"),
        _text("name"),
        _text("email"),
        _text("external_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "proj_licenses",
        sa.Column("account", ACCOUNT, primary_key=True),
        key("serial"),
        _text("product"),
        _text("customer"),
        _text("plan"),
        sa.Column("plan_version", sa.Integer),
        _text("order_ref"),
        _text("key_hash"),
        _text("status"),
        _text("issued_at"),
        _text("expires_at"),
        _text("overrides"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_proj_licenses_customer", "proj_licenses", ["account", "customer"])
    op.create_index("ix_proj_licenses_status", "proj_licenses", ["account", "status"])
    op.create_index("ix_proj_licenses_key_hash", "proj_licenses", ["key_hash"], unique=True)
    op.create_table(
        "proj_plan_versions",
        sa.Column("account", ACCOUNT, primary_key=True),
        key("plan"),
        key("version", sa.Integer),
        _text("product"),
        _text("entitlements"),
        _text("core"),
        _text("duration"),
        _text("grace"),
        _text("offline_token_ttl"),
        _text("activation"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "proj_plans",
        sa.Column("account", ACCOUNT, primary_key=True),
        key("plan"),
        _text("product"),
        sa.Column("latest_version", sa.Integer),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "proj_products",
        sa.Column("account", ACCOUNT, primary_key=True),
        key("product"),
        _text("name"),
        _text("features"),
        sqlite_with_rowid=False,
    )
